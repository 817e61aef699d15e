//! Phone numbers in E.164 and national forms, over the digit chains of [`super::numeric`].
//!
//! Forms found (whole span, separators, parentheses and the `+` included):
//! - international: `+` or `00`, a country code of the ITU list, and a national number whose
//!   length is possible in that country (`+49 30 1234567`, `+44 (20) 7123 4567`,
//!   `+49 (0)30 1234567`, `0049 30 1234567`, `+14155550132`);
//! - national with a trunk prefix or an area code in parentheses: `030 1234567`,
//!   `090-1234-5678`, `074104 10123`, `(02) 9876 5432`, `(415) 555-0132`, `8 (495) 123-45-67`,
//!   `1-800-555-0199` (8 to 13 digits, at least two groups, not a date, not glued to a letter,
//!   and not followed by more groups with the same separators);
//! - North American `415-555-0132` / `415.555.0132` / `415 555 0132`, also after a country
//!   code without `+` (`91-415-555-0132`);
//! - other national layouts when they are the whole digit run: three or more groups of 2 to 5
//!   digits, 8 to 12 digits in all (`612 34 56 78`, `11 98456-5666`, `32 12 34 56`), except
//!   dates, thousands (`12 345 678`), dotted quads and runs of four-digit groups;
//! - bare digit runs standing alone: North American (10 or 11 digits), Chinese and Brazilian
//!   mobiles (11 digits), and 10 to 12 digits after a trunk `0`.
//!
//! Not found: 7-digit local numbers (`555-0132`), and 8-digit numbers in two groups without a
//! country code (`6123 4567`), which cannot be told from other numbers without context.

use super::numeric::Chain;
use super::{Detector, Sink, word_before};

