//! The writer thread: group commit, failure handling, checkpoints, retention.
//!
//! A [`Core`] owns the chain head and its storage (a [`Sink`]: the segment files, or
//! PostgreSQL) behind a mutex. Appenders hand the writer thread [`Prepared`] entries (already
//! canonical JSON, serialised in the requesting task) with a ticket. It blocks for the first
//! pending job, drains up to [`MAX_BATCH`] entries more, and with the core splices in seq, ts,
//! prev and the chain's name and hashes each (the only chained step), hands the batch to the
//! sink (one `write` and one `fdatasync`, or one committed transaction), and only then
//! publishes the last finished ticket on a `watch` channel: one wake-up per batch, not a
//! hand-off per record. With [`SyncMode::Always`] every job (one record, or one `append_all`)
//! is its own batch.
//!
//! An appender that finds the core free may instead write its own records with it, in its own
//! thread ([`CommitNow`]): the same sealing and the same write and sync, without the two thread
//! wake-ups of a hand-off. The gateway does that for a request that is alone on its worker.
//!
//! A failed batch is answered with errors and seq/prev are not advanced; the sink re-reads
//! the head from its storage before the next batch: the storage is the truth.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::checkpoint::{Checkpoint, Signer};
use super::error::AuditError;
use super::metrics::Metrics;
use super::record::{AuditEntry, Decision, Prepared, format_ts};
use super::recover::Head;

/// The most entries one group commit takes.
pub(crate) const MAX_BATCH: usize = 4096;

/// How long the writer stays idle before it asks the sink whether it can still take records
/// ([`Sink::probe`]: a database may have gone away, or come back).
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// When `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Batch concurrent appends into one write and one fsync (group commit).
    #[default]
    Group,
    /// One write and one fsync per record.
    Always,
}

/// One pending append: one or more entries that are written in the same batch, in order.
#[derive(Debug)]
pub(crate) struct Job {
    /// Position in submission order (from 1); tickets reach the writer in this order.
    pub(crate) ticket: u64,
    pub(crate) entries: Vec<Prepared>,
    /// An [`super::AuditLog::append_lazy`] job: nobody waits, it counts against the bound.
    pub(crate) lazy: bool,
}

/// A message to the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// Write these entries.
    Append(Job),
    /// Make a checkpoint if one is due (records were written by their appenders).
    Checkpoint,
    /// Make the writer thread die, as a bug would (tests of what a dead writer does).
    #[cfg(test)]
    Die,
}

impl Msg {
    fn into_job(self) -> Option<Job> {
        match self {
            Self::Append(job) => Some(job),
            Self::Checkpoint => None,
            #[cfg(test)]
            Self::Die => panic!("audit writer told to die"),
        }
    }
}

/// How many failed batches [`Progress`] remembers.
const KEPT_FAILURES: usize = 64;

/// A batch that was not written: tickets `first..=last`.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) message: Arc<str>,
}

/// What the writer publishes after every batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Every ticket up to this one is finished: durable, or in a failed batch.
    pub(crate) done: u64,
    /// Every ticket up to this one is written (visible to readers), maybe not yet fsync'd.
    pub(crate) written: u64,
    /// The latest failed batches, oldest first.
    pub(crate) failures: VecDeque<Failure>,
    /// The last ticket of a failure no longer kept (0 if none was dropped).
    pub(crate) forgotten: u64,
}

impl Progress {
    /// The outcome of a finished ticket: Ok if durable. A ticket at or before a forgotten
    /// failure that is not among the kept ones cannot be told apart: it is an error.
    pub(crate) fn outcome(&self, ticket: u64) -> Result<(), AuditError> {
        if let Some(f) = self
            .failures
            .iter()
            .find(|f| (f.first..=f.last).contains(&ticket))
        {
            return Err(AuditError::WriteFailed(f.message.to_string()));
        }
        if ticket <= self.forgotten {
            return Err(AuditError::WriteFailed(
                "outcome unknown after many failed batches".to_owned(),
            ));
        }
        Ok(())
    }
}

