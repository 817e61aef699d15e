//! Overlap resolution and the single rewrite of the text.
//!
//! Every candidate span is hidden; overlaps only decide who names the replacement. Candidates
//! are ranked — a validated candidate (checksum, numbering rules, grammar) beats an unvalidated
//! one, then the longer beats the shorter, then the detector's priority ([`Detector`] order;
//! custom patterns after the built-ins), then the redactor's name — and placed in that order.
//! A candidate that overlaps spans already placed keeps the parts of its span outside them (if
//! they hold a letter or digit), replaced on their own: so a phone number glued to a card
//! number is hidden as `[PHONE] [CARD]`, and a spurious checksum match cannot expose the tail
//! of a real one. The ranking uses no list order, so the output does not depend on the order in
//! which a policy lists its detectors.
//!
//! [`Detector`]: super::Detector

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::{Normalized, Scratch};
use crate::redact::redactor::Redactor;

/// A span a detector proposes, as byte offsets of the folded text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Index of the redactor in the plan's (name-sorted) list.
    pub(crate) member: u16,
    pub(crate) validated: bool,
}

/// A candidate its validator refused (kept for `policy explain` only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) member: u16,
    pub(crate) reason: &'static str,
}

/// One replaced span, described for `policy explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpanReport {
    /// `card_number took characters 17..36 (validated)` and, for each candidate that lost
    /// there, why.
    pub(crate) text: String,
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    end: usize,
    member: u16,
    /// Index of the candidate in rank order.
    rank: usize,
    whole: bool,
}

fn key<M: Borrow<Redactor>>(
    members: &[M],
    c: &Candidate,
) -> (bool, Reverse<usize>, u8, u16, usize) {
    let priority = members
        .get(usize::from(c.member))
        .map_or(u8::MAX, |m| m.borrow().priority());
    (
        !c.validated,
        Reverse(c.end - c.start),
        priority,
        c.member,
        c.start,
    )
}

fn is_edge(b: u8) -> bool {
    b.is_ascii_whitespace() || b",;:.-/()".contains(&b)
}

/// The part of `start..end` left after trimming separators, if it holds a letter or digit.
fn trimmed(text: &[u8], mut start: usize, mut end: usize) -> Option<(usize, usize)> {
    while start < end && text.get(start).copied().is_some_and(is_edge) {
        start += 1;
    }
    while end > start && text.get(end - 1).copied().is_some_and(is_edge) {
        end -= 1;
    }
    let core = text
        .get(start..end)?
        .iter()
        .any(|&b| b.is_ascii_alphanumeric() || b >= 0x80);
    core.then_some((start, end))
}

/// Why `lost` ranks below `won`.
fn reason<M: Borrow<Redactor>>(members: &[M], won: &Candidate, lost: &Candidate) -> String {
    let name = |c: &Candidate| {
        members
            .get(usize::from(c.member))
            .map_or("?", |m| m.borrow().name())
            .to_owned()
    };
    let (wl, ll) = (won.end - won.start, lost.end - lost.start);
    if won.validated && !lost.validated {
        format!("{} is validated and {} is not", name(won), name(lost))
    } else if wl != ll {
        format!("{} is longer ({wl} against {ll} bytes)", name(won))
    } else if key(members, won).2 != key(members, lost).2 {
        format!("same length; {} has priority", name(won))
    } else {
        format!(
            "same length and priority; {} comes first by name",
            name(won)
        )
    }
}

/// The placed spans, in text order, and (for reports) which candidate lost to which; kept
/// between texts (see [`Scratch`](super::Scratch)) so placing allocates nothing once grown.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    pieces: Vec<(usize, Piece)>,
    losses: Vec<(usize, usize)>,
}

