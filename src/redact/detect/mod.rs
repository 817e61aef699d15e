//! The free-text detection engine.
//!
//! One pass over the text finds every candidate span of every detector a purpose lists: the
//! built-in detectors (e-mail, phone, card, IBAN, IP, SSN, CPF, CNPJ) start from cheap anchors
//! (a digit run, an `@`, a `:`) and check each candidate with its validator (Luhn, mod-97,
//! check digits, numbering rules, address grammar); custom `pattern:` redactors add their regex
//! matches. Overlaps are then resolved once ([`resolve`]) and the replacements applied once, so
//! the outcome does not depend on the order in which a policy lists its detectors.
//!
//! Detectors read a folded copy of the text ([`Normalized`]): digits of every script, full-width
//! forms, Unicode spaces and dashes count as their ASCII counterparts, and every replacement
//! covers the original characters.

mod email;
mod iban;
mod ip;
mod normalize;
mod numeric;
mod phone;
mod resolve;
mod unicode;

use std::borrow::Borrow;

use regex::RegexSet;
use serde::{Deserialize, Serialize};

use super::redactor::Redactor;
pub(crate) use normalize::Normalized;
use resolve::Placement;
pub(crate) use resolve::{Candidate, Rejection, SpanReport, apply, spans};
pub(crate) use unicode::{digit_value, fold};

/// A built-in detector, named in policies as `detector: <name>`.
///
/// The declaration order is the priority used when two validated candidates of the same length
/// cover the same text (see [`resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// IBANs, compact or printed, any case: registry country, length, layout and mod-97.
    Iban,
    /// Payment cards: 13 to 19 digits with any separators, Luhn.
    CardNumber,
    /// Brazilian CNPJ (company registry numbers) with both check digits.
    BrCnpj,
    /// Brazilian CPF with both check digits.
    BrCpf,
    /// US social security numbers, dashed, spaced, dotted or bare, with the SSA's rules.
    UsSsn,
    /// IPv6 in every RFC 4291 / RFC 5952 form, with zone ids and prefix lengths.
    Ipv6,
    /// IPv4, dotted decimal, with prefix lengths.
    Ipv4,
    /// E-mail addresses (RFC 5321/5322 with RFC 6531 internationalised parts, IDN domains).
    Email,
    /// Phone numbers in E.164 and national forms.
    Phone,
}

impl Detector {
    /// Every built-in detector, in priority order.
    pub const ALL: [Self; 9] = [
        Self::Iban,
        Self::CardNumber,
        Self::BrCnpj,
        Self::BrCpf,
        Self::UsSsn,
        Self::Ipv6,
        Self::Ipv4,
        Self::Email,
        Self::Phone,
    ];

    /// The name used in policies.
    pub fn name(self) -> &'static str {
        match self {
            Self::Iban => "iban",
            Self::CardNumber => "card_number",
            Self::BrCnpj => "br_cnpj",
            Self::BrCpf => "br_cpf",
            Self::UsSsn => "us_ssn",
            Self::Ipv6 => "ipv6",
            Self::Ipv4 => "ipv4",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    /// The detector named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether its candidates are confirmed by a checksum, numbering rules or a grammar
    /// (everything but phone numbers).
    pub(crate) fn validated(self) -> bool {
        self != Self::Phone
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How the engine names a detector in a plan: the index of the redactor that uses it.
type Member = u16;

/// Where candidates go while scanning.
pub(crate) struct Sink<'a> {
    kinds: &'a [Option<Member>; Detector::ALL.len()],
    out: &'a mut Vec<Candidate>,
    trace: Option<&'a mut Vec<Rejection>>,
    context: &'a mut Context,
}

/// The buffers of one round of detection (candidates, context, placement) and the
/// replacements counted so far, kept between the texts of one document so that, once grown,
/// a round allocates nothing but its rewritten text.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The round's candidates ([`Engine::find`]).
    pub(crate) cands: Vec<Candidate>,
    /// What the round's scan depended on ([`Engine::find`]).
    pub(crate) context: Context,
    placement: Placement,
    /// Replacements per member (index into the plan's redactors) since they were last taken;
    /// shorter than the member list until something is replaced.
    pub(crate) counts: Vec<u64>,
}

impl Scratch {
    /// Calls `hit(name, n)` for each member with replacements counted, and resets the counts.
    pub(crate) fn take_counts<M: Borrow<Redactor>>(
        &mut self,
        members: &[M],
        hit: &mut dyn FnMut(&str, u64),
    ) {
        for (n, m) in self.counts.iter_mut().zip(members) {
            if *n > 0 {
                hit(m.borrow().name(), *n);
                *n = 0;
            }
        }
    }
}

/// What a scan looked at, to tell whether a rewrite can change the next round's outcome.
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// Byte ranges (folded text) whose reading depends on their surroundings: digit chains
    /// and IPv6 tokens.
    pub(crate) regions: Vec<(usize, usize)>,
    /// Whether a custom pattern proposed a candidate (regex boundaries are opaque: another
    /// round always runs after a pattern replaced something).
    pub(crate) patterns: bool,
}

impl Sink<'_> {
    fn wants(&self, d: Detector) -> bool {
        self.kinds.get(d.index()).is_some_and(Option::is_some)
    }

    fn emit(&mut self, d: Detector, start: usize, end: usize) {
        if let Some(Some(member)) = self.kinds.get(d.index())
            && end > start
        {
            self.out.push(Candidate {
                start,
                end,
                member: *member,
                validated: d.validated(),
            });
        }
    }

    /// Records, for `policy explain`, a candidate its validator refused.
    fn reject(&mut self, d: Detector, start: usize, end: usize, reason: &'static str) {
        if let (Some(trace), Some(Some(member))) =
            (self.trace.as_deref_mut(), self.kinds.get(d.index()))
        {
            trace.push(Rejection {
                start,
                end,
                member: *member,
                reason,
            });
        }
    }

    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Notes a range whose reading depends on the characters around it.
    fn region(&mut self, start: usize, end: usize) {
        self.context.regions.push((start, end));
    }
}

