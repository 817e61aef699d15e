//! IBANs: two letters of a registry country and two check digits, then exactly that country's
//! number of characters, compact (`DE89370400440532013000`) or printed with single spaces or
//! dashes (`DE89 3704 0044 0532 0130 00`), in any case. Knowing the length, the detector never
//! swallows the next word (`DE89370400440532013000 BIC COBADEFF`), and the registry layout and
//! mod-97 check confirm it.

use super::{Detector, Sink, word_at};
use crate::redact::validate;

/// Tries an IBAN whose check digits start at the digit at `i`.
pub(super) fn at(b: &[u8], i: usize, sink: &mut Sink<'_>) {
    let Some(start) = i.checked_sub(2) else {
        return;
    };
    let (Some(&c0), Some(&c1)) = (b.get(start), b.get(start + 1)) else {
        return;
    };
    if !c0.is_ascii_alphabetic()
        || !c1.is_ascii_alphabetic()
        || !b.get(i + 1).is_some_and(u8::is_ascii_digit)
        || super::word_before(b, start)
    {
        return;
    }
    let Some(len) = validate::iban_length([c0.to_ascii_uppercase(), c1.to_ascii_uppercase()])
    else {
        return;
    };
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut pos = start;
    while n < len {
        match b.get(pos) {
            Some(&c) if c.is_ascii_alphanumeric() => {
                let Some(slot) = buf.get_mut(n) else { return };
                *slot = c.to_ascii_uppercase();
                n += 1;
                pos += 1;
            }
            Some(b' ' | b'-')
                if n >= 4 && b.get(pos + 1).is_some_and(u8::is_ascii_alphanumeric) =>
            {
                pos += 1;
            }
            _ => break,
        }
    }
    if n < len || word_at(b, pos) {
        if n >= 15 {
            sink.reject(
                Detector::Iban,
                start,
                pos,
                "has the wrong length for its country",
            );
        }
        return;
    }
    if validate::iban(buf.get(..n).unwrap_or_default()) {
        sink.emit(Detector::Iban, start, pos);
    } else {
        sink.reject(
            Detector::Iban,
            start,
            pos,
            "fails the country layout or mod-97 check",
        );
    }
}
