//! Chain verification over the segment files, streaming, safe while the server writes.

use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::record::{GENESIS_PREV, LineCheck, check_line};
use super::segment::{list_segments, stream_lines};

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// True when the whole chain (and the checkpoint, if given) verified.
    pub ok: bool,
    /// Records that verified, before the first break if any.
    pub records: u64,
    /// The seq expected at the position where the chain first breaks.
    pub first_bad_seq: Option<u64>,
    /// Why the chain breaks there (no record contents).
    pub reason: Option<String>,
}

/// Verifies the hash chain in `dir`: seq continuity from 1, `prev` linkage, each hash,
/// and each segment's name against its first record; with a checkpoint, also that the
/// record `cp.seq` exists and has `cp.hash` (the signature is checked separately, by
/// [`super::verify_checkpoint_signature`]).
///
/// `first_bad_seq` is the seq that was expected at the first position where the chain
/// does not hold:
/// - an edited record: its own seq (its hash no longer matches); if the forger also
///   recomputed its hash, the next record's seq (whose `prev` no longer links);
/// - a deleted record: its seq (the position now holds the next one);
/// - two swapped records: the seq of the first of them;
/// - an inserted record: its position's seq if it is not a valid continuation,
///   otherwise the next position's seq (where the original record no longer links);
/// - history rewritten consistently: the checkpoint's seq (only a checkpoint shows it);
/// - truncated below the checkpoint: the first missing seq.
///
/// A last line without a newline at the end of the last segment is a record being
/// written right now (or torn; the writer truncates it at its next start): it is not
/// counted and not an error.
pub fn verify(dir: &Path, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
    std::fs::metadata(dir).map_err(|e| AuditError::io(dir, e))?;
    let segments = list_segments(dir)?;
    let mut expected = 1u64;
    let mut prev = GENESIS_PREV.to_owned();
    let broken = stream_lines(&segments, |line| {
        if !line.complete {
            if line.in_last_segment {
                return Ok(ControlFlow::Continue(()));
            }
            return Ok(ControlFlow::Break((
                expected,
                "a segment that is not the last ends with a torn line".to_owned(),
            )));
        }
        let (record, hash_ok) = match check_line(line.bytes) {
            LineCheck::Good(r) => (r, true),
            LineCheck::HashMismatch(r) => (r, false),
            LineCheck::Malformed(reason) => {
                return Ok(ControlFlow::Break((expected, reason)));
            }
        };
        if record.seq != expected {
            return Ok(ControlFlow::Break((
                expected,
                format!(
                    "expected seq {expected}, found {}: a record was deleted, inserted or moved",
                    record.seq
                ),
            )));
        }
        if line.first_in_segment && line.segment.first_seq != record.seq {
            return Ok(ControlFlow::Break((
                expected,
                format!(
                    "segment {} does not start with record {}",
                    line.segment.path.display(),
                    line.segment.first_seq
                ),
            )));
        }
        if !hash_ok {
            return Ok(ControlFlow::Break((
                expected,
                "record does not match its hash: it was edited".to_owned(),
            )));
        }
        if record.prev != prev {
            return Ok(ControlFlow::Break((
                expected,
                "prev does not match the previous record's hash".to_owned(),
            )));
        }
        if let Some(cp) = checkpoint
            && cp.seq == record.seq
            && cp.hash != record.hash
        {
            return Ok(ControlFlow::Break((
                expected,
                "record differs from the checkpoint: history was rewritten".to_owned(),
            )));
        }
        prev = record.hash;
        expected += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    let records = expected - 1;
    let broken = broken.or_else(|| {
        checkpoint.filter(|cp| cp.seq > records).map(|cp| {
            (
                expected,
                format!(
                    "log ends at seq {records}, before checkpoint seq {}: it was truncated",
                    cp.seq
                ),
            )
        })
    });
    Ok(match broken {
        None => VerifyReport {
            ok: true,
            records,
            first_bad_seq: None,
            reason: None,
        },
        Some((seq, reason)) => VerifyReport {
            ok: false,
            records,
            first_bad_seq: Some(seq),
            reason: Some(reason),
        },
    })
}
