//! Prometheus metrics: the data plane (requests, latency, upstream failures, decisions), the
//! compliance figures (accesses, GPC, fields withheld, values masked, incidents, consent
//! states and rates), and the audit log's own series, all through one
//! [`prometheus_client`] registry.
//!
//! Label sets are bounded: routes come from the config; regions, purposes and redactors only
//! from the loaded policies (anything else is counted under `-`); decisions, reasons and
//! incident kinds are fixed names in the code. Store figures are read from the consent
//! store's tally at scrape time (no scan), see [`crate::consent::Tally`].
//!
//! `/metrics` answers OpenMetrics when the scraper asks for it and the Prometheus text format
//! 0.0.4 otherwise ([`Exposition`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditLog, Decision};
use crate::consent::{ConsentStore, CountedState};
use crate::policy::{PolicyRegistry, PolicySet};
use crate::stats::{IncidentKind, incident_of};

/// Upper bounds (seconds) of the request latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upstream failure kinds counted per route.
pub const UPSTREAM_ERROR_KINDS: [&str; 5] = [
    "connect",
    "timeout",
    "body",
    "request_too_large",
    "response_too_large",
];
/// Decisions counted per route.
pub const DECISIONS: [&str; 3] = ["allow", "deny", "report_deny"];

/// The label value for a name that is not in the loaded policies (or not known).
pub const UNLISTED: &str = "-";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: Arc<String>,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Arc<String>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteKind {
    route: Arc<String>,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteDecision {
    route: Arc<String>,
    decision: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccessLabels {
    region: String,
    purpose: String,
    decision: &'static str,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionPurpose {
    region: String,
    purpose: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MaskedLabels {
    region: String,
    purpose: String,
    redactor: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IncidentLabels {
    region: String,
    purpose: String,
    kind: &'static str,
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// One audited access, as the compliance series count it.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The subject's region, if resolved.
    pub region: Option<String>,
    /// The declared purpose, if valid.
    pub purpose: Option<String>,
    /// The decision recorded (`None` only before a decision could be recorded).
    pub decision: Option<Decision>,
    /// The recorded reason: an error code or a policy reason (names fixed in the code, so the
    /// label set stays bounded).
    pub reason: String,
    /// Fields removed by minimisation.
    pub fields_withheld: u64,
    /// Values masked, per redactor.
    pub redactions: BTreeMap<String, u64>,
}

impl From<&AuditEntry> for Access {
    fn from(e: &AuditEntry) -> Self {
        Access {
            region: e.region.clone(),
            purpose: e.purpose.clone(),
            decision: Some(e.decision),
            reason: e.reason.clone(),
            fields_withheld: e.fields_removed.len() as u64,
            redactions: e.redactions.clone(),
        }
    }
}

/// Which exposition format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Exposition {
    /// Picks the format from an `Accept` header: OpenMetrics when it is listed with a
    /// quality at least that of `text/plain` (and above zero), else text 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        let Some(accept) = accept else {
            return Exposition::Text;
        };
        let mut open = 0.0f32;
        let mut text = 0.0f32;
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= text {
            Exposition::OpenMetrics
        } else {
            Exposition::Text
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Per-route handles, created at start so a request never allocates a label set.
#[derive(Debug)]
struct RouteHandles {
    name: Arc<String>,
    latency: Histogram,
    upstream_errors: [Counter; 5],
    decisions: [Counter; 3],
}

/// Every series of the gateway (see the module doc).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// One per configured route, then one for requests that matched no route (`route="-"`).
    routes: Vec<RouteHandles>,
    requests: Family<RouteStatus, Counter>,
    accesses: Family<AccessLabels, Counter>,
    gpc: Family<RegionPurpose, Counter>,
    withheld: Family<RegionPurpose, Counter>,
    masked: Family<MaskedLabels, Counter>,
    incidents: Family<IncidentLabels, Counter>,
    /// Audit failures since start, all labels (for `/v1/stats`).
    audit_failures: Counter,
    policies: Arc<PolicyRegistry>,
}

/// What is read at scrape time: store tallies, audit health, policy reload failures.
#[derive(Debug)]
struct ScrapeTime {
    store: ConsentStore,
    policies: Arc<PolicyRegistry>,
    default_region: String,
}

/// The gateway's load, read at scrape time: requests in flight and buffered bytes.
#[derive(Debug)]
struct Load {
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    buffers: crate::pipeline::budget::BufferBudget,
}

impl Collector for Load {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let in_flight = ConstGauge::new(
            u64::try_from(
                self.max_in_flight
                    .saturating_sub(self.in_flight.available_permits()),
            )
            .unwrap_or(u64::MAX),
        );
        in_flight.encode(encoder.encode_descriptor(
            "requests_in_flight",
            "Data-plane requests in flight (at most gateway.max_in_flight; more are shed)",
            None,
            in_flight.metric_type(),
        )?)?;
        let buffered = ConstGauge::new(self.buffers.held_bytes());
        buffered.encode(encoder.encode_descriptor(
            "buffered_bytes",
            "Bytes of upstream answers buffered to be minimised (at most gateway.max_buffered_bytes)",
            None,
            buffered.metric_type(),
        )?)?;
        Ok(())
    }
}

impl Metrics {
    /// Adds the load gauges: requests in flight (of `max_in_flight`) and buffered bytes.
    pub(crate) fn watch_load(
        &mut self,
        in_flight: Arc<tokio::sync::Semaphore>,
        max_in_flight: usize,
        buffers: crate::pipeline::budget::BufferBudget,
    ) {
        self.registry.register_collector(Box::new(Load {
            in_flight,
            max_in_flight,
            buffers,
        }));
    }

    /// The registry for the given route names (in route-table order), with the audit log's
    /// series and the scrape-time figures of the store and the policies.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = &'a str>,
        store: ConsentStore,
        policies: Arc<PolicyRegistry>,
        audit: AuditLog,
        default_region: &str,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("consentgate");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let upstream = Family::<RouteKind, Counter>::default();
        let decisions = Family::<RouteDecision, Counter>::default();
        let mut names: Vec<Arc<String>> = routes.into_iter().map(|n| Arc::new(n.into())).collect();
        names.push(Arc::new(UNLISTED.into()));
        let routes = names
            .into_iter()
            .map(|name| RouteHandles {
                latency: latency.get_or_create_owned(&RouteLabel {
                    route: name.clone(),
                }),
                upstream_errors: UPSTREAM_ERROR_KINDS.map(|kind| {
                    upstream.get_or_create_owned(&RouteKind {
                        route: name.clone(),
                        kind,
                    })
                }),
                decisions: DECISIONS.map(|decision| {
                    decisions.get_or_create_owned(&RouteDecision {
                        route: name.clone(),
                        decision,
                    })
                }),
                name,
            })
            .collect();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, by route",
            latency,
        );
        registry.register(
            "upstream_errors",
            "Upstream failures, by route and kind",
            upstream,
        );
        registry.register(
            "decisions",
            "Consent decisions on personal-data routes that have their audit record, by route",
            decisions,
        );
        let accesses = Family::<AccessLabels, Counter>::default();
        registry.register(
            "accesses",
            "Audited personal-data accesses, by region, purpose, decision and reason",
            accesses.clone(),
        );
        let gpc = Family::<RegionPurpose, Counter>::default();
        registry.register(
            "gpc_applied",
            "Accesses refused (or, in report mode, marked) because of a Sec-GPC: 1 signal",
            gpc.clone(),
        );
        let withheld = Family::<RegionPurpose, Counter>::default();
        registry.register(
            "fields_withheld",
            "Response fields removed by minimisation",
            withheld.clone(),
        );
        let masked = Family::<MaskedLabels, Counter>::default();
        registry.register(
            "values_masked",
            "Values masked, by region, purpose and redactor",
            masked.clone(),
        );
        let incidents = Family::<IncidentLabels, Counter>::default();
        registry.register(
            "incidents",
            "Compliance incidents: report_deny (would-be denials let through), fail_closed \
             (refusals because a body could not be processed or the store or audit log was \
             unavailable), audit_failure (a record could not be written)",
            incidents.clone(),
        );
        audit.register_metrics(registry.sub_registry_with_prefix("audit"));
        registry.register_collector(Box::new(ScrapeTime {
            store,
            policies: policies.clone(),
            default_region: default_region.to_owned(),
        }));
        Metrics {
            registry,
            routes,
            requests,
            accesses,
            gpc,
            withheld,
            masked,
            incidents,
            audit_failures: Counter::default(),
            policies,
        }
    }

    fn route(&self, index: Option<usize>) -> Option<&RouteHandles> {
        let last = self.routes.len().checked_sub(1)?;
        self.routes.get(index.unwrap_or(last).min(last))
    }

    /// Counts one finished request and its latency (`index`: the route's position, `None`
    /// when no route matched).
    pub fn request(&self, index: Option<usize>, status: u16, elapsed: Duration) {
        if let Some(r) = self.route(index) {
            self.requests
                .get_or_create(&RouteStatus {
                    route: r.name.clone(),
                    status,
                })
                .inc();
            r.latency.observe(elapsed.as_secs_f64());
        }
    }

    /// Counts an upstream failure of a kind in [`UPSTREAM_ERROR_KINDS`].
    pub fn upstream_error(&self, index: Option<usize>, kind: &str) {
        if let (Some(r), Some(i)) = (
            self.route(index),
            UPSTREAM_ERROR_KINDS.iter().position(|k| *k == kind),
        ) && let Some(c) = r.upstream_errors.get(i)
        {
            c.inc();
        }
    }

    /// Counts a consent decision (one of [`DECISIONS`]).
    pub fn decision(&self, index: Option<usize>, decision: &str) {
        self.decisions(index, decision, 1);
    }

    /// Counts `n` consent decisions of one kind (one of [`DECISIONS`]).
    pub fn decisions(&self, index: Option<usize>, decision: &str, n: u64) {
        if let (Some(r), Some(i)) = (
            self.route(index),
            DECISIONS.iter().position(|d| *d == decision),
        ) && let Some(c) = r.decisions.get(i)
        {
            c.inc_by(n);
        }
    }

    /// Counts an access whose audit record was written (`recorded`), or an audit failure.
    pub fn access(&self, access: &Access, recorded: bool) {
        self.access_n(access, 1, recorded);
    }

    /// Counts the accesses of records written together (`recorded`), or their audit failure.
    /// Records with the same labels (most of a collection's) are counted as one group.
    pub fn accesses(&self, entries: &[AuditEntry], recorded: bool) {
        type Labels<'e> = (Option<&'e str>, Option<&'e str>, Decision, &'e str);
        let mut index: std::collections::HashMap<Labels<'_>, usize> =
            std::collections::HashMap::new();
        let mut groups: Vec<(Access, u64)> = Vec::new();
        for e in entries {
            let labels = (
                e.region.as_deref(),
                e.purpose.as_deref(),
                e.decision,
                e.reason.as_str(),
            );
            let Some((group, n)) = index.get(&labels).and_then(|&i| groups.get_mut(i)) else {
                index.insert(labels, groups.len());
                groups.push((Access::from(e), 1));
                continue;
            };
            *n += 1;
            group.fields_withheld += e.fields_removed.len() as u64;
            for (name, count) in &e.redactions {
                match group.redactions.get_mut(name) {
                    Some(sum) => *sum += count,
                    None => {
                        group.redactions.insert(name.clone(), *count);
                    }
                }
            }
        }
        for (access, n) in &groups {
            self.access_n(access, *n, recorded);
        }
    }

    /// [`Metrics::access`] for `n` accesses with these labels (`access` holds their sums).
    fn access_n(&self, access: &Access, n: u64, recorded: bool) {
        let set = self.policies.current();
        let (region, purpose) = bounded(&set, access.region.as_deref(), access.purpose.as_deref());
        if !recorded {
            self.audit_failures.inc_by(n);
            self.incident(&region, &purpose, IncidentKind::AuditFailure, n);
            return;
        }
        let Some(decision) = access.decision else {
            return;
        };
        self.accesses
            .get_or_create(&AccessLabels {
                region: region.clone(),
                purpose: purpose.clone(),
                decision: decision.as_str(),
                reason: access.reason.clone(),
            })
            .inc_by(n);
        let cell = RegionPurpose {
            region: region.clone(),
            purpose: purpose.clone(),
        };
        if crate::stats::gpc_applied(&access.reason) {
            self.gpc.get_or_create(&cell).inc_by(n);
        }
        if access.fields_withheld > 0 {
            self.withheld
                .get_or_create(&cell)
                .inc_by(access.fields_withheld);
        }
        let policy = access.region.as_deref().and_then(|r| set.get(r));
        for (name, count) in &access.redactions {
            let known = policy
                .as_ref()
                .is_some_and(|p| p.redactors.contains_key(name));
            self.masked
                .get_or_create(&MaskedLabels {
                    region: region.clone(),
                    purpose: purpose.clone(),
                    redactor: if known { name.clone() } else { UNLISTED.into() },
                })
                .inc_by(*count);
        }
        if let Some(kind) = incident_of(decision, &access.reason) {
            self.incident(&region, &purpose, kind, n);
        }
    }

    fn incident(&self, region: &str, purpose: &str, kind: IncidentKind, n: u64) {
        self.incidents
            .get_or_create(&IncidentLabels {
                region: region.to_owned(),
                purpose: purpose.to_owned(),
                kind: kind.as_str(),
            })
            .inc_by(n);
    }

    /// Accesses whose audit record could not be written, since start.
    pub fn audit_failures(&self) -> u64 {
        self.audit_failures.get()
    }

    /// Renders every series in `format`.
    pub fn render(&self, format: Exposition) -> String {
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail; a collector error would only truncate.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics exposition failed");
        }
        match format {
            Exposition::OpenMetrics => out,
            Exposition::Text => to_text_004(&out),
        }
    }
}

