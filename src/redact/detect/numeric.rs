//! Digit chains and the detectors that read them: cards, SSNs, CPFs, CNPJs, IPv4 (phones are in
//! [`super::phone`]).
//!
//! A chain is a run of digit groups joined by short gaps (one to three of space, `-`, `.`, `/`,
//! `(`, `)`), e.g. `+49 (30) 1234-567` or `4111 1111 1111 1111`. Each detector looks at windows
//! of whole groups, so a number is never cut inside a digit run, and a valid number hidden
//! among other groups (`call 030 1234567 4111 1111 1111 1111`) is still found.

use super::{Detector, Sink, phone, word_at, word_before};
use crate::redact::validate;

/// Most groups looked at together; a longer chain is read in overlapping parts.
pub(super) const MAX_GROUPS: usize = 40;
/// Groups shared by two consecutive parts of a long chain (a card has at most 19 groups).
const OVERLAP: usize = 20;

/// The groups of one chain: byte ranges of digit runs.
pub(super) struct Chain<'t> {
    pub(super) text: &'t [u8],
    groups: [(usize, usize); MAX_GROUPS],
    pub(super) len: usize,
}

fn is_gap(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
}

impl<'t> Chain<'t> {
    /// Group `i` as a byte range.
    pub(super) fn group(&self, i: usize) -> (usize, usize) {
        self.groups.get(i).copied().unwrap_or((0, 0))
    }

    /// The digits of group `i`.
    pub(super) fn digits(&self, i: usize) -> &'t [u8] {
        let (s, e) = self.group(i);
        self.text.get(s..e).unwrap_or_default()
    }

    /// Number of digits in group `i`.
    pub(super) fn width(&self, i: usize) -> usize {
        let (s, e) = self.group(i);
        e - s
    }

    /// The gap between groups `i` and `i + 1`.
    pub(super) fn gap(&self, i: usize) -> &'t [u8] {
        let end = self.group(i).1;
        let next = self.group(i + 1).0;
        self.text.get(end..next).unwrap_or_default()
    }

    /// Whether every gap between groups `from..=to` is one of `allowed` single bytes.
    fn gaps_in(&self, from: usize, to: usize, allowed: &[u8]) -> bool {
        (from..to).all(|i| matches!(self.gap(i), [g] if allowed.contains(g)))
    }

    /// Digit values of groups `from..=to` into `buf`; `None` if they do not fit.
    pub(super) fn collect<'b>(
        &self,
        from: usize,
        to: usize,
        buf: &'b mut [u8],
    ) -> Option<&'b [u8]> {
        let mut n = 0;
        for i in from..=to {
            for &d in self.digits(i) {
                *buf.get_mut(n)? = d - b'0';
                n += 1;
            }
        }
        buf.get(..n)
    }

    /// Byte range of groups `from..=to`.
    pub(super) fn span(&self, from: usize, to: usize) -> (usize, usize) {
        (self.group(from).0, self.group(to).1)
    }
}

/// Reads the chain starting at the digit at `start`, runs the numeric detectors over it and
/// returns where scanning resumes.
pub(super) fn chain(b: &[u8], start: usize, sink: &mut Sink<'_>) -> usize {
    let mut c = Chain {
        text: b,
        groups: [(0, 0); MAX_GROUPS],
        len: 0,
    };
    let mut pos = start;
    let mut more = false;
    loop {
        let gs = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        if let Some(slot) = c.groups.get_mut(c.len) {
            *slot = (gs, pos);
            c.len += 1;
        }
        let mut k = pos;
        while k - pos < 3 && b.get(k).copied().is_some_and(is_gap) {
            k += 1;
        }
        if k == pos || !b.get(k).is_some_and(u8::is_ascii_digit) {
            break;
        }
        if c.len == MAX_GROUPS {
            more = true;
            break;
        }
        pos = k;
    }
    sink.region(c.group(0).0, c.group(c.len - 1).1);
    run(&c, sink);
    if more {
        return c.group(MAX_GROUPS - OVERLAP).0;
    }
    c.group(c.len - 1).1
}

