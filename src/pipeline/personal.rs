//! A personal-data request after authentication: decide, forward, buffer the response under
//! the cap, minimise and redact, and hand it back for auditing and release.

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;

use super::decide::{self, Decided};
use super::forward::{self, Outbound};
use super::resolve::Resolved;
use super::{Ctx, minimise};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::server::ConnInfo;
use crate::state::State;

/// Handles a personal-data request whose route matched and caller authenticated.
pub(crate) async fn handle(
    state: &State,
    req: Request<Incoming>,
    conn: ConnInfo,
    resolved: &Resolved<'_>,
    caller: &Caller,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let (route, path) = (resolved.route, resolved.path.as_str());
    // Config validation guarantees personal routes have a `{subject}`.
    let subject = resolved.subject.as_deref().ok_or(GatewayError::Internal)?;
    let Decided { policy, purpose } = decide::decide(
        state,
        req.headers(),
        caller,
        subject,
        route.unknown_subject,
        ctx,
    )
    .await?;
    let head_only = req.method() == http::Method::HEAD;
    let g = &state.settings.gateway;
    let (parts, body) = req.into_parts();
    let out = Outbound {
        upstream: &route.upstream,
        path,
        request_id: &ctx.request_id,
        caller: Some(&caller.name),
        conn,
        personal: true,
        max_body: g.max_body_bytes,
    };
    let upstream_req = forward::request(parts, body, &out)?;
    // The whole exchange, head and body, must finish within the upstream timeout.
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
    // Decoding and minimisation decide on the headers as the upstream sent them; report mode
    // (`ReportDeny`) is minimised exactly like an allowed answer. Hop-by-hop removal runs last.
    let released = minimise::body(
        &mut parts.headers,
        raw,
        &policy,
        &purpose,
        g.max_body_bytes,
        &mut buffered,
        ctx,
    )?;
    crate::http::headers::restrict_personal_response(&mut parts.headers);
    forward::response_headers(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(&policy.region) {
        parts.headers.insert(&crate::http::headers::X_REGION, v);
    }
    let body = if head_only {
        crate::http::empty()
    } else {
        full(released)
    };
    Ok(Response::from_parts(parts, body))
}
