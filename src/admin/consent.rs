//! Consent API: subject regions, consent decisions, withdrawal, current state, history
//! (plain or Kantara Consent Receipt v1.1), and bulk NDJSON import.

use std::sync::Arc;

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use time::OffsetDateTime;

use super::json;
use super::request::{body, json_body, query, require};
use crate::consent::{self, ConsentChange, ConsentStatus, ConsentStore, StoreError};
use crate::error::GatewayError;
use crate::http::Body;
use crate::state::State;

/// Maps store errors: bad input is the caller's (400), the rest is ours (500, logged).
pub(crate) fn store_error(e: StoreError) -> GatewayError {
    match e {
        StoreError::Invalid(v) => GatewayError::BadRequest(v.to_string()),
        StoreError::ImportTooLarge { .. } => GatewayError::BadRequest(e.to_string()),
        other => {
            tracing::error!(error = %other, "consent store failed");
            GatewayError::Internal
        }
    }
}

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn ConsentStore>,
    f: impl FnOnce(&dyn ConsentStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| GatewayError::Internal)?
        .map_err(store_error)
}

fn check_subject(subject: &str) -> Result<(), GatewayError> {
    consent::validate_subject(subject).map_err(|e| GatewayError::BadRequest(e.to_string()))
}

fn check_purpose(state: &State, purpose: &str) -> Result<(), GatewayError> {
    consent::validate_purpose(purpose).map_err(|e| GatewayError::UnknownPurpose(e.to_string()))?;
    if state
        .policies
        .current()
        .iter()
        .any(|p| p.purpose(purpose).is_some())
    {
        Ok(())
    } else {
        Err(GatewayError::UnknownPurpose(format!(
            "purpose '{purpose}' is not defined by any loaded policy; check the spelling or add it to a policy"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionBody {
    region: String,
}

/// `PUT /v1/subjects/{s}` `{"region":"eu"}`.
pub(crate) async fn put_region(
    state: &State,
    headers: &HeaderMap,
    req: Incoming,
    subject: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "consent:write")?;
    check_subject(subject)?;
    let RegionBody { region } =
        json_body(&body(req, state.settings.gateway.max_body_bytes).await?)?;
    consent::validate_region(&region).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    if state.policies.current().get(&region).is_none() {
        return Err(GatewayError::BadRequest(format!(
            "no policy is loaded for region '{region}'; add policies/{region}.yaml first"
        )));
    }
    let (s, r) = (subject.to_string(), region.clone());
    blocking(&state.store, move |store| store.set_region(&s, &r)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"subject": subject, "region": region}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    status: String,
    expires_at: Option<String>,
    source: Option<String>,
}

/// `PUT /v1/subjects/{s}/consents/{purpose}`: records a grant or denial; answers the receipt.
pub(crate) async fn put_consent(
    state: &State,
    headers: &HeaderMap,
    req: Incoming,
    subject: &str,
    purpose: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "consent:write")?;
    check_subject(subject)?;
    check_purpose(state, purpose)?;
    let b: ConsentBody = json_body(&body(req, state.settings.gateway.max_body_bytes).await?)?;
    let status = match b.status.as_str() {
        "granted" => ConsentStatus::Granted,
        "denied" => ConsentStatus::Denied,
        _ => {
            return Err(GatewayError::BadRequest(
                "status must be \"granted\" or \"denied\"; withdraw with DELETE".into(),
            ));
        }
    };
    let mut change = ConsentChange::new(subject, purpose, status);
    if let Some(text) = &b.expires_at {
        let at = consent::parse_timestamp(text, "expires_at")
            .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
        if at <= OffsetDateTime::now_utc() {
            return Err(GatewayError::BadRequest("expires_at is in the past".into()));
        }
        change.expires_at = Some(at);
    }
    change.source = b.source;
    change.collection_method = Some("api".into());
    let receipt = blocking(&state.store, move |store| store.record(change)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(&receipt).unwrap_or_default(),
    ))
}

/// `DELETE /v1/subjects/{s}/consents/{purpose}`: withdraws; answers the receipt.
pub(crate) async fn withdraw(
    state: &State,
    headers: &HeaderMap,
    subject: &str,
    purpose: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "consent:write")?;
    check_subject(subject)?;
    consent::validate_purpose(purpose).map_err(|e| GatewayError::UnknownPurpose(e.to_string()))?;
    let mut change = ConsentChange::new(subject, purpose, ConsentStatus::Withdrawn);
    change.collection_method = Some("api".into());
    let receipt = blocking(&state.store, move |store| store.record(change)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(&receipt).unwrap_or_default(),
    ))
}

