//! Chain verification over the segment files, streaming, safe while the server writes.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;

use super::checkpoint::{Checkpoint, load_all_checkpoints, verify_checkpoint_signature};
use super::error::AuditError;
use super::record::{AuditRecord, GENESIS_PREV, LineCheck, check_line};
use super::segment::{list_segments, stream_lines};

/// Whether a checkpoint's signature was checked against a trusted public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    /// Checked with the public key given, and good.
    Verified,
    /// No public key was given: the checkpoint could be forged, so the report is not ok.
    Unverified,
    /// Checked with the public key given, and bad.
    Invalid,
}

/// The checkpoint a verification relied on: the one given, or the one that anchors the
/// oldest retained segment after retention deleted older ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointCheck {
    /// Its seq.
    pub seq: u64,
    /// Whether its signature was checked.
    pub signature: Signature,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// True when the whole retained chain verified, and every checkpoint it relies on
    /// (given, or anchoring the oldest retained segment) has a verified signature.
    pub ok: bool,
    /// Records that verified, before the first break if any.
    pub records: u64,
    /// The seq expected at the position where the chain first breaks.
    pub first_bad_seq: Option<u64>,
    /// Why the chain breaks there (no record contents).
    pub reason: Option<String>,
    /// The first seq verified: 1, or the first retained seq after retention.
    pub first_seq: u64,
    /// The checkpoint the retained chain starts from (seq `first_seq - 1`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_checkpoint: Option<CheckpointCheck>,
    /// The checkpoint given to check the chain against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointCheck>,
}

/// What to verify the chain against.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// A checkpoint kept off-host: the record `seq` must exist and have its hash.
    pub checkpoint: Option<&'a Checkpoint>,
    /// The trusted checkpoint public key (SPKI PEM/DER or raw): without it no checkpoint
    /// the verdict relies on can be trusted, and such a report is not ok.
    pub public_key: Option<&'a [u8]>,
}

/// [`verify_with`] without a public key: a log that needs a checkpoint (one given, or one
/// anchoring retained segments) is reported not ok, with its signature `unverified`.
pub fn verify(dir: &Path, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
    verify_with(
        dir,
        VerifyOptions {
            checkpoint,
            public_key: None,
        },
    )
}

pub(crate) fn signature(cp: &Checkpoint, key: Option<&[u8]>) -> Signature {
    match key.map(|k| verify_checkpoint_signature(cp, k)) {
        None => Signature::Unverified,
        Some(Ok(())) => Signature::Verified,
        Some(Err(_)) => Signature::Invalid,
    }
}

/// Verifies the hash chain in `dir`: every line is the canonical JSON of its record (the
/// stored bytes, not a re-parse), seq continuity, `prev` linkage, each hash, each segment's
/// name against its first record, and every checkpoint of `checkpoints.jsonl` in range
/// against the record it names. The chain starts at seq 1 with 64 zeros, or, when retention
/// deleted the oldest segments, at the first retained seq `s`, anchored by a checkpoint of
/// seq `s - 1` whose hash the first retained record's `prev` must be. With a checkpoint, the
/// record `cp.seq` must exist and have `cp.hash`.
///
/// `first_bad_seq` is the seq that was expected at the first position where the chain
/// does not hold:
/// - an edited record: its own seq (its hash or its canonical form no longer matches); if
///   the forger also recomputed its hash, the next record's seq (whose `prev` no longer links);
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
pub fn verify_with(dir: &Path, options: VerifyOptions<'_>) -> Result<VerifyReport, AuditError> {
    std::fs::metadata(dir).map_err(|e| AuditError::io(dir, e))?;
    let segments = list_segments(dir)?;
    let checkpoints = load_all_checkpoints(dir)?;
    let first_seq = segments.first().map_or(1, |s| s.first_seq.max(1));
    let mut problem: Option<(u64, String)> = None;
    let mut prev = GENESIS_PREV.to_owned();
    let mut from_checkpoint = None;
    if first_seq > 1 {
        match checkpoints.iter().find(|cp| cp.seq == first_seq - 1) {
            Some(anchor) => {
                let sig = signature(anchor, options.public_key);
                prev = anchor.hash.clone();
                from_checkpoint = Some(CheckpointCheck {
                    seq: anchor.seq,
                    signature: sig,
                });
            }
            None => {
                problem = Some((
                    1,
                    format!(
                        "the oldest segment starts at seq {first_seq} and no checkpoint of seq {} anchors it: records were deleted",
                        first_seq - 1
                    ),
                ));
            }
        }
    }
    let given = options.checkpoint;
    let mut chain = ChainCheck::new(first_seq, prev, &checkpoints, given, None);
    if problem.is_none() {
        problem = stream_lines(&segments, |line| {
            if !line.complete {
                if line.in_last_segment {
                    return Ok(ControlFlow::Continue(()));
                }
                return Ok(ControlFlow::Break((
                    chain.expected,
                    "a segment that is not the last ends with a torn line".to_owned(),
                )));
            }
            let starts_segment = line.first_in_segment.then_some(line.segment);
            let outcome = chain.feed(line.bytes, |record| {
                starts_segment
                    .filter(|segment| segment.first_seq != record.seq)
                    .map(|segment| {
                        format!(
                            "segment {} does not start with record {}",
                            segment.path.display(),
                            segment.first_seq
                        )
                    })
            });
            Ok(match outcome {
                Ok(()) => ControlFlow::Continue(()),
                Err(broken) => ControlFlow::Break(broken),
            })
        })?;
    }
    let expected = chain.expected;
    let last = expected - 1;
    let records = expected - first_seq;
    let checkpoint = given.map(|cp| CheckpointCheck {
        seq: cp.seq,
        signature: signature(cp, options.public_key),
    });
    let problem = problem
        .or_else(|| {
            given.filter(|cp| cp.seq > last).map(|cp| {
                (
                    expected,
                    format!(
                        "log ends at seq {last}, before checkpoint seq {}: it was truncated",
                        cp.seq
                    ),
                )
            })
        })
        .or_else(|| {
            given.filter(|cp| cp.seq < first_seq).map(|cp| {
                (
                    first_seq,
                    format!(
                        "checkpoint seq {} is older than the oldest retained record ({first_seq}): use a newer checkpoint",
                        cp.seq
                    ),
                )
            })
        });
    let unsigned = [&from_checkpoint, &checkpoint]
        .into_iter()
        .flatten()
        .find(|c| c.signature != Signature::Verified)
        .map(|c| match c.signature {
            Signature::Invalid => format!("checkpoint {} has an invalid signature", c.seq),
            _ => format!(
                "checkpoint {} was not checked against a trusted public key (signature unverified): pass the public key",
                c.seq
            ),
        });
    let (ok, first_bad_seq, reason) = match (problem, unsigned) {
        (Some((seq, reason)), _) => (false, Some(seq), Some(reason)),
        (None, Some(reason)) => (false, None, Some(reason)),
        (None, None) => (true, None, None),
    };
    Ok(VerifyReport {
        ok,
        records,
        first_bad_seq,
        reason,
        first_seq,
        from_checkpoint,
        checkpoint,
    })
}

