//! The admin listener: health, readiness, metrics, and the consent, audit and policy APIs.
//!
//! Every request goes through one table ([`routes`]) of (method, path, scope, handler):
//! the table finds the route and checks the caller's scope before the handler runs (every
//! route but the health and metrics ones needs one). Writes name the caller (`recorded_by`
//! on receipts, `caller` on the audit record of a policy reload), and auditors' reads of the
//! audit log and of subject reports are themselves audit records.

mod attribution;
mod audit;
mod consent;
mod dashboard;
mod policies;
mod request;
mod routes;
mod stats;

pub use routes::{AdminRoute, routes};

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::pipeline::error_response;
use crate::state::State;
use routes::Handler;

/// Handles one admin request.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let request_id = crate::http::headers::request_id(req.headers());
    let result = route(&state, req, &request_id).await;
    let mut resp = result.unwrap_or_else(|e| error_response(&e, &request_id));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut()
            .insert(&crate::http::headers::X_REQUEST_ID, v);
    }
    resp
}

async fn route(
    state: &State,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = req.into_parts();
    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::routing::decode_segment(s).ok_or_else(|| {
                GatewayError::BadPath("the path is not valid percent-encoded UTF-8".into())
            })
        })
        .collect::<Result<_, _>>()?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (entry, params) = match routes::find(&parts.method, &segs) {
        routes::Match::Found(entry, params) => (entry, params),
        routes::Match::WrongMethod => return Err(GatewayError::MethodNotAllowed),
        routes::Match::NotFound => {
            return Err(GatewayError::NotFound(
                "no admin endpoint at this path".into(),
            ));
        }
    };
    // The one scope check: every route with a scope passes here before its handler runs.
    let caller = match entry.scope {
        Some(scope) => Some(request::require(state, &parts.headers, scope)?),
        None => None,
    };
    let req = Req {
        state,
        headers: &parts.headers,
        query: parts.uri.query(),
        params: &params,
        request_id,
        caller: caller.as_deref(),
    };
    let resp = dispatch(entry.handler, &req, body).await?;
    if let Some(read) = attribution::recorded_read(entry) {
        attribution::record(&req, entry, read, resp.status()).await?;
    }
    Ok(resp)
}

/// One admin request after routing and the scope check.
pub(crate) struct Req<'a> {
    state: &'a State,
    headers: &'a http::HeaderMap,
    query: Option<&'a str>,
    params: &'a [&'a str],
    request_id: &'a str,
    /// The authenticated caller (absent only on the unauthenticated routes).
    caller: Option<&'a Caller>,
}

impl Req<'_> {
    /// Path parameter `i` (the table's `{…}` segments, in order).
    fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or_default()
    }

    /// The caller's `sub`, as receipts and audit records name it.
    fn caller_name(&self) -> Result<&str, GatewayError> {
        self.caller
            .map(|c| c.name.as_str())
            .ok_or_else(|| GatewayError::Unauthenticated("this endpoint needs a token".into()))
    }
}

async fn dispatch(
    handler: Handler,
    r: &Req<'_>,
    body: Incoming,
) -> Result<Response<Body>, GatewayError> {
    let (state, headers, query) = (r.state, r.headers, r.query);
    match handler {
        Handler::Healthz => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        Handler::Readyz => {
            let (ready, checks, store) = readiness(state).await;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let audit = serde_json::json!({
                "writer_alive": state.audit.writer_alive(),
                "chain_head_problem": state.audit.open_problem(),
            });
            Ok(json(
                status,
                &serde_json::json!({"ready": ready, "checks": checks, "store": store, "audit": audit}),
            ))
        }
        Handler::Metrics => {
            let accept = headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = crate::metrics::Exposition::negotiate(accept);
            let mut resp = Response::new(full(state.metrics.render(format)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            Ok(resp)
        }
        Handler::Stats => stats::stats(state, headers, query).await,
        Handler::Dashboard => Ok(dashboard::page()),
        Handler::PutRegion => consent::put_region(state, r.caller_name()?, body, r.param(0)).await,
        Handler::CurrentConsents => consent::current(state, r.param(0)).await,
        Handler::History => consent::history(state, query, r.param(0)).await,
        Handler::PutConsent => {
            consent::put_consent(state, r.caller_name()?, body, r.param(0), r.param(1)).await
        }
        Handler::Withdraw => {
            consent::withdraw(state, r.caller_name()?, r.param(0), r.param(1)).await
        }
        Handler::Import => consent::import(state, r.caller_name()?, body, r.request_id).await,
        Handler::Report => audit::report(state, headers, query, r.param(0)).await,
        Handler::AuditList => audit::list(state, headers, query).await,
        Handler::AuditVerify => audit::verify(state, headers).await,
        Handler::AuditCheckpoint => audit::checkpoint(state, headers).await,
        Handler::Policies => Ok(policies::list(state)),
        Handler::PolicyReload => policies::reload(r, r.caller_name()?).await,
    }
}

/// Readiness: ready only when the store answers, policies are loaded and the audit log can
/// be written. Also returns the store's details (backend, problem, and for PostgreSQL the
/// change feed and the age of the cache's freshness proof).
async fn readiness(state: &State) -> (bool, serde_json::Value, serde_json::Value) {
    let health = state.store.health().await;
    let store = health.ok;
    let policies = !state.policies.current().is_empty();
    let audit = state.audit.ready();
    let mut detail = serde_json::json!({"backend": health.backend, "problem": health.problem});
    if let Some(cache) = state.store.cache_state() {
        detail["change_feed"] = cache.feed_up.into();
        detail["cache_proof_age_ms"] = cache
            .proof_age
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .into();
        detail["cached_subjects"] = cache.entries.into();
    }
    (
        store && policies && audit,
        serde_json::json!({"config": true, "store": store, "policies": policies, "audit": audit}),
        detail,
    )
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
