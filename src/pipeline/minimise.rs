//! Minimisation and redaction of a buffered personal-data response: decode, apply the purpose's
//! rules in one streaming pass over the JSON text, fix the headers. Anything that cannot be
//! inspected is refused.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::Ctx;
use super::decode;
use crate::error::GatewayError;
use crate::policy::{NonJson, Policy, Purpose};
use crate::redact::StreamError;

/// Whether a `Content-Type` says JSON (`application/json`, `…+json`).
pub(crate) fn labelled_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

/// Produces the body to release. `enforce` false (report mode) computes what would be removed
/// into `ctx` but releases the (decoded) body unchanged.
pub(crate) fn body(
    headers: &mut HeaderMap,
    raw: Bytes,
    policy: &Policy,
    purpose: &Purpose,
    enforce: bool,
    limit: u64,
    ctx: &mut Ctx,
) -> Result<Bytes, GatewayError> {
    let data = decode::decode(headers, raw, limit)?;
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
        // One pass over the text: no document tree (see `redact::stream`).
        let mut released = Vec::with_capacity(data.len());
        match purpose.minimise_json(&data, &mut released) {
            Ok(outcome) => {
                ctx.fields_removed = outcome.fields_removed;
                ctx.redactions = outcome.redactions;
                if enforce {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Bytes::from(released)
                } else {
                    data
                }
            }
            // JSON whose meaning depends on the reader (a key named twice) or that is nested
            // beyond what can be inspected is refused whatever its label.
            Err(e @ (StreamError::DuplicateKey | StreamError::TooDeep)) => {
                return Err(GatewayError::UnprocessableUpstreamBody(format!(
                    "the upstream's JSON response could not be inspected ({e}), so it was not released"
                )));
            }
            Err(StreamError::Syntax) if labelled_json(headers) => {
                return Err(GatewayError::UnprocessableUpstreamBody(
                    "the upstream's JSON response could not be parsed, so it was not released"
                        .into(),
                ));
            }
            Err(StreamError::Syntax) if policy.non_json == NonJson::Pass => data,
            Err(StreamError::Syntax) => {
                return Err(GatewayError::UnprocessableUpstreamBody(
                    "the upstream answered with a body that is not JSON; this region's policy blocks such responses".into(),
                ));
            }
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(out)
}
