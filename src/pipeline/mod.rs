//! The data-plane request pipeline, one stage per file:
//!
//! resolve (path → route, subject, purpose) → authenticate → decide (region, policy,
//! consent) → forward → minimise and redact → audit → release.
//!
//! [`handle`] is the only place that turns errors into responses, logs the request line and
//! counts metrics; for personal-data routes every outcome, failures included, is audited
//! before anything is released.

mod audit;
mod decide;
mod decode;
mod forward;
mod minimise;
mod personal;
mod resolve;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use http::header::HeaderValue;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::GatewayError;
use crate::http::headers::X_REQUEST_ID;
use crate::http::{Body, full};
use crate::policy::Verdict;
use crate::server::ConnInfo;
use crate::state::State;

/// What is known about a request as it moves through the stages (for logs and audit).
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) request_id: String,
    pub(crate) route: Option<String>,
    /// The matched route's position in the route table (metrics).
    pub(crate) route_index: Option<usize>,
    /// The matched route handles personal data: the request is audited.
    pub(crate) personal: bool,
    /// Normalised path (personal-data routes only: it goes into the audit record).
    pub(crate) path: String,
    pub(crate) caller: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) purpose: Option<String>,
    pub(crate) region: Option<String>,
    /// `region@version` of the policy used.
    pub(crate) policy: Option<String>,
    /// Consent state used (`granted`, …, `n/a`).
    pub(crate) consent: Option<&'static str>,
    pub(crate) verdict: Option<Verdict>,
    pub(crate) reason: Option<&'static str>,
    pub(crate) fields_removed: Vec<String>,
    pub(crate) redactions: BTreeMap<String, u64>,
}

/// Handles one data-plane request.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let start = Instant::now();
    let mut ctx = Ctx {
        request_id: crate::http::headers::request_id(req.headers()),
        ..Ctx::default()
    };
    let method = req.method().clone();
    let result = handle_inner(&state, req, conn, &mut ctx).await;
    let (mut resp, error) = match result {
        Ok(resp) => (resp, None),
        Err(err) => {
            if matches!(
                err,
                GatewayError::UpstreamTimeout
                    | GatewayError::UpstreamUnavailable
                    | GatewayError::ResponseTooLarge { .. }
                    | GatewayError::UnprocessableUpstreamBody(_)
            ) {
                state
                    .metrics
                    .upstream_error(ctx.route_index, forward::error_kind(&err));
            }
            (error_response(&err, &ctx.request_id), Some(err))
        }
    };
    if ctx.personal {
        resp = audit::record(&state, &mut ctx, &method, resp, error.as_ref()).await;
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert(&X_REQUEST_ID, v);
    }
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    state.metrics.request(ctx.route_index, status, elapsed);
    tracing::info!(
        request_id = %ctx.request_id,
        route = ctx.route.as_deref().unwrap_or("-"),
        method = %method,
        status,
        caller = ctx.caller.as_deref().unwrap_or("-"),
        latency_ms = elapsed.as_secs_f64() * 1e3,
        "request"
    );
    resp
}

/// The JSON error response for `err`.
pub(crate) fn error_response(err: &GatewayError, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(full(err.body(request_id)));
    *resp.status_mut() = err.status();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if err.status() == http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

async fn handle_inner(
    state: &State,
    req: Request<Incoming>,
    conn: ConnInfo,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let settings = &state.settings;
    let resolved = resolve::route(&settings.routes, req.uri().path())?;
    let route = resolved.route;
    ctx.route = Some(route.name.clone());
    ctx.route_index = Some(resolved.index);
    // Known from the path before authentication, so that refused attempts at a person's data
    // appear in their access report too.
    if route.personal_data {
        ctx.path = resolved.path.clone();
    }
    if route.personal_data
        && let Some(subject) = resolved.subject.as_deref()
        && crate::consent::validate_subject(subject).is_ok()
    {
        ctx.subject = Some(subject.to_string());
    }
    ctx.personal = route.personal_data;
    let caller = if route.public {
        None
    } else {
        let caller = state
            .verifier
            .verify_header(req.headers().get_all(http::header::AUTHORIZATION).iter())
            .map_err(|e| GatewayError::Unauthenticated(e.to_string()))?;
        ctx.caller = Some(caller.name.clone());
        Some(caller)
    };
    if route.personal_data {
        // Config validation guarantees personal routes are authenticated.
        let caller = caller.as_ref().ok_or(GatewayError::Internal)?;
        return personal::handle(state, req, conn, &resolved, caller, ctx).await;
    }
    let (parts, body) = req.into_parts();
    let out = forward::Outbound {
        upstream: &route.upstream,
        path: &resolved.path,
        request_id: &ctx.request_id,
        caller: caller.as_ref().map(|c| c.name.as_str()),
        conn,
        personal: false,
        max_body: settings.gateway.max_body_bytes,
    };
    let upstream_req = forward::request(parts, body, &out)?;
    let resp = forward::send(
        &state.client,
        upstream_req,
        settings.gateway.upstream_timeout,
        settings.gateway.max_body_bytes,
    )
    .await?;
    let (mut parts, body) = resp.into_parts();
    forward::response_headers(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        body.map_err(Into::into).boxed(),
    ))
}