/// Checks one chain record by record: each line is its record's canonical JSON and matches its
/// hash, seqs are contiguous, `prev` links, records agree with every checkpoint of them, and
/// each record names its chain (`replica`). Shared by the file and PostgreSQL verifiers.
pub(crate) struct ChainCheck<'a> {
    /// The seq the next record must have.
    pub(crate) expected: u64,
    prev: String,
    known: BTreeMap<u64, &'a str>,
    given: Option<&'a Checkpoint>,
    /// The chain's name: records carry it, or `null` in a prefix copied from a file log
    /// (`audit migrate`); `None` for a file log, whose records carry `null`.
    replica: Option<&'a str>,
    named_seen: bool,
}

impl<'a> ChainCheck<'a> {
    /// A chain whose first record has seq `first_seq` and links to `prev`.
    pub(crate) fn new(
        first_seq: u64,
        prev: String,
        checkpoints: &'a [Checkpoint],
        given: Option<&'a Checkpoint>,
        replica: Option<&'a str>,
    ) -> Self {
        Self {
            expected: first_seq,
            prev,
            known: checkpoints
                .iter()
                .map(|cp| (cp.seq, cp.hash.as_str()))
                .collect(),
            given,
            replica,
            named_seen: false,
        }
    }

    /// Checks the next line; `extra` adds a storage-specific check once the seq is known.
    /// On a break: the expected seq and why (no record contents).
    pub(crate) fn feed(
        &mut self,
        line: &[u8],
        extra: impl FnOnce(&AuditRecord) -> Option<String>,
    ) -> Result<(), (u64, String)> {
        let expected = self.expected;
        let (record, fault) = match check_line(line) {
            LineCheck::Good(r) => (r, None),
            LineCheck::HashMismatch(r) => {
                (r, Some("record does not match its hash: it was edited"))
            }
            LineCheck::NotCanonical(r) => (
                r,
                Some("record's stored bytes are not its canonical JSON: it was edited"),
            ),
            LineCheck::Malformed(reason) => return Err((expected, reason)),
        };
        if record.seq != expected {
            return Err((
                expected,
                format!(
                    "expected seq {expected}, found {}: a record was deleted, inserted or moved",
                    record.seq
                ),
            ));
        }
        if let Some(reason) = extra(&record) {
            return Err((expected, reason));
        }
        if let Some(fault) = fault {
            return Err((expected, fault.to_owned()));
        }
        if record.prev != self.prev {
            return Err((
                expected,
                "prev does not match the previous record's hash".to_owned(),
            ));
        }
        match (record.replica.as_deref(), self.replica) {
            (None, None) => {}
            (None, Some(_)) if !self.named_seen => {}
            (Some(have), Some(want)) if have == want => self.named_seen = true,
            _ => {
                return Err((
                    expected,
                    "record names another chain (replica): it was moved from another chain"
                        .to_owned(),
                ));
            }
        }
        let rewritten = self
            .given
            .is_some_and(|cp| cp.seq == record.seq && cp.hash != record.hash)
            || self
                .known
                .get(&record.seq)
                .is_some_and(|h| *h != record.hash);
        if rewritten {
            return Err((
                expected,
                "record differs from a checkpoint of it: history was rewritten".to_owned(),
            ));
        }
        self.prev = record.hash;
        self.expected += 1;
        Ok(())
    }
}
