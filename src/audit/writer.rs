//! The writer thread: group commit, rotation, failure roll-back, checkpoints.
//!
//! One std thread owns the files. Appenders hand it [`Prepared`] entries (already canonical
//! JSON, serialised in the requesting task) with a ticket. It blocks for the first pending
//! job, drains up to [`MAX_BATCH`] entries more, splices in seq, ts and prev and hashes each
//! (the only chained step), writes them with one `write`, one `fdatasync`, and only then
//! publishes the last finished ticket on a `watch` channel: one wake-up per batch, not a
//! hand-off per record. With [`SyncMode::Always`] every job (one record, or one
//! `append_all`) is its own batch.
//!
//! A failed batch is answered with errors, the segment is truncated back to its last
//! good length, and seq/prev are not advanced. The next batch first re-opens the
//! segment, truncates it to the last good length again (in case the first truncation
//! failed) and re-reads the tail: the files are the truth.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::checkpoint::{Checkpoint, Signer, append_checkpoint, load_all_checkpoints};
use super::error::AuditError;
use super::metrics::Metrics;
use super::record::{AuditEntry, AuditRecord, Decision, Prepared, format_ts, parse_rfc3339};
use super::recover::{Head, recover_tail};
use super::segment::{Segment, line_start, list_segments, read_range, segment_file_name};

/// The most entries one group commit takes.
pub(crate) const MAX_BATCH: usize = 4096;

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
    /// Make the writer thread die, as a bug would (tests of what a dead writer does).
    #[cfg(test)]
    Die,
}

impl Msg {
    fn into_job(self) -> Job {
        match self {
            Self::Append(job) => job,
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

/// The writer thread's state.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) sync: SyncMode,
    pub(crate) segment_bytes: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) file: Option<File>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) len: u64,
    pub(crate) head: Head,
    pub(crate) recheck: bool,
    pub(crate) checkpoints: Option<CheckpointPlan>,
    pub(crate) last_checkpoint_seq: u64,
    pub(crate) next_checkpoint_at: Option<Instant>,
    /// Whole segments older than this, covered by a checkpoint, are deleted.
    pub(crate) retention: Option<Duration>,
    pub(crate) progress: watch::Sender<Progress>,
}

impl Writer {
    /// Runs until every sender is dropped, then writes a last checkpoint if due.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        self.next_checkpoint_at = self
            .checkpoints
            .as_ref()
            .and_then(|c| c.every)
            .map(|every| Instant::now() + every);
        self.apply_retention();
        loop {
            let first = match self.next_checkpoint_at {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.checkpoint();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            let first = first.into_job();
            let mut pending = first.entries.len();
            let mut jobs = vec![first];
            while pending < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => {
                        let job = msg.into_job();
                        pending += job.entries.len();
                        jobs.push(job);
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
            self.checkpoint_if_due();
        }
        self.checkpoint();
    }

    fn commit(&mut self, jobs: Vec<Job>) {
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
        let n = entries.len();
        let result = self.write_batch(&entries, Some(last));
        self.shared.lazy_pending.fetch_sub(lazy, Ordering::AcqRel);
        match result {
            Ok(()) => {
                self.shared.healthy.store(true, Ordering::Release);
                self.progress.send_modify(|p| {
                    p.done = last;
                    p.written = last;
                });
            }
            Err(e) => {
                self.shared.healthy.store(false, Ordering::Release);
                self.shared.metrics.write_error();
                tracing::error!(error = %e, records = n, "audit log: batch not written");
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

    /// Writes and fsyncs `entries`; once written (before the fsync) publishes `ticket` as
    /// written, for lazy appenders.
    fn write_batch(&mut self, entries: &[Prepared], ticket: Option<u64>) -> Result<(), AuditError> {
        if self.recheck {
            self.recheck_tail()?;
        }
        self.ensure_segment()?;
        let n = entries.len();
        let mut buf = Vec::with_capacity(n * 600);
        let mut prev = self.head.prev.clone();
        let mut seq = self.head.next_seq;
        let ts = format_ts(OffsetDateTime::now_utc());
        for entry in entries {
            prev = entry.seal_into(seq, &ts, &prev, &mut buf);
            seq += 1;
        }
        let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_ref()) else {
            return Err(AuditError::WriteFailed("no open segment".to_owned()));
        };
        let progress = &self.progress;
        let written = file.write_all(&buf).and_then(|()| {
            if let Some(t) = ticket {
                progress.send_modify(|p| p.written = t);
            }
            let started = Instant::now();
            file.sync_data()?;
            self.shared.metrics.fsync(started.elapsed().as_secs_f64());
            Ok(())
        });
        if let Err(e) = written {
            let err = AuditError::io(path, e);
            self.roll_back();
            return Err(err);
        }
        self.len += buf.len() as u64;
        self.head = Head {
            next_seq: seq,
            prev,
        };
        self.shared.head_seq.store(seq - 1, Ordering::Release);
        self.shared.metrics.batch_written(n);
        Ok(())
    }

    /// Truncates the segment back to the last good length after a failed write, and
    /// drops the handle so that the next batch re-opens and re-checks the tail.
    fn roll_back(&mut self) {
        if let Some(file) = self.file.take()
            && let Err(e) = file.set_len(self.len).and_then(|()| file.sync_data())
        {
            tracing::error!(error = %e, "audit log: could not truncate a failed batch; will re-check the tail before the next write");
        }
        self.recheck = true;
    }

    /// After a failure: re-opens the segment, truncates it to the last good length if\n    /// it is longer, and re-reads the chain head from the files.
    fn recheck_tail(&mut self) -> Result<(), AuditError> {
        if let Some(path) = &self.path
            && std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > self.len)
        {
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| {
                    f.set_len(self.len)?;
                    f.sync_data()
                })
                .map_err(|e| AuditError::io(path, e))?;
        }
        let recovered = recover_tail(&self.dir)?;
        if recovered.head != self.head {
            tracing::warn!(
                next_seq = recovered.head.next_seq,
                expected_next_seq = self.head.next_seq,
                "audit log: chain head on disk differs from memory after a failure; following the files"
            );
        }
        self.head = recovered.head;
        self.shared
            .head_seq
            .store(self.head.next_seq - 1, Ordering::Release);
        self.file = None;
        self.path = None;
        self.len = 0;
        if let Some((path, len)) = recovered.current {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| AuditError::io(&path, e))?;
            self.file = Some(file);
            self.path = Some(path);
            self.len = len;
        }
        self.recheck = false;
        Ok(())
    }

