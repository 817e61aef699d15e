//! A strict JSON tokenizer over a borrowed buffer: it validates as it goes (grammar, UTF-8,
//! escapes, surrogate pairs, nesting depth, duplicate keys) and hands out byte ranges of the
//! input, so nothing is copied or allocated unless a key carries an escape.
//!
//! It accepts exactly what `serde_json::from_slice::<Value>` accepts, minus documents with a
//! duplicate key (serde_json keeps the last one; we refuse them).

use std::borrow::Cow;

use super::StreamError;

/// Most containers open at once. serde_json refuses the 128th nested container (its recursion
/// limit), so documents it accepts are exactly those within this bound.
pub(crate) const MAX_NESTING: usize = 127;

/// Bytes a string scan can pass over without a closer look: all but `"`, `\` and control bytes
/// (non-ASCII bytes are checked as UTF-8 once the string ends).
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x100 {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// A string token: the bytes between its quotes, as written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Str<'a> {
    /// The raw bytes between the quotes (escapes not decoded; UTF-8 already validated).
    pub(crate) raw: &'a [u8],
    /// Whether `raw` holds a backslash escape.
    pub(crate) escaped: bool,
}

impl<'a> Str<'a> {
    /// The decoded text: borrowed when the string has no escape.
    pub(crate) fn text(&self) -> Result<Cow<'a, str>, StreamError> {
        if self.escaped {
            let mut s = String::with_capacity(self.raw.len());
            unescape(self.raw, &mut s)?;
            Ok(Cow::Owned(s))
        } else {
            std::str::from_utf8(self.raw)
                .map(Cow::Borrowed)
                .map_err(|_| StreamError::Syntax)
        }
    }
}

