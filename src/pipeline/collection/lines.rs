//! Splitting a byte stream into NDJSON lines as frames arrive, holding at most one unfinished
//! line of at most `max` bytes.

use bytes::{Bytes, BytesMut};

/// A line (not counting its `\n`) longer than the limit: the stream must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong;

/// Cuts frames into whole lines; a line split across frames is joined.
pub(crate) struct Lines {
    partial: BytesMut,
    max: usize,
}

impl Lines {
    /// Lines of at most `max` bytes each, `\n` excluded.
    pub(crate) fn new(max: u64) -> Self {
        Lines {
            partial: BytesMut::new(),
            max: usize::try_from(max).unwrap_or(usize::MAX),
        }
    }

    /// Appends the whole lines `data` completes to `out` (each ending in `\n`); keeps the rest.
    pub(crate) fn push(&mut self, mut data: Bytes, out: &mut Vec<Bytes>) -> Result<(), TooLong> {
        while let Some(at) = data.iter().position(|b| *b == b'\n') {
            let head = data.split_to(at + 1);
            if self.partial.len() + at > self.max {
                return Err(TooLong);
            }
            out.push(if self.partial.is_empty() {
                head
            } else {
                self.partial.extend_from_slice(&head);
                self.partial.split().freeze()
            });
        }
        if self.partial.len() + data.len() > self.max {
            return Err(TooLong);
        }
        self.partial.extend_from_slice(&data);
        Ok(())
    }

    /// The unterminated last line, once the stream ended.
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        (!self.partial.is_empty()).then(|| self.partial.split().freeze())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The oracle: split the whole stream at once.
    fn oracle(all: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
        let mut lines = Vec::new();
        let mut rest = all;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            if at > max {
                return (lines, true);
            }
            lines.push(rest[..=at].to_vec());
            rest = &rest[at + 1..];
        }
        if rest.len() > max {
            return (lines, true);
        }
        if !rest.is_empty() {
            lines.push(rest.to_vec());
        }
        (lines, false)
    }

    proptest! {
        #[test]
        fn any_framing_gives_the_oracle_lines(
            text in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'{')], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..12),
            max in 0usize..40,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= text.len()).collect();
            cuts.sort_unstable();
            let mut lines = Lines::new(max as u64);
            let mut got = Vec::new();
            let mut failed = false;
            let mut from = 0;
            for to in cuts.into_iter().chain([text.len()]) {
                if lines.push(Bytes::copy_from_slice(&text[from..to]), &mut got).is_err() {
                    failed = true;
                    break;
                }
                from = to;
            }
            if !failed {
                got.extend(lines.finish());
            }
            let (want, too_long) = oracle(&text, max);
            prop_assert_eq!(failed, too_long);
            // On failure: exactly the lines before the over-long one.
            let got: Vec<Vec<u8>> = got.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_line_is_joined_across_frames_and_bounded() {
        let mut lines = Lines::new(5);
        let mut out = Vec::new();
        lines.push(Bytes::from_static(b"ab"), &mut out).unwrap();
        lines.push(Bytes::from_static(b"c\nde"), &mut out).unwrap();
        assert_eq!(out, [Bytes::from_static(b"abc\n")]);
        assert_eq!(
            lines.push(Bytes::from_static(b"fghi"), &mut out),
            Err(TooLong)
        );
        let mut lines = Lines::new(5);
        lines
            .push(Bytes::from_static(b"12345\n"), &mut out)
            .unwrap();
        assert_eq!(
            lines.push(Bytes::from_static(b"123456\n"), &mut out),
            Err(TooLong)
        );
        assert_eq!(lines.finish(), None);
    }
}
