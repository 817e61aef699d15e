//! A JSON collection: the body (under `max_body_bytes`) holds the records in one array at
//! `collection.path`. One validating pass finds the records and their subjects (no document
//! tree); every record is decided, the released ones minimised straight into the answer, the
//! withheld ones removed (order kept), envelope scalars copied as written, and all records
//! audited in one group commit before the body is released.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};

use super::super::minimise::{Sniffed, labelled_json, sniff};
use super::super::{Ctx, decode, forward};
use super::{X_WITHHELD, audit_all, records, release_headers};
use crate::audit::{CollectionPos, Decision};
use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::policy::{NonJson, Verdict};
use crate::redact::{StreamError, locate};
use crate::routing::{Collection, Route};
use crate::state::State;

/// Where the records are in the body, and what else may pass.
pub(super) struct Shape<'a> {
    pub(super) path: &'a [String],
    pub(super) envelope: &'a [String],
    pub(super) max_elements: Option<u64>,
}

/// Forwards, reads the whole body within `upstream_timeout`, decides every record and
/// answers the released ones.
#[allow(clippy::too_many_arguments)]
pub(super) async fn respond(
    state: &Arc<State>,
    route: &Route,
    collection: &Collection,
    shape: &Shape<'_>,
    req: &records::Request,
    upstream_req: Request<Body>,
    head_only: bool,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let g = &state.settings.gateway;
    // `buffered` holds the answer's bytes against `gateway.max_buffered_bytes` until the
    // exchange ends.
    let (mut parts, raw, mut buffered) = forward::buffered(
        state.client.current(),
        upstream_req,
        g.upstream_timeout,
        g.max_body_bytes,
        &state.buffers,
    )
    .await?;
    forward::response_headers(&mut parts.headers);
    let data = decode::decode(&parts.headers, raw, g.max_body_bytes)?;
    buffered.hold(data.len())?;
    // Past `max_elements` the records are only counted: memory stays bounded by the limit.
    let keep = shape
        .max_elements
        .map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
    let found =
        match locate::collection(&data, shape.path, &collection.subject, shape.envelope, keep) {
            Ok(found) => found,
            // SPEC: a collection route's `non_json` is the default region's.
            // JSON is decided by content, whatever the label: only a body that neither says nor
            // looks like JSON (no `{`/`[` after byte order marks and white space) may pass.
            Err(StreamError::Syntax)
                if !labelled_json(&parts.headers)
                    && sniff(&data) == Sniffed::Other
                    && default_passes_non_json(state) =>
            {
                ctx.verdict = Some(Verdict::Allow);
                ctx.reason = Some("non_json_pass");
                for h in [header::ETAG, header::CONTENT_RANGE, header::LAST_MODIFIED] {
                    parts.headers.remove(h);
                }
                parts.headers.remove(header::CONTENT_ENCODING);
                crate::http::headers::restrict_personal_response(&mut parts.headers);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
                let body = if head_only {
                    crate::http::empty()
                } else {
                    full(data)
                };
                return Ok(Response::from_parts(parts, body));
            }
            Err(StreamError::Syntax) => return Err(Unsplit::NotJson.into_error(shape)),
            // JSON whose meaning depends on the reader, or nested beyond what can be inspected.
            Err(e) => {
                return Err(GatewayError::UnprocessableUpstreamBody(format!(
                    "the upstream's JSON could not be inspected ({e}), so nothing was released"
                )));
            }
        };
    let Some(elements) = found.elements else {
        return Err(Unsplit::NoArray.into_error(shape));
    };
    let count = found.count;
    if let Some(limit) = shape.max_elements.filter(|max| count > *max) {
        return Err(GatewayError::CollectionTooLarge { limit });
    }
    let status = parts.status.as_u16();
    let records: Vec<records::Record<'_>> = elements
        .into_iter()
        .map(|e| records::Record::Json {
            text: e.text,
            subject: e.subject,
        })
        .collect();
    let mut out = Vec::with_capacity(data.len() / 2);
    open(&mut out, shape.path)?;
    let entries = records::decide(
        state,
        route,
        req,
        &records,
        CollectionPos {
            index: 0,
            count: Some(count),
        },
        status,
        &mut out,
        b',',
    )
    .await?;
    if out.last() == Some(&b',') {
        out.pop();
    }
    close(&mut out, shape, &found.envelope)?;
    let released = entries
        .iter()
        .filter(|e| e.decision != Decision::Deny)
        .count();
    let withheld = count - released as u64;
    let body = Bytes::from(out);
    if entries.is_empty() {
        // Nothing to attribute: the exchange's one record (subject null) follows as usual.
        ctx.verdict = Some(Verdict::Allow);
        ctx.reason = Some("empty_collection");
    } else {
        audit_all(state, req.route_index, &req.request_id, entries).await?;
        ctx.audited = true;
    }
    release_headers(&mut parts.headers, "application/json");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    parts
        .headers
        .insert(X_WITHHELD, HeaderValue::from(withheld));
    let body = if head_only {
        crate::http::empty()
    } else {
        full(body)
    };
    Ok(Response::from_parts(parts, body))
}

