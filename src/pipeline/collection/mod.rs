//! Collection routes (SPEC "Collections"): list, search and export endpoints that return many
//! data subjects at once. The purpose is checked once for the caller; then every record is
//! decided on its own (its subject's region, policy, consent and GPC), released records are
//! minimised by their own region's rules, withheld ones removed, and each record gets its own
//! audit record, durable before the bytes that carry it.
//!
//! - [`array`]: a JSON document with the records in one array (buffered under the cap).
//! - [`ndjson`]: one record per line, decided and released in chunks as lines arrive.
//! - [`records`]: the per-record decisions both share (one store call per batch).
//! - [`lines`]: NDJSON framing with a bounded unfinished line.

mod array;
mod lines;
mod ndjson;
mod records;

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;

use super::Ctx;
use super::forward::{self, Outbound};
use super::resolve::{self, Resolved};
use crate::audit::{AuditEntry, Decision};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::http::Body;
use crate::routing::{Collection, CollectionFormat};
use crate::server::ConnInfo;
use crate::state::State;

/// `X-Consentgate-Withheld`: how many records of a JSON collection were removed.
pub(crate) const X_WITHHELD: http::HeaderName =
    http::HeaderName::from_static("x-consentgate-withheld");

/// Handles a request on a collection route whose caller is authenticated.
pub(crate) async fn handle(
    state: &Arc<State>,
    req: Request<Incoming>,
    conn: ConnInfo,
    resolved: &Resolved<'_>,
    caller: &Caller,
    collection: &Collection,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let route = resolved.route;
    let purpose = resolve::purpose(req.headers())?;
    ctx.purpose = Some(purpose.clone());
    if !caller.may_declare(&purpose) {
        return Err(GatewayError::ForbiddenPurpose(format!(
            "this caller may not declare purpose '{purpose}' (not in its token's purposes)"
        )));
    }
    if !state
        .policies
        .current()
        .iter()
        .any(|p| p.purpose(&purpose).is_some())
    {
        return Err(GatewayError::UnknownPurpose(format!(
            "purpose '{purpose}' is not defined by any loaded policy"
        )));
    }
    let request = records::Request {
        request_id: ctx.request_id.clone(),
        caller: caller.name.clone(),
        route: route.name.clone(),
        route_index: resolved.index,
        method: req.method().as_str().to_owned(),
        path: resolved.path.clone(),
        gpc: resolve::gpc(req.headers()),
        purpose,
    };
    let head_only = req.method() == http::Method::HEAD;
    let g = &state.settings.gateway;
    let (parts, body) = req.into_parts();
    let out = Outbound {
        upstream: &route.upstream,
        path: &resolved.path,
        request_id: &ctx.request_id,
        caller: Some(&caller.name),
        conn,
        personal: true,
        max_body: g.max_body_bytes,
    };
    let upstream_req = forward::request(parts, body, &out)?;
    match &collection.format {
        CollectionFormat::Json { path, envelope } => {
            let shape = array::Shape {
                path,
                envelope,
                max_elements: collection.max_elements,
            };
            array::respond(
                state,
                route,
                collection,
                &shape,
                &request,
                upstream_req,
                head_only,
                ctx,
            )
            .await
        }
        CollectionFormat::Ndjson => {
            ndjson::respond(state, resolved.index, request, upstream_req, head_only, ctx).await
        }
    }
}

/// Headers of a released collection: only the safe ones, never cached, JSON or NDJSON.
fn release_headers(headers: &mut HeaderMap, content_type: &'static str) {
    crate::http::headers::restrict_personal_response(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
}

/// Writes a batch of records (one group commit) and counts their decisions; on error the
/// caller releases nothing (`503 audit_unavailable`).
async fn audit_all(
    state: &State,
    route_index: usize,
    request_id: &str,
    entries: Vec<AuditEntry>,
) -> Result<(), GatewayError> {
    let written = super::audit::append_all(state, &entries).await;
    count(state, route_index, &entries, written.is_ok());
    written.map_err(|e| {
        tracing::error!(error = %e, %request_id, "collection audit records not written; releasing nothing");
        GatewayError::AuditUnavailable
    })
}

/// Counts a batch's accesses once its audit outcome is known, and its decisions if written.
fn count(state: &State, route_index: usize, entries: &[AuditEntry], written: bool) {
    state.metrics.accesses(entries, written);
    if !written {
        return;
    }
    let (mut allow, mut deny, mut report) = (0, 0, 0);
    for e in entries {
        match e.decision {
            Decision::Allow => allow += 1,
            Decision::Deny => deny += 1,
            Decision::ReportDeny => report += 1,
        }
    }
    for (d, n) in [
        (Decision::Allow, allow),
        (Decision::Deny, deny),
        (Decision::ReportDeny, report),
    ] {
        if n > 0 {
            state.metrics.decisions(Some(route_index), d.as_str(), n);
        }
    }
}
