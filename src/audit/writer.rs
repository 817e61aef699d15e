//! The writer thread: group commit, rotation, failure roll-back, checkpoints.
//!
//! One std thread owns the files. It blocks for the first pending entry, drains up
//! to [`MAX_BATCH`] more, seals them (seq, ts, prev, hash), writes them with one
//! `write`, one `fdatasync`, and only then answers each appender. With
//! [`SyncMode::Always`] every append (one record, or one `append_all`) is its own batch.
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

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::checkpoint::{Checkpoint, Signer, append_checkpoint};
use super::error::AuditError;
use super::metrics::Metrics;
use super::record::{AuditEntry, AuditRecord, format_ts};
use super::recover::{Head, recover_tail};
use super::segment::segment_file_name;

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
pub(crate) struct Job {
    pub(crate) entries: Vec<AuditEntry>,
    pub(crate) reply: oneshot::Sender<Result<Vec<AuditRecord>, AuditError>>,
}

/// State shared between the writer thread and [`super::AuditLog`] handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) metrics: Metrics,
    pub(crate) healthy: AtomicBool,
    pub(crate) head_seq: AtomicU64,
    pub(crate) latest_checkpoint: Mutex<Option<Checkpoint>>,
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
}

impl Writer {
    /// Runs until every sender is dropped, then writes a last checkpoint if due.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        self.next_checkpoint_at = self
            .checkpoints
            .as_ref()
            .and_then(|c| c.every)
            .map(|every| Instant::now() + every);
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
            let mut pending = first.entries.len();
            let mut jobs = vec![first];
            while pending < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => {
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
        let mut sizes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut entries = Vec::with_capacity(jobs.len());
        for job in jobs {
            sizes.push(job.entries.len());
            replies.push(job.reply);
            entries.extend(job.entries);
        }
        match self.write_batch(entries) {
            Ok(records) => {
                self.shared.healthy.store(true, Ordering::Release);
                let mut records = records.into_iter();
                for (reply, n) in replies.into_iter().zip(sizes) {
                    // The appender may have gone away; the records are written regardless.
                    let _ = reply.send(Ok(records.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                self.shared.healthy.store(false, Ordering::Release);
                self.shared.metrics.write_error();
                tracing::error!(error = %e, records = replies.len(), "audit log: batch not written");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(AuditError::WriteFailed(message.clone())));
                }
            }
        }
    }

    fn write_batch(&mut self, entries: Vec<AuditEntry>) -> Result<Vec<AuditRecord>, AuditError> {
        if self.recheck {
            self.recheck_tail()?;
        }
        self.ensure_segment()?;
        let n = entries.len();
        let mut buf = Vec::with_capacity(n * 512);
        let mut records = Vec::with_capacity(n);
        let mut prev = self.head.prev.clone();
        let mut seq = self.head.next_seq;
        for entry in entries {
            let record = AuditRecord::seal(entry, seq, format_ts(OffsetDateTime::now_utc()), prev);
            buf.extend_from_slice(record.to_line().as_bytes());
            buf.push(b'\n');
            prev = record.hash.clone();
            seq += 1;
            records.push(record);
        }
        let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_ref()) else {
            return Err(AuditError::WriteFailed("no open segment".to_owned()));
        };
        let written = file.write_all(&buf).and_then(|()| {
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
        Ok(records)
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
                let mut latest = self
                    .shared
                    .latest_checkpoint
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *latest = Some(cp);
            }
            Err(e) => {
                self.shared.metrics.checkpoint(false);
                tracing::error!(error = %e, "audit log: checkpoint not written");
            }
        }
    }
}
