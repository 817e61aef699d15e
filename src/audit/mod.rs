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
//! "hash"))`, canonical JSON being RFC 8785 (JCS, [`crate::canonical_json`]); the line
//! itself is the canonical JSON of the whole record, and verification checks those stored
//! bytes. [`AuditLog::append`] returns only after the record is written and fdatasync'd;
//! `docs/AUDIT-FORMAT.md` specifies the files for independent verifiers.

mod checkpoint;
mod error;
mod export;
mod file_sink;
mod metrics;
mod postgres;
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

use tokio::sync::watch;

pub use checkpoint::{
    CHECKPOINT_FILE, Checkpoint, load_checkpoint_file, read_latest_checkpoint,
    verify_checkpoint_signature,
};
pub use error::AuditError;
pub use export::{Format, export};
pub(crate) use postgres::is_outage;
pub use postgres::{
    AuditMigrateReport, ChainReport, ChainsReport, PgAudit, migrate_files_to_postgres,
};
pub use query::{DEFAULT_LIMIT, Filter, MAX_LIMIT, Page, query, scan};
pub use record::{
    AuditEntry, AuditRecord, CollectionPos, ConsentUsed, Decision, GENESIS_PREV, parse_rfc3339,
};
pub(crate) use segment::{Segment, list_segments};
pub use verify::{CheckpointCheck, Signature, VerifyOptions, VerifyReport, verify, verify_with};
pub use writer::SyncMode;

use checkpoint::Signer;
use file_sink::FileSink;
use metrics::Metrics;
use postgres::PgSink;
use record::Prepared;
use recover::recover_tail;
use writer::{
    CheckpointPlan, CommitNow, Core, Job, Msg, Progress, Shared, Sink, Writer, WriterOnly,
};

/// Most lazy records ([`AuditLog::append_lazy`]) queued at once; past it, lazy appends wait
/// for their fsync like any other, so a flood slows to the disk's pace instead of growing
/// memory.
pub const MAX_LAZY_PENDING: usize = 4096;

/// Default segment size before rotation: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where the chain is stored.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Segment files in this directory (created if missing).
    Files(PathBuf),
    /// This replica's chain in PostgreSQL, beside every other replica's.
    Postgres {
        /// The database.
        target: Box<crate::pg::PgTarget>,
        /// The chain's name: one live replica per name.
        replica: String,
    },
}

/// Where the readers ([`verify`], [`query`], [`export`], the subject report, the figures)
/// read: the segment files, or every chain in PostgreSQL.
#[derive(Debug, Clone)]
pub enum Reader {
    /// The audit directory.
    Files(PathBuf),
    /// Every replica's chain.
    Postgres(PgAudit),
}

/// How to open the audit log.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The files, or PostgreSQL.
    pub storage: Storage,
    /// Group commit or one write (and fsync, or commit) per record.
    pub sync: SyncMode,
    /// A segment is rotated once it reaches this size (files).
    pub segment_bytes: u64,
    /// Signed checkpoints, if wanted.
    pub checkpoint: Option<CheckpointConfig>,
    /// Delete whole segments older than this once a signed checkpoint covers them (needs
    /// `checkpoint`).
    pub retention: Option<Duration>,
}

impl AuditConfig {
    /// Group commit, 64 MiB segments, no checkpoints.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            storage: Storage::Files(dir.into()),
            sync: SyncMode::Group,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            checkpoint: None,
            retention: None,
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

/// Records handed to the writer by [`AuditLog::submit_all`]; [`AuditLog::wait`] tells when
/// they are durable. `None`: there were no records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(Option<u64>);

impl Ticket {
    /// No records: waiting on it succeeds at once.
    pub(crate) const NONE: Ticket = Ticket(None);
}

/// The append side of the audit log. Cheap to clone; all clones share one writer
/// thread, which stops (after a last checkpoint) when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    submit: Mutex<Option<Submit>>,
    progress: watch::Receiver<Progress>,
    /// The writer's core, for appenders that write their own records when it is free.
    now: Arc<dyn CommitNow>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    reader: Reader,
    replica: Option<String>,
    recovered_torn_bytes: u64,
    open_problem: Option<String>,
    public_key: Option<Vec<u8>>,
}