fn run(c: &Chain<'_>, sink: &mut Sink<'_>) {
    let total: usize = (0..c.len).map(|i| c.width(i)).sum();
    if total >= 13 && sink.wants(Detector::CardNumber) {
        cards(c, sink);
    }
    if total >= 9 && sink.wants(Detector::UsSsn) {
        ssns(c, sink);
    }
    if total >= 11 && sink.wants(Detector::BrCpf) {
        cpfs(c, sink);
    }
    if total >= 14 && sink.wants(Detector::BrCnpj) {
        cnpjs(c, sink);
    }
    if c.len >= 4 && sink.wants(Detector::Ipv4) {
        ipv4s(c, sink);
    }
    if total >= 7 && sink.wants(Detector::Phone) {
        phone::phones(c, sink);
    }
}

const CARD_GAPS: &[u8] = b" -.";

/// Whether groups `s..=e` are laid out as card numbers are printed: one run of digits, or a
/// first group of at least four digits, then groups of three to eight and a last group of one
/// to eight (`4111 1111 1111 1111`, `3782 822463 10005`, `6205 5000 0000 0000 004`; not
/// `24 20 1224 30 12344`).
fn card_layout(c: &Chain<'_>, s: usize, e: usize) -> bool {
    s == e
        || (c.width(s) >= 4
            && (s + 1..e).all(|i| (3..=8).contains(&c.width(i)))
            && (1..=8).contains(&c.width(e)))
}

/// Every window of whole groups with 13 to 19 digits, joined by spaces, dashes or dots and laid
/// out like a card, that is a card number. A window at the chain's start glued to a letter is
/// part of a code (`CH93 0076 2011 6238 5295 1`), not a card.
fn cards(c: &Chain<'_>, sink: &mut Sink<'_>) {
    let mut buf = [0u8; 19];
    let glued = c
        .group(0)
        .0
        .checked_sub(1)
        .and_then(|i| c.text.get(i))
        .is_some_and(u8::is_ascii_alphabetic);
    for s in usize::from(glued)..c.len {
        let mut digits = 0;
        for e in s..c.len {
            if e > s && !c.gap(e - 1).iter().all(|g| CARD_GAPS.contains(g)) {
                break;
            }
            digits += c.width(e);
            if digits > 19 {
                break;
            }
            if digits < 13 || !card_layout(c, s, e) {
                continue;
            }
            let (start, end) = c.span(s, e);
            match c.collect(s, e, &mut buf) {
                Some(ds) if validate::card_number(ds) => {
                    sink.emit(Detector::CardNumber, start, end)
                }
                _ if sink.tracing() && s == 0 && e + 1 == c.len => {
                    sink.reject(Detector::CardNumber, start, end, "fails the Luhn check")
                }
                _ => {}
            }
        }
    }
}

/// Whether groups `s..=e` are the whole chain with no word character (or a `+`, which makes it
/// a phone number) touching it.
fn alone(c: &Chain<'_>, s: usize, e: usize) -> bool {
    let (start, end) = c.span(s, e);
    let plus = start.checked_sub(1).and_then(|i| c.text.get(i)) == Some(&b'+');
    s == 0 && e + 1 == c.len && !plus && !word_before(c.text, start) && !word_at(c.text, end)
}

fn widths_are(c: &Chain<'_>, s: usize, widths: &[usize]) -> bool {
    s + widths.len() <= c.len && widths.iter().enumerate().all(|(k, &w)| c.width(s + k) == w)
}

/// Emits groups `s..s + n` as `d` when `check` accepts their digits.
fn check_window(
    c: &Chain<'_>,
    s: usize,
    n: usize,
    d: Detector,
    check: fn(&[u8]) -> bool,
    why: &'static str,
    sink: &mut Sink<'_>,
) {
    let mut buf = [0u8; 19];
    let e = s + n - 1;
    let (start, end) = c.span(s, e);
    match c.collect(s, e, &mut buf) {
        Some(ds) if check(ds) => sink.emit(d, start, end),
        _ => sink.reject(d, start, end, why),
    }
}