/// ITU country calling codes with the shortest and longest national significant number
/// possible there (libphonenumber's metadata, release 8.13; +1 is held to 10 digits).
const COUNTRIES: &[(u16, u8, u8)] = &[
    (1, 10, 10),
    (7, 10, 14),
    (20, 8, 10),
    (27, 5, 10),
    (30, 10, 12),
    (31, 5, 11),
    (32, 8, 9),
    (33, 9, 9),
    (34, 9, 9),
    (36, 8, 9),
    (39, 6, 12),
    (40, 6, 9),
    (41, 9, 12),
    (43, 4, 13),
    (44, 7, 10),
    (45, 8, 8),
    (46, 6, 12),
    (47, 5, 8),
    (48, 6, 10),
    (49, 4, 15),
    (51, 8, 9),
    (52, 10, 10),
    (53, 6, 10),
    (54, 10, 11),
    (55, 8, 11),
    (56, 9, 11),
    (57, 8, 11),
    (58, 10, 10),
    (60, 8, 10),
    (61, 5, 12),
    (62, 7, 17),
    (63, 6, 13),
    (64, 5, 10),
    (65, 8, 11),
    (66, 8, 13),
    (81, 8, 17),
    (82, 5, 14),
    (84, 7, 10),
    (86, 7, 12),
    (90, 7, 13),
    (91, 8, 13),
    (92, 8, 12),
    (93, 9, 9),
    (94, 9, 9),
    (95, 6, 10),
    (98, 4, 10),
    (211, 9, 9),
    (212, 9, 9),
    (213, 8, 9),
    (216, 8, 8),
    (218, 9, 9),
    (220, 7, 7),
    (221, 9, 9),
    (222, 8, 8),
    (223, 8, 8),
    (224, 8, 9),
    (225, 10, 10),
    (226, 8, 8),
    (227, 8, 8),
    (228, 8, 8),
    (229, 8, 10),
    (230, 7, 10),
    (231, 7, 9),
    (232, 8, 8),
    (233, 8, 9),
    (234, 8, 14),
    (235, 8, 8),
    (236, 8, 8),
    (237, 8, 9),
    (238, 7, 7),
    (239, 7, 7),
    (240, 9, 9),
    (241, 7, 8),
    (242, 9, 9),
    (243, 7, 10),
    (244, 9, 9),
    (245, 7, 9),
    (246, 7, 7),
    (247, 5, 6),
    (248, 7, 7),
    (249, 9, 9),
    (250, 8, 9),
    (251, 9, 9),
    (252, 6, 9),
    (253, 8, 8),
    (254, 7, 10),
    (255, 9, 9),
    (256, 9, 9),
    (257, 8, 8),
    (258, 8, 9),
    (260, 9, 9),
    (261, 9, 9),
    (262, 9, 9),
    (263, 5, 10),
    (264, 8, 9),
    (265, 7, 9),
    (266, 8, 8),
    (267, 7, 10),
    (268, 8, 9),
    (269, 7, 7),
    (290, 4, 5),
    (291, 7, 7),
    (297, 7, 7),
    (298, 6, 6),
    (299, 6, 6),
    (350, 8, 8),
    (351, 9, 9),
    (352, 4, 11),
    (353, 7, 10),
    (354, 7, 9),
    (355, 6, 9),
    (356, 8, 8),
    (357, 8, 8),
    (358, 5, 12),
    (359, 6, 12),
    (370, 8, 8),
    (371, 8, 8),
    (372, 7, 10),
    (373, 8, 8),
    (374, 8, 8),
    (375, 6, 11),
    (376, 6, 9),
    (377, 8, 9),
    (378, 8, 10),
    (380, 9, 10),
    (381, 6, 12),
    (382, 8, 9),
    (383, 8, 12),
    (385, 6, 9),
    (386, 5, 8),
    (387, 8, 9),
    (389, 8, 8),
    (420, 9, 12),
    (421, 6, 9),
    (423, 7, 9),
    (500, 5, 5),
    (501, 7, 11),
    (502, 8, 11),
    (503, 7, 11),
    (504, 8, 11),
    (505, 8, 8),
    (506, 8, 10),
    (507, 7, 11),
    (508, 6, 9),
    (509, 8, 8),
    (590, 9, 9),
    (591, 8, 9),
    (592, 7, 7),
    (593, 8, 11),
    (594, 9, 9),
    (595, 6, 11),
    (596, 9, 9),
    (597, 6, 7),
    (598, 6, 13),
    (599, 7, 8),
    (670, 7, 8),
    (672, 6, 6),
    (673, 7, 7),
    (674, 7, 7),
    (675, 7, 8),
    (676, 5, 7),
    (677, 5, 7),
    (678, 5, 7),
    (679, 7, 11),
    (680, 7, 7),
    (681, 6, 9),
    (682, 5, 5),
    (683, 4, 7),
    (685, 5, 10),
    (686, 5, 8),
    (687, 6, 6),
    (688, 5, 7),
    (689, 6, 9),
    (690, 4, 7),
    (691, 7, 7),
    (692, 7, 7),
    (800, 8, 8),
    (808, 8, 8),
    (850, 8, 10),
    (852, 5, 11),
    (853, 7, 8),
    (855, 8, 10),
    (856, 8, 10),
    (870, 9, 12),
    (878, 12, 12),
    (880, 6, 10),
    (881, 9, 10),
    (882, 7, 12),
    (883, 8, 12),
    (886, 7, 11),
    (888, 11, 11),
    (960, 7, 10),
    (961, 7, 8),
    (962, 8, 9),
    (963, 8, 9),
    (964, 8, 10),
    (965, 7, 8),
    (966, 9, 10),
    (967, 7, 9),
    (968, 7, 9),
    (970, 8, 10),
    (971, 5, 12),
    (972, 7, 12),
    (973, 8, 8),
    (974, 7, 11),
    (975, 7, 8),
    (976, 8, 10),
    (977, 8, 11),
    (979, 9, 9),
    (992, 9, 9),
    (993, 8, 8),
    (994, 9, 9),
    (995, 9, 9),
    (996, 9, 10),
    (998, 9, 9),
];

