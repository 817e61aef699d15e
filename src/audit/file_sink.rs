//! The file backend of the writer: segments in a directory, rotation, roll-back of a failed
//! write, checkpoints in `checkpoints.jsonl`, retention by whole segments.
//!
//! A failed batch truncates the segment back to its last good length. The next batch first
//! re-opens the segment, truncates it to that length again (in case the first truncation
//! failed) and re-reads the tail: the files are the truth.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::checkpoint::{Checkpoint, Signer, append_checkpoint, load_all_checkpoints};
use super::error::AuditError;
use super::metrics::Metrics;
use super::record::{AuditRecord, format_ts, parse_rfc3339};
use super::recover::{Head, recover_tail};
use super::segment::{Segment, line_start, list_segments, read_range, segment_file_name};
use super::writer::{Sealed, Sink};

/// The segment files of one audit directory.
#[derive(Debug)]
pub(crate) struct FileSink {
    pub(crate) dir: PathBuf,
    pub(crate) segment_bytes: u64,
    /// The segment being appended to, its path and its last good length.
    pub(crate) file: Option<File>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) len: u64,
    /// A batch failed: re-check the tail before the next.
    pub(crate) recheck: bool,
}

impl Sink for FileSink {
    fn replica(&self) -> Option<&str> {
        None
    }

    fn ready(&mut self, head: &mut Head) -> Result<(), AuditError> {
        if self.recheck {
            self.recheck_tail(head)?;
        }
        self.ensure_segment(head.next_seq)
    }

    fn write(
        &mut self,
        batch: &Sealed,
        metrics: &Metrics,
        written: &mut dyn FnMut(),
    ) -> Result<(), AuditError> {
        let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_ref()) else {
            return Err(AuditError::WriteFailed("no open segment".to_owned()));
        };
        let result = file.write_all(&batch.bytes).and_then(|()| {
            written();
            let started = Instant::now();
            file.sync_data()?;
            metrics.fsync(started.elapsed().as_secs_f64());
            Ok(())
        });
        if let Err(e) = result {
            let err = AuditError::io(path, e);
            self.roll_back();
            return Err(err);
        }
        self.len += batch.bytes.len() as u64;
        Ok(())
    }

    fn forget_head(&mut self) {
        self.recheck = true;
    }

    fn commits_in_caller(&self) -> bool {
        true
    }

    fn store_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), AuditError> {
        append_checkpoint(&self.dir, cp)
    }

    fn retention_pass(
        &mut self,
        keep: Duration,
        signer: &Signer,
        covered: u64,
    ) -> Result<Vec<(u64, u64)>, AuditError> {
        retention_pass(&self.dir, keep, signer, covered)
    }
}

impl FileSink {
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

    /// After a failure: re-opens the segment, truncates it to the last good length if
    /// it is longer, and re-reads the chain head from the files.
    fn recheck_tail(&mut self, head: &mut Head) -> Result<(), AuditError> {
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
        if recovered.head != *head {
            tracing::warn!(
                next_seq = recovered.head.next_seq,
                expected_next_seq = head.next_seq,
                "audit log: chain head on disk differs from memory after a failure; following the files"
            );
        }
        *head = recovered.head;
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

    /// Opens a new segment, starting at `next_seq`, when there is none or the current one
    /// is full.
    fn ensure_segment(&mut self, next_seq: u64) -> Result<(), AuditError> {
        if self.file.is_some() && self.len < self.segment_bytes {
            return Ok(());
        }
        let path = self.dir.join(segment_file_name(next_seq));
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

/// Deletes whole segments (never the one being written) whose last record is older than
/// the retention and covered by the latest signed checkpoint, oldest first. Before a
/// segment goes, a signed checkpoint of its last record is made if none exists: it
/// anchors the next segment, from which `verify` then starts. Returns the `(first, last)`
/// seqs of each deleted segment.
fn retention_pass(
    dir: &Path,
    keep: Duration,
    signer: &Signer,
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
            let cp = signer.checkpoint(seq, &hash, &format_ts(now), None)?;
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
