//! The pooled upstream client: HTTP/1.1 and HTTP/2 (ALPN) over plain TCP or rustls.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::body::Body;

/// The client type used to reach upstreams.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

/// One upstream client (and so one connection pool) per data-plane worker: a worker's
/// requests reuse connections whose tasks run on its own runtime, so forwarding never wakes
/// another thread.
#[derive(Clone)]
pub struct UpstreamClients(Arc<[UpstreamClient]>);

impl UpstreamClients {
    /// The client of the worker this runs on (the first one outside the workers).
    pub fn current(&self) -> &UpstreamClient {
        &self.0[crate::server::worker_index() % self.0.len()]
    }
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA file is unreadable or not PEM certificates.
    #[error("gateway.upstream_ca {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Builds `pools` upstream clients (at least one), trusting the public web roots plus
/// `extra_ca` if given.
pub fn build(
    extra_ca: Option<&Path>,
    connect_timeout: Duration,
    pools: usize,
) -> Result<UpstreamClients, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let ca_err = |message: String| ClientError::Ca {
            path: path.display().to_string(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate found".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client = || {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector.clone())
    };
    Ok(UpstreamClients(
        (0..pools.max(1)).map(|_| client()).collect(),
    ))
}