/// The national number lengths of calling code `code`, if it is one.
fn country(code: u32) -> Option<(usize, usize)> {
    let code = u16::try_from(code).ok()?;
    let i = COUNTRIES.binary_search_by(|(c, _, _)| c.cmp(&code)).ok()?;
    COUNTRIES
        .get(i)
        .map(|&(_, lo, hi)| (usize::from(lo), usize::from(hi)))
}

fn value(d: &[u8]) -> u32 {
    d.iter().fold(0, |acc, &x| {
        acc.saturating_mul(10).saturating_add(u32::from(x - b'0'))
    })
}

/// The length of the country code at the start of `d` (codes are prefix-free).
fn country_prefix(d: &[u8]) -> Option<usize> {
    (1..=3.min(d.len())).find(|&k| d.get(..k).is_some_and(|p| country(value(p)).is_some()))
}

/// Where a candidate starting at group `s` begins: at a `(` just before it, else at the group.
fn opener(c: &Chain<'_>, s: usize) -> usize {
    let start = c.group(s).0;
    let open = if s == 0 {
        start.checked_sub(1).and_then(|i| c.text.get(i)) == Some(&b'(')
    } else {
        c.gap(s - 1).last() == Some(&b'(')
    };
    if open { start - 1 } else { start }
}

/// Emits `start..end of group e`, taking a closing `)` that balances one inside the span.
fn emit(c: &Chain<'_>, start: usize, e: usize, sink: &mut Sink<'_>) {
    let mut end = c.group(e).1;
    let inner = c.text.get(start..end).unwrap_or_default();
    let opens = inner.iter().filter(|&&b| b == b'(').count();
    let closes = inner.iter().filter(|&&b| b == b')').count();
    if opens > closes && c.text.get(end) == Some(&b')') {
        end += 1;
    }
    sink.emit(Detector::Phone, start, end);
}

/// Whether `gap` sets groups `s..=e` apart from their neighbours: it is not one of the gaps
/// inside them (`0171 1234567 / 030 7654321`, not `1234 5678 0123 4567`).
fn stands_apart(c: &Chain<'_>, gap: &[u8], s: usize, e: usize) -> bool {
    (s..e).all(|k| c.gap(k) != gap)
}

/// Whether the chain's first group is glued to a letter (`AE07 0331 2345`, the tail of an
/// IBAN or a product code).
fn glued_to_letter(c: &Chain<'_>) -> bool {
    let start = c.group(0).0;
    start
        .checked_sub(1)
        .and_then(|i| c.text.get(i))
        .is_some_and(u8::is_ascii_alphabetic)
}

/// Whether groups `s..s + 3` read as a date (`01.03.2024`, `2024-03-01`, `3/1/2024`).
fn is_date(c: &Chain<'_>, s: usize) -> bool {
    if s + 3 > c.len {
        return false;
    }
    let (a, b, y) = (c.digits(s), c.digits(s + 1), c.digits(s + 2));
    let small = |d: &[u8]| (1..=2).contains(&d.len());
    // The group widths first: they rule out most chains more cheaply than the gaps.
    let shaped = small(b) && ((small(a) && y.len() == 4) || (a.len() == 4 && small(y)));
    if !shaped || c.gap(s) != c.gap(s + 1) || !matches!(c.gap(s), b"." | b"/" | b"-") {
        return false;
    }
    let (va, vb) = (value(a), value(b));
    let day_month = (1..=31).contains(&va) && (1..=12).contains(&vb);
    let month_day = (1..=12).contains(&va) && (1..=31).contains(&vb);
    if small(a) && small(b) && y.len() == 4 {
        return day_month || month_day;
    }
    a.len() == 4 && small(b) && small(y) && (1..=12).contains(&vb) && (1..=31).contains(&value(y))
}

/// Runs every phone form over the chain.
pub(super) fn phones(c: &Chain<'_>, sink: &mut Sink<'_>) {
    international(c, sink);
    for s in 0..c.len {
        trunk(c, s, sink);
        north_american(c, s, sink);
    }
    whole_national(c, sink);
    bare(c, sink);
}