/// The cursor over one document.
pub(crate) struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Keys of the open objects (skipped ones too), for the duplicate check.
    keys: Vec<Key>,
    /// One frame per open object, innermost last.
    frames: Vec<Frame>,
    /// Decoded text of keys written with escapes (never truncated within a document).
    decoded: Vec<u8>,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            // Sized for a typical record, so a small document allocates once.
            keys: Vec::with_capacity(64),
            decoded: Vec::new(),
            frames: Vec::with_capacity(8),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The input between two positions.
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.buf.get(from..to).unwrap_or_default()
    }

    /// Skips white space; the next byte, if any.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.buf.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes `b` (after white space) or fails.
    #[inline]
    pub(crate) fn expect(&mut self, b: u8) -> Result<(), StreamError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(StreamError::Syntax)
        }
    }

    /// After a member or element: `true` if a `,` follows (consumed), `false` at `close`
    /// (consumed).
    #[inline]
    pub(crate) fn more(&mut self, close: u8) -> Result<bool, StreamError> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(StreamError::Syntax),
        }
    }

    /// After `[` or `{`: `true` if the container is empty (`close` consumed).
    pub(crate) fn empty(&mut self, close: u8) -> bool {
        if self.peek() == Some(close) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Succeeds only at the end of the input (white space aside).
    pub(crate) fn end(&mut self) -> Result<(), StreamError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(StreamError::Syntax),
        }
    }

    /// Scans a string starting at its opening quote.
    pub(crate) fn string(&mut self) -> Result<Str<'a>, StreamError> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// Scans a string after its opening quote.
    #[inline]
    fn string_body(&mut self) -> Result<Str<'a>, StreamError> {
        let start = self.pos;
        let escaped = self.string_tail()?;
        Ok(Str {
            raw: self.slice(start, self.pos - 1),
            escaped,
        })
    }

    /// Validates a string after its opening quote and passes its closing quote; whether it
    /// holds an escape. (A flag, not a [`Str`]: the hot loops build what they need from
    /// positions, so no struct makes a round trip through memory.)
    #[inline(always)]
    fn string_tail(&mut self) -> Result<bool, StreamError> {
        let start = self.pos;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            let (stop, high) = self.plain_run();
            ascii &= !high;
            match stop {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    self.escape()?;
                }
                _ => return Err(StreamError::Syntax),
            }
        }
        if !ascii && std::str::from_utf8(self.slice(start, self.pos)).is_err() {
            return Err(StreamError::Syntax);
        }
        self.pos += 1;
        Ok(escaped)
    }

    /// Passes over string bytes that need no look (all but `"`, `\` and control bytes), eight
    /// at a time; the byte it stopped at (`None` at the end of the input) and whether it passed
    /// a non-ASCII byte (the caller then checks the string's UTF-8 once, as a whole).
    ///
    /// The lowest flagged byte of a word is the first that needs a look (see [`escapes`]), and
    /// is read out of the word itself, so a short string ends without a byte loop or a reload.
    #[inline(always)]
    fn plain_run(&mut self) -> (Option<u8>, bool) {
        let mut high = 0;
        while let Some(chunk) = self.buf.get(self.pos..self.pos + 8) {
            let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let w = u64::from_le_bytes(word);
            let mask = escapes(w);
            if mask != 0 {
                // The flag is a byte's high bit: `bits` is that byte's offset in bits (< 64).
                let bits = mask.trailing_zeros() & !7;
                let below = (1u64 << bits) - 1;
                self.pos += (bits / 8) as usize;
                return (Some((w >> bits) as u8), (high | w & below) & HIGH != 0);
            }
            high |= w;
            self.pos += 8;
        }
        while let Some(&b) = self.buf.get(self.pos) {
            if !PLAIN[usize::from(b)] {
                return (Some(b), high & HIGH != 0);
            }
            high |= u64::from(b);
            self.pos += 1;
        }
        (None, high & HIGH != 0)
    }

    /// Validates one escape after its backslash.
    fn escape(&mut self) -> Result<(), StreamError> {
        let b = *self.buf.get(self.pos).ok_or(StreamError::Syntax)?;
        self.pos += 1;
        match b {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => {
                let n = self.hex4()?;
                match n {
                    0xDC00..=0xDFFF => Err(StreamError::Syntax),
                    0xD800..=0xDBFF => {
                        if self.buf.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(StreamError::Syntax);
                        }
                        self.pos += 2;
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => Err(StreamError::Syntax),
                        }
                    }
                    _ => Ok(()),
                }
            }
            _ => Err(StreamError::Syntax),
        }
    }

    fn hex4(&mut self) -> Result<u16, StreamError> {
        let digits = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or(StreamError::Syntax)?;
        self.pos += 4;
        hex4(digits)
    }

    /// Scans a number; its text as written.
    pub(crate) fn number(&mut self) -> Result<&'a [u8], StreamError> {
        let start = self.pos;
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.buf.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(StreamError::Syntax),
        }
        if self.buf.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if matches!(self.buf.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.buf.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        // serde_json reads `01` as an error, not as `0` followed by garbage; so do we (the
        // caller's delimiter check refuses it too).
        Ok(self.slice(start, self.pos))
    }

    fn digits(&mut self) {
        while self.buf.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), StreamError> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(StreamError::Syntax)
        } else {
            Ok(())
        }
    }

    /// Scans `true`, `false` or `null`.
    pub(crate) fn literal(&mut self) -> Result<(), StreamError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        for word in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(());
            }
        }
        Err(StreamError::Syntax)
    }

    /// Opens an object frame for [`Scanner::key`]; [`Scanner::close_object`] ends it.
    #[inline]
    pub(crate) fn open_object(&mut self) {
        self.frames.push(Frame {
            mark: self.keys.len(),
            summary: 0,
        });
    }

    /// Scans a member's key and its `:`; remembers the key for the duplicate check.
    #[inline]
    pub(crate) fn key(&mut self) -> Result<Str<'a>, StreamError> {
        let (start, end, escaped) = self.member_key()?;
        Ok(Str {
            raw: self.slice(start, end),
            escaped,
        })
    }

    /// [`Scanner::key`] for the skipping loop: where the key's text starts and ends (inside its
    /// quotes) and whether it holds an escape.
    #[inline(always)]
    fn member_key(&mut self) -> Result<(usize, usize, bool), StreamError> {
        if self.peek() != Some(b'"') {
            return Err(StreamError::Syntax);
        }
        self.pos += 1;
        let start = self.pos;
        let escaped = self.string_tail()?;
        let end = self.pos - 1;
        let raw = self.slice(start, end);
        let key = if escaped {
            self.decode_key(raw)?
        } else {
            Key::new(start, raw, false)?
        };
        self.remember(key)?;
        self.expect(b':')?;
        Ok((start, end, escaped))
    }

    /// A key written with escapes, by its decoded bytes.
    #[cold]
    fn decode_key(&mut self, raw: &[u8]) -> Result<Key, StreamError> {
        let mut text = String::with_capacity(raw.len());
        unescape(raw, &mut text)?;
        let at = self.decoded.len();
        self.decoded.extend_from_slice(text.as_bytes());
        Key::new(at, text.as_bytes(), true)
    }

    /// Adds a key to the innermost open object, refusing it if that object already has it.
    ///
    /// Each frame keeps a 64-bit summary of its keys' tags: a key whose bit is not set yet is
    /// new, so most keys cost a multiply and an `or`; one whose bit is set is compared with the
    /// object's earlier keys. Past [`EAGER_KEYS`] keys the frame stops checking eagerly and
    /// sorts its keys once when it closes, so a huge object costs O(n log n), not O(n²).
    #[inline(always)]
    fn remember(&mut self, key: Key) -> Result<(), StreamError> {
        let Some(frame) = self.frames.last_mut() else {
            return Err(StreamError::Syntax);
        };
        let count = self.keys.len() - frame.mark;
        if count < EAGER_KEYS {
            let bit = 1u64 << (key.tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58);
            let (seen, mark) = (frame.summary & bit != 0, frame.mark);
            frame.summary |= bit;
            if seen && self.has_key(mark, key) {
                return Err(StreamError::DuplicateKey);
            }
        }
        self.keys.push(key);
        Ok(())
    }

    /// Whether the keys from `mark` on include `key`.
    #[cold]
    fn has_key(&self, mark: usize, key: Key) -> bool {
        let bytes = self.key_bytes(key);
        self.keys
            .get(mark..)
            .unwrap_or_default()
            .iter()
            .any(|&k| k.tag == key.tag && self.key_bytes(k) == bytes)
    }

    fn key_bytes(&self, k: Key) -> &[u8] {
        let (from, to) = (k.start, k.start + k.len as usize);
        if k.decoded {
            self.decoded.get(from..to).unwrap_or_default()
        } else {
            self.buf.get(from..to).unwrap_or_default()
        }
    }

    /// Ends the innermost object: refuses it if it named a key twice (checked as its keys came,
    /// and here for the keys past [`EAGER_KEYS`]).
    #[inline]
    pub(crate) fn close_object(&mut self) -> Result<(), StreamError> {
        let Some(frame) = self.frames.pop() else {
            return Err(StreamError::Syntax);
        };
        let keys = self.keys.get(frame.mark..).unwrap_or_default();
        let duplicate = keys.len() > EAGER_KEYS && {
            let mut sorted: Vec<&[u8]> = keys.iter().map(|&k| self.key_bytes(k)).collect();
            sorted.sort_unstable();
            sorted.windows(2).any(|w| w.first() == w.get(1))
        };
        self.keys.truncate(frame.mark);
        if duplicate {
            Err(StreamError::DuplicateKey)
        } else {
            Ok(())
        }
    }

    /// Validates the value that starts here (at `depth` open containers) and passes over it.
    ///
    /// One loop, no recursion: the kinds of the containers opened here are bits of `kinds`
    /// (nesting is bounded by [`MAX_NESTING`] < 128), objects are frames as in [`Scanner::key`].
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), StreamError> {
        let mut kinds: u128 = 0;
        let mut open = 0usize;
        loop {
            // A value.
            match self.peek() {
                Some(b'{') => {
                    nest(depth + open)?;
                    self.pos += 1;
                    if !self.empty(b'}') {
                        kinds |= 1 << open;
                        open += 1;
                        self.open_object();
                        self.member_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    nest(depth + open)?;
                    self.pos += 1;
                    if !self.empty(b']') {
                        kinds &= !(1 << open);
                        open += 1;
                        continue;
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    self.string_tail()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't' | b'f' | b'n') => self.literal()?,
                _ => return Err(StreamError::Syntax),
            }
            // After a value: close what ends here, then the next member or element.
            loop {
                let Some(level) = open.checked_sub(1) else {
                    return Ok(());
                };
                let object = kinds & (1 << level) != 0;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        open = level;
                        self.close_object()?;
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        open = level;
                    }
                    _ => return Err(StreamError::Syntax),
                }
            }
        }
    }
}

