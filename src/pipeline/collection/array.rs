//! A JSON collection: the body (under `max_body_bytes`) holds the records in one array at
//! `collection.path`. Every record is decided, the released ones minimised, the withheld ones
//! removed (order kept), envelope scalars copied, and all records audited in one group commit
//! before the body is released.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use serde_json::{Map, Value};

use super::super::minimise::{Sniffed, labelled_json, sniff};
use super::super::{Ctx, decode, forward};
use super::{X_WITHHELD, audit_all, records, release_headers};
use crate::audit::CollectionPos;
use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::policy::{NonJson, Verdict};
use crate::routing::{Collection, Route, get_path_mut};
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
    let (mut parts, raw) = forward::buffered(
        &state.client,
        upstream_req,
        g.upstream_timeout,
        g.max_body_bytes,
    )
    .await?;
    forward::response_headers(&mut parts.headers);
    let data = decode::decode(&parts.headers, raw, g.max_body_bytes)?;
    let (mut doc, items) = match split(&data, shape) {
        Ok(split) => split,
        // SPEC: a collection route's `non_json` is the default region's.
        // JSON is decided by content, whatever the label: only a body that neither says nor
        // looks like JSON (no `{`/`[` after byte order marks and white space) may pass.
        Err(Unsplit::NotJson)
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
        Err(e) => return Err(e.into_error(shape)),
    };
    let count = items.len() as u64;
    if let Some(limit) = shape.max_elements.filter(|max| count > *max) {
        return Err(GatewayError::CollectionTooLarge { limit });
    }
    let status = parts.status.as_u16();
    let mut records: Vec<Option<Value>> = items.into_iter().map(Some).collect();
    let (keep, entries) = records::decide(
        state,
        route,
        collection,
        req,
        &mut records,
        CollectionPos {
            index: 0,
            count: Some(count),
        },
        status,
    )
    .await?;
    let released: Vec<Value> = records
        .into_iter()
        .zip(keep)
        .filter_map(|(r, keep)| r.filter(|_| keep))
        .collect();
    let withheld = count - released.len() as u64;
    let body = Bytes::from(
        serde_json::to_vec(&assemble(&mut doc, shape, released))
            .map_err(|_| GatewayError::Internal)?,
    );
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

/// Parses the body and takes the records out of it: the rest of the document stays (for the
/// envelope).
fn split(data: &[u8], shape: &Shape<'_>) -> Result<(Value, Vec<Value>), Unsplit> {
    let mut doc: Value = serde_json::from_slice(data).map_err(|_| Unsplit::NotJson)?;
    match get_path_mut(&mut doc, shape.path) {
        Some(Value::Array(items)) => {
            let items = std::mem::take(items);
            Ok((doc, items))
        }
        _ => Err(Unsplit::NoArray),
    }
}

/// The released document: the records at their path, and the envelope's top-level scalars
/// (an object or array there is removed); nothing else of the upstream's document.
fn assemble(doc: &mut Value, shape: &Shape<'_>, released: Vec<Value>) -> Value {
    let mut value = Value::Array(released);
    for key in shape.path.iter().rev() {
        let mut level = Map::new();
        level.insert(key.clone(), value);
        value = Value::Object(level);
    }
    if let (Value::Object(out), Value::Object(top)) = (&mut value, doc) {
        for name in shape.envelope {
            if let Some(v) = top.remove(name).filter(is_scalar) {
                out.insert(name.clone(), v);
            }
        }
    }
    value
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::routing::parse_field_path;
    use serde_json::json;

    fn shape<'a>(path: &'a [String], envelope: &'a [String]) -> Shape<'a> {
        Shape {
            path,
            envelope,
            max_elements: None,
        }
    }

    #[test]
    fn envelope_passes_scalars_only_and_nothing_else() {
        let path = parse_field_path("data.items").unwrap();
        let envelope = vec!["total".to_owned(), "next".to_owned(), "meta".to_owned()];
        let body = json!({"data": {"items": [{"id": "a"}], "owner": "x@example.com"},
                          "total": 7, "next": null, "meta": {"who": "x"}, "other": "y"});
        let (mut doc, items) = split(
            &serde_json::to_vec(&body).unwrap(),
            &shape(&path, &envelope),
        )
        .unwrap();
        assert_eq!(items, vec![json!({"id": "a"})]);
        let out = assemble(&mut doc, &shape(&path, &envelope), vec![json!({"id": "a"})]);
        assert_eq!(
            out,
            json!({"data": {"items": [{"id": "a"}]}, "total": 7, "next": null})
        );
    }

    #[test]
    fn bare_array_and_refusals() {
        let (mut doc, items) = split(b"[1,2]", &shape(&[], &[])).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(assemble(&mut doc, &shape(&[], &[]), vec![]), json!([]));
        let path = parse_field_path("items").unwrap();
        assert_eq!(
            split(b"not json", &shape(&path, &[])).unwrap_err(),
            Unsplit::NotJson
        );
        for bad in [
            &b"{\"items\":{}}"[..],
            b"[]",
            b"{}",
            b"not json",
            b"{\"items\":null}",
        ] {
            let err = split(bad, &shape(&path, &[])).unwrap_err();
            assert_eq!(
                err.into_error(&shape(&path, &[])).code(),
                "unprocessable_upstream_body"
            );
        }
    }
}