/// State shared between the writer thread and [`super::AuditLog`] handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) metrics: Metrics,
    pub(crate) healthy: AtomicBool,
    pub(crate) head_seq: AtomicU64,
    pub(crate) latest_checkpoint: Mutex<Option<Checkpoint>>,
    /// Lazy entries queued and not yet written.
    pub(crate) lazy_pending: AtomicUsize,
    /// Segments deleted by retention since open.
    pub(crate) retention_deleted: AtomicU64,
}

/// Checkpoint settings the writer uses.
#[derive(Debug)]
pub(crate) struct CheckpointPlan {
    pub(crate) signer: Signer,
    pub(crate) every_records: Option<u64>,
    pub(crate) every: Option<Duration>,
}

/// A batch sealed by the writer: the records' lines, each ending in `\n`, and per record its
/// seq and the byte range of its line (without the newline) in `bytes`.
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    /// Every record's `ts` (one per batch).
    pub(crate) ts: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) records: Vec<SealedRecord>,
}

/// One record of a [`Sealed`] batch.
#[derive(Debug)]
pub(crate) struct SealedRecord {
    pub(crate) seq: u64,
    pub(crate) line: Range<usize>,
}

impl Sealed {
    /// The line of `record`, without its newline.
    pub(crate) fn line(&self, record: &SealedRecord) -> &[u8] {
        &self.bytes[record.line.clone()]
    }
}

/// Where the chain is stored: the segment files ([`super::file_sink::FileSink`]) or PostgreSQL
/// ([`super::postgres::PgSink`]), held by the [`Core`]: the writer thread, and for the files
/// also an appender writing its own batch ([`CommitNow`]), use it under the core's lock.
pub(crate) trait Sink: Send + std::fmt::Debug + 'static {
    /// The chain's name, written into every record (`None`, written `null`, for the files).
    fn replica(&self) -> Option<&str>;

    /// Called before each batch is sealed: after a failed batch, re-reads the chain head
    /// from the storage into `head` (and fixes up what a failure left, e.g. a partial write).
    fn ready(&mut self, head: &mut Head) -> Result<(), AuditError>;

    /// Stores `batch` durably (fsync'd, or committed). Calls `written` once the records are
    /// visible to readers, which may be before they are durable. On error nothing of the batch
    /// may be reported durable, and the next [`Sink::ready`] re-reads the head.
    fn write(
        &mut self,
        batch: &Sealed,
        metrics: &Metrics,
        written: &mut dyn FnMut(),
    ) -> Result<(), AuditError>;

    /// While idle: whether the storage can take records now (`None`: cannot tell without
    /// writing, as for the files, whose health only a write shows). May reconnect, and then
    /// re-reads the head into `head`.
    fn probe(&mut self, head: &mut Head) -> Option<bool> {
        let _ = head;
        None
    }

    /// A panic happened while the core was held: whatever was under way may be half done, so
    /// the next [`Sink::ready`] must re-read the head from the storage.
    fn forget_head(&mut self);

    /// Whether an appender may write a batch from its own thread ([`CommitNow`]): only a
    /// sink that neither blocks on a runtime nor needs one.
    fn commits_in_caller(&self) -> bool {
        false
    }

    /// Stores a signed checkpoint of the chain head.
    fn store_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), AuditError>;

    /// Deletes what retention allows (records older than `keep`, up to `covered`, the seq of
    /// the latest checkpoint), anchoring what remains with checkpoints signed by `signer`;
    /// returns the `(first, last)` seqs of each deleted range.
    fn retention_pass(
        &mut self,
        keep: Duration,
        signer: &Signer,
        covered: u64,
    ) -> Result<Vec<(u64, u64)>, AuditError>;
}

/// The chain head and its storage, with what the writer does besides writing batches
/// (checkpoints, retention). The writer thread holds it while it writes a batch; an appender
/// that finds it free may write its own records with it ([`CommitNow`]).
#[derive(Debug)]
pub(crate) struct Core<S> {
    pub(crate) sink: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) head: Head,
    pub(crate) checkpoints: Option<CheckpointPlan>,
    pub(crate) last_checkpoint_seq: u64,
    pub(crate) next_checkpoint_at: Option<Instant>,
    /// Records older than this, covered by a checkpoint, are deleted.
    pub(crate) retention: Option<Duration>,
}

