//! Everything a request needs, built once at start-up and shared.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::auth::Verifier;
use crate::config::Settings;
use crate::consent::ConsentStore;
use crate::http::client::UpstreamClients;
use crate::metrics::Metrics;
use crate::policy::PolicyRegistry;

/// Shared gateway state.
pub struct State {
    /// Validated configuration.
    pub settings: Settings,
    /// JWT verifier.
    pub verifier: Verifier,
    /// Pooled upstream clients, one per data-plane worker.
    pub client: UpstreamClients,
    /// Data-plane metrics.
    pub metrics: Metrics,
    /// Per-segment summaries of the audit log, for `GET /v1/stats` (file backend; on
    /// PostgreSQL the figures are read from the database).
    pub stats: Option<Arc<crate::stats::StatsIndex>>,
    /// Consent records and subject regions.
    pub store: ConsentStore,
    /// The loaded policy set, swapped atomically on reload.
    pub policies: Arc<PolicyRegistry>,
    /// The tamper-evident access log.
    pub audit: AuditLog,
    /// Personal-data exchanges in flight: each runs to its audit record even when its client
    /// goes away, and shutdown waits for them.
    pub exchanges: tokio_util::task::TaskTracker,
    /// Data-plane requests in flight, at most `gateway.max_in_flight`.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Bytes of buffered upstream answers, at most `gateway.max_buffered_bytes`.
    pub(crate) buffers: crate::pipeline::budget::BufferBudget,
}
