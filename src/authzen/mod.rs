//! The decision API (OpenID AuthZEN Authorization API 1.0) on the gateway listener, for
//! services that cannot route data through the gateway: "may this service use this person's
//! data for this purpose now?" answered from the same policies, consents and decision function
//! as the proxy, and audited like a data access (a consent state is personal data).
//!
//! - `POST /access/v1/evaluation`: one evaluation; a refusal of the request itself (wrong
//!   subject, undeclared purpose, malformed) is an HTTP error with the SPEC's codes; a decision
//!   is `200 {"decision", "context"}`.
//! - `POST /access/v1/evaluations`: at most 1000, with AuthZEN's default values and
//!   `options.evaluations_semantic`; a refused entry is `decision: false` with
//!   `context.error {status, code, message}`. Without `evaluations` (absent or empty) it is
//!   one evaluation of the top-level values, answered like the single endpoint (§7.1).
//! - `GET /.well-known/authzen-configuration`: the PDP metadata (no token needed).
//!
//! Every decided or refused evaluation gets one audit record (route `authzen`, method `POST`),
//! all of a request's records in one group commit before the answer is released.

mod answer;
mod evaluate;
mod request;

use std::collections::BTreeMap;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, Decision};
use crate::error::GatewayError;
use crate::http::{Body, full};
use crate::server::ConnInfo;
use crate::state::State;
use answer::{Answers, RulesCache};
use evaluate::{Evaluated, Shared};
use request::{Batch, Parsed, Semantic, Tuple};

/// The route name in audit records and logs.
pub(crate) const ROUTE: &str = "authzen";
const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";
const METADATA: &str = "/.well-known/authzen-configuration";
/// Largest request body accepted (1000 evaluations fit comfortably).
const MAX_BODY: u64 = 1 << 20;

/// Whether `path` is one of the decision API's endpoints; they take precedence over routes.
pub(crate) fn is_endpoint(path: &str) -> bool {
    matches!(path, EVALUATION | EVALUATIONS | METADATA)
}

