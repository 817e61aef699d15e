//! consentgate: a privacy-and-consent governance gateway.
//!
//! A reverse proxy in front of customer-data APIs: it authenticates the calling service,
//! resolves the data subject, purpose and region, checks consent, forwards, minimises and
//! redacts the response per region policy, and writes a tamper-evident audit record before
//! releasing it. [`Gateway`] is what the binary, the tests and the benchmarks run.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod consent;
pub mod demo;
pub mod devtools;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod routing;
pub mod server;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use config::Settings;
use state::State;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        /// Config key of the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Key material for JWT verification.
    #[error("auth: {0}")]
    Keys(#[from] auth::KeyError),
    /// TLS material for the listener.
    #[error("gateway TLS: {0}")]
    Tls(#[from] server::TlsError),
    /// The upstream client.
    #[error("{0}")]
    Client(#[from] http::client::ClientError),
}

/// A gateway with its listeners bound, ready to serve.
pub struct Gateway {
    state: Arc<State>,
    data: TcpListener,
    admin: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Gateway {
    /// Loads keys and TLS material and binds both listeners (port 0 picks a free port).
    pub async fn bind(settings: Settings) -> Result<Gateway, StartError> {
        install_crypto_provider();
        let verifier = auth::Verifier::from_settings(&settings.auth)?;
        let tls = settings
            .gateway
            .tls
            .as_ref()
            .map(server::acceptor)
            .transpose()?;
        let connect_timeout =
            settings.gateway.upstream_timeout + std::time::Duration::from_millis(250);
        let client = http::client::build(settings.gateway.upstream_ca.as_deref(), connect_timeout)?;
        let data = bind("gateway.listen", settings.gateway.listen).await?;
        let admin = bind("admin.listen", settings.admin_listen).await?;
        let state = Arc::new(State {
            settings,
            verifier,
            client,
            metrics: metrics::Metrics::default(),
        });
        Ok(Gateway {
            state,
            data,
            admin,
            tls,
        })
    }

    /// The data-plane address actually bound.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.data
            .local_addr()
            .unwrap_or(self.state.settings.gateway.listen)
    }

    /// The admin address actually bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or(self.state.settings.admin_listen)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests (bounded by
    /// `gateway.shutdown_grace`) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let (tx, rx) = watch::channel(false);
        let g = &self.state.settings.gateway;
        let limits = server::Limits {
            header_read_timeout: g.header_read_timeout,
            max_connections: g.max_connections,
            shutdown_grace: g.shutdown_grace,
        };
        let state = self.state.clone();
        let data_handler: server::Handler = Arc::new(move |req, conn| {
            let state = state.clone();
            Box::pin(pipeline::handle(state, req, conn))
        });
        let state = self.state.clone();
        let admin_handler: server::Handler = Arc::new(move |req, _conn| {
            let state = state.clone();
            Box::pin(admin::handle(state, req))
        });
        let data = tokio::spawn(server::serve(
            self.data,
            self.tls,
            limits,
            data_handler,
            rx.clone(),
        ));
        let admin = tokio::spawn(server::serve(self.admin, None, limits, admin_handler, rx));
        tracing::info!("consentgate serving");
        shutdown.await;
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        let _ = tx.send(true);
        let _ = data.await;
        let _ = admin.await;
    }
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

/// Makes aws-lc-rs the process-wide crypto provider for rustls and jsonwebtoken (once).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