/// The sending side: tickets are taken and jobs sent under one lock, so tickets reach the
/// writer in order.
#[derive(Debug)]
struct Submit {
    tx: mpsc::Sender<Msg>,
    next_ticket: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.submit
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("audit log: writer thread panicked");
        }
    }
}

impl AuditLog {
    /// Opens the log and starts its writer thread.
    ///
    /// Files: opens (or creates) `dir`, truncates a torn last line (see
    /// [`AuditLog::recovered_torn_bytes`]) and continues the chain from the last whole
    /// record. A last record that fails verification (its hash, its canonical form, its
    /// link) is reported (tracing error, [`AuditLog::open_problem`], not ready, `/metrics`)
    /// but not fixed, and the log still opens. Only a last line that is valid JSON but not a
    /// record stops it: the chain head is unknown.
    ///
    /// PostgreSQL: connects, applies the audit migrations, takes the chain name's lock (a
    /// second live replica of the same name is [`AuditError::ReplicaInUse`]) and reads the
    /// head. A configuration error (credentials, database, TLS) stops it; an unreachable
    /// server does not: the log opens unhealthy (not ready) and the writer keeps trying.
    /// Blocks on the database: call it from a blocking thread.
    pub fn open(config: AuditConfig) -> Result<Self, AuditError> {
        let checkpoints = match &config.checkpoint {
            None => None,
            Some(c) => Some(CheckpointPlan {
                signer: Signer::from_pem_file(&c.key_pem_path)?,
                every_records: c.every_records,
                every: c.every,
            }),
        };
        if config.retention.is_some() && checkpoints.is_none() {
            return Err(AuditError::Key(
                "audit retention needs a checkpoint key: only signed checkpoints let a shortened chain be verified".to_owned(),
            ));
        }
        match config.storage.clone() {
            Storage::Files(dir) => Self::open_files(dir, config, checkpoints),
            Storage::Postgres { target, replica } => {
                Self::open_postgres(&target, replica, config, checkpoints)
            }
        }
    }

    fn open_files(
        dir: PathBuf,
        config: AuditConfig,
        checkpoints: Option<CheckpointPlan>,
    ) -> Result<Self, AuditError> {
        std::fs::create_dir_all(&dir).map_err(|e| AuditError::io(&dir, e))?;
        let recovered = recover_tail(&dir)?;
        let latest = match read_latest_checkpoint(&dir) {
            Ok(cp) => cp,
            Err(e) => {
                tracing::warn!(error = %e, "audit log: cannot read the latest checkpoint");
                None
            }
        };
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
        let sink = FileSink {
            dir: dir.clone(),
            segment_bytes: config.segment_bytes.max(1),
            file,
            path,
            len,
            recheck: false,
        };
        tracing::info!(dir = %dir.display(), head_seq = recovered.head.next_seq - 1, "audit log open");
        Self::start(
            sink,
            Opened {
                head: recovered.head,
                latest,
                healthy: true,
                torn_bytes: recovered.torn_bytes,
                problem: recovered.problem,
                reader: Reader::Files(dir),
                replica: None,
            },
            config,
            checkpoints,
        )
    }

    fn open_postgres(
        target: &crate::pg::PgTarget,
        replica: String,
        config: AuditConfig,
        checkpoints: Option<CheckpointPlan>,
    ) -> Result<Self, AuditError> {
        let connector = target.connector().map_err(AuditError::Database)?;
        let pool = connector
            .named("consentgate-audit-read")
            .pool(4, crate::pg::CONNECT_TIMEOUT)
            .map_err(AuditError::Database)?;
        let mut sink = PgSink::new(connector, replica.clone())?;
        let (head, latest, healthy, problem) = match sink.connect() {
            Ok(c) => (c.head, c.latest, true, c.problem),
            Err(AuditError::Database(e)) if !e.is_fatal() => {
                tracing::error!(error = %e, replica, "audit log: database unreachable; not ready until it answers");
                (recover::Head::genesis(), None, false, None)
            }
            Err(e) => return Err(e),
        };
        if let Some(problem) = &problem {
            tracing::error!(problem, "audit log: chain head does not verify");
        }
        tracing::info!(database = %target.describe(), replica, head_seq = head.next_seq - 1, "audit log open");
        Self::start(
            sink,
            Opened {
                head,
                latest,
                healthy,
                torn_bytes: 0,
                problem,
                reader: Reader::Postgres(PgAudit::new(pool)),
                replica: Some(replica),
            },
            config,
            checkpoints,
        )
    }