/// Keys of one object checked for duplicates as they come; a bigger object sorts the rest.
const EAGER_KEYS: usize = 32;

/// An open object: where its keys start in [`Scanner::keys`] and a summary of their tags.
#[derive(Debug, Clone, Copy)]
struct Frame {
    mark: usize,
    summary: u64,
}

/// A remembered key: a range of the input, or of the decoded-keys buffer.
#[derive(Debug, Clone, Copy)]
struct Key {
    start: usize,
    len: u32,
    decoded: bool,
    /// Length, first and last byte: keys with different tags differ, so the duplicate check
    /// compares bytes only when tags are equal.
    tag: u64,
}

impl Key {
    fn new(start: usize, bytes: &[u8], decoded: bool) -> Result<Self, StreamError> {
        let len = u32::try_from(bytes.len()).map_err(|_| StreamError::Syntax)?;
        let edge = |b: Option<&u8>| u64::from(b.copied().unwrap_or(0));
        Ok(Self {
            start,
            len,
            decoded,
            tag: u64::from(len) | edge(bytes.first()) << 32 | edge(bytes.last()) << 40,
        })
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` that are `"`, `\\` or a control character, marked by their high bit (the
/// usual zero-byte test: `(v - 0x01…) & !v` has a high bit set exactly where a byte of `v` is
/// zero, below its first zero byte at least: the lowest mark is exact, which is all an "any" or
/// a "first" test needs; non-ASCII bytes are never marked below it).
#[inline]
fn escapes(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control) & HIGH
}

/// Whether any byte of `w` is `"`, `\\` or a control character: a byte JSON text must escape.
#[inline]
pub(crate) fn needs_escape(w: u64) -> bool {
    escapes(w) != 0
}

/// The depth inside a container opened at `depth`, or the nesting error.
pub(crate) fn nest(depth: usize) -> Result<usize, StreamError> {
    if depth >= MAX_NESTING {
        Err(StreamError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

fn hex4(digits: &[u8]) -> Result<u16, StreamError> {
    let mut n: u16 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(StreamError::Syntax),
        };
        n = (n << 4) | u16::from(v);
    }
    Ok(n)
}

/// Decodes the escapes of an already validated string body into `out`.
fn unescape(raw: &[u8], out: &mut String) -> Result<(), StreamError> {
    let text = std::str::from_utf8(raw).map_err(|_| StreamError::Syntax)?;
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let tail = rest.get(i + 1..).unwrap_or_default();
        let esc = tail
            .as_bytes()
            .first()
            .copied()
            .ok_or(StreamError::Syntax)?;
        let mut used = 1;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = u32::from(hex4(tail.as_bytes().get(1..5).unwrap_or_default())?);
                used = 5;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    let lo = u32::from(hex4(tail.as_bytes().get(7..11).unwrap_or_default())?);
                    used = 11;
                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    hi
                };
                char::from_u32(code).ok_or(StreamError::Syntax)?
            }
            _ => return Err(StreamError::Syntax),
        };
        out.push(c);
        rest = tail.get(used..).ok_or(StreamError::Syntax)?;
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_word_test_finds_the_first_byte_the_table_flags(word in prop::array::uniform8(prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x20), Just(0x7f), Just(0x80), Just(b'a')])) {
            let first = word.iter().position(|&b| !PLAIN[usize::from(b)]);
            let mask = escapes(u64::from_le_bytes(word));
            prop_assert_eq!((mask != 0).then(|| (mask.trailing_zeros() / 8) as usize), first);
        }

        #[test]
        fn the_escape_test_agrees_with_the_bytes(word in prop::array::uniform8(prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x20), Just(0x00), Just(0x80), Just(0xff)])) {
            let slow = word.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(needs_escape(u64::from_le_bytes(word)), slow);
        }

        #[test]
        fn duplicate_keys_are_found_in_objects_of_any_size(
            escapes in prop::collection::vec(any::<bool>(), 0..90),
            copy in prop::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>())),
            nested in any::<bool>(),
        ) {
            // Distinct keys `k0`, `k1`, … (some spelt with an escape: `\u006b` is `k`), and
            // maybe one of them again at any place: a duplicate is a decoded name seen twice,
            // whatever the spelling and however big the object.
            let mut names: Vec<usize> = (0..escapes.len()).collect();
            if let (Some((which, at)), false) = (copy, names.is_empty()) {
                let name = names[which.index(names.len())];
                names.insert(at.index(names.len() + 1), name);
            }
            let duplicate = names.len() > escapes.len();
            let members: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let k = if escapes[i % escapes.len()] { "\\u006b" } else { "k" };
                    format!("\"{k}{n}\":{n}")
                })
                .collect();
            let object = format!("{{{}}}", members.join(","));
            let doc = if nested { format!("[1,{{\"in\":{object}}},{{}}]") } else { object };
            let mut sc = Scanner::new(doc.as_bytes());
            let got = sc.skip(0).and_then(|()| sc.end());
            prop_assert_eq!(got, if duplicate { Err(StreamError::DuplicateKey) } else { Ok(()) }, "{}", doc);
            prop_assert_eq!(crate::json::check(doc.as_bytes()).is_err(), duplicate);
        }

        #[test]
        fn plain_runs_stop_where_the_table_says(bytes in prop::collection::vec(prop_oneof![Just(b'a'), Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x7f), Just(0x80), Just(0xff), Just(b' ')], 0..40)) {
            let mut sc = Scanner::new(&bytes);
            let (stop, high) = sc.plain_run();
            let expected = bytes.iter().position(|&b| !PLAIN[usize::from(b)]).unwrap_or(bytes.len());
            prop_assert_eq!(sc.pos(), expected);
            prop_assert_eq!(stop, bytes.get(expected).copied());
            prop_assert_eq!(high, bytes[..expected].iter().any(|&b| b >= 0x80));
        }
    }
}
