//! Prometheus metrics for the data plane, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
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

/// Data-plane metrics, labelled by route name.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    upstream_errors: Mutex<BTreeMap<(String, &'static str), u64>>,
    decisions: Mutex<BTreeMap<(String, &'static str), u64>>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

impl Metrics {
    /// Counts one finished request and its latency. `route` is `"-"` when none matched.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        bump(&self.requests, (route.to_string(), status));
        let hist = self
            .latency
            .lock()
            .ok()
            .map(|mut m| m.entry(route.to_string()).or_default().clone());
        if let Some(h) = hist {
            h.observe(elapsed);
        }
    }

    /// Counts an upstream failure (`timeout`, `connect`, `body`, …).
    pub fn upstream_error(&self, route: &str, kind: &'static str) {
        bump(&self.upstream_errors, (route.to_string(), kind));
    }

    /// Counts a consent decision on a personal-data route.
    pub fn decision(&self, route: &str, decision: &'static str) {
        bump(&self.decisions, (route.to_string(), decision));
    }

    /// Renders all series.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP consentgate_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE consentgate_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "consentgate_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP consentgate_request_duration_seconds Time from request to response headers.\n",
        );
        out.push_str("# TYPE consentgate_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                h.render(
                    out,
                    "consentgate_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        out.push_str(
            "# HELP consentgate_upstream_errors_total Upstream failures, by route and kind.\n",
        );
        out.push_str("# TYPE consentgate_upstream_errors_total counter\n");
        if let Ok(m) = self.upstream_errors.lock() {
            for ((route, kind), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "consentgate_upstream_errors_total{{route=\"{route}\",kind=\"{kind}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP consentgate_decisions_total Consent decisions on personal-data routes.\n",
        );
        out.push_str("# TYPE consentgate_decisions_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            for ((route, d), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "consentgate_decisions_total{{route=\"{route}\",decision=\"{d}\"}} {n}"
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
        let m = Metrics::default();
        m.request("customers", 200, Duration::from_millis(3));
        m.request("customers", 200, Duration::from_millis(30));
        m.upstream_error("customers", "timeout");
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