/// Answers one decision-API request; errors are already responses.
pub(crate) async fn handle(
    state: &State,
    req: Request<Incoming>,
    conn: ConnInfo,
    request_id: &str,
    caller_name: &mut Option<String>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == METADATA {
        return match *req.method() {
            Method::GET | Method::HEAD => metadata(&req, conn),
            _ => error(&GatewayError::MethodNotAllowed, request_id),
        };
    }
    if req.method() != Method::POST {
        return error(&GatewayError::MethodNotAllowed, request_id);
    }
    let caller = match state
        .verifier
        .verify_header(req.headers().get_all(http::header::AUTHORIZATION).iter())
    {
        Ok(c) => c,
        Err(e) => {
            let err = GatewayError::Unauthenticated(e.to_string());
            // Not attributed to anyone: nobody without a token writes into a report.
            let record = unattributed(request_id, None, &path, &err);
            return finish(state, vec![record], error(&err, request_id), request_id).await;
        }
    };
    *caller_name = Some(caller.name.clone());
    let header_gpc = crate::pipeline::gpc(req.headers());
    let policies = state.policies.current();
    let body = match crate::http::body::read_capped(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(crate::http::body::ReadError::TooLarge(limit)) => {
            let err = GatewayError::RequestTooLarge { limit };
            let record = unattributed(request_id, Some(&caller.name), &path, &err);
            return finish(state, vec![record], error(&err, request_id), request_id).await;
        }
        // (`read_capped` admits every byte: `Refused` is for budgeted reads.)
        Err(crate::http::body::ReadError::Stream(_) | crate::http::body::ReadError::Refused) => {
            let err = GatewayError::BadRequest("the request body was cut off".into());
            let record = unattributed(request_id, Some(&caller.name), &path, &err);
            return finish(state, vec![record], error(&err, request_id), request_id).await;
        }
    };
    // The parsed body stays alive for the whole request: the evaluations borrow from it.
    let decoded = if path == EVALUATION {
        request::parse::<Tuple>(&body).map(Decoded::Single)
    } else {
        request::parse::<Batch>(&body).map(Decoded::Batch)
    };
    drop(body);
    let parsed = decoded
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|b| match b {
            Decoded::Single(t) => t.single().map(|e| Parsed {
                evaluations: vec![e],
                semantic: Semantic::ExecuteAll,
                single: true,
            }),
            Decoded::Batch(b) => b.evaluations(),
        });
    let Parsed {
        evaluations,
        semantic,
        single,
    } = match parsed {
        Ok(p) => p,
        Err(err) => {
            let record = unattributed(request_id, Some(&caller.name), &path, &err);
            return finish(state, vec![record], error(&err, request_id), request_id).await;
        }
    };
    let checked: Vec<Result<evaluate::Checked, GatewayError>> = evaluations
        .iter()
        .map(|e| evaluate::check(*e, &caller, header_gpc, &policies))
        .collect();
    // One store call per purpose for all the subjects that passed the checks.
    let mut by_purpose: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in checked.iter().enumerate() {
        if let Ok(c) = c {
            by_purpose.entry(c.purpose.as_str()).or_default().push(i);
        }
    }
    let mut lookups = vec![None; checked.len()];
    for (purpose, indices) in &by_purpose {
        let subjects: Vec<&str> = indices
            .iter()
            .filter_map(|i| checked.get(*i)?.as_ref().ok().map(|c| c.subject.as_str()))
            .collect();
        match state.store.lookup_many(&subjects, purpose).await {
            Ok(found) => {
                for (i, l) in indices.iter().zip(found) {
                    if let Some(slot) = lookups.get_mut(*i) {
                        *slot = Some(l);
                    }
                }
            }
            Err(e) => {
                let err = crate::pipeline::decide::store_lookup_error(e, request_id);
                let record = unattributed(request_id, Some(&caller.name), &path, &err);
                return finish(state, vec![record], error(&err, request_id), request_id).await;
            }
        }
    }
    let shared = Shared {
        request_id,
        caller: &caller.name,
        path: &path,
        policies: &policies,
        default_region: &state.settings.gateway.default_region,
        now: OffsetDateTime::now_utc(),
        status: 200,
    };
    let mut answers = Answers::new(single, evaluations.len());
    let mut rules = RulesCache::default();
    let mut records: Vec<AuditEntry> = Vec::with_capacity(evaluations.len());
    let mut single_error = None;
    for ((e, c), lookup) in evaluations.iter().zip(checked).zip(lookups) {
        let outcome = match (c, lookup) {
            (Ok(c), Some(l)) => {
                let (done, err) = evaluate::decide(&shared, c, l, &mut answers, &mut rules);
                if let Some(err) = err {
                    single_error.get_or_insert(err);
                }
                done
            }
            (Err(err), _) => {
                let done = evaluate::refused(&shared, *e, &err, &mut answers);
                single_error.get_or_insert(err);
                done
            }
            (Ok(_), None) => evaluate::refused(&shared, *e, &GatewayError::Internal, &mut answers),
        };
        let Evaluated { decision, entry } = outcome;
        records.push(entry);
        match semantic {
            Semantic::DenyOnFirstDeny if !decision => break,
            Semantic::PermitOnFirstPermit if decision => break,
            _ => {}
        }
    }
    if single {
        let status = single_error
            .as_ref()
            .map_or(StatusCode::OK, GatewayError::status);
        for entry in &mut records {
            entry.status = status.as_u16();
        }
        let resp = match &single_error {
            Some(err) => error(err, request_id),
            None => json_response(StatusCode::OK, answers.finish()),
        };
        return finish(state, records, resp, request_id).await;
    }
    let resp = json_response(StatusCode::OK, answers.finish());
    finish(state, records, resp, request_id).await
}

/// A parsed request body: one evaluation's tuple or a batch.
enum Decoded {
    Single(Tuple),
    Batch(Batch),
}

/// Writes the request's records in one group commit, then releases `resp`; if they cannot be
/// written, `503 audit_unavailable` and nothing else.
async fn finish(
    state: &State,
    records: Vec<AuditEntry>,
    resp: Response<Body>,
    request_id: &str,
) -> Response<Body> {
    let written = crate::pipeline::append_all(state, &records).await;
    state.metrics.accesses(&records, written.is_ok());
    match written {
        Ok(_) => resp,
        Err(e) => {
            tracing::error!(error = %e, %request_id, "decision API records not written; releasing nothing");
            error(&GatewayError::AuditUnavailable, request_id)
        }
    }
}

/// The record of a request refused as a whole, before any subject was resolved.
fn unattributed(
    request_id: &str,
    caller: Option<&str>,
    path: &str,
    err: &GatewayError,
) -> AuditEntry {
    AuditEntry {
        request_id: request_id.to_owned(),
        caller: caller.map(str::to_owned),
        subject: None,
        purpose: None,
        region: None,
        route: Some(ROUTE.to_owned()),
        method: "POST".to_owned(),
        path: path.to_owned(),
        decision: Decision::Deny,
        reason: err.code().to_owned(),
        policy: None,
        consent: crate::pipeline::consent_used(None),
        status: err.status().as_u16(),
        fields_removed: Vec::new(),
        redactions: BTreeMap::new(),
        collection: None,
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A decision is about one person's consent now: never cached.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(err: &GatewayError, request_id: &str) -> Response<Body> {
    let mut resp = crate::pipeline::error_response(err, request_id);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// PDP metadata. The base URL is the one the caller reached: the scheme of this listener and
/// the request's `Host` (when it is a plain host[:port]).
fn metadata(req: &Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let scheme = if conn.tls { "https" } else { "http" };
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    let base = format!("{scheme}://{host}");
    let body = json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS}"),
    });
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}
