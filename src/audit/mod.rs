//! Tamper-evident audit log: a hash-chained, append-only JSON-lines log with group
//! commit, signed checkpoints, and readers (verify, query, export) that work on the
//! files directly while the server writes.
//!
//! Layout of the audit directory:
//! - `<20-digit seq of first record>.jsonl`: segments, rotated when one reaches
//!   `segment_bytes`; the chain continues across segments and restarts.
//! - `checkpoints.jsonl`: signed chain-head checkpoints, one JSON object a line.
//!
//! Each record's `hash` is `hex(SHA-256(prev ‖ canonical JSON of the record without
//! "hash"))`, canonical JSON having keys sorted at every level and no whitespace; the
//! line itself is the canonical JSON of the whole record. [`AuditLog::append`] returns
//! only after the record is written and fdatasync'd.

mod checkpoint;
mod error;
mod export;
mod metrics;
mod query;
mod record;
mod recover;
mod segment;
mod verify;
mod writer;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use checkpoint::{
    CHECKPOINT_FILE, Checkpoint, load_checkpoint_file, read_latest_checkpoint,
    verify_checkpoint_signature,
};
pub use error::AuditError;
pub use export::{Format, export};
pub use query::{DEFAULT_LIMIT, Filter, MAX_LIMIT, Page, query, scan};
pub use record::{
    AuditEntry, AuditRecord, CollectionPos, ConsentUsed, Decision, GENESIS_PREV, parse_rfc3339,
};
pub(crate) use segment::{Segment, list_segments};
pub use verify::{VerifyReport, verify};
pub use writer::SyncMode;

use checkpoint::Signer;
use metrics::Metrics;
use recover::recover_tail;
use writer::{CheckpointPlan, Job, Shared, Writer};

/// Default segment size before rotation: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// How to open the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The audit directory (created if missing).
    pub dir: PathBuf,
    /// Group commit or fsync per record.
    pub sync: SyncMode,
    /// A segment is rotated once it reaches this size.
    pub segment_bytes: u64,
    /// Signed checkpoints, if wanted.
    pub checkpoint: Option<CheckpointConfig>,
}

impl AuditConfig {
    /// Group commit, 64 MiB segments, no checkpoints.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            sync: SyncMode::Group,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            checkpoint: None,
        }
    }
}

/// When and with which key to sign checkpoints of the chain head. A checkpoint is
/// made every `every_records` records and/or every `every`, whichever comes first,
/// only if records were added since the last one, and once more at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// PKCS#8 PEM private key, P-256 (`ES256`) or Ed25519 (`EdDSA`).
    pub key_pem_path: PathBuf,
    /// Checkpoint after this many new records.
    pub every_records: Option<u64>,
    /// Checkpoint after this much time.
    pub every: Option<Duration>,
}

