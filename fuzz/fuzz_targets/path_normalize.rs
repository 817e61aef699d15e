//! `routing::normalize` on arbitrary text. An accepted path is canonical: absolute, no empty or
//! dot segments, no backslash or control character, only upper-case escapes of bytes that are
//! neither unreserved nor separators, no longer than its input, and a fixed point. Matching it
//! against real templates never panics and yields a subject that is one non-empty segment.
#![no_main]

use std::sync::OnceLock;

use consentgate::routing::{PathError, Template, decode_segment, normalize};
use libfuzzer_sys::fuzz_target;

fn templates() -> &'static [Template] {
    static T: OnceLock<Vec<Template>> = OnceLock::new();
    T.get_or_init(|| {
        [
            "/api/customers/{subject}/**",
            "/api/customers/{subject}",
            "/{subject}/**",
            "/api/products/**",
            "/**",
            "/",
        ]
        .iter()
        .map(|t| Template::parse(t).expect("fixed template"))
        .collect()
    })
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None, // lower-case hex must not survive normalisation
    }
}

fn check_canonical(raw: &str, n: &str) {
    assert!(n.starts_with('/'), "{raw:?} -> {n:?}: not absolute");
    assert!(!n.contains("//"), "{raw:?} -> {n:?}: empty segment");
    assert!(!n.contains('\\'), "{raw:?} -> {n:?}: backslash");
    // ASCII controls only: C1 controls (U+0080..U+009F) pass, raw or encoded; see the
    // README ("Findings") and regressions/path_normalize/c1-control-*.
    assert!(
        !n.chars().any(|c| c.is_ascii_control()),
        "{raw:?} -> {n:?}: control char"
    );
    assert!(n.len() <= raw.len(), "{raw:?} -> {n:?}: grew");
    for seg in n.split('/').skip(1) {
        let bare = seg.split(';').next().unwrap_or("");
        assert!(bare != "." && bare != "..", "{raw:?} -> {n:?}: dot segment");
        // Every escape: `%` + two upper-case hex digits, of a byte that must stay encoded.
        let b = seg.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hi = b.get(i + 1).copied().and_then(hex);
                let lo = b.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    panic!("{raw:?} -> {n:?}: bad escape at {i}");
                };
                let v = hi * 16 + lo;
                assert!(
                    !is_unreserved(v),
                    "{raw:?} -> {n:?}: unreserved byte left encoded"
                );
                assert!(
                    v != b'/' && v != b'\\',
                    "{raw:?} -> {n:?}: encoded separator"
                );
                assert!(
                    v > 0x1f && v != 0x7f,
                    "{raw:?} -> {n:?}: encoded control char"
                );
                i += 3;
            } else {
                i += 1;
            }
        }
        let decoded = decode_segment(seg);
        assert!(
            decoded.is_some(),
            "{raw:?} -> {n:?}: segment {seg:?} does not decode to UTF-8"
        );
    }
    assert_eq!(normalize(n).as_deref(), Ok(n), "{raw:?}: not idempotent");
}

fuzz_target!(|raw: &str| {
    let result = normalize(raw);
    if !raw.starts_with('/') {
        assert_eq!(result, Err(PathError::NotAbsolute));
    }
    if raw.contains('\\') {
        assert!(result.is_err(), "{raw:?}: raw backslash accepted");
    }
    let Ok(n) = result else { return };
    check_canonical(raw, &n);
    for t in templates() {
        if let Some(m) = t.matches(&n) {
            assert_eq!(m.subject.is_some(), t.has_subject());
            if let Some(subject) = m.subject {
                assert!(!subject.is_empty(), "{n:?}: empty subject");
                assert!(!subject.contains('/'), "{n:?}: subject spans segments");
                assert!(
                    n.split('/').any(|s| s == subject),
                    "{n:?}: subject not a segment"
                );
                let decoded = decode_segment(subject).expect("subject decodes");
                assert!(
                    !decoded.contains(['/', '\\']),
                    "{n:?}: subject hides a separator"
                );
                assert!(!decoded.chars().any(|c| c.is_ascii_control()));
                assert!(decoded != "." && decoded != "..", "{n:?}: dot subject");
            }
        }
    }
});
