//! What a digit and a word character are, taken from the tables of the regex engine that runs
//! custom patterns, so `\d` in a pattern, the built-in detectors and the checksum validators agree.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// The ranges of `\d` (Unicode `Decimal_Number`), as the regex engine sees them.
///
/// Unicode encodes every decimal digit set as ten consecutive code points from 0 to 9, so a
/// merged range starts at a zero and a digit's value is its distance from the start, modulo 10.
fn decimal_ranges() -> &'static [(u32, u32)] {
    static RANGES: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        let Ok(hir) = regex_syntax::Parser::new().parse(r"\d") else {
            return Vec::new();
        };
        match hir.kind() {
            HirKind::Class(Class::Unicode(class)) => class
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end())))
                .collect(),
            _ => Vec::new(),
        }
    })
}

/// The value of a decimal digit in any script (`４` is 4, `٣` is 3); `None` for anything else.
pub(crate) fn digit_value(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    if c.is_ascii() {
        return None;
    }
    let cp = u32::from(c);
    let ranges = decimal_ranges();
    let i = ranges.partition_point(|&(_, end)| end < cp);
    match ranges.get(i) {
        Some(&(start, end)) if (start..=end).contains(&cp) => u8::try_from((cp - start) % 10).ok(),
        _ => None,
    }
}

/// Whether a non-ASCII character can belong to a word (letters, marks, digits of any script):
/// Unicode's `\w`. Answers `true` if the table is missing, so an address is never cut short.
pub(crate) fn is_word_char(c: char) -> bool {
    regex_syntax::try_is_word_character(c).unwrap_or(true)
}

/// What a character stands for when matching: ASCII digits for digits of every script, ASCII
/// for full-width forms, a space for Unicode spaces, `-` for dashes and the minus sign, `.` for
/// ideographic full stops (IDNA label separators); `None` for invisible format characters (soft
/// hyphen, zero-width space and joiners, direction marks, BOM), which are skipped. Everything
/// else stands for itself.
pub(crate) fn fold(c: char) -> Option<char> {
    if c.is_ascii() {
        return Some(c);
    }
    if let Some(d) = digit_value(c) {
        return Some(char::from(b'0' + d));
    }
    let cp = u32::from(c);
    match cp {
        0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0),
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Some(' '),
        0x2010..=0x2015 | 0x2043 | 0x2212 | 0xFE58 | 0xFE63 => Some('-'),
        0x3002 | 0xFF61 | 0xFE52 => Some('.'),
        0xFE6B => Some('@'),
        0xFE55 => Some(':'),
        0xFE62 => Some('+'),
        0x00AD
        | 0x061C
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x2069
        | 0xFEFF => None,
        _ => Some(c),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digits_agree_with_the_regex_engine() {
        let d = regex::Regex::new(r"^\d$").unwrap();
        let mut buf = [0u8; 4];
        let mut seen = 0;
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let is_d = d.is_match(c.encode_utf8(&mut buf));
            assert_eq!(is_d, digit_value(c).is_some(), "U+{:04X}", u32::from(c));
            seen += usize::from(is_d);
        }
        assert!(seen > 600, "{seen}");
        assert_eq!(digit_value('４'), Some(4));
        assert_eq!(digit_value('٣'), Some(3));
        assert_eq!(digit_value('९'), Some(9));
        assert_eq!(digit_value('𝟗'), Some(9));
        assert_eq!(digit_value('x'), None);
        assert_eq!(digit_value('Ⅳ'), None);
    }

    #[test]
    fn folding() {
        assert_eq!(fold('４'), Some('4'));
        assert_eq!(fold('＠'), Some('@'));
        assert_eq!(fold('Ａ'), Some('A'));
        assert_eq!(fold('\u{3000}'), Some(' '));
        assert_eq!(fold('–'), Some('-'));
        assert_eq!(fold('。'), Some('.'));
        assert_eq!(fold('\u{200B}'), None);
        assert_eq!(fold('é'), Some('é'));
        assert!(is_word_char('é') && is_word_char('ा') && !is_word_char('«'));
    }
}