/// Ranks `cands` and places them into `placement` (see the module documentation). Candidates
/// are first grouped into clusters of overlapping spans; a lone candidate is placed whole, and
/// only a cluster is ranked and placed piece by piece. `cands` ends up sorted by position, each
/// cluster by rank.
fn place<M: Borrow<Redactor>>(
    members: &[M],
    fb: &[u8],
    cands: &mut Vec<Candidate>,
    keep_losses: bool,
    placement: &mut Placement,
) {
    cands.sort_unstable_by_key(|c| (c.start, c.end, c.member, c.validated));
    cands.dedup();
    let Placement { pieces, losses } = placement;
    pieces.clear();
    losses.clear();
    let mut i = 0;
    while let Some(first) = cands.get(i) {
        let mut j = i + 1;
        let mut end = first.end;
        while let Some(next) = cands.get(j).filter(|n| n.start < end) {
            end = end.max(next.end);
            j += 1;
        }
        if j == i + 1 {
            pieces.push((
                first.start,
                Piece {
                    end: first.end,
                    member: first.member,
                    rank: i,
                    whole: true,
                },
            ));
        } else if let Some(cluster) = cands.get_mut(i..j) {
            cluster.sort_unstable_by_key(|c| key(members, c));
            let placed = place_cluster(fb, cluster, i, keep_losses.then_some(&mut *losses));
            pieces.extend(placed);
        }
        i = j;
    }
}

/// Places one cluster of overlapping candidates, in rank order; `offset` is the cluster's
/// index in the candidate list.
fn place_cluster(
    fb: &[u8],
    cluster: &[Candidate],
    offset: usize,
    mut losses: Option<&mut Vec<(usize, usize)>>,
) -> impl Iterator<Item = (usize, Piece)> {
    let mut pieces: BTreeMap<usize, Piece> = BTreeMap::new();
    let mut overlapping: Vec<(usize, Piece)> = Vec::new();
    let mut gaps = Vec::new();
    for (k, c) in cluster.iter().enumerate() {
        let rank = offset + k;
        overlapping.clear();
        overlapping.extend(
            pieces
                .range(..c.end)
                .rev()
                .take_while(|(_, p)| p.end > c.start)
                .map(|(&s, &p)| (s, p)),
        );
        if overlapping.is_empty() {
            pieces.insert(
                c.start,
                Piece {
                    end: c.end,
                    member: c.member,
                    rank,
                    whole: true,
                },
            );
            continue;
        }
        overlapping.reverse();
        let mut cursor = c.start;
        gaps.clear();
        for (s, p) in &overlapping {
            if let Some(l) = losses.as_deref_mut() {
                l.push((p.rank, rank));
            }
            if *s > cursor {
                gaps.push((cursor, *s));
            }
            cursor = cursor.max(p.end);
        }
        if cursor < c.end {
            gaps.push((cursor, c.end));
        }
        for &(s, e) in &gaps {
            if let Some((s, e)) = trimmed(fb, s, e) {
                pieces.insert(
                    s,
                    Piece {
                        end: e,
                        member: c.member,
                        rank,
                        whole: false,
                    },
                );
            }
        }
    }
    pieces.into_iter()
}

/// One span that will be replaced: original byte offsets and the redactor's member index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) member: u16,
}

/// Resolves `scratch.cands` (in folded-text offsets) into the spans that would be replaced, as
/// original byte offsets, in text order.
pub(crate) fn spans<M: Borrow<Redactor>>(
    members: &[M],
    norm: &Normalized<'_>,
    scratch: &mut Scratch,
) -> Vec<Placed> {
    let Scratch {
        cands, placement, ..
    } = scratch;
    place(members, norm.as_str().as_bytes(), cands, false, placement);
    placement
        .pieces
        .iter()
        .map(|&(s, p)| {
            let (start, end) = norm.original(s, p.end);
            Placed {
                start,
                end,
                member: p.member,
            }
        })
        .collect()
}

/// Whether some region near a piece is not covered whole by pieces (`pieces` sorted by start).
fn unsettled(pieces: &[(usize, Piece)], regions: &[(usize, usize)]) -> bool {
    const SLACK: usize = 4;
    regions.iter().any(|&(s, e)| {
        let lo = s.saturating_sub(SLACK);
        let hi = e + SLACK;
        let first = pieces.partition_point(|(_, p)| p.end <= lo);
        let near = pieces.get(first..).unwrap_or_default();
        let mut touching = near.iter().take_while(|(ps, _)| *ps < hi).peekable();
        if touching.peek().is_none() {
            return false;
        }
        let mut cursor = s;
        for (ps, p) in touching {
            if *ps > cursor {
                break;
            }
            cursor = cursor.max(p.end);
        }
        cursor < e
    })
}

