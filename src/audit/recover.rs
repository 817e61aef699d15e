//! Start-up recovery: truncate a torn last line and find the chain head.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::error::AuditError;
use super::record::{GENESIS_PREV, LineCheck, check_line};
use super::segment::{last_byte, line_start, list_segments, read_range};

/// The chain head: what the next record continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The seq the next record gets.
    pub(crate) next_seq: u64,
    /// The hash the next record's `prev` gets.
    pub(crate) prev: String,
}

impl Head {
    pub(crate) fn genesis() -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS_PREV.to_owned(),
        }
    }
}

/// What recovery found.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) head: Head,
    /// The last segment (to append to) and its length, if any segment exists.
    pub(crate) current: Option<(PathBuf, u64)>,
    /// Bytes of a torn last line that were truncated.
    pub(crate) torn_bytes: u64,
    /// A verification problem at the tail that was reported but not fixed.
    pub(crate) problem: Option<String>,
}

/// Truncates a torn last line of the last segment (no trailing newline, or not
/// valid JSON), then reads the chain head from the last whole record.
pub(crate) fn recover_tail(dir: &Path) -> Result<Recovered, AuditError> {
    let segments = list_segments(dir)?;
    let Some(last) = segments.last() else {
        return Ok(Recovered {
            head: Head::genesis(),
            current: None,
            torn_bytes: 0,
            problem: None,
        });
    };
    let torn_bytes = truncate_torn(&last.path)?;
    let mut head = None;
    let mut problem = None;
    for segment in segments.iter().rev() {
        if let Some((h, p)) = head_of(&segment.path)? {
            head = Some(h);
            problem = p;
            break;
        }
    }
    let len = std::fs::metadata(&last.path)
        .map_err(|e| AuditError::io(&last.path, e))?
        .len();
    Ok(Recovered {
        head: head.unwrap_or_else(Head::genesis),
        current: Some((last.path.clone(), len)),
        torn_bytes,
        problem,
    })
}

fn truncate_torn(path: &Path) -> Result<u64, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let original = file.metadata().map_err(io)?.len();
    let mut len = original;
    if len > 0 && last_byte(&mut file, len).map_err(io)? != b'\n' {
        len = line_start(&mut file, len).map_err(io)?;
    }
    if len > 0 {
        let start = line_start(&mut file, len).map_err(io)?;
        let line = read_range(&mut file, start, len - 1).map_err(io)?;
        if serde_json::from_slice::<serde_json::Value>(&line).is_err() {
            len = start;
        }
    }
    let torn = original - len;
    if torn > 0 {
        file.set_len(len).map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::warn!(
            segment = %path.display(),
            recovered_torn_bytes = torn,
            "audit log: truncated a torn last line left by an interrupted write"
        );
    }
    Ok(torn)
}

/// The head after the last record of `path` (None for an empty file), with a
/// problem description if that record (or its link to the one before) is bad.
fn head_of(path: &Path) -> Result<Option<(Head, Option<String>)>, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(None);
    }
    let start = line_start(&mut file, len).map_err(io)?;
    let line = read_range(&mut file, start, len - 1).map_err(io)?;
    let (record, mut problem) = match check_line(&line) {
        LineCheck::Good(r) => (r, None),
        LineCheck::HashMismatch(r) => {
            let p = format!("record {} does not match its hash", r.seq);
            (r, Some(p))
        }
        LineCheck::NotCanonical(r) => {
            let p = format!("record {} is not stored in canonical form", r.seq);
            (r, Some(p))
        }
        LineCheck::Malformed(reason) => {
            return Err(AuditError::Corrupt {
                path: path.to_owned(),
                reason: format!("last record: {reason}"),
            });
        }
    };
    if problem.is_none() && start > 0 {
        let prev_start = line_start(&mut file, start).map_err(io)?;
        let prev_line = read_range(&mut file, prev_start, start - 1).map_err(io)?;
        problem = match check_line(&prev_line) {
            LineCheck::Good(p) if p.hash == record.prev && p.seq + 1 == record.seq => None,
            _ => Some(format!(
                "record {} does not link to the record before it",
                record.seq
            )),
        };
    }
    if let Some(p) = &problem {
        tracing::error!(
            segment = %path.display(),
            problem = %p,
            "audit log: the chain head fails verification; continuing from it, run `audit verify`"
        );
    }
    Ok(Some((
        Head {
            next_seq: record.seq.saturating_add(1),
            prev: record.hash,
        },
        problem,
    )))
}
