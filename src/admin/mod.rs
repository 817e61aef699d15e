//! The admin listener: health, readiness, metrics, and the consent, audit and policy APIs.
//! Every route but the health and metrics ones needs a JWT scope.

mod audit;
mod consent;
mod dashboard;
mod policies;
mod request;
mod stats;

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::pipeline::error_response;
use crate::state::State;

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
    let headers = &parts.headers;
    let query = parts.uri.query();
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
    let m = &parts.method;
    match (segs.as_slice(), m) {
        (["healthz"], &Method::GET) => {
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        (["readyz"], &Method::GET) => {
            let (ready, checks, store) = readiness(state).await;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok(json(
                status,
                &serde_json::json!({"ready": ready, "checks": checks, "store": store}),
            ))
        }
        (["metrics"], &Method::GET) => {
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
        (["v1", "stats"], &Method::GET) => stats::stats(state, headers, query).await,
        (["dashboard"], &Method::GET) => Ok(dashboard::page()),
        (["v1", "subjects", s], &Method::PUT) => consent::put_region(state, headers, body, s).await,
        (["v1", "subjects", s, "consents"], &Method::GET) => {
            consent::current(state, headers, s).await
        }
        (["v1", "subjects", s, "consents", "history"], &Method::GET) => {
            consent::history(state, headers, query, s).await
        }
        (["v1", "subjects", s, "consents", p], &Method::PUT) => {
            consent::put_consent(state, headers, body, s, p).await
        }
        (["v1", "subjects", s, "consents", p], &Method::DELETE) => {
            consent::withdraw(state, headers, s, p).await
        }
        (["v1", "consents", "import"], &Method::POST) => {
            consent::import(state, headers, body, request_id).await
        }
        (["v1", "subjects", s, "report"], &Method::GET) => {
            audit::report(state, headers, query, s).await
        }
        (["v1", "audit"], &Method::GET) => audit::list(state, headers, query).await,
        (["v1", "audit", "verify"], &Method::GET) => audit::verify(state, headers).await,
        (["v1", "audit", "checkpoint"], &Method::GET) => audit::checkpoint(state, headers).await,
        (["v1", "policies"], &Method::GET) => policies::list(state, headers),
        (["v1", "policies", "reload"], &Method::POST) => {
            policies::reload(state, headers, request_id).await
        }
        (["healthz" | "readyz" | "metrics" | "dashboard"], _)
        | (["v1", "stats"], _)
        | (["v1", "subjects", _], _)
        | (["v1", "subjects", _, "consents", ..], _)
        | (["v1", "consents", "import"], _)
        | (["v1", "subjects", _, "report"], _)
        | (["v1", "audit", ..], _)
        | (["v1", "policies", ..], _) => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NotFound(
            "no admin endpoint at this path".into(),
        )),
    }
}

/// Readiness: ready only when the store answers, policies are loaded and the audit log can
/// be written. Also returns the store's details (backend, problem, and for PostgreSQL the
/// change feed and the age of the cache's freshness proof).
async fn readiness(state: &State) -> (bool, serde_json::Value, serde_json::Value) {
    let health = state.store.health().await;
    let store = health.ok;
    let policies = !state.policies.current().is_empty();
    let audit = state.audit.healthy();
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