/// The subject's region and current consents with their effective state now.
pub(crate) async fn current_json(
    state: &State,
    subject: &str,
) -> Result<serde_json::Value, GatewayError> {
    let s = subject.to_string();
    let (region, records) = blocking(&state.store, move |store| {
        Ok((store.region(&s)?, store.current(&s)?))
    })
    .await?;
    let now = OffsetDateTime::now_utc();
    let consents: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["effective"] = serde_json::Value::from(r.effective(now).as_str());
            v
        })
        .collect();
    Ok(serde_json::json!({
        "subject": subject,
        "region": region,
        "default_region": state.settings.gateway.default_region,
        "consents": consents,
    }))
}

/// `GET /v1/subjects/{s}/consents`.
pub(crate) async fn current(
    state: &State,
    headers: &HeaderMap,
    subject: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "consent:read")?;
    check_subject(subject)?;
    Ok(json(StatusCode::OK, &current_json(state, subject).await?))
}

/// The subject's receipts, oldest first.
pub(crate) async fn history_receipts(
    state: &State,
    subject: &str,
) -> Result<Vec<consent::Receipt>, GatewayError> {
    let s = subject.to_string();
    blocking(&state.store, move |store| store.history(&s)).await
}

/// `GET /v1/subjects/{s}/consents/history[?format=kantara]`.
pub(crate) async fn history(
    state: &State,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    subject: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "consent:read")?;
    check_subject(subject)?;
    let format = query(raw_query, &["format"])?
        .into_iter()
        .next()
        .map(|(_, v)| v);
    let receipts = history_receipts(state, subject).await?;
    match format.as_deref() {
        None | Some("json") => Ok(json(
            StatusCode::OK,
            &serde_json::json!({"subject": subject, "receipts": receipts}),
        )),
        Some("kantara") => {
            let controller = state.settings.controller.as_ref().ok_or_else(|| {
                GatewayError::BadRequest(
                    "Kantara receipts need a [controller] table in the config".into(),
                )
            })?;
            if receipts.is_empty() {
                return Err(GatewayError::NotFound(
                    "no consent has been recorded for this subject".into(),
                ));
            }
            Ok(json(
                StatusCode::OK,
                &consent::kantara_receipt(subject, &receipts, controller),
            ))
        }
        Some(_) => Err(GatewayError::BadRequest(
            "format must be \"json\" or \"kantara\"".into(),
        )),
    }
}

/// `POST /v1/consents/import` (NDJSON): all lines or none. Besides the format checks, every
/// line's region must have a loaded policy and its purpose must be defined by one, as for the
/// single-write endpoints.
pub(crate) async fn import(
    state: &State,
    headers: &HeaderMap,
    req: Incoming,
    request_id: &str,
) -> Result<Response<Body>, GatewayError> {
    require(state, headers, "consent:write")?;
    let bytes = body(req, state.settings.gateway.max_body_bytes).await?;
    let parsed = consent::parse_import(&bytes).map_err(store_error)?;
    let set = state.policies.current();
    let mut errors = parsed.errors;
    for line in &parsed.lines {
        let purpose_known = set
            .iter()
            .any(|p| p.purpose(&line.change.purpose).is_some());
        let region_known = line.region.as_deref().is_none_or(|r| set.get(r).is_some());
        let reason = match (purpose_known, region_known) {
            (true, true) => continue,
            (false, _) => "purpose is not defined by any loaded policy",
            (true, false) => "region has no loaded policy",
        };
        errors.push(consent::LineError {
            line: line.line,
            reason: reason.into(),
        });
    }
    errors.sort_by_key(|e| e.line);
    let report = if errors.is_empty() {
        blocking(&state.store, move |store| store.import(&bytes)).await?
    } else {
        consent::ImportReport {
            imported: 0,
            rejected: errors.len(),
            errors,
        }
    };
    if report.errors.is_empty() {
        return Ok(json(
            StatusCode::OK,
            &serde_json::to_value(&report).unwrap_or_default(),
        ));
    }
    let err = GatewayError::BadRequest(format!(
        "{} line(s) were rejected; nothing was imported. Fix the listed lines and send the whole file again",
        report.rejected
    ));
    let mut v: serde_json::Value =
        serde_json::from_slice(&err.body(request_id)).unwrap_or_default();
    v["imported"] = report.imported.into();
    v["rejected"] = report.rejected.into();
    v["errors"] = serde_json::to_value(&report.errors).unwrap_or_default();
    Ok(json(StatusCode::BAD_REQUEST, &v))
}
