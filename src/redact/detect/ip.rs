//! IPv6 addresses in every RFC 4291 text form (full, `::`-compressed, with an embedded IPv4
//! address: `::ffff:192.0.2.1`, `64:ff9b::192.0.2.1`), upper or lower case, with a zone id
//! (`fe80::1%eth0`, RFC 6874) and a prefix length (`2001:db8::/32`, `/0`..`/128`). An address
//! glued to a word (`std::cout`, `fe80::1text`) or to more colons (`:::`, `2001::db8::1`) is not
//! one. IPv4 lives with the other numeric detectors ([`super::numeric`]).

use super::{Detector, Sink, is_word_byte, word_before};

/// Longest text looked at for one address (with zone id and prefix).
const MAX_ADDRESS: usize = 96;

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

/// Tries the address whose text contains the `:` at `p`; returns the offset before which no
/// other `:` needs a look (the end of the run of address characters).
pub(super) fn v6_at(b: &[u8], p: usize, sink: &mut Sink<'_>) -> usize {
    let mut s = p;
    while s > 0 && p - s < 45 && b.get(s - 1).is_some_and(|&c| is_hex(c) || c == b':') {
        s -= 1;
    }
    let mut run_end = p;
    while b
        .get(run_end)
        .is_some_and(|&c| is_hex(c) || c == b':' || c == b'.')
        && run_end - s < MAX_ADDRESS
    {
        run_end += 1;
    }
    sink.region(s, run_end);
    if word_before(b, s) || (s > 0 && b.get(s - 1) == Some(&b'.')) {
        return run_end;
    }
    if let Some(end) = address_end(b, s) {
        sink.emit(Detector::Ipv6, s, suffixes(b, end));
    }
    run_end
}

/// A dotted-quad IPv4 address at `at` (for the last 32 bits); its end.
fn ipv4_at(b: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    for part in 0..4 {
        if part > 0 {
            if b.get(pos) != Some(&b'.') {
                return None;
            }
            pos += 1;
        }
        let start = pos;
        let mut v = 0u32;
        while pos - start < 3 && b.get(pos).is_some_and(u8::is_ascii_digit) {
            v = v * 10 + u32::from(b.get(pos).copied().unwrap_or(b'0') - b'0');
            pos += 1;
        }
        if pos == start || v > 255 || b.get(pos).is_some_and(u8::is_ascii_digit) {
            return None;
        }
    }
    Some(pos)
}

/// Whether an address may end just before `e`.
fn ends_cleanly(b: &[u8], e: usize) -> bool {
    match b.get(e) {
        None => true,
        Some(b':') => false,
        Some(b'.') => !b.get(e + 1).is_some_and(u8::is_ascii_digit),
        Some(&c) => !is_word_byte(c) && c < 0x80,
    }
}

/// The end of the longest address starting at `s` that ends cleanly.
fn address_end(b: &[u8], s: usize) -> Option<usize> {
    let mut pos = s;
    let mut groups = 0usize;
    let mut compressed = false;
    let mut best = None;
    let valid = |e: usize, groups: usize, compressed: bool, best: &mut Option<usize>| {
        let complete = if compressed { groups <= 7 } else { groups == 8 };
        if complete && ends_cleanly(b, e) {
            *best = Some(e);
        }
    };
    if b.get(pos) == Some(&b':') {
        if b.get(pos + 1) != Some(&b':') {
            return None;
        }
        compressed = true;
        pos += 2;
        valid(pos, 0, true, &mut best);
    }
    loop {
        if groups <= 6
            && let Some(e) = ipv4_at(b, pos)
        {
            valid(e, groups + 2, compressed, &mut best);
            break;
        }
        let start = pos;
        while pos - start < 4 && b.get(pos).copied().is_some_and(is_hex) {
            pos += 1;
        }
        if pos == start || b.get(pos).copied().is_some_and(is_hex) {
            break;
        }
        groups += 1;
        valid(pos, groups, compressed, &mut best);
        if groups == 8 || b.get(pos) != Some(&b':') {
            break;
        }
        if b.get(pos + 1) == Some(&b':') {
            if compressed {
                break;
            }
            compressed = true;
            pos += 2;
            valid(pos, groups, true, &mut best);
        } else if b.get(pos + 1).copied().is_some_and(is_hex) {
            pos += 1;
        } else {
            break;
        }
    }
    best
}

/// Extends an address over a zone id (`%eth0`, `%25eth0`) and a prefix length (`/64`).
fn suffixes(b: &[u8], mut end: usize) -> usize {
    if b.get(end) == Some(&b'%') {
        let mut z = end + 1;
        while z - end < 64
            && b.get(z).is_some_and(|&c| {
                c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'-')
            })
        {
            z += 1;
        }
        // A trailing dot ends the sentence, not the zone.
        while z > end + 1 && b.get(z - 1) == Some(&b'.') {
            z -= 1;
        }
        if z > end + 1 {
            end = z;
        }
    }
    if b.get(end) == Some(&b'/') {
        let mut d = end + 1;
        let mut v = 0u32;
        while d - end <= 3 && b.get(d).is_some_and(u8::is_ascii_digit) {
            v = v * 10 + u32::from(b.get(d).copied().unwrap_or(b'0') - b'0');
            d += 1;
        }
        if d > end + 1 && v <= 128 && !b.get(d).is_some_and(u8::is_ascii_digit) {
            end = d;
        }
    }
    end
}
