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
mod authzen;
pub mod canonical_json;
pub mod config;
pub mod consent;
pub mod demo;
pub mod devtools;
pub mod error;
pub mod hex;
pub mod http;
pub mod json;
pub mod metrics;
pub mod pg;
pub mod pipeline;
pub mod policy;
pub mod redact;
pub mod routing;
pub mod server;
pub mod state;
pub mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
    /// The consent store. (Not marked as the error's source: its text is already in the
    /// message, and `{:#}` would print it twice.)
    #[error("consent store: {0}")]
    Store(consent::StoreError),
    /// The audit log. (Not marked as the source either, for the same reason.)
    #[error("audit: {0}")]
    Audit(audit::AuditError),
    /// The policies (each error on its own line, `file:line:column: message`).
    #[error("policies are invalid:\n{0}")]
    Policies(#[from] policy::LoadErrors),
    /// The `hash` redactor's secret.
    #[error("policies.hash_secret_file {path}: {source}")]
    HashSecret {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy file watcher.
    #[error("cannot watch the policy folder: {0}")]
    Watch(#[from] notify::Error),
    /// A data-plane worker thread or its runtime.
    #[error("cannot start the data-plane workers: {0}")]
    Workers(std::io::Error),
}

impl From<audit::AuditError> for StartError {
    fn from(e: audit::AuditError) -> Self {
        Self::Audit(e)
    }
}

impl From<consent::StoreError> for StartError {
    fn from(e: consent::StoreError) -> Self {
        Self::Store(e)
    }
}

/// A gateway with its listeners bound, ready to serve.
pub struct Gateway {
    state: Arc<State>,
    data: Vec<server::Worker>,
    data_addr: SocketAddr,
    admin: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    _watcher: Option<policy::PolicyWatcher>,
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
        let client = http::client::build(
            settings.gateway.upstream_ca.as_deref(),
            connect_timeout,
            settings.gateway.workers,
        )?;
        let hash_key = match &settings.policies.hash_secret_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map(|b| b.trim_ascii().to_vec())
                    .map_err(|source| StartError::HashSecret {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let policies = Arc::new(policy::PolicyRegistry::load(
            &settings.policies.dir,
            policy::LoadOptions {
                hash_key,
                required_regions: vec![settings.gateway.default_region.clone()],
            },
        )?);
        let watcher = if settings.policies.watch {
            Some(policies.clone().watch()?)
        } else {
            None
        };
        let store = consent::ConsentStore::open(&settings.store).await?;
        let config = audit_config(&settings);
        let audit = tokio::task::spawn_blocking(move || audit::AuditLog::open(config))
            .await
            .map_err(|e| audit::AuditError::WriteFailed(format!("audit log open failed: {e}")))??;
        let data = bind("gateway.listen", settings.gateway.listen).await?;
        let data_addr = data.local_addr().unwrap_or(settings.gateway.listen);
        let data = data
            .into_std()
            .and_then(|listener| server::spawn_workers(listener, settings.gateway.workers))
            .map_err(StartError::Workers)?;
        let admin = bind("admin.listen", settings.admin_listen).await?;
        let mut metrics = metrics::Metrics::new(
            settings.routes.iter().map(|r| r.name.as_str()),
            store.clone(),
            policies.clone(),
            audit.clone(),
            &settings.gateway.default_region,
        );
        let stats = match audit.reader() {
            audit::Reader::Files(dir) => Some(Arc::new(stats::StatsIndex::new(dir.clone()))),
            audit::Reader::Postgres(_) => None,
        };
        let max_in_flight = settings.gateway.max_in_flight;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
        let buffers = pipeline::budget::BufferBudget::new(settings.gateway.max_buffered_bytes);
        metrics.watch_load(in_flight.clone(), max_in_flight, buffers.clone());
        let state = Arc::new(State {
            settings,
            verifier,
            client,
            metrics,
            stats,
            store,
            policies,
            audit,
            exchanges: tokio_util::task::TaskTracker::new(),
            in_flight,
            buffers,
        });
        Ok(Gateway {
            state,
            data,
            data_addr,
            admin,
            tls,
            _watcher: watcher,
        })
    }

    /// The shared state (consent store, policies, audit log), e.g. for seeding the demo.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The data-plane address actually bound.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.data_addr
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
        let reload = tokio::spawn(reload_on_sighup(self.state.policies.clone()));
        let serving = server::Serving {
            tls: self.tls,
            limits,
            handler: data_handler,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            shutdown: rx.clone(),
            exchanges: self.state.exchanges.clone(),
        };
        let workers: Vec<_> = self
            .data
            .into_iter()
            .map(|worker| worker.start(serving.clone()))
            .collect();
        drop(serving);
        let admin_slots = Arc::new(Semaphore::new(limits.max_connections));
        let admin = tokio::spawn(server::serve(
            self.admin,
            None,
            limits,
            admin_handler,
            admin_slots,
            rx,
        ));
        tracing::info!(workers = workers.len(), "consentgate serving");
        shutdown.await;
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        let _ = tx.send(true);
        let mut finished = Vec::with_capacity(workers.len());
        for worker in workers {
            let _ = worker.drained.await;
            finished.push(worker.finished);
        }
        let _ = admin.await;
        // Exchanges whose client went away still finish and write their records; each worker
        // drives its own until the tracker is closed and empty.
        self.state.exchanges.close();
        self.state.exchanges.wait().await;
        for worker in finished {
            let _ = worker.await;
        }
        reload.abort();
    }
}

fn audit_config(settings: &Settings) -> audit::AuditConfig {
    let a = &settings.audit;
    audit::AuditConfig {
        storage: match &a.storage {
            config::AuditStorage::Files { dir } => audit::Storage::Files(dir.clone()),
            config::AuditStorage::Postgres { target, replica } => audit::Storage::Postgres {
                target: target.clone(),
                replica: replica.clone(),
            },
        },
        sync: match a.sync {
            config::AuditSync::Group => audit::SyncMode::Group,
            config::AuditSync::Always => audit::SyncMode::Always,
        },
        segment_bytes: a.segment_bytes,
        retention: a.retention,
        checkpoint: a
            .checkpoint_key
            .as_ref()
            .map(|key| audit::CheckpointConfig {
                key_pem_path: key.clone(),
                every_records: a.checkpoint_records,
                // A key without a schedule checkpoints every 10 s.
                every: a.checkpoint_interval.or(if a.checkpoint_records.is_none() {
                    Some(std::time::Duration::from_secs(10))
                } else {
                    None
                }),
            }),
    }
}

/// Reloads policies on SIGHUP (Unix); an invalid set is refused and logged, the last good
/// set keeps serving.
async fn reload_on_sighup(policies: Arc<policy::PolicyRegistry>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let registry = policies.clone();
            let result = tokio::task::spawn_blocking(move || registry.reload()).await;
            match result {
                Ok(Ok(())) => tracing::info!("policies reloaded (SIGHUP)"),
                Ok(Err(e)) => {
                    tracing::error!(errors = %e, "policy reload refused; the last good set keeps serving")
                }
                Err(_) => tracing::error!("policy reload task failed"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = policies;
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