/// Whether the default region's policy releases bodies that are not JSON (`non_json: pass`).
fn default_passes_non_json(state: &State) -> bool {
    state
        .policies
        .current()
        .get(&state.settings.gateway.default_region)
        .is_some_and(|p| p.non_json == NonJson::Pass)
}

/// Why a body is not a collection.
#[derive(Debug, PartialEq, Eq)]
enum Unsplit {
    NotJson,
    NoArray,
}

impl Unsplit {
    fn into_error(self, shape: &Shape<'_>) -> GatewayError {
        GatewayError::UnprocessableUpstreamBody(match self {
            Self::NotJson => {
                "the upstream's answer on this collection route is not JSON, so nothing was released".into()
            }
            Self::NoArray => format!(
                "the upstream's JSON has no array of records at the route's collection.path ({}), so nothing was released",
                if shape.path.is_empty() {
                    "the whole body".to_owned()
                } else {
                    format!("\"{}\"", shape.path.join("."))
                }
            ),
        })
    }
}

/// Writes the released document up to its array's first record: one object per level of
/// `path` (none for a bare array), then `[`.
fn open(out: &mut Vec<u8>, path: &[String]) -> Result<(), GatewayError> {
    for key in path {
        out.push(b'{');
        serde_json::to_writer(&mut *out, key).map_err(|_| GatewayError::Internal)?;
        out.push(b':');
    }
    out.push(b'[');
    Ok(())
}

/// Ends the released document after its last record: the array, the objects of `path`, and
/// in the top-level object the envelope's scalars (as written, in `envelope`'s order);
/// nothing else of the upstream's document.
fn close(
    out: &mut Vec<u8>,
    shape: &Shape<'_>,
    envelope: &[(usize, &[u8])],
) -> Result<(), GatewayError> {
    out.push(b']');
    out.extend(std::iter::repeat_n(
        b'}',
        shape.path.len().saturating_sub(1),
    ));
    if shape.path.is_empty() {
        return Ok(());
    }
    let mut fields = envelope.to_vec();
    fields.sort_unstable_by_key(|(i, _)| *i);
    for (i, text) in fields {
        let name = shape.envelope.get(i).ok_or(GatewayError::Internal)?;
        out.push(b',');
        serde_json::to_writer(&mut *out, name).map_err(|_| GatewayError::Internal)?;
        out.push(b':');
        out.extend_from_slice(text);
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::routing::parse_field_path;
    use serde_json::{Value, json};

    fn shape<'a>(path: &'a [String], envelope: &'a [String]) -> Shape<'a> {
        Shape {
            path,
            envelope,
            max_elements: None,
        }
    }

    /// The released document around `records` (each already followed by `,`).
    fn assemble(shape: &Shape<'_>, records: &[u8], envelope: &[(usize, &[u8])]) -> Value {
        let mut out = Vec::new();
        open(&mut out, shape.path).unwrap();
        out.extend_from_slice(records);
        if out.last() == Some(&b',') {
            out.pop();
        }
        close(&mut out, shape, envelope).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn envelope_passes_scalars_only_and_nothing_else() {
        let path = parse_field_path("data.items").unwrap();
        let envelope = vec!["total".to_owned(), "next".to_owned(), "meta".to_owned()];
        let body = json!({"data": {"items": [{"id": "a"}], "owner": "x@example.com"},
                          "total": 7, "next": null, "meta": {"who": "x"}, "other": "y"});
        let text = serde_json::to_vec(&body).unwrap();
        let id = parse_field_path("id").unwrap();
        let found = locate::collection(&text, &path, &id, &envelope, usize::MAX).unwrap();
        let out = assemble(&shape(&path, &envelope), br#"{"id":"a"},"#, &found.envelope);
        assert_eq!(
            out,
            json!({"data": {"items": [{"id": "a"}]}, "total": 7, "next": null})
        );
    }

    #[test]
    fn bare_array_and_refusals() {
        assert_eq!(assemble(&shape(&[], &[]), b"", &[]), json!([]));
        assert_eq!(assemble(&shape(&[], &[]), b"1,2,", &[]), json!([1, 2]));
        let path = parse_field_path("items").unwrap();
        let id = parse_field_path("id").unwrap();
        assert_eq!(
            locate::collection(b"not json", &path, &id, &[], usize::MAX),
            Err(StreamError::Syntax)
        );
        for bad in [&b"{\"items\":{}}"[..], b"[]", b"{}", b"{\"items\":null}"] {
            let found = locate::collection(bad, &path, &id, &[], usize::MAX).unwrap();
            assert_eq!(found.elements, None);
        }
        assert_eq!(
            Unsplit::NoArray.into_error(&shape(&path, &[])).code(),
            "unprocessable_upstream_body"
        );
    }
}