/// The append side of the audit log. Cheap to clone; all clones share one writer
/// thread, which stops (after a last checkpoint) when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    dir: PathBuf,
    recovered_torn_bytes: u64,
    open_problem: Option<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("audit log: writer thread panicked");
        }
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `config.dir`: truncates a torn last line (see
    /// [`AuditLog::recovered_torn_bytes`]), continues the chain from the last whole
    /// record, loads the checkpoint key, and starts the writer thread.
    ///
    /// A last record that fails verification is reported (tracing error and
    /// [`AuditLog::open_problem`]) but not fixed, and the log still opens. Only a last
    /// line that is valid JSON but not a record stops it: the chain head is unknown.
    pub fn open(config: AuditConfig) -> Result<Self, AuditError> {
        let dir = config.dir;
        std::fs::create_dir_all(&dir).map_err(|e| AuditError::io(&dir, e))?;
        let recovered = recover_tail(&dir)?;
        let checkpoints = match config.checkpoint {
            None => None,
            Some(c) => Some(CheckpointPlan {
                signer: Signer::from_pem_file(&c.key_pem_path)?,
                every_records: c.every_records,
                every: c.every,
            }),
        };
        let latest = match read_latest_checkpoint(&dir) {
            Ok(cp) => cp,
            Err(e) => {
                tracing::warn!(error = %e, "audit log: cannot read the latest checkpoint");
                None
            }
        };
        let head_seq = recovered.head.next_seq - 1;
        if let Some(cp) = latest.as_ref().filter(|cp| cp.seq > head_seq) {
            tracing::error!(
                checkpoint_seq = cp.seq,
                head_seq,
                "audit log: the log ends before its latest checkpoint; run `audit verify`"
            );
        }
        let shared = Arc::new(Shared {
            metrics: Metrics::new(),
            healthy: AtomicBool::new(true),
            head_seq: AtomicU64::new(head_seq),
            latest_checkpoint: Mutex::new(latest.clone()),
        });
        let (path, len) = match recovered.current {
            Some((p, l)) => (Some(p), l),
            None => (None, 0),
        };
        let file = match &path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(p)
                    .map_err(|e| AuditError::io(p, e))?,
            ),
            None => None,
        };
        let writer = Writer {
            dir: dir.clone(),
            sync: config.sync,
            segment_bytes: config.segment_bytes.max(1),
            shared: Arc::clone(&shared),
            file,
            path,
            len,
            head: recovered.head,
            recheck: false,
            checkpoints,
            last_checkpoint_seq: latest.map_or(0, |cp| cp.seq.min(head_seq)),
            next_checkpoint_at: None,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::io(&dir, e))?;
        tracing::info!(dir = %dir.display(), head_seq, "audit log open");
        Ok(Self {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
                shared,
                dir,
                recovered_torn_bytes: recovered.torn_bytes,
                open_problem: recovered.problem,
            }),
        })
    }

    /// Appends a record and returns it once it is written and fsync'd. On error nothing
    /// of it was acknowledged, and the gateway must answer `503 audit_unavailable`.
    /// If the future is dropped after sending, the record may still be written.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, AuditError> {
        self.append_all(vec![entry])
            .await?
            .pop()
            .ok_or(AuditError::Closed)
    }

    /// Appends several records in one batch (one write, one fsync, consecutive seqs in
    /// this order) and returns them once all are durable; all or none are acknowledged.
    pub async fn append_all(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(AuditError::Closed)?;
        tx.send(Job { entries, reply })
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// False after a failed batch, until a batch succeeds again (for `/readyz`).
    pub fn healthy(&self) -> bool {
        self.inner.shared.healthy.load(Ordering::Acquire)
    }

    /// Bytes of a torn last line truncated at open (0 if none).
    pub fn recovered_torn_bytes(&self) -> u64 {
        self.inner.recovered_torn_bytes
    }

    /// A verification problem with the last record found at open, if any.
    pub fn open_problem(&self) -> Option<&str> {
        self.inner.open_problem.as_deref()
    }

    /// Seq of the last record written (0 for an empty log).
    pub fn head_seq(&self) -> u64 {
        self.inner.shared.head_seq.load(Ordering::Acquire)
    }

    /// The newest signed checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<Checkpoint> {
        self.inner
            .shared
            .latest_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The audit directory, for the readers ([`verify`], [`query`], [`export`]).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Records written since open.
    pub fn records_written(&self) -> u64 {
        self.inner.shared.metrics.records()
    }

    /// Registers the log's series (`records`, `batches`, `write_errors`, `checkpoints`,
    /// `checkpoint_errors`, `batch_size`, `fsync_seconds`, `healthy`, `head_seq`) in
    /// `registry`, e.g. a sub-registry with the prefix `consentgate_audit`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        metrics::register(&self.inner.shared, registry);
    }

    /// The log's series alone, as OpenMetrics text (tests).
    #[cfg(test)]
    pub(crate) fn render_prometheus(&self, out: &mut String) {
        let mut registry = prometheus_client::registry::Registry::with_prefix("consentgate_audit");
        self.register_metrics(&mut registry);
        let _ = prometheus_client::encoding::text::encode(out, &registry);
    }
}
