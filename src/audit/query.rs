//! Filtered, paginated reads of the log, streaming segment by segment.

use std::ops::ControlFlow;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::error::AuditError;
use super::record::{AuditRecord, Decision, parse_rfc3339};
use super::segment::{list_segments, segments_from, stream_lines};

/// Page size when the filter sets none.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page size; larger limits are lowered to it.
pub const MAX_LIMIT: usize = 1000;

/// Which records to return. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Exact data subject.
    pub subject: Option<String>,
    /// Exact caller.
    pub caller: Option<String>,
    /// Exact purpose.
    pub purpose: Option<String>,
    /// Exact decision.
    pub decision: Option<Decision>,
    /// Records with `ts >= from`.
    pub from: Option<OffsetDateTime>,
    /// Records with `ts < to`.
    pub to: Option<OffsetDateTime>,
    /// Page size for [`query`] (default 100, at most 1000); a cap for [`super::export`].
    pub limit: Option<usize>,
}

impl Filter {
    /// Whether `record` matches (the limit aside).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        fn eq(want: Option<&String>, have: Option<&String>) -> bool {
            want.is_none_or(|w| have == Some(w))
        }
        if !eq(self.subject.as_ref(), record.subject.as_ref())
            || !eq(self.caller.as_ref(), record.caller.as_ref())
            || !eq(self.purpose.as_ref(), record.purpose.as_ref())
            || self.decision.is_some_and(|d| d != record.decision)
        {
            return false;
        }
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Ok(ts) = parse_rfc3339(&record.ts) else {
            return false;
        };
        self.from.is_none_or(|from| ts >= from) && self.to.is_none_or(|to| ts < to)
    }
}

/// One page of [`query`] results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The records' raw JSON lines (no newline), oldest first.
    pub lines: Vec<String>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "c1:";

fn encode_cursor(seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{seq}"))
}

fn decode_cursor(cursor: &str) -> Result<u64, AuditError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| AuditError::BadCursor)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| AuditError::BadCursor)?;
    let seq: u64 = text
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|s| s.parse().ok())
        .filter(|&s| s >= 1)
        .ok_or(AuditError::BadCursor)?;
    if encode_cursor(seq) != cursor {
        return Err(AuditError::BadCursor);
    }
    Ok(seq)
}

/// One page of matching records, oldest first, starting at `cursor` (a previous
/// page's `next_cursor`) or at the beginning. A cursor not issued here is
/// [`AuditError::BadCursor`].
pub fn query(dir: &Path, filter: &Filter, cursor: Option<&str>) -> Result<Page, AuditError> {
    let start = cursor.map(decode_cursor).transpose()?.unwrap_or(1);
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let mut lines = Vec::new();
    let mut next = None;
    scan_from(dir, filter, start, |line, record| {
        if lines.len() < limit {
            lines.push(line.to_owned());
            Ok(ControlFlow::Continue(()))
        } else {
            next = Some(record.seq);
            Ok(ControlFlow::Break(()))
        }
    })?;
    Ok(Page {
        lines,
        next_cursor: next.map(encode_cursor),
    })
}

/// Calls `f` with the raw line and the record of every matching record, oldest
/// first, streaming (e.g. every access to one subject for the access report).
/// `filter.limit` is ignored. Returns how many records matched.
pub fn scan(
    dir: &Path,
    filter: &Filter,
    mut f: impl FnMut(&str, &AuditRecord) -> Result<(), AuditError>,
) -> Result<u64, AuditError> {
    let mut n = 0;
    scan_from(dir, filter, 1, |line, record| {
        n += 1;
        f(line, record).map(ControlFlow::Continue)
    })?;
    Ok(n)
}

/// Streams matching records with seq ≥ `start` until `f` breaks. Lines being
/// written (no newline yet) and lines that are not records are skipped.
pub(crate) fn scan_from(
    dir: &Path,
    filter: &Filter,
    start: u64,
    mut f: impl FnMut(&str, &AuditRecord) -> Result<ControlFlow<()>, AuditError>,
) -> Result<(), AuditError> {
    let segments = list_segments(dir)?;
    let mut skipped = 0u64;
    stream_lines(segments_from(&segments, start), |line| {
        if !line.complete {
            return Ok(ControlFlow::Continue(()));
        }
        let parsed = std::str::from_utf8(line.bytes)
            .ok()
            .and_then(|text| Some((text, serde_json::from_str::<AuditRecord>(text).ok()?)));
        let Some((text, record)) = parsed else {
            skipped += 1;
            return Ok(ControlFlow::Continue(()));
        };
        if record.seq < start || !filter.matches(&record) {
            return Ok(ControlFlow::Continue(()));
        }
        f(text, &record)
    })?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "audit query: skipped lines that are not records; run `audit verify`"
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let c = encode_cursor(1234);
        assert_eq!(decode_cursor(&c).unwrap(), 1234);
        for bad in [
            "",
            "!!",
            "YWJj",
            &URL_SAFE_NO_PAD.encode("c1:0"),
            &URL_SAFE_NO_PAD.encode("c1:x"),
            &format!("{c}="),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(AuditError::BadCursor)),
                "{bad}"
            );
        }
    }
}
