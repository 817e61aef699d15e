//! The admin listener: health, readiness, metrics, and (with their modules) the consent,
//! audit and policy APIs. Every route but the health and metrics ones needs a JWT scope.

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
    let result = route(&state, req).await;
    let mut resp = result.unwrap_or_else(|e| error_response(&e, &request_id));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut()
            .insert(&crate::http::headers::X_REQUEST_ID, v);
    }
    resp
}

async fn route(state: &State, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => {
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        (&Method::GET, "/readyz") => {
            let (ready, checks) = readiness(state);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok(json(
                status,
                &serde_json::json!({"ready": ready, "checks": checks}),
            ))
        }
        (&Method::GET, "/metrics") => {
            let mut out = String::with_capacity(4096);
            state.metrics.render(&mut out);
            let mut resp = Response::new(full(out));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(resp)
        }
        (_, "/healthz" | "/readyz" | "/metrics") => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NotFound(
            "no admin endpoint at this path".into(),
        )),
    }
}

/// Readiness: config is loaded by construction; the other components report here.
fn readiness(_state: &State) -> (bool, serde_json::Value) {
    (true, serde_json::json!({"config": true}))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