/// Writes records in the calling thread, when nothing else is writing.
pub(crate) trait CommitNow: Send + Sync + std::fmt::Debug {
    /// Seals, writes and makes `entries` durable here, blocking the thread for one write and
    /// one fdatasync; `None` (nothing done) when a batch is being written, or when the storage
    /// cannot be written from an async runtime's thread ([`WriterOnly`]: PostgreSQL, whose
    /// client blocks on a runtime of its own). A core is shared with appenders only if its
    /// sink [`Sink::commits_in_caller`].
    fn try_commit_now(&self, entries: &[Prepared]) -> Option<Result<(), AuditError>>;

    /// Whether a checkpoint is due by record count (the writer thread makes it: an appender
    /// writes its records and nothing else).
    fn checkpoint_due(&self) -> bool;
}

/// For a sink no appender may write with (PostgreSQL): never commits, so that only the
/// writer thread ever holds, and finally drops, the sink.
#[derive(Debug)]
pub(crate) struct WriterOnly;

impl CommitNow for WriterOnly {
    fn try_commit_now(&self, _: &[Prepared]) -> Option<Result<(), AuditError>> {
        None
    }

    fn checkpoint_due(&self) -> bool {
        false
    }
}

impl<S: Sink> CommitNow for Mutex<Core<S>> {
    fn try_commit_now(&self, entries: &[Prepared]) -> Option<Result<(), AuditError>> {
        let mut core = match self.try_lock() {
            Ok(core) => core,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => recover(self, poisoned),
        };
        let result = core.write_batch(entries, &mut || {});
        if result.is_ok() {
            core.shared.metrics.batch_in_caller();
        }
        core.batch_done(&result, entries.len());
        // As a queued append learns it (Progress::outcome).
        Some(result.map_err(|e| AuditError::WriteFailed(e.to_string())))
    }

    fn checkpoint_due(&self) -> bool {
        self.try_lock()
            .is_ok_and(|core| core.checkpoint_due_by_count())
    }
}

/// The writer thread: takes queued jobs, writes them with the [`Core`] in batches, and
/// publishes the progress.
#[derive(Debug)]
pub(crate) struct Writer<S> {
    pub(crate) core: Arc<Mutex<Core<S>>>,
    pub(crate) sync: SyncMode,
    pub(crate) progress: watch::Sender<Progress>,
}

/// Locks the core (see [`recover`] for one a panic left poisoned).
fn lock<S: Sink>(core: &Mutex<Core<S>>) -> std::sync::MutexGuard<'_, Core<S>> {
    core.lock()
        .unwrap_or_else(|poisoned| recover(core, poisoned))
}

/// Takes over a core whose holder panicked (a bug, mid-batch perhaps): the sink re-reads the
/// head from the storage before the next batch (the storage is the truth), and the lock is
/// usable again, so one panicking request does not turn the log off.
fn recover<'a, S: Sink>(
    core: &Mutex<Core<S>>,
    poisoned: std::sync::PoisonError<std::sync::MutexGuard<'a, Core<S>>>,
) -> std::sync::MutexGuard<'a, Core<S>> {
    let mut guard = poisoned.into_inner();
    tracing::error!("audit log: a batch panicked; re-reading the chain head before the next");
    guard.sink.forget_head();
    core.clear_poison();
    guard
}