/// The detectors of one plan (or one redactor), compiled for scanning.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    /// For each built-in detector, the redactor (member) that takes its candidates: the first
    /// by name when several redactors use the same detector.
    kinds: [Option<Member>; Detector::ALL.len()],
    /// Members that are custom patterns.
    patterns: Vec<Member>,
    /// Prefilter over the custom patterns (only with more than one).
    set: Option<RegexSet>,
    /// Bytes that start a built-in detector's scan.
    triggers: [bool; 256],
}

impl Engine {
    /// Compiles the engine for `members` (the plan's text detectors, sorted by name).
    pub(crate) fn new<M: Borrow<Redactor>>(members: &[M]) -> Self {
        let mut kinds = [None; Detector::ALL.len()];
        let mut patterns = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let Ok(member) = Member::try_from(i) else {
                break;
            };
            match m.borrow().detector() {
                Some(d) => {
                    if let Some(slot @ None) = kinds.get_mut(d.index()) {
                        *slot = Some(member);
                    }
                }
                None => patterns.push(member),
            }
        }
        let set = if patterns.len() > 1 {
            RegexSet::new(patterns.iter().filter_map(|&p| {
                members
                    .get(usize::from(p))
                    .and_then(|m| m.borrow().pattern())
            }))
            .ok()
        } else {
            None
        };
        let mut triggers = [false; 256];
        let on = |d: Detector| kinds.get(d.index()).is_some_and(Option::is_some);
        let numeric = [
            Detector::Iban,
            Detector::CardNumber,
            Detector::BrCnpj,
            Detector::BrCpf,
            Detector::UsSsn,
            Detector::Ipv4,
            Detector::Phone,
        ];
        if numeric.into_iter().any(on) {
            for b in b'0'..=b'9' {
                triggers[usize::from(b)] = true;
            }
        }
        if on(Detector::Email) {
            triggers[usize::from(b'@')] = true;
        }
        if on(Detector::Ipv6) {
            triggers[usize::from(b':')] = true;
        }
        Self {
            kinds,
            patterns,
            set,
            triggers,
        }
    }

    /// Whether there is nothing to run.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.kinds.iter().all(Option::is_none)
    }

    /// Every candidate in the folded `text`, into `scratch.cands`, and what the scan depended
    /// on, into `scratch.context` (both cleared first; see [`Context`]); refused candidates go
    /// to `trace` when it is given.
    pub(crate) fn find<M: Borrow<Redactor>>(
        &self,
        members: &[M],
        text: &str,
        scratch: &mut Scratch,
        trace: Option<&mut Vec<Rejection>>,
    ) {
        scratch.cands.clear();
        scratch.context.regions.clear();
        scratch.context.patterns = false;
        let mut sink = Sink {
            kinds: &self.kinds,
            out: &mut scratch.cands,
            trace,
            context: &mut scratch.context,
        };
        self.scan_builtins(text.as_bytes(), &mut sink);
        if self.patterns.is_empty() {
            return;
        }
        let matched = self.set.as_ref().map(|s| s.matches(text));
        for (k, &p) in self.patterns.iter().enumerate() {
            if matched.as_ref().is_some_and(|m| !m.matched(k)) {
                continue;
            }
            if let Some(m) = members.get(usize::from(p)) {
                m.borrow().pattern_candidates(text, p, &mut sink);
            }
        }
    }

    fn scan_builtins(&self, b: &[u8], sink: &mut Sink<'_>) {
        let mut i = 0;
        let mut v6_done = 0;
        while let Some(off) = b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&c| self.triggers[usize::from(c)]))
        {
            i += off;
            match b.get(i) {
                Some(b'0'..=b'9') => {
                    if sink.wants(Detector::Iban) {
                        iban::at(b, i, sink);
                    }
                    i = numeric::chain(b, i, sink).max(i + 1);
                }
                Some(b'@') => {
                    email::at(b, i, sink);
                    i += 1;
                }
                Some(b':') => {
                    if i >= v6_done {
                        v6_done = ip::v6_at(b, i, sink);
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }
}

impl Sink<'_> {
    /// Adds a custom pattern's candidate (validated when the pattern has a validator).
    pub(crate) fn push_pattern(&mut self, member: u16, start: usize, end: usize, validated: bool) {
        if end > start {
            self.context.patterns = true;
            self.out.push(Candidate {
                start,
                end,
                member,
                validated,
            });
        }
    }

    /// Records a custom pattern's match that its validator refused.
    pub(crate) fn reject_pattern(
        &mut self,
        member: u16,
        start: usize,
        end: usize,
        reason: &'static str,
    ) {
        if let Some(trace) = self.trace.as_deref_mut() {
            trace.push(Rejection {
                start,
                end,
                member,
                reason,
            });
        }
    }
}

/// ASCII letter, digit or `_`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the byte before `i` (if any) is a word byte or part of a non-ASCII character.
fn word_before(b: &[u8], i: usize) -> bool {
    i.checked_sub(1)
        .and_then(|j| b.get(j))
        .is_some_and(|&c| is_word_byte(c) || c >= 0x80)
}

/// Whether the byte at `i` (if any) is a word byte or starts a non-ASCII character.
fn word_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|&c| is_word_byte(c) || c >= 0x80)
}

#[cfg(test)]
mod tests;
