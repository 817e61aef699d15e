//! The text the detectors read: the original, or (when it holds non-ASCII digits, full-width
//! forms, Unicode spaces or dashes, or invisible format characters) a folded copy with a map
//! back to the original, so a replacement always covers the original characters.

use std::borrow::Cow;

use super::unicode::fold;

/// Folded text and, when it differs from the original, where each of its bytes came from.
pub(crate) struct Normalized<'a> {
    text: Cow<'a, str>,
    /// For each folded byte offset `i` (and `len`): the original offset of the character that
    /// produced byte `i`, and the original offset just after the character that produced the
    /// folded character ending at `i`.
    map: Option<(Vec<usize>, Vec<usize>)>,
}

/// Whether some non-ASCII character of `text` folds to something else. Only the bytes that
/// start a multi-byte character are looked at.
fn needs_folding(text: &str) -> bool {
    if text.is_ascii() {
        return false;
    }
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&c| c >= 0xC0)) {
        i += off;
        if let Some(c) = text.get(i..).and_then(|r| r.chars().next()) {
            if fold(c) != Some(c) {
                return true;
            }
            i += c.len_utf8();
        } else {
            i += 1;
        }
    }
    false
}

impl<'a> Normalized<'a> {
    /// Folds `text` (see [`fold`]); borrows it when nothing changes.
    pub(crate) fn new(text: &'a str) -> Self {
        if !needs_folding(text) {
            return Self {
                text: Cow::Borrowed(text),
                map: None,
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut starts = Vec::with_capacity(text.len() + 1);
        let mut ends = Vec::with_capacity(text.len() + 1);
        ends.push(0);
        for (at, c) in text.char_indices() {
            let Some(f) = fold(c) else { continue };
            let after = at + c.len_utf8();
            out.push(f);
            for _ in 0..f.len_utf8() {
                starts.push(at);
            }
            // Intermediate bytes of a multi-byte folded character are never a span end.
            for _ in 1..f.len_utf8() {
                ends.push(after);
            }
            ends.push(after);
        }
        starts.push(text.len());
        Self {
            text: Cow::Owned(out),
            map: Some((starts, ends)),
        }
    }

    /// The folded text.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The original byte range of the folded range `start..end`.
    pub(crate) fn original(&self, start: usize, end: usize) -> (usize, usize) {
        match &self.map {
            None => (start, end),
            Some((starts, ends)) => (
                starts.get(start).copied().unwrap_or(start),
                ends.get(end).copied().unwrap_or(end),
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_borrowed_and_maps_to_itself() {
        let n = Normalized::new("card 4111");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.original(5, 9), (5, 9));
    }

    #[test]
    fn full_width_digits_map_back_to_their_span() {
        let text = "card ４１１１ end";
        let n = Normalized::new(text);
        assert_eq!(n.as_str(), "card 4111 end");
        let (s, e) = n.original(5, 9);
        assert_eq!(&text[s..e], "４１１１");
    }

    #[test]
    fn format_characters_are_skipped_and_covered() {
        let text = "41\u{200B}11 x";
        let n = Normalized::new(text);
        assert_eq!(n.as_str(), "4111 x");
        let (s, e) = n.original(0, 4);
        assert_eq!(&text[s..e], "41\u{200B}11");
        let (s, e) = n.original(5, 6);
        assert_eq!(&text[s..e], "x");
    }

    #[test]
    fn unchanged_non_ascii_is_borrowed() {
        let n = Normalized::new("mateo.garcía@example.es");
        assert!(matches!(n.text, Cow::Borrowed(_)));
    }
}
