//! The audit log's series (`consentgate_audit_*`): counters and histograms the writer
//! updates, and the log's health and head read at scrape time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::writer::Shared;

const FSYNC_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Everything the writer counts.
#[derive(Debug)]
pub(crate) struct Metrics {
    records: Counter,
    batches: Counter,
    batches_in_caller: Counter,
    write_errors: Counter,
    checkpoints: Counter,
    checkpoint_errors: Counter,
    batch_size: Histogram,
    fsync_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            records: Counter::default(),
            batches: Counter::default(),
            batches_in_caller: Counter::default(),
            write_errors: Counter::default(),
            checkpoints: Counter::default(),
            checkpoint_errors: Counter::default(),
            // 1, 2, 4, … 4096 records.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            fsync_seconds: Histogram::new(FSYNC_BUCKETS),
        }
    }

    pub(crate) fn batch_written(&self, records: usize) {
        self.records.inc_by(records as u64);
        self.batches.inc();
        self.batch_size.observe(records as f64);
    }

    /// A batch was written by its appender's own thread, not the writer thread.
    pub(crate) fn batch_in_caller(&self) {
        self.batches_in_caller.inc();
    }

    pub(crate) fn fsync(&self, seconds: f64) {
        self.fsync_seconds.observe(seconds);
    }

    pub(crate) fn write_error(&self) {
        self.write_errors.inc();
    }

    pub(crate) fn checkpoint(&self, ok: bool) {
        if ok {
            self.checkpoints.inc();
        } else {
            self.checkpoint_errors.inc();
        }
    }

    pub(crate) fn records(&self) -> u64 {
        self.records.get()
    }
}

/// The log's health and head, read when scraped.
#[derive(Debug)]
struct Head(Arc<Shared>);

impl Collector for Head {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let head = ConstGauge::new(self.0.head_seq.load(Ordering::Acquire));
        head.encode(encoder.encode_descriptor(
            "head_seq",
            "Seq of the last record written",
            None,
            head.metric_type(),
        )?)
    }
}

/// Registers the log's series in `registry` (whose prefix should end in `audit`).
pub(crate) fn register(shared: &Arc<Shared>, registry: &mut Registry) {
    let m = &shared.metrics;
    let counters = [
        ("records", "Audit records written and fsync'd", &m.records),
        (
            "batches",
            "Batches written: group commits of the writer thread, and batches_in_caller",
            &m.batches,
        ),
        (
            "batches_in_caller",
            "Batches written by the appending request's own thread while the writer was idle (no hand-off)",
            &m.batches_in_caller,
        ),
        (
            "write_errors",
            "Batches that failed to be written or fsync'd",
            &m.write_errors,
        ),
        ("checkpoints", "Signed checkpoints written", &m.checkpoints),
        (
            "checkpoint_errors",
            "Checkpoints that failed to be signed or written",
            &m.checkpoint_errors,
        ),
    ];
    for (name, help, counter) in counters {
        registry.register(name, help, counter.clone());
    }
    registry.register(
        "batch_size",
        "Records per group-commit batch",
        m.batch_size.clone(),
    );
    registry.register(
        "fsync_seconds",
        "Time spent making a batch durable: fdatasync (files), or the committing statement (postgres)",
        m.fsync_seconds.clone(),
    );
    registry.register_collector(Box::new(Head(Arc::clone(shared))));
}
