//! The audit log's counters and histograms, rendered as Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
const FSYNC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A fixed-bucket histogram; the sum is kept in micro-units.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if v <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int conversion; values are small and non-negative.
        self.sum_micros
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Everything the writer counts.
#[derive(Debug)]
pub(crate) struct Metrics {
    records: AtomicU64,
    batches: AtomicU64,
    write_errors: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_errors: AtomicU64,
    batch_size: Histogram,
    fsync_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            records: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            checkpoint_errors: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BUCKETS),
            fsync_seconds: Histogram::new(FSYNC_BUCKETS),
        }
    }

    pub(crate) fn batch_written(&self, records: usize) {
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_size.observe(records as f64);
    }

    pub(crate) fn fsync(&self, seconds: f64) {
        self.fsync_seconds.observe(seconds);
    }

    pub(crate) fn write_error(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn checkpoint(&self, ok: bool) {
        let counter = if ok {
            &self.checkpoints
        } else {
            &self.checkpoint_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub(crate) fn render(&self, out: &mut String, healthy: bool, head_seq: u64) {
        let counters = [
            (
                "records_total",
                "Audit records written and fsync'd.",
                &self.records,
            ),
            (
                "batches_total",
                "Group-commit batches written.",
                &self.batches,
            ),
            (
                "write_errors_total",
                "Batches that failed to be written or fsync'd.",
                &self.write_errors,
            ),
            (
                "checkpoints_total",
                "Signed checkpoints written.",
                &self.checkpoints,
            ),
            (
                "checkpoint_errors_total",
                "Checkpoints that failed to be signed or written.",
                &self.checkpoint_errors,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP consentgate_audit_{name} {help}");
            let _ = writeln!(out, "# TYPE consentgate_audit_{name} counter");
            let _ = writeln!(
                out,
                "consentgate_audit_{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        self.batch_size.render(
            out,
            "consentgate_audit_batch_size",
            "Records per group-commit batch.",
        );
        self.fsync_seconds.render(
            out,
            "consentgate_audit_fsync_seconds",
            "Time spent in fdatasync per batch.",
        );
        let _ = writeln!(
            out,
            "# HELP consentgate_audit_healthy 1 if the last write succeeded, else 0."
        );
        let _ = writeln!(out, "# TYPE consentgate_audit_healthy gauge");
        let _ = writeln!(out, "consentgate_audit_healthy {}", u8::from(healthy));
        let _ = writeln!(
            out,
            "# HELP consentgate_audit_head_seq Seq of the last record written."
        );
        let _ = writeln!(out, "# TYPE consentgate_audit_head_seq gauge");
        let _ = writeln!(out, "consentgate_audit_head_seq {head_seq}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new();
        m.batch_written(3);
        m.batch_written(100);
        m.fsync(0.002);
        m.write_error();
        let mut out = String::new();
        m.render(&mut out, true, 103);
        assert!(out.contains("# TYPE consentgate_audit_records_total counter\n"));
        assert!(out.contains("consentgate_audit_records_total 103\n"));
        assert!(out.contains("consentgate_audit_batches_total 2\n"));
        assert!(out.contains("consentgate_audit_write_errors_total 1\n"));
        assert!(out.contains("consentgate_audit_batch_size_bucket{le=\"4\"} 1\n"));
        assert!(out.contains("consentgate_audit_batch_size_bucket{le=\"128\"} 2\n"));
        assert!(out.contains("consentgate_audit_batch_size_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("consentgate_audit_batch_size_sum 103\n"));
        assert!(out.contains("consentgate_audit_fsync_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(out.contains("consentgate_audit_fsync_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(out.contains("consentgate_audit_healthy 1\n"));
        assert!(out.contains("consentgate_audit_head_seq 103\n"));
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("consentgate_audit_"), "{line}");
        }
    }
}