/// The label values for a region and purpose: the names if the loaded policies define them
/// (the purpose in that region's policy), else [`UNLISTED`].
pub(crate) fn bounded(
    set: &PolicySet,
    region: Option<&str>,
    purpose: Option<&str>,
) -> (String, String) {
    let policy = region.and_then(|r| set.get(r));
    let region_label = match (&policy, region) {
        (Some(_), Some(r)) => r.to_owned(),
        _ => UNLISTED.to_owned(),
    };
    let purpose_label = match (&policy, purpose) {
        (Some(p), Some(name)) if p.purpose(name).is_some() => name.to_owned(),
        _ => UNLISTED.to_owned(),
    };
    (region_label, purpose_label)
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let set = self.policies.current();
        let cells = crate::stats::consent_cells(
            &set,
            &self.store.tally().snapshot(OffsetDateTime::now_utc()),
            &self.default_region,
        );
        {
            let mut family = encoder.encode_descriptor(
                "consent_subjects",
                "Subjects per consent state, by region and purpose (from the store's tally)",
                None,
                ConstGauge::new(0u64).metric_type(),
            )?;
            for cell in &cells {
                for state in CountedState::ALL {
                    let labels = [
                        ("region", cell.region.as_str()),
                        ("purpose", cell.purpose.as_str()),
                        ("state", state.as_str()),
                    ];
                    ConstGauge::new(cell.counts.get(state))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "consent_rate",
                "Granted subjects over subjects with a recorded decision, by region and purpose",
                None,
                ConstGauge::new(0.0f64).metric_type(),
            )?;
            for cell in &cells {
                if let Some(rate) = cell.counts.consent_rate() {
                    let labels = [
                        ("region", cell.region.as_str()),
                        ("purpose", cell.purpose.as_str()),
                    ];
                    ConstGauge::new(rate).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let failures = ConstCounter::new(self.policies.reload_failures());
        failures.encode(encoder.encode_descriptor(
            "policy_reload_failures",
            "Policy reloads refused (the last good set kept serving): an incident",
            None,
            failures.metric_type(),
        )?)?;
        Ok(())
    }
}

/// OpenMetrics text to the Prometheus text format 0.0.4: counter families are named with
/// their `_total` suffix, `unknown` becomes `untyped`, `# UNIT` and `# EOF` go.
fn to_text_004(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<(&str, &str)> = None;
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                k => (name.to_owned(), k),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        assert_eq!(Exposition::negotiate(None), Exposition::Text);
        assert_eq!(Exposition::negotiate(Some("*/*")), Exposition::Text);
        assert_eq!(
            Exposition::negotiate(Some("text/plain;version=0.0.4")),
            Exposition::Text
        );
        // What Prometheus sends.
        assert_eq!(
            Exposition::negotiate(Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
            )),
            Exposition::OpenMetrics
        );
        assert_eq!(
            Exposition::negotiate(Some("application/openmetrics-text;q=0,text/plain")),
            Exposition::Text
        );
        assert_eq!(
            Exposition::negotiate(Some("text/plain;q=0.9,application/openmetrics-text;q=0.1")),
            Exposition::Text
        );
    }

    #[test]
    fn text_004_names_counters_with_total_and_drops_eof() {
        let open = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"1\"} 2\n# HELP x_up Up.\n# TYPE x_up gauge\n# UNIT x_up seconds\nx_up 1\n# EOF\n";
        assert_eq!(
            to_text_004(open),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{a=\"1\"} 2\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }
}