/// Resolves the candidates of the round in `scratch` (in folded-text offsets) and appends
/// `original` rewritten to `out`, adding each redactor's replacements to `scratch.counts`
/// (indexed like `members`). `None` (and nothing appended) if there is nothing to replace;
/// else whether another round over the rewritten text could find something new: a custom
/// pattern replaced something, or a context region touches a replaced span without being
/// replaced whole. With `report`, also describes every replaced span and the candidates that
/// lost there.
pub(crate) fn apply<M: Borrow<Redactor>>(
    members: &[M],
    norm: &Normalized<'_>,
    original: &str,
    scratch: &mut Scratch,
    out: &mut String,
    report: Option<(&[Rejection], &mut Vec<SpanReport>)>,
) -> Option<bool> {
    let Scratch {
        cands,
        context,
        placement,
        counts,
    } = scratch;
    if cands.is_empty() {
        return None;
    }
    let folded = norm.as_str();
    place(
        members,
        folded.as_bytes(),
        cands,
        report.is_some(),
        placement,
    );
    if counts.len() < members.len() {
        counts.resize(members.len(), 0);
    }
    out.reserve(original.len() + 16);
    let mut last = 0;
    let mut placed = Vec::new();
    for &(start, ref p) in &placement.pieces {
        let (os, oe) = norm.original(start, p.end);
        let Some(member) = members.get(usize::from(p.member)).map(Borrow::borrow) else {
            continue;
        };
        if os < last {
            continue;
        }
        out.push_str(original.get(last..os).unwrap_or_default());
        member.replace_into(
            original.get(os..oe).unwrap_or_default(),
            folded,
            start,
            p.end,
            p.whole,
            out,
        );
        last = oe;
        if let Some(n) = counts.get_mut(usize::from(p.member)) {
            *n += 1;
        }
        if report.is_some() {
            placed.push((start, *p, os, oe));
        }
    }
    out.push_str(original.get(last..).unwrap_or_default());
    if let Some((rejections, reports)) = report {
        describe(
            members,
            cands,
            &placement.losses,
            rejections,
            original,
            norm,
            &placed,
            reports,
        );
    }
    Some(context.patterns || unsettled(&placement.pieces, &context.regions))
}

#[allow(clippy::too_many_arguments)]
fn describe<M: Borrow<Redactor>>(
    members: &[M],
    cands: &[Candidate],
    losses: &[(usize, usize)],
    rejections: &[Rejection],
    original: &str,
    norm: &Normalized<'_>,
    spans: &[(usize, Piece, usize, usize)],
    reports: &mut Vec<SpanReport>,
) {
    let chars = |byte: usize| original.get(..byte).map_or(0, |s| s.chars().count());
    let name = |m: u16| {
        members
            .get(usize::from(m))
            .map_or("?", |m| m.borrow().name())
    };
    let range = |s: usize, e: usize| {
        let (os, oe) = norm.original(s, e);
        format!("characters {}..{}", chars(os), chars(oe))
    };
    for &(start, p, os, oe) in spans {
        let Some(c) = cands.get(p.rank) else { continue };
        let mut text = format!(
            "{} took characters {}..{} ({}{})",
            name(p.member),
            chars(os),
            chars(oe),
            if c.validated {
                "validated"
            } else {
                "not validated"
            },
            if p.whole {
                ""
            } else {
                "; the part of its span no better candidate took"
            }
        );
        if p.whole {
            for &(won, lost) in losses.iter().filter(|(w, _)| *w == p.rank) {
                if let (Some(w), Some(l)) = (cands.get(won), cands.get(lost)) {
                    text.push_str(&format!(
                        "; {} ({}) lost: {}",
                        name(l.member),
                        range(l.start, l.end),
                        reason(members, w, l)
                    ));
                }
            }
        }
        for r in rejections
            .iter()
            .filter(|r| r.start < p.end && r.end > start)
        {
            text.push_str(&format!(
                "; {} ({}) refused: {}",
                name(r.member),
                range(r.start, r.end),
                r.reason
            ));
        }
        reports.push(SpanReport { text });
    }
}