    fn start<S: Sink>(
        sink: S,
        opened: Opened,
        config: AuditConfig,
        checkpoints: Option<CheckpointPlan>,
    ) -> Result<Self, AuditError> {
        let public_key = checkpoints.as_ref().map(|p| p.signer.public_key_spki());
        let head_seq = opened.head.next_seq - 1;
        if let Some(cp) = opened.latest.as_ref().filter(|cp| cp.seq > head_seq) {
            tracing::error!(
                checkpoint_seq = cp.seq,
                head_seq,
                "audit log: the log ends before its latest checkpoint; run `audit verify`"
            );
        }
        let shared = Arc::new(Shared {
            metrics: Metrics::new(),
            healthy: AtomicBool::new(opened.healthy),
            head_seq: AtomicU64::new(head_seq),
            latest_checkpoint: Mutex::new(opened.latest.clone()),
            lazy_pending: std::sync::atomic::AtomicUsize::new(0),
            retention_deleted: AtomicU64::new(0),
        });
        let (progress, progress_rx) = watch::channel(Progress::default());
        let in_caller = sink.commits_in_caller();
        let mut core = Core {
            sink,
            shared: Arc::clone(&shared),
            head: opened.head,
            checkpoints,
            last_checkpoint_seq: opened.latest.map_or(0, |cp| cp.seq.min(head_seq)),
            next_checkpoint_at: None,
            retention: config.retention,
        };
        core.start();
        let core = Arc::new(Mutex::new(core));
        // Only a sink appenders may write with is shared with them; any other is held, and
        // dropped, by the writer thread alone (PostgreSQL's client owns a runtime, which must
        // not be dropped on an async task's thread).
        let now: Arc<dyn CommitNow> = if in_caller {
            core.clone()
        } else {
            Arc::new(WriterOnly)
        };
        let writer = Writer {
            core: Arc::clone(&core),
            sync: config.sync,
            progress,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::io("audit-writer thread", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                submit: Mutex::new(Some(Submit { tx, next_ticket: 1 })),
                progress: progress_rx,
                now,
                thread: Some(thread),
                shared,
                reader: opened.reader,
                replica: opened.replica,
                recovered_torn_bytes: opened.torn_bytes,
                open_problem: opened.problem,
                public_key,
            }),
        })
    }

    /// Hands `entries` to the writer; returns the job's ticket.
    fn submit(&self, entries: Vec<Prepared>, lazy: bool) -> Result<u64, AuditError> {
        let mut guard = self
            .inner
            .submit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let submit = guard.as_mut().ok_or(AuditError::Closed)?;
        let ticket = submit.next_ticket;
        submit
            .tx
            .send(Msg::Append(Job {
                ticket,
                entries,
                lazy,
            }))
            .map_err(|_| AuditError::Closed)?;
        submit.next_ticket += 1;
        Ok(ticket)
    }

    /// Tells the writer thread to make a checkpoint if one is due. A writer that is gone
    /// makes none, as it would write no record either.
    fn wake_writer(&self) {
        let guard = self
            .inner
            .submit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(submit) = guard.as_ref() {
            let _ = submit.tx.send(Msg::Checkpoint);
        }
    }

    /// Waits until `ticket`'s batch is finished and returns its outcome.
    async fn durable(&self, ticket: u64) -> Result<(), AuditError> {
        let mut rx = self.inner.progress.clone();
        let progress = rx
            .wait_for(|p| p.done >= ticket)
            .await
            .map_err(|_| AuditError::Closed)?;
        progress.outcome(ticket)
    }

    /// Appends a record and returns once it is written and fsync'd. On error nothing of
    /// it was acknowledged, and the gateway must answer `503 audit_unavailable`. The record
    /// is serialised here, in the caller's task; the writer thread only chains it. If the
    /// future is dropped after sending, the record may still be written.
    pub async fn append(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let ticket = self.submit(vec![Prepared::new(&entry)], false)?;
        self.durable(ticket).await
    }

    /// [`AuditLog::append_all`], but when no batch is being written, writes and fdatasyncs
    /// the records in the calling thread instead of handing them to the writer thread and
    /// waiting to be woken: two thread wake-ups fewer, at the price of blocking the thread for
    /// one write and one fdatasync. For a caller that has nothing else to run on its thread
    /// meanwhile (a data-plane worker with this one request in flight); anyone else should
    /// `append_all`.
    pub(crate) async fn append_all_now_if_idle(
        &self,
        entries: &[AuditEntry],
    ) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        let prepared: Vec<Prepared> = entries.iter().map(Prepared::new).collect();
        if self.writer_alive()
            && let Some(done) = self.inner.now.try_commit_now(&prepared)
        {
            if done.is_ok() && self.inner.now.checkpoint_due() {
                self.wake_writer();
            }
            return done;
        }
        let ticket = self.submit(prepared, false)?;
        self.durable(ticket).await
    }

    /// Appends several records in one batch (one write, one fsync, consecutive seqs in
    /// this order) and returns once all are durable; all or none are acknowledged.
    pub async fn append_all(&self, entries: &[AuditEntry]) -> Result<(), AuditError> {
        let ticket = self.submit_all(entries)?;
        self.wait(ticket).await
    }

    /// The first half of [`AuditLog::append_all`]: hands the records to the writer (their
    /// sequence numbers follow every batch submitted before) without waiting. Nothing of them
    /// may be released before [`AuditLog::wait`] on the ticket succeeds.
    pub(crate) fn submit_all(&self, entries: &[AuditEntry]) -> Result<Ticket, AuditError> {
        if entries.is_empty() {
            return Ok(Ticket(None));
        }
        let ticket = self.submit(entries.iter().map(Prepared::new).collect(), false)?;
        Ok(Ticket(Some(ticket)))
    }

    /// Waits until the records of `ticket` are durable (or failed: then none of them was
    /// acknowledged).
    pub(crate) async fn wait(&self, ticket: Ticket) -> Result<(), AuditError> {
        match ticket.0 {
            Some(t) => self.durable(t).await,
            None => Ok(()),
        }
    }

    /// Appends a record without waiting for its fsync: it joins the writer's next batch and
    /// returns once that batch is written (visible to every reader), before its fsync. For
    /// refusals made before authentication (nothing is released but an error, and the record
    /// names no subject): a crash within about one fsync may lose such a record, which is the
    /// trade-off for not letting unauthenticated noise cost an fsync wait each. At most
    /// [`MAX_LAZY_PENDING`] lazy records are queued; past that this waits for durability like
    /// [`AuditLog::append`], so a flood cannot grow memory.
    pub async fn append_lazy(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let pending = &self.inner.shared.lazy_pending;
        if pending.fetch_add(1, Ordering::AcqRel) >= MAX_LAZY_PENDING {
            pending.fetch_sub(1, Ordering::AcqRel);
            return self.append(entry).await;
        }
        let ticket = match self.submit(vec![Prepared::new(&entry)], true) {
            Ok(t) => t,
            Err(e) => {
                pending.fetch_sub(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        let mut rx = self.inner.progress.clone();
        let progress = rx
            .wait_for(|p| p.written >= ticket || p.done >= ticket)
            .await
            .map_err(|_| AuditError::Closed)?;
        progress.outcome(ticket)
    }

    /// Lazy records queued and not yet written.
    pub fn lazy_pending(&self) -> usize {
        self.inner.shared.lazy_pending.load(Ordering::Acquire)
    }

    /// False once the writer thread is gone (it died, or the log is shutting down).
    pub fn writer_alive(&self) -> bool {
        self.inner.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Ready to serve (for `/readyz`): [`AuditLog::healthy`], and the chain head verified at
    /// open ([`AuditLog::open_problem`] is none). A head that fails verification stays
    /// not ready until an operator has looked (`audit verify`) and restarted.
    pub fn ready(&self) -> bool {
        self.healthy() && self.inner.open_problem.is_none()
    }

    /// The public key (SPKI DER) of the checkpoint signer, when checkpoints are signed:
    /// what the server's own `verify` trusts.
    pub fn checkpoint_public_key(&self) -> Option<&[u8]> {
        self.inner.public_key.as_deref()
    }

    #[cfg(test)]
    fn kill_writer(&self) {
        if let Some(s) = self.inner.submit.lock().unwrap().as_ref() {
            let _ = s.tx.send(Msg::Die);
        }
    }

    /// Whether records can be written: false after a failed batch, until a batch succeeds
    /// again, and false for good once the writer thread is gone.
    pub fn healthy(&self) -> bool {
        self.inner.shared.healthy.load(Ordering::Acquire) && self.writer_alive()
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

    /// Where the readers read.
    pub fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// This replica's chain name (PostgreSQL backend; `None` for the files).
    pub fn replica(&self) -> Option<&str> {
        self.inner.replica.as_deref()
    }

    /// Records written since open.
    pub fn records_written(&self) -> u64 {
        self.inner.shared.metrics.records()
    }

    /// Registers the log's series (`records`, `batches`, `write_errors`, `checkpoints`,
    /// `checkpoint_errors`, `batch_size`, `fsync_seconds`, `healthy`, `head_seq`,
    /// `writer_alive`, `chain_head_ok`, `lazy_pending`, `retention_deleted_segments`) in
    /// `registry`, e.g. a sub-registry with the prefix `consentgate_audit`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        metrics::register(&self.inner.shared, registry);
        registry.register_collector(Box::new(Liveness(Arc::downgrade(&self.inner))));
    }

    /// The log's series alone, as OpenMetrics text (tests).
    #[cfg(test)]
    pub(crate) fn render_prometheus(&self, out: &mut String) {
        let mut registry = prometheus_client::registry::Registry::with_prefix("consentgate_audit");
        self.register_metrics(&mut registry);
        let _ = prometheus_client::encoding::text::encode(out, &registry);
    }
}

/// What a backend found when the log was opened.
struct Opened {
    head: recover::Head,
    latest: Option<Checkpoint>,
    healthy: bool,
    torn_bytes: u64,
    problem: Option<String>,
    reader: Reader,
    replica: Option<String>,
}

/// The oldest retained record's seq and time (none for an empty log): how far back the
/// log, and so a subject's access report, reaches.
pub fn retained_since(dir: &Path) -> Result<Option<(u64, String)>, AuditError> {
    let segments = segment::list_segments(dir)?;
    let Some(first) = segments.first() else {
        return Ok(None);
    };
    let file = std::fs::File::open(&first.path).map_err(|e| AuditError::io(&first.path, e))?;
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut std::io::BufReader::new(file), b'\n', &mut line)
        .map_err(|e| AuditError::io(&first.path, e))?;
    Ok(serde_json::from_slice::<AuditRecord>(&line)
        .ok()
        .map(|r| (r.seq, r.ts)))
}

/// The writer's liveness, the chain head's check, the lazy queue and retention, read at scrape
/// time. Holds the log weakly, so a registry never keeps the writer open.
#[derive(Debug)]
struct Liveness(std::sync::Weak<Inner>);

impl prometheus_client::collector::Collector for Liveness {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some(inner) = self.0.upgrade() else {
            return Ok(());
        };
        let alive = inner.thread.as_ref().is_some_and(|t| !t.is_finished());
        let healthy = alive && inner.shared.healthy.load(Ordering::Acquire);
        let gauges = [
            (
                "healthy",
                "1 if the writer runs and its last write succeeded, else 0",
                i64::from(healthy),
            ),
            (
                "writer_alive",
                "1 while the audit writer thread runs, else 0",
                i64::from(alive),
            ),
            (
                "chain_head_ok",
                "1 if the chain head verified when the log was opened, else 0 (run audit verify)",
                i64::from(inner.open_problem.is_none()),
            ),
            (
                "lazy_pending",
                "Records of refusals before authentication queued, not yet fsync'd",
                i64::try_from(inner.shared.lazy_pending.load(Ordering::Acquire))
                    .unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let deleted = ConstCounter::new(inner.shared.retention_deleted.load(Ordering::Relaxed));
        deleted.encode(encoder.encode_descriptor(
            "retention_deleted_segments",
            "Segments deleted by [audit] retention",
            None,
            deleted.metric_type(),
        )?)
    }
}