/// `078-05-1123`, `078 05 1123`, `078.05.1123` (one separator throughout), `078-051121`, and a
/// bare `078051123` standing alone.
fn ssns(c: &Chain<'_>, sink: &mut Sink<'_>) {
    const WHY: &str = "breaks the SSN numbering rules";
    for s in 0..c.len {
        if widths_are(c, s, &[3, 2, 4]) {
            let same = c.gap(s) == c.gap(s + 1);
            if same && c.gaps_in(s, s + 2, b"- .") {
                check_window(c, s, 3, Detector::UsSsn, validate::us_ssn, WHY, sink);
            }
        }
        if widths_are(c, s, &[3, 6]) && c.gap(s) == b"-" {
            check_window(c, s, 2, Detector::UsSsn, validate::us_ssn, WHY, sink);
        }
    }
    if c.len == 1 && c.width(0) == 9 && alone(c, 0, 0) {
        check_window(c, 0, 1, Detector::UsSsn, validate::us_ssn, WHY, sink);
    }
}

/// `529.982.247-25`, `529 982 247 25`, `529982247-25`, and a bare `52998224725` standing alone.
fn cpfs(c: &Chain<'_>, sink: &mut Sink<'_>) {
    const WHY: &str = "fails the CPF check digits";
    for s in 0..c.len {
        if widths_are(c, s, &[3, 3, 3, 2])
            && c.gap(s) == c.gap(s + 1)
            && c.gaps_in(s, s + 2, b". ")
            && c.gaps_in(s + 2, s + 3, b"-./ ")
        {
            check_window(c, s, 4, Detector::BrCpf, validate::cpf, WHY, sink);
        }
        if widths_are(c, s, &[9, 2]) && c.gaps_in(s, s + 1, b"-./ ") {
            check_window(c, s, 2, Detector::BrCpf, validate::cpf, WHY, sink);
        }
    }
    if c.len == 1 && c.width(0) == 11 && alone(c, 0, 0) {
        check_window(c, 0, 1, Detector::BrCpf, validate::cpf, WHY, sink);
    }
}

/// `11.222.333/0001-81`, `11 222 333 0001 81`, `11222333/0001-81`, `112223330001-81`, and a
/// bare `11222333000181` standing alone.
fn cnpjs(c: &Chain<'_>, sink: &mut Sink<'_>) {
    const WHY: &str = "fails the CNPJ check digits";
    for s in 0..c.len {
        if widths_are(c, s, &[2, 3, 3, 4, 2])
            && c.gap(s) == c.gap(s + 1)
            && c.gaps_in(s, s + 2, b". ")
            && c.gaps_in(s + 2, s + 4, b"-./ ")
        {
            check_window(c, s, 5, Detector::BrCnpj, validate::cnpj, WHY, sink);
        }
        if widths_are(c, s, &[8, 4, 2]) && c.gaps_in(s, s + 2, b"-./ ") {
            check_window(c, s, 3, Detector::BrCnpj, validate::cnpj, WHY, sink);
        }
        if widths_are(c, s, &[12, 2]) && c.gaps_in(s, s + 1, b"-./ ") {
            check_window(c, s, 2, Detector::BrCnpj, validate::cnpj, WHY, sink);
        }
    }
    if c.len == 1 && c.width(0) == 14 && alone(c, 0, 0) {
        check_window(c, 0, 1, Detector::BrCnpj, validate::cnpj, WHY, sink);
    }
}

/// The value of a group of at most three digits.
fn octet(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 3 {
        return None;
    }
    Some(d.iter().fold(0, |acc, &x| acc * 10 + u32::from(x - b'0')))
}

/// Dotted quads with every part at most 255, not glued to a word, optionally with a prefix
/// length `/0`..`/32` (a longer suffix is left out of the span).
fn ipv4s(c: &Chain<'_>, sink: &mut Sink<'_>) {
    for s in 0..c.len.saturating_sub(3) {
        if s > 0 && c.gap(s - 1) == b"." {
            continue;
        }
        if !c.gaps_in(s, s + 3, b".")
            || !(s..s + 4).all(|i| octet(c.digits(i)).is_some_and(|v| v <= 255))
        {
            continue;
        }
        let (start, mut end) = c.span(s, s + 3);
        if s == 0 && word_before(c.text, start) {
            continue;
        }
        let last = s + 3;
        if last + 1 < c.len {
            if c.gap(last) == b"/"
                && octet(c.digits(last + 1)).is_some_and(|v| v <= 32)
                && c.width(last + 1) <= 2
            {
                let after = c.group(last + 1).1;
                if !word_at(c.text, after) {
                    end = after;
                }
            }
        } else if word_at(c.text, end) {
            continue;
        }
        sink.emit(Detector::Ipv4, start, end);
    }
}
