//! E-mail addresses, found from their `@`: a local part of RFC 5322 `atext` and dots, or a
//! quoted string, with RFC 6531 non-ASCII characters (`mateo.garcía@`, `用户@`); a domain of two
//! or more labels (ASCII, IDN U-labels or punycode `xn--` labels) whose last label is a
//! plausible top-level domain, or an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).

use super::unicode::is_word_char;
use super::{Detector, Sink};

/// Longest local part looked at (RFC 5321 allows 64 octets; longer ones are still hidden).
const MAX_LOCAL: usize = 256;
/// Longest domain looked at (RFC 1035 allows 253).
const MAX_DOMAIN: usize = 256;

/// Tries an address around the `@` at `p`.
pub(super) fn at(b: &[u8], p: usize, sink: &mut Sink<'_>) {
    // A rewrite next to the address (a number glued to its domain) can change what it reads
    // as, so the scanned stretch is a context region.
    let mut left = p;
    while left > 0
        && p - left < MAX_LOCAL
        && b.get(left - 1)
            .is_some_and(|&c| is_atext(c) || c >= 0x80 || c == b'"')
    {
        left -= 1;
    }
    let mut right = p + 1;
    while right - p < MAX_DOMAIN
        && b.get(right).is_some_and(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'[' | b']' | b':') || c >= 0x80
        })
    {
        right += 1;
    }
    sink.region(left, right);
    let Some(start) = local_start(b, p) else {
        return;
    };
    if let Some(end) = domain_end(b, p + 1) {
        sink.emit(Detector::Email, start, end);
    }
}

/// RFC 5322 `atext` (and the dot of a dot-atom), as a table: the left scan asks per byte.
static ATEXT: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let specials = b"!#$%&'*+-/=?^_`{|}~.";
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = true;
        i += 1;
    }
    t
};

fn is_atext(c: u8) -> bool {
    ATEXT[usize::from(c)]
}

/// The non-ASCII character that ends just before `end`, with its start.
fn char_before(b: &[u8], end: usize) -> Option<(usize, char)> {
    let mut s = end.checked_sub(1)?;
    while s > 0 && b.get(s).is_some_and(|&c| c & 0xC0 == 0x80) && end - s < 4 {
        s -= 1;
    }
    let c = std::str::from_utf8(b.get(s..end)?).ok()?.chars().next()?;
    Some((s, c))
}

/// The non-ASCII character starting at `at`, with its length.
fn char_at(b: &[u8], at: usize) -> Option<(usize, char)> {
    let lead = *b.get(at)?;
    let len = match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(b.get(at..at + len)?)
        .ok()?
        .chars()
        .next()?;
    Some((len, c))
}

fn local_start(b: &[u8], p: usize) -> Option<usize> {
    if p == 0 {
        return None;
    }
    if b.get(p - 1) == Some(&b'"') {
        return quoted_start(b, p - 1);
    }
    let mut s = p;
    while s > 0 && p - s < MAX_LOCAL {
        let c = *b.get(s - 1)?;
        if c < 0x80 {
            if !is_atext(c) {
                break;
            }
            s -= 1;
            continue;
        }
        match char_before(b, s) {
            Some((cs, ch)) if is_word_char(ch) => s = cs,
            _ => break,
        }
    }
    while s < p && b.get(s) == Some(&b'.') {
        s += 1;
    }
    (s < p).then_some(s)
}

/// The opening quote of a quoted local part whose closing quote is at `close`.
fn quoted_start(b: &[u8], close: usize) -> Option<usize> {
    let mut i = close;
    while i > 0 && close - i < MAX_LOCAL {
        i -= 1;
        match b.get(i)? {
            b'"' if i == 0 || b.get(i - 1) != Some(&b'\\') => {
                return (close - i > 1).then_some(i);
            }
            b'\r' | b'\n' => return None,
            _ => {}
        }
    }
    None
}

/// Length of the domain-label character at `at` (ASCII letter, digit, `-`, or a non-ASCII
/// word character), or 0.
fn label_char(b: &[u8], at: usize) -> usize {
    match b.get(at) {
        Some(&c) if c.is_ascii_alphanumeric() || c == b'-' => 1,
        Some(&c) if c >= 0x80 => match char_at(b, at) {
            Some((len, ch)) if is_word_char(ch) => len,
            _ => 0,
        },
        _ => 0,
    }
}

fn plausible_tld(label: &[u8]) -> bool {
    if label.len() > 4
        && label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
    {
        return label
            .iter()
            .skip(4)
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    }
    label.len() >= 2 && label.iter().all(|&c| c.is_ascii_alphabetic() || c >= 0x80)
}

fn domain_end(b: &[u8], from: usize) -> Option<usize> {
    if b.get(from) == Some(&b'[') {
        let close = (from + 1..b.len().min(from + 64)).find(|&i| b.get(i) == Some(&b']'))?;
        let inner = b.get(from + 1..close)?;
        let ok = !inner.is_empty()
            && inner
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'.'));
        return ok.then_some(close + 1);
    }
    let mut pos = from;
    let mut labels = 0;
    let mut end = None;
    while pos - from < MAX_DOMAIN {
        let ls = pos;
        loop {
            let n = label_char(b, pos);
            if n == 0 {
                break;
            }
            pos += n;
        }
        let mut le = pos;
        while le > ls && b.get(le - 1) == Some(&b'-') {
            le -= 1;
        }
        if le == ls {
            break;
        }
        labels += 1;
        if labels >= 2 && plausible_tld(b.get(ls..le).unwrap_or_default()) {
            end = Some(le);
        }
        if le < pos || b.get(pos) != Some(&b'.') || label_char(b, pos + 1) == 0 {
            break;
        }
        pos += 1;
    }
    end
}
