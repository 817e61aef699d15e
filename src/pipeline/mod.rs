//! The data-plane request pipeline, one stage per file:
//!
//! resolve (path → route, subject, purpose) → authenticate → decide (region, policy,
//! consent) → forward → minimise and redact → audit → release.
//!
//! [`handle`] is the only place that turns errors into responses, logs the request line and
//! counts metrics; for personal-data routes every outcome, failures included, is audited
//! before anything is released.

mod audit;
pub(crate) mod budget;
mod collection;
pub(crate) mod decide;
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

pub(crate) use audit::{append_all, consent_used};
pub(crate) use resolve::gpc;

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
    /// The exchange's records are written already: a collection writes one per record.
    pub(crate) audited: bool,
    /// The request's place under `gateway.max_in_flight`: held by the exchange, and handed
    /// to a streamed (NDJSON) response's pump, which holds it until the stream ends.
    pub(crate) slot: Option<Slot>,
}

/// A request's place in flight: its `gateway.max_in_flight` permit, and its count on this
/// data-plane worker ([`crate::server::alone`]).
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _here: crate::server::InFlight,
}

/// Handles one data-plane request.
///
/// A personal-data exchange runs in a task of its own, tracked by [`State::exchanges`]: once
/// decided it runs to its audit record whatever the client does (a client that disconnects
/// drops this future, not the exchange) and shutdown waits for it.
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
    // Load shedding: over the bound, a fast 503 before any work (and before any decision, so
    // there is nothing to audit).
    let slot = state
        .in_flight
        .clone()
        .try_acquire_owned()
        .map(|permit| Slot {
            _permit: permit,
            _here: crate::server::InFlight::enter(),
        });
    let mut resp = match resolve::route(&state.settings.routes, req.uri().path()) {
        _ if slot.is_err() => outcome(&state, &ctx, Err(GatewayError::Overloaded)).0,
        // The decision API; its evaluations, once decided, are recorded whatever the client
        // does, like a personal-data exchange.
        _ if crate::authzen::is_endpoint(req.uri().path()) => {
            ctx.route = Some(crate::authzen::ROUTE.to_owned());
            let request_id = ctx.request_id.clone();
            let task = state.clone();
            // Boxed: the task's cell then holds a pointer, not the whole (large) future, so
            // spawning and finishing it copies a few bytes instead of kilobytes.
            let exchange = state.exchanges.spawn(Box::pin(async move {
                let _slot = slot;
                let mut caller = None;
                let resp = crate::authzen::handle(&task, req, conn, &request_id, &mut caller).await;
                (resp, caller)
            }));
            match exchange.await {
                Ok((resp, caller)) => {
                    ctx.caller = caller;
                    resp
                }
                Err(e) => {
                    tracing::error!(error = %e, request_id = %ctx.request_id, "decision API task failed");
                    error_response(&GatewayError::Internal, &ctx.request_id)
                }
            }
        }
        Err(err) => outcome(&state, &ctx, Err(err)).0,
        Ok(resolved) if resolved.route.personal_data => {
            let target = resolved.into_target();
            let request_id = ctx.request_id.clone();
            let task = state.clone();
            ctx.slot = slot.ok();
            // Boxed, as above.
            let exchange = state.exchanges.spawn(Box::pin(async move {
                let resp = personal_exchange(&task, req, conn, target, &mut ctx).await;
                ctx.slot = None;
                (resp, ctx)
            }));
            match exchange.await {
                Ok((resp, done)) => {
                    ctx = done;
                    resp
                }
                Err(e) => {
                    tracing::error!(error = %e, %request_id, "personal-data exchange task failed");
                    ctx = Ctx {
                        request_id,
                        ..Ctx::default()
                    };
                    error_response(&GatewayError::Internal, &ctx.request_id)
                }
            }
        }
        Ok(resolved) => {
            let result = non_personal(&state, req, conn, &resolved, &mut ctx).await;
            outcome(&state, &ctx, result).0
        }
    };
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
    match err.status() {
        http::StatusCode::UNAUTHORIZED => {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        // Every 503 is a passing condition (overload, audit log or store down).
        http::StatusCode::SERVICE_UNAVAILABLE => {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    resp
}

/// Turns a stage's result into the response, counting upstream failures.
fn outcome(
    state: &State,
    ctx: &Ctx,
    result: Result<Response<Body>, GatewayError>,
) -> (Response<Body>, Option<GatewayError>) {
    match result {
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
    }
}

/// A personal-data request from routing to its audit record: authenticate, check the audit
/// log can take the record, decide, forward, minimise; then the record, before release.
async fn personal_exchange(
    state: &Arc<State>,
    req: Request<Incoming>,
    conn: ConnInfo,
    target: resolve::Target,
    ctx: &mut Ctx,
) -> Response<Body> {
    let method = req.method().clone();
    let result = personal_inner(state, req, conn, target, ctx).await;
    let (resp, error) = outcome(state, ctx, result);
    let verdict = ctx.verdict;
    let (resp, recorded) = audit::record(state, ctx, &method, resp, error.as_ref()).await;
    // Only decisions that have their record are counted.
    if recorded && let Some(verdict) = verdict {
        state.metrics.decision(ctx.route_index, verdict.as_str());
    }
    resp
}

async fn personal_inner(
    state: &Arc<State>,
    req: Request<Incoming>,
    conn: ConnInfo,
    target: resolve::Target,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let resolved = target.resolve(&state.settings.routes)?;
    let route = resolved.route;
    ctx.route = Some(route.name.clone());
    ctx.route_index = Some(resolved.index);
    ctx.path = resolved.path.clone();
    // Config validation guarantees personal routes are authenticated.
    let caller = state
        .verifier
        .verify_header(req.headers().get_all(http::header::AUTHORIZATION).iter())
        .map_err(|e| GatewayError::Unauthenticated(e.to_string()))?;
    ctx.caller = Some(caller.name.clone());
    // The subject is attributed only once the caller is known: unauthenticated noise does not
    // land in a person's access report.
    if let Some(subject) = resolved.subject.as_deref()
        && crate::consent::validate_subject(subject).is_ok()
    {
        ctx.subject = Some(subject.to_string());
    }
    // The upstream is not called unless the exchange's record can follow.
    if !state.audit.healthy() {
        return Err(GatewayError::AuditUnavailable);
    }
    match &route.collection {
        Some(c) => collection::handle(state, req, conn, &resolved, &caller, c, ctx).await,
        None => personal::handle(state, req, conn, &resolved, &caller, ctx).await,
    }
}

async fn non_personal(
    state: &State,
    req: Request<Incoming>,
    conn: ConnInfo,
    resolved: &resolve::Resolved<'_>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let settings = &state.settings;
    let route = resolved.route;
    ctx.route = Some(route.name.clone());
    ctx.route_index = Some(resolved.index);
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
        state.client.current(),
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