/// `+` or `00`, a country code, then a national number of a length possible there.
fn international(c: &Chain<'_>, sink: &mut Sink<'_>) {
    let b = c.text;
    let g0 = c.group(0).0;
    let before = |k: usize| g0.checked_sub(k).and_then(|i| b.get(i)).copied();
    let plus = match (before(1), before(2)) {
        (Some(b'+'), _) => Some(g0 - 1),
        (Some(b'('), Some(b'+')) => Some(g0 - 2),
        _ => None,
    };
    let d0 = c.digits(0);
    // (where the span starts, the group holding the last prefix digit, prefix digits there)
    let (start, first, used, code) = if let Some(p) = plus {
        if word_before(b, p) {
            return;
        }
        let Some(k) = country_prefix(d0) else { return };
        (p, 0, k, d0.get(..k).map(value))
    } else if d0.starts_with(b"00") && !word_before(b, g0) {
        if d0.len() > 2 {
            let rest = d0.get(2..).unwrap_or_default();
            let Some(k) = country_prefix(rest) else {
                return;
            };
            (g0, 0, 2 + k, rest.get(..k).map(value))
        } else if c.len > 1 && c.width(1) <= 3 && country(value(c.digits(1))).is_some() {
            (g0, 1, c.width(1), Some(value(c.digits(1))))
        } else {
            return;
        }
    } else {
        return;
    };
    let Some((lo, hi)) = code.and_then(country) else {
        return;
    };
    let mut nsn = 0;
    let mut best = None;
    for e in first..c.len {
        let digits = if e == first {
            c.width(e) - used
        } else {
            c.width(e)
        };
        let trunk_in_parens = e > first
            && c.digits(e) == b"0"
            && c.gap(e - 1).last() == Some(&b'(')
            && (e + 1 == c.len || c.gap(e).first() == Some(&b')'));
        if !trunk_in_parens {
            nsn += digits;
        }
        if nsn > hi {
            break;
        }
        if nsn >= lo.max(4) {
            best = Some(e);
        }
    }
    if let Some(e) = best {
        emit(c, start, e, sink);
    }
}

/// A trunk `0` (`030 1234567`), an area code in parentheses (`(02) 9876 5432`), or a one-digit
/// trunk before a three-digit area code (`8 (495) 123-45-67`, `1-800-555-0199`).
fn trunk(c: &Chain<'_>, s: usize, sink: &mut Sink<'_>) {
    if s + 1 >= c.len {
        return;
    }
    let d = c.digits(s);
    let w = d.len();
    let paren = opener(c, s) < c.group(s).0 && c.gap(s).first() == Some(&b')');
    let zero = d.first() == Some(&b'0') && d.get(1) != Some(&b'0') && (2..=6).contains(&w);
    let area = paren && (2..=5).contains(&w);
    let one_digit = w == 1 && matches!(d, b"8" | b"1") && (3..=5).contains(&c.width(s + 1));
    let ssn_shaped = c.len == s + 3 && (s..s + 3).map(|i| c.width(i)).eq([3, 2, 4]);
    if !(zero || area || one_digit) || is_date(c, s) || ssn_shaped || (s == 0 && glued_to_letter(c))
    {
        return;
    }
    let mut total = 0;
    let mut best = None;
    for e in s..c.len {
        total += c.width(e);
        if total > 13 {
            break;
        }
        if e > s && total >= 8 && (e + 1 == c.len || stands_apart(c, c.gap(e), s, e)) {
            best = Some(e);
        }
    }
    // A chain that goes on past the longest national number with the same separators is a
    // longer number (an account or reference), not a phone number.
    let Some(e) = best else { return };
    if s > 0 && !stands_apart(c, c.gap(s - 1), s, e) {
        return;
    }
    // Two groups need a subscriber part of four digits or more: `01305-000` is a postcode.
    if e == s + 1 && c.width(e) < 4 {
        return;
    }
    emit(c, opener(c, s), e, sink);
}

