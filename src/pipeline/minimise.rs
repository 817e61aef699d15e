//! Minimisation and redaction of a buffered personal-data response: decode, apply the purpose's
//! rules in one streaming pass over the JSON text (`redact::stream`; no document tree), fix the
//! headers. Anything that cannot be inspected is refused.
//!
//! What is JSON is decided by the body's content, not by its label: after any UTF-8 byte order
//! marks, white space (Unicode's, zero-width characters and NULs included), a body that starts
//! with `{` or `[` is JSON, so it is parsed (strictly, as RFC 8259 text) and minimised, or refused
//! (`502`), whatever its `Content-Type` and the policy's `non_json`: a byte order mark or other
//! invisible prefix before JSON is refused, never released. A body with a UTF-16 or UTF-32 byte
//! order mark is refused, and so is a body of several JSON values one after another (NDJSON on a
//! single-subject route): one answer is one document. A body still compressed after its
//! declared encodings are undone is refused ([`decode::by_content`]).

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::Ctx;
use super::budget::Reservation;
use super::decode;
use crate::error::GatewayError;
use crate::policy::{NonJson, Policy, Purpose};
use crate::redact::StreamError;

/// Whether a `Content-Type` says JSON (`application/json`, `…+json`, NDJSON).
pub(crate) fn labelled_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime.ends_with("/json") || mime.ends_with("+json") || mime.ends_with("ndjson")
        })
}

/// What the content of a decoded body is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// `{` or `[` after nothing but byte order marks and white space.
    Json,
    /// A UTF-16 or UTF-32 byte order mark: text the gateway does not inspect.
    WideText,
    /// Anything else.
    Other,
}

/// Classifies `data` by its first meaningful bytes (see the module documentation).
pub(crate) fn sniff(data: &[u8]) -> Sniffed {
    if data.starts_with(&[0xff, 0xfe])
        || data.starts_with(&[0xfe, 0xff])
        || data.starts_with(&[0, 0, 0xfe, 0xff])
    {
        return Sniffed::WideText;
    }
    let mut i = 0;
    while let Some(rest) = data.get(i..) {
        match rest {
            [b'{' | b'[', ..] => return Sniffed::Json,
            [0 | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, ..] => i += 1,
            [first, ..] if *first >= 0x80 => {
                // One UTF-8 character: skipped when it is white space or invisible.
                let len = match first {
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                match rest
                    .get(..len)
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| c.chars().next())
                {
                    Some(c) if invisible(c) => i += len,
                    _ => break,
                }
            }
            _ => break,
        }
    }
    Sniffed::Other
}

/// White space and characters that show nothing (a byte order mark, zero-width joiners).
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{feff}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{180e}'
        )
}

/// Produces the body to release: the purpose's rules applied, whatever the verdict (report
/// mode skips only the denial, never the minimisation). Decides on the headers as the upstream
/// sent them: hop-by-hop removal runs after this. The decoded body is held against the
/// answer's `reservation` (`gateway.max_buffered_bytes`).
pub(crate) fn body(
    headers: &mut HeaderMap,
    raw: Bytes,
    policy: &Policy,
    purpose: &Purpose,
    limit: u64,
    reservation: &mut Reservation,
    ctx: &mut Ctx,
) -> Result<Bytes, GatewayError> {
    let data = decode::decode(headers, raw, limit)?;
    let data = decode::by_content(data, limit)?;
    reservation.hold(data.len())?;
    headers.remove(header::CONTENT_ENCODING);
    for h in [
        header::ETAG,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
        header::LAST_MODIFIED,
    ] {
        headers.remove(h);
    }
    headers.remove("content-md5");
    headers.remove("digest");
    let out = if data.is_empty() {
        data
    } else {
        let looks_json = match sniff(&data) {
            Sniffed::WideText => {
                return Err(GatewayError::UnprocessableUpstreamBody(
                    "the upstream answered in UTF-16 or UTF-32, which the gateway cannot inspect"
                        .into(),
                ));
            }
            Sniffed::Json => true,
            Sniffed::Other => false,
        };
        // One pass over the text: no document tree (see `redact::stream`).
        let mut released = Vec::with_capacity(data.len());
        match purpose.minimise_json(&data, &mut released) {
            Ok(outcome) => {
                ctx.fields_removed = outcome.fields_removed;
                ctx.redactions = outcome.redactions;
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Bytes::from(released)
            }
            // JSON whose meaning depends on the reader (a key named twice) or that is nested
            // beyond what can be inspected is refused whatever its label.
            Err(e @ (StreamError::DuplicateKey | StreamError::TooDeep)) => {
                return Err(GatewayError::UnprocessableUpstreamBody(format!(
                    "the upstream's JSON response could not be inspected ({e}), so it was not released"
                )));
            }
            Err(_) if looks_json || labelled_json(headers) => {
                return Err(GatewayError::UnprocessableUpstreamBody(
                    "the upstream's JSON response could not be parsed, so it was not released"
                        .into(),
                ));
            }
            Err(_) if policy.non_json == NonJson::Pass => data,
            Err(_) => {
                return Err(GatewayError::UnprocessableUpstreamBody(
                    "the upstream answered with a body that is not JSON; this region's policy blocks such responses".into(),
                ));
            }
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_decided_by_content() {
        assert_eq!(sniff(b"{}"), Sniffed::Json);
        assert_eq!(sniff(b"\xef\xbb\xbf[1]"), Sniffed::Json);
        assert_eq!(sniff(b"\xef\xbb\xbf\xef\xbb\xbf \r\n{"), Sniffed::Json);
        assert_eq!(sniff("\u{a0}\u{200b}\u{3000}{".as_bytes()), Sniffed::Json);
        assert_eq!(sniff(b"\0{\0\"\0"), Sniffed::Json);
        assert_eq!(sniff(b"\xff\xfe{\0"), Sniffed::WideText);
        assert_eq!(sniff(b"\xfe\xff\0{"), Sniffed::WideText);
        assert_eq!(sniff(b"hello {"), Sniffed::Other);
        assert_eq!(sniff(b"  \"kim\""), Sniffed::Other);
        assert_eq!(sniff(b"\xc3"), Sniffed::Other);
        assert_eq!(sniff(b""), Sniffed::Other);
    }
}