impl<S: Sink> Writer<S> {
    /// Runs until every sender is dropped, then writes a last checkpoint if due.
    pub(crate) fn run(self, rx: mpsc::Receiver<Msg>) {
        let mut next_checkpoint_at = lock(&self.core).next_checkpoint_at;
        let mut next_probe = Instant::now() + PROBE_EVERY;
        loop {
            let wake = [next_checkpoint_at, Some(next_probe)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_probe);
            let first = match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    if now >= next_probe {
                        next_probe = now + PROBE_EVERY;
                        lock(&self.core).probe();
                    }
                    next_checkpoint_at = self.checkpoint_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            next_probe = Instant::now() + PROBE_EVERY;
            let Some(first) = first.into_job() else {
                // Records were written by their appenders: a checkpoint may be due.
                next_checkpoint_at = self.checkpoint_if_due();
                continue;
            };
            let mut pending = first.entries.len();
            let mut jobs = vec![first];
            while pending < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => {
                        if let Some(job) = msg.into_job() {
                            pending += job.entries.len();
                            jobs.push(job);
                        }
                    }
                    Err(_) => break,
                }
            }
            match self.sync {
                SyncMode::Group => self.commit(jobs),
                SyncMode::Always => {
                    for job in jobs {
                        self.commit(vec![job]);
                    }
                }
            }
            next_checkpoint_at = self.checkpoint_if_due();
        }
        lock(&self.core).checkpoint();
    }

    /// Makes a checkpoint if one is due; returns when the next one is due by time.
    fn checkpoint_if_due(&self) -> Option<Instant> {
        let mut core = lock(&self.core);
        core.checkpoint_if_due();
        core.next_checkpoint_at
    }

    /// Writes `jobs` as one batch, then publishes their outcome with the core free again, so
    /// that an appender it wakes can write its next record itself.
    fn commit(&self, jobs: Vec<Job>) {
        let (Some(first), Some(last)) = (
            jobs.first().map(|j| j.ticket),
            jobs.last().map(|j| j.ticket),
        ) else {
            return;
        };
        let lazy: usize = jobs
            .iter()
            .filter(|j| j.lazy)
            .map(|j| j.entries.len())
            .sum();
        let entries: Vec<Prepared> = jobs.into_iter().flat_map(|j| j.entries).collect();
        let progress = &self.progress;
        let result = {
            let mut core = lock(&self.core);
            let result = core.write_batch(&entries, &mut || {
                progress.send_modify(|p| p.written = last);
            });
            core.shared.lazy_pending.fetch_sub(lazy, Ordering::AcqRel);
            core.batch_done(&result, entries.len());
            result
        };
        match result {
            Ok(()) => self.progress.send_modify(|p| {
                p.done = last;
                p.written = last;
            }),
            Err(e) => {
                let message: Arc<str> = e.to_string().into();
                self.progress.send_modify(|p| {
                    p.done = last;
                    p.failures.push_back(Failure {
                        first,
                        last,
                        message,
                    });
                    if p.failures.len() > KEPT_FAILURES
                        && let Some(old) = p.failures.pop_front()
                    {
                        p.forgotten = old.last;
                    }
                });
            }
        }
    }
}

impl<S: Sink> Core<S> {
    /// What is done once, before the writer thread starts: the first checkpoint time, and a
    /// retention pass.
    pub(crate) fn start(&mut self) {
        self.next_checkpoint_at = self
            .checkpoints
            .as_ref()
            .and_then(|c| c.every)
            .map(|every| Instant::now() + every);
        self.apply_retention();
    }

    /// Publishes the health a batch of `n` records showed.
    fn batch_done(&self, result: &Result<(), AuditError>, n: usize) {
        match result {
            Ok(()) => self.shared.healthy.store(true, Ordering::Release),
            Err(e) => {
                self.shared.healthy.store(false, Ordering::Release);
                self.shared.metrics.write_error();
                tracing::error!(error = %e, records = n, "audit log: batch not written");
            }
        }
    }

    /// Seals `entries` onto the head and stores them; calls `written` once they are written
    /// (visible to readers), before they are durable.
    fn write_batch(
        &mut self,
        entries: &[Prepared],
        written: &mut dyn FnMut(),
    ) -> Result<(), AuditError> {
        let mut head = self.head.clone();
        let ready = self.sink.ready(&mut head);
        if head != self.head {
            self.shared
                .head_seq
                .store(head.next_seq - 1, Ordering::Release);
            self.head = head;
        }
        ready?;
        let n = entries.len();
        let mut batch = Sealed {
            ts: format_ts(OffsetDateTime::now_utc()),
            bytes: Vec::with_capacity(n * 600),
            records: Vec::with_capacity(n),
        };
        let mut prev = self.head.prev.clone();
        let mut seq = self.head.next_seq;
        let replica = self.sink.replica();
        for entry in entries {
            let start = batch.bytes.len();
            prev = entry.seal_into(seq, &batch.ts, &prev, replica, &mut batch.bytes);
            batch.records.push(SealedRecord {
                seq,
                line: start..batch.bytes.len() - 1,
            });
            seq += 1;
        }
        self.sink.write(&batch, &self.shared.metrics, written)?;
        self.head = Head {
            next_seq: seq,
            prev,
        };
        self.shared.head_seq.store(seq - 1, Ordering::Release);
        self.shared.metrics.batch_written(n);
        Ok(())
    }