/// `415-555-0132`, `415.555.0132`, `415 555 0132`, `(415)555-0132`, optionally after a `1` or
/// a country code group.
fn north_american(c: &Chain<'_>, s: usize, sink: &mut Sink<'_>) {
    if s + 3 > c.len || c.width(s) != 3 || c.width(s + 1) != 3 || c.width(s + 2) != 4 {
        return;
    }
    let npa = c.digits(s);
    let nxx = c.digits(s + 1);
    if !matches!(npa.first(), Some(b'2'..=b'9')) || !matches!(nxx.first(), Some(b'2'..=b'9')) {
        return;
    }
    let paren = opener(c, s) < c.group(s).0;
    let first_gap_ok = match c.gap(s) {
        b"-" | b"." | b" " => !paren,
        b")" | b") " | b")-" | b")." => paren,
        _ => false,
    };
    if !first_gap_ok || !matches!(c.gap(s + 1), b"-" | b"." | b" ") {
        return;
    }
    let e = s + 2;
    let mut from = s;
    if s > 0 {
        let p = s - 1;
        let pd = c.digits(p);
        if pd.len() <= 3 && (pd == b"1" || country(value(pd)).is_some()) && c.gap(p).len() <= 2 {
            from = p;
        }
    }
    if e + 1 < c.len && !stands_apart(c, c.gap(e), from, e) {
        return;
    }
    if from > 0 && !stands_apart(c, c.gap(from - 1), from, e) {
        return;
    }
    emit(c, opener(c, from), e, sink);
}

/// Other national layouts, when they are the whole chain.
fn whole_national(c: &Chain<'_>, sink: &mut Sink<'_>) {
    let n = c.len;
    if n < 3 {
        return;
    }
    let widths = || (0..n).map(|i| c.width(i));
    let total: usize = widths().sum();
    if !(8..=12).contains(&total) || !widths().all(|w| (2..=5).contains(&w)) {
        return;
    }
    let gaps_ok = (0..n - 1).all(|i| matches!(c.gap(i), b" " | b"-" | b"."));
    let dotted = (0..n - 1).any(|i| c.gap(i) == b".");
    if !gaps_ok || (dotted && !(0..n - 1).all(|i| c.gap(i) == b".")) || is_date(c, 0) {
        return;
    }
    if glued_to_letter(c) || (n == 3 && widths().eq([3, 2, 4])) {
        // `AE07 0331 2345` is part of a code; 3-2-4 is the shape of an SSN, not of a phone.
        return;
    }
    let thousands = c.width(0) <= 3 && widths().skip(1).all(|w| w == 3);
    let quads = widths().all(|w| w == 4);
    let dotted_quad = n == 4 && dotted && widths().all(|w| w <= 3);
    if (thousands && total <= 8) || quads || dotted_quad {
        return;
    }
    emit(c, opener(c, 0), n - 1, sink);
}

/// A bare digit run standing alone.
fn bare(c: &Chain<'_>, sink: &mut Sink<'_>) {
    if c.len != 1 {
        return;
    }
    let (start, end) = c.group(0);
    if word_before(c.text, start) || super::word_at(c.text, end) {
        return;
    }
    let d = c.digits(0);
    let at = |i: usize| d.get(i).copied().unwrap_or(b'0');
    let nanp = |o: usize| matches!(at(o), b'2'..=b'9') && matches!(at(o + 3), b'2'..=b'9');
    let phone = match d.len() {
        10 => nanp(0) || (at(0) == b'0' && at(1) != b'0'),
        11 => {
            (at(0) == b'1' && nanp(1))
                || (at(0) == b'1' && matches!(at(1), b'3'..=b'9'))
                || (at(0) != b'0' && at(1) != b'0' && at(2) == b'9')
                || (at(0) == b'0' && at(1) != b'0')
        }
        12 => at(0) == b'0' && at(1) != b'0',
        _ => false,
    };
    if phone {
        sink.emit(Detector::Phone, start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_table_is_sorted_and_known_codes_resolve() {
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(country(1), Some((10, 10)));
        assert_eq!(country(49), Some((4, 15)));
        assert_eq!(country_prefix(b"4930"), Some(2));
        assert_eq!(country_prefix(b"35312"), Some(3));
        assert_eq!(country(0), None);
    }
}
