//! Request-path normalisation, done once before routing so that the route that is matched is
//! the path the upstream receives.
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other
//!   encodings are kept with upper-case hex;
//! - `.` segments are removed, `..` removes the segment before it; climbing above the root is
//!   rejected;
//! - empty segments (duplicate slashes) are removed; a trailing slash is kept;
//! - rejected, never guessed: an encoded slash or backslash (`%2F`, `%5C`), a raw backslash,
//!   NUL or other control characters (raw or encoded), an encoded dot-segment (`%2e%2e`), a dot
//!   segment hidden behind path parameters (`..;x`), a malformed `%` escape, and a segment whose
//!   decoded bytes are not UTF-8 (overlong forms such as `%C0%AE`).

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("the path has a malformed percent-escape")]
    BadEscape,
    /// `%2F` or `%5C`: ambiguous between one segment and two.
    #[error("the path contains an encoded slash or backslash")]
    EncodedSeparator,
    /// A raw backslash.
    #[error("the path contains a backslash")]
    Backslash,
    /// NUL or another control character, raw or encoded.
    #[error("the path contains a control character")]
    ControlCharacter,
    /// `%2e`, `%2e%2e` or a dot segment with path parameters.
    #[error("the path contains an encoded or disguised dot-segment")]
    DisguisedDotSegment,
    /// `..` above the root.
    #[error("the path climbs above the root")]
    AboveRoot,
    /// Decoded bytes that are not UTF-8.
    #[error("the path contains percent-escapes that are not valid UTF-8")]
    InvalidUtf8,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// One segment normalised: its text for the output path and whether it used an escape.
fn segment(raw: &str) -> Result<(String, bool), PathError> {
    let bytes = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (hi, lo) = match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(hi), Some(lo)) => (hi, lo),
                    _ => return Err(PathError::BadEscape),
                };
                let v = hi * 16 + lo;
                escaped = true;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    _ if is_unreserved(v) => out.push(v),
                    _ => out.extend_from_slice(&[
                        b'%',
                        b"0123456789ABCDEF"[usize::from(hi)],
                        b"0123456789ABCDEF"[usize::from(lo)],
                    ]),
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                // Input is a `&str`, so a non-ASCII byte here is part of a valid UTF-8 char.
                decoded.push(b);
                out.push(b);
                i += 1;
            }
        }
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    // C1 controls (U+0080–U+009F, e.g. NEL), raw or encoded, are control characters too.
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    // Only ASCII was added besides whole runs of the (valid UTF-8) input.
    let out = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)?;
    Ok((out, escaped))
}

/// Whether `raw` is already normal: starts with `/`, only unreserved characters and single
/// slashes, no segment starting with `.`. Most real paths are; they skip the full walk.
fn already_normal(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.first() == Some(&b'/')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_' | b'~' | b'.'))
        && !raw.contains("//")
        && !raw.contains("/.")
}

/// Normalises a request path (without the query). See the module docs for the rules.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if already_normal(raw) {
        return Ok(raw.to_string());
    }
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut stack: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.into_iter().enumerate() {
        let (seg, escaped) = segment(part)?;
        let bare = seg.split(';').next().unwrap_or("");
        let is_dot = bare == "." || bare == "..";
        if is_dot && (escaped || bare != seg) {
            return Err(PathError::DisguisedDotSegment);
        }
        match seg.as_str() {
            "" => trailing_slash = i == last && !stack.is_empty(),
            "." => trailing_slash = i == last && !stack.is_empty(),
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = i == last && !stack.is_empty();
            }
            _ => {
                stack.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Fully percent-decodes one normalised segment (for the subject id).
pub fn decode_segment(seg: &str) -> Option<String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex)?;
            let lo = bytes.get(i + 2).copied().and_then(hex)?;
            out.push(hi * 16 + lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The full walk, bypassing the fast path.
    fn normalize_slow(raw: &str) -> Result<String, PathError> {
        // A leading "/./" never takes the fast path and normalises to the same as without it.
        normalize(&format!("/.{raw}"))
    }

    #[test]
    fn examples() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("//a///b//", "/a/b/"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/api/customers/../products", "/api/products"),
            ("/a/%41%7e", "/a/A~"),
            ("/a/%20b", "/a/%20b"),
            ("/a/%c3%a9", "/a/%C3%A9"),
            ("/api/%70roducts/x", "/api/products/x"),
            ("/a%41b%20c/d", "/aAb%20c/d"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            ("a/b", PathError::NotAbsolute),
            ("/a/%2e%2e/b", PathError::DisguisedDotSegment),
            ("/a/%2E/b", PathError::DisguisedDotSegment),
            ("/a/.%2e/b", PathError::DisguisedDotSegment),
            ("/a/..;x/b", PathError::DisguisedDotSegment),
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/a%00b", PathError::ControlCharacter),
            ("/a%0ab", PathError::ControlCharacter),
            ("/a%zz", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/..", PathError::AboveRoot),
            ("/a/../../b", PathError::AboveRoot),
            ("/a/%c0%ae%c0%ae/b", PathError::InvalidUtf8),
            ("/api/customers/c%C2%851", PathError::ControlCharacter),
        ];
        for (input, want) in bad {
            assert_eq!(normalize(input), Err(want), "{input}");
        }
    }

    #[test]
    fn decode_segment_decodes_everything() {
        assert_eq!(decode_segment("a%40b%20c").as_deref(), Some("a@b c"));
        assert_eq!(decode_segment("a%zz"), None);
    }

    proptest! {
        #[test]
        fn normalised_paths_are_canonical(segs in proptest::collection::vec(
            prop_oneof!["[a-zA-Z0-9._~-]{0,6}", Just("..".to_string()), Just(".".to_string()),
                        Just(String::new()), "%[0-9a-fA-F]{2}", Just("%2e".to_string())], 0..8)) {
            let raw = format!("/{}", segs.join("/"));
            if let Ok(n) = normalize(&raw) {
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.contains("//"));
                prop_assert!(n.split('/').all(|s| s != "." && s != ".."));
                prop_assert_eq!(normalize(&n), Ok(n.clone()), "idempotent");
            }
        }

        #[test]
        fn fast_path_agrees_with_the_full_walk(raw in "/[a-z0-9._~/-]{0,30}") {
            if already_normal(&raw) {
                prop_assert_eq!(normalize_slow(&raw), Ok(raw.clone()));
            }
        }

        #[test]
        fn encoding_unreserved_characters_changes_nothing(
            segs in proptest::collection::vec(
                proptest::collection::vec(("[a-zA-Z0-9_~-]", any::<bool>()), 1..6), 1..6),
        ) {
            let plain: Vec<String> = segs.iter().map(|s| s.iter().map(|(c, _)| c.as_str()).collect()).collect();
            let encoded: Vec<String> = segs
                .iter()
                .map(|s| s.iter().map(|(c, enc)| if *enc { format!("%{:02x}", c.as_bytes()[0]) } else { c.clone() }).collect())
                .collect();
            let want = format!("/{}", plain.join("/"));
            prop_assert_eq!(normalize(&format!("/{}", encoded.join("/"))), Ok(want));
        }
    }
}
