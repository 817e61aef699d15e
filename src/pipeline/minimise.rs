//! Minimisation and redaction of a buffered personal-data response: decode, parse, apply the
//! purpose's rules, re-serialise, fix the headers. Anything that cannot be inspected is refused.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::Ctx;
use super::decode;
use crate::error::GatewayError;
use crate::policy::{NonJson, Policy, Purpose};

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
        match serde_json::from_slice::<serde_json::Value>(&data) {
            Ok(mut doc) => {
                let outcome = if enforce {
                    purpose.apply(&mut doc)
                } else {
                    purpose.apply(&mut doc.clone())
                };
                ctx.fields_removed = outcome.fields_removed;
                ctx.redactions = outcome.redactions;
                if enforce {
                    let bytes = serde_json::to_vec(&doc).map_err(|_| GatewayError::Internal)?;
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Bytes::from(bytes)
                } else {
                    data
                }
            }
            Err(_) if labelled_json(headers) => {
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
