//! Prometheus metrics for the data plane, rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 14],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Writes the `_bucket`, `_sum` and `_count` series with the given labels.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

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

/// Counters of one route (or of requests that matched none): lock-free, allocated at start.
#[derive(Debug)]
struct RouteMetrics {
    name: String,
    /// Index `status - 100` for statuses 100..=599.
    statuses: Vec<AtomicU64>,
    latency: Histogram,
    upstream_errors: [AtomicU64; 5],
    decisions: [AtomicU64; 3],
}

impl RouteMetrics {
    fn new(name: String) -> RouteMetrics {
        RouteMetrics {
            name,
            statuses: (100..600).map(|_| AtomicU64::new(0)).collect(),
            latency: Histogram::default(),
            upstream_errors: Default::default(),
            decisions: Default::default(),
        }
    }
}

/// Data-plane metrics, labelled by route name. Routes are known at start, so recording is a
/// few atomic adds and never allocates.
#[derive(Debug)]
pub struct Metrics {
    /// One per configured route, then one for requests that matched no route (`route="-"`).
    routes: Vec<RouteMetrics>,
}

impl Metrics {
    /// Metrics for the given route names (in route-table order).
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut all: Vec<RouteMetrics> = routes
            .into_iter()
            .map(|n| RouteMetrics::new(n.to_string()))
            .collect();
        all.push(RouteMetrics::new("-".into()));
        Metrics { routes: all }
    }

    fn route(&self, index: Option<usize>) -> Option<&RouteMetrics> {
        let last = self.routes.len().checked_sub(1)?;
        self.routes.get(index.unwrap_or(last).min(last))
    }

    /// Counts one finished request and its latency (`index`: the route's position, `None`
    /// when no route matched).
    pub fn request(&self, index: Option<usize>, status: u16, elapsed: Duration) {
        if let Some(r) = self.route(index) {
            if let Some(c) = r.statuses.get(usize::from(status.saturating_sub(100))) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            r.latency.observe(elapsed);
        }
    }

    /// Counts an upstream failure of a kind in [`UPSTREAM_ERROR_KINDS`].
    pub fn upstream_error(&self, index: Option<usize>, kind: &str) {
        if let (Some(r), Some(i)) = (
            self.route(index),
            UPSTREAM_ERROR_KINDS.iter().position(|k| *k == kind),
        ) {
            r.upstream_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a consent decision (one of [`DECISIONS`]).
    pub fn decision(&self, index: Option<usize>, decision: &str) {
        if let (Some(r), Some(i)) = (
            self.route(index),
            DECISIONS.iter().position(|d| *d == decision),
        ) {
            r.decisions[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Renders all series.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP consentgate_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE consentgate_requests_total counter\n");
        for r in &self.routes {
            for (i, c) in r.statuses.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "consentgate_requests_total{{route=\"{}\",status=\"{}\"}} {n}",
                        r.name,
                        i + 100
                    );
                }
            }
        }
        out.push_str(
            "# HELP consentgate_request_duration_seconds Time from request to response headers.\n",
        );
        out.push_str("# TYPE consentgate_request_duration_seconds histogram\n");
        for r in &self.routes {
            r.latency.render(
                out,
                "consentgate_request_duration_seconds",
                &format!("route=\"{}\"", r.name),
            );
        }
        out.push_str(
            "# HELP consentgate_upstream_errors_total Upstream failures, by route and kind.\n",
        );
        out.push_str("# TYPE consentgate_upstream_errors_total counter\n");
        for r in &self.routes {
            for (kind, c) in UPSTREAM_ERROR_KINDS.iter().zip(&r.upstream_errors) {
                let _ = writeln!(
                    out,
                    "consentgate_upstream_errors_total{{route=\"{}\",kind=\"{kind}\"}} {}",
                    r.name,
                    c.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str(
            "# HELP consentgate_decisions_total Consent decisions on personal-data routes.\n",
        );
        out.push_str("# TYPE consentgate_decisions_total counter\n");
        for r in &self.routes {
            for (d, c) in DECISIONS.iter().zip(&r.decisions) {
                let _ = writeln!(
                    out,
                    "consentgate_decisions_total{{route=\"{}\",decision=\"{d}\"}} {}",
                    r.name,
                    c.load(Ordering::Relaxed)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new(["customers"]);
        m.request(Some(0), 200, Duration::from_millis(3));
        m.request(Some(0), 200, Duration::from_millis(30));
        m.upstream_error(Some(0), "timeout");
        m.request(None, 404, Duration::from_millis(1));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("consentgate_requests_total{route=\"customers\",status=\"200\"} 2"));
        assert!(out.contains(
            "consentgate_request_duration_seconds_bucket{route=\"customers\",le=\"0.005\"} 1"
        ));
        assert!(out.contains(
            "consentgate_request_duration_seconds_bucket{route=\"customers\",le=\"+Inf\"} 2"
        ));
        assert!(
            out.contains(
                "consentgate_upstream_errors_total{route=\"customers\",kind=\"timeout\"} 1"
            )
        );
    }
}
