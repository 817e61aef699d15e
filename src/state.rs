//! Everything a request needs, built once at start-up and shared.

use crate::auth::Verifier;
use crate::config::Settings;
use crate::http::client::UpstreamClient;
use crate::metrics::Metrics;

/// Shared gateway state.
pub struct State {
    /// Validated configuration.
    pub settings: Settings,
    /// JWT verifier.
    pub verifier: Verifier,
    /// Pooled upstream client.
    pub client: UpstreamClient,
    /// Data-plane metrics.
    pub metrics: Metrics,
}
