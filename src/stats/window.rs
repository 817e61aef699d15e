//! Access figures over a time window from the audit log, with bounded work per call.
//!
//! Each segment's [`Summary`] is computed once, with the segment's first and last record
//! times, and kept; the segment being written is summarised incrementally (only the bytes
//! appended since the last call are read). A window then merges the summaries of the
//! segments it covers whole, skips those it misses, and reads only the segments it cuts
//! (records are written in time order, so at most the two at its edges). A call costs the
//! number of segments plus at most two segment reads, never a scan of the whole log.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

use super::Summary;
use crate::audit::{AuditError, AuditRecord, Segment, list_segments, parse_rfc3339};

/// A time window: `from` included, `to` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start (included).
    pub from: OffsetDateTime,
    /// End (excluded).
    pub to: OffsetDateTime,
}

impl Window {
    fn contains(&self, t: OffsetDateTime) -> bool {
        self.from <= t && t < self.to
    }
}

#[derive(Debug, Default)]
struct SegmentSummary {
    /// Bytes of whole lines read so far.
    read_to: u64,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
    summary: Summary,
}

/// The per-segment summaries of one audit directory.
#[derive(Debug)]
pub struct StatsIndex {
    dir: PathBuf,
    segments: Mutex<HashMap<u64, SegmentSummary>>,
}

/// Calls `f` for every whole record line of `path` from byte `start`; returns the offset
/// just past the last whole line. Lines that are not records are skipped (`audit verify`
/// reports them).
fn read_records(
    path: &Path,
    start: u64,
    mut f: impl FnMut(AuditRecord, OffsetDateTime),
) -> Result<u64, AuditError> {
    let mut file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| AuditError::io(path, e))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut offset = start;
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| AuditError::io(path, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok(offset);
        }
        offset += n as u64;
        if let Ok(record) = serde_json::from_slice::<AuditRecord>(&buf)
            && let Ok(ts) = parse_rfc3339(&record.ts)
        {
            f(record, ts);
        }
    }
}

impl SegmentSummary {
    fn refresh(&mut self, segment: &Segment) -> Result<(), AuditError> {
        let len = std::fs::metadata(&segment.path)
            .map_err(|e| AuditError::io(&segment.path, e))?
            .len();
        if len < self.read_to {
            *self = SegmentSummary::default();
        }
        if len == self.read_to {
            return Ok(());
        }
        let (first, last, summary) = (&mut self.first, &mut self.last, &mut self.summary);
        let end = read_records(&segment.path, self.read_to, |record, ts| {
            *first = Some(first.map_or(ts, |f| f.min(ts)));
            *last = Some(last.map_or(ts, |l| l.max(ts)));
            summary.add(&record);
        })?;
        self.read_to = end;
        Ok(())
    }
}

impl StatsIndex {
    /// An index over the audit log in `dir` (nothing is read until the first call).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segments: Mutex::new(HashMap::new()),
        }
    }

    /// The figures of the records whose time is in `window`. Blocking file I/O: call it
    /// from a blocking thread.
    pub fn summary(&self, window: Window) -> Result<Summary, AuditError> {
        let segments = list_segments(&self.dir)?;
        let mut cache = self.segments.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|seq, _| segments.iter().any(|s| s.first_seq == *seq));
        let mut out = Summary::default();
        for segment in &segments {
            let entry = cache.entry(segment.first_seq).or_default();
            entry.refresh(segment)?;
            let (Some(first), Some(last)) = (entry.first, entry.last) else {
                continue;
            };
            if last < window.from || first >= window.to {
                continue;
            }
            if window.contains(first) && window.contains(last) {
                out.merge(&entry.summary);
                continue;
            }
            read_records(&segment.path, 0, |record, ts| {
                if window.contains(ts) {
                    out.add(&record);
                }
            })?;
        }
        Ok(out)
    }
}