    /// Opens a new segment when there is none or the current one is full.
    fn ensure_segment(&mut self) -> Result<(), AuditError> {
        if self.file.is_some() && self.len < self.segment_bytes {
            return Ok(());
        }
        let path = self.dir.join(segment_file_name(self.head.next_seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| AuditError::io(&path, e))?;
        let len = file.metadata().map_err(|e| AuditError::io(&path, e))?.len();
        if len != 0 {
            return Err(AuditError::Corrupt {
                path,
                reason: "a new segment's file already holds data".to_owned(),
            });
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(&self.dir, e))?;
        tracing::info!(segment = %path.display(), "audit log: new segment");
        self.file = Some(file);
        self.path = Some(path);
        self.len = 0;
        Ok(())
    }

    fn checkpoint_if_due(&mut self) {
        let Some(plan) = &self.checkpoints else {
            return;
        };
        let head_seq = self.head.next_seq - 1;
        let by_count = plan
            .every_records
            .is_some_and(|n| head_seq.saturating_sub(self.last_checkpoint_seq) >= n.max(1));
        let by_time = self
            .next_checkpoint_at
            .is_some_and(|at| Instant::now() >= at);
        if by_count || by_time {
            self.checkpoint();
        }
    }

    /// Signs and appends a checkpoint of the head if records were added since the last.
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
        let made = plan
            .signer
            .checkpoint(seq, &self.head.prev, &ts)
            .and_then(|cp| append_checkpoint(&self.dir, &cp).map(|()| cp));
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
}

/// The seq, hash and time of the last record of a closed segment.
fn last_record_of(segment: &Segment) -> Result<(u64, String, String), AuditError> {
    let path = &segment.path;
    let io = |e| AuditError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let corrupt = |reason: &str| AuditError::Corrupt {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    if len == 0 {
        return Err(corrupt("an old segment is empty"));
    }
    let start = line_start(&mut file, len).map_err(io)?;
    let line = read_range(&mut file, start, len - 1).map_err(io)?;
    let record: AuditRecord = serde_json::from_slice(&line)
        .map_err(|_| corrupt("the last line of an old segment is not a record"))?;
    Ok((record.seq, record.hash, record.ts))
}

impl Writer {
    /// Deletes whole segments (never the one being written) whose last record is older than
    /// the retention and covered by the latest signed checkpoint, oldest first. Before a
    /// segment goes, a signed checkpoint of its last record is made if none exists: it
    /// anchors the next segment, from which `verify` then starts. The deletion is then
    /// recorded in the chain.
    fn apply_retention(&mut self) {
        let (Some(keep), Some(plan)) = (self.retention, &self.checkpoints) else {
            return;
        };
        let deleted = match retention_pass(&self.dir, keep, plan, self.last_checkpoint_seq) {
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
            segments = deleted.len(),
            records,
            "audit log: retention deleted old segments"
        );
        let entry = AuditEntry::new(
            "retention",
            "DELETE",
            format!("/audit/records/{records}"),
            Decision::Allow,
            "retention",
            200,
        );
        if let Err(e) = self.write_batch(&[Prepared::new(&entry)], None) {
            tracing::error!(error = %e, "audit log: the retention record was not written");
        }
    }
}

/// One retention pass; returns the `(first, last)` seqs of each deleted segment.
fn retention_pass(
    dir: &std::path::Path,
    keep: Duration,
    plan: &CheckpointPlan,
    covered: u64,
) -> Result<Vec<(u64, u64)>, AuditError> {
    let segments = list_segments(dir)?;
    let now = OffsetDateTime::now_utc();
    let cutoff = now - keep;
    let mut anchors: Option<Vec<u64>> = None;
    let mut deleted = Vec::new();
    for pair in segments.windows(2) {
        let (segment, next) = (&pair[0], &pair[1]);
        let last_seq = next.first_seq.saturating_sub(1);
        if last_seq > covered || last_seq < segment.first_seq {
            break;
        }
        let (seq, hash, ts) = last_record_of(segment)?;
        if seq != last_seq || !parse_rfc3339(&ts).is_ok_and(|t| t < cutoff) {
            break;
        }
        let anchored = anchors.get_or_insert_with(|| {
            load_all_checkpoints(dir)
                .map(|cps| cps.into_iter().map(|c| c.seq).collect())
                .unwrap_or_default()
        });
        if !anchored.contains(&seq) {
            let cp = plan.signer.checkpoint(seq, &hash, &format_ts(now))?;
            append_checkpoint(dir, &cp)?;
            anchored.push(seq);
        }
        std::fs::remove_file(&segment.path).map_err(|e| AuditError::io(&segment.path, e))?;
        deleted.push((segment.first_seq, seq));
    }
    if !deleted.is_empty() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(dir, e))?;
    }
    Ok(deleted)
}