    /// Asks an idle sink whether it can take records, and publishes the answer as health.
    fn probe(&mut self) {
        let mut head = self.head.clone();
        let Some(up) = self.sink.probe(&mut head) else {
            return;
        };
        if head != self.head {
            self.shared
                .head_seq
                .store(head.next_seq - 1, Ordering::Release);
            self.head = head;
        }
        self.shared.healthy.store(up, Ordering::Release);
    }

    /// Whether `every_records` records were added since the last checkpoint.
    fn checkpoint_due_by_count(&self) -> bool {
        let head_seq = self.head.next_seq - 1;
        self.checkpoints.as_ref().is_some_and(|plan| {
            plan.every_records
                .is_some_and(|n| head_seq.saturating_sub(self.last_checkpoint_seq) >= n.max(1))
        })
    }

    fn checkpoint_if_due(&mut self) {
        let by_count = self.checkpoint_due_by_count();
        let by_time = self
            .next_checkpoint_at
            .is_some_and(|at| Instant::now() >= at);
        if by_count || by_time {
            self.checkpoint();
        }
    }

    /// Signs and stores a checkpoint of the head if records were added since the last.
    fn checkpoint(&mut self) {
        let Some(plan) = &self.checkpoints else {
            return;
        };
        if let Some(every) = plan.every {
            self.next_checkpoint_at = Some(Instant::now() + every);
        }
        let seq = self.head.next_seq - 1;
        if seq == 0 || seq <= self.last_checkpoint_seq {
            return;
        }
        let ts = format_ts(OffsetDateTime::now_utc());
        let replica = self.sink.replica().map(str::to_owned);
        let made = plan
            .signer
            .checkpoint(seq, &self.head.prev, &ts, replica)
            .and_then(|cp| self.sink.store_checkpoint(&cp).map(|()| cp));
        match made {
            Ok(cp) => {
                self.last_checkpoint_seq = seq;
                self.shared.metrics.checkpoint(true);
                *self
                    .shared
                    .latest_checkpoint
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cp);
                self.apply_retention();
            }
            Err(e) => {
                self.shared.metrics.checkpoint(false);
                tracing::error!(error = %e, "audit log: checkpoint not written");
            }
        }
    }

    /// Deletes what the retention allows (see [`Sink::retention_pass`]), then records the
    /// deletion in the chain.
    fn apply_retention(&mut self) {
        let (Some(keep), Some(plan)) = (self.retention, &self.checkpoints) else {
            return;
        };
        let deleted = match self
            .sink
            .retention_pass(keep, &plan.signer, self.last_checkpoint_seq)
        {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "audit log: retention pass failed; nothing more deleted");
                return;
            }
        };
        let (Some(first), Some(last)) = (deleted.first(), deleted.last()) else {
            return;
        };
        self.shared
            .retention_deleted
            .fetch_add(deleted.len() as u64, Ordering::Relaxed);
        let records = format!("{}-{}", first.0, last.1);
        tracing::info!(
            ranges = deleted.len(),
            records,
            "audit log: retention deleted old records"
        );
        let entry = AuditEntry::new(
            "retention",
            "DELETE",
            format!("/audit/records/{records}"),
            Decision::Allow,
            "retention",
            200,
        );
        if let Err(e) = self.write_batch(&[Prepared::new(&entry)], &mut || {}) {
            tracing::error!(error = %e, "audit log: the retention record was not written");
        }
    }
}
