//! Consent API: subject regions, consent decisions, withdrawal, current state, history
//! (plain or Kantara Consent Receipt v1.1), and bulk NDJSON import.

use http::{Response, StatusCode};
use hyper::body::Incoming;
use time::OffsetDateTime;

use super::json;
use super::request::{body, query};
use crate::consent::{self, ConsentChange, ConsentStatus, RegionChange, StoreError};
use crate::error::GatewayError;
use crate::http::Body;
use crate::state::State;

/// Maps store errors: bad input is the caller's (400), an unreachable store is 503
/// `store_unavailable`, the rest is ours (500); the last two are logged.
pub(crate) fn store_error(e: StoreError) -> GatewayError {
    match e {
        StoreError::Invalid(v) => GatewayError::BadRequest(v.to_string()),
        StoreError::ImportTooLarge { .. } => GatewayError::BadRequest(e.to_string()),
        StoreError::Unavailable(reason) => {
            tracing::warn!(%reason, "consent store unavailable");
            GatewayError::StoreUnavailable
        }
        other => {
            tracing::error!(error = %other, "consent store failed");
            GatewayError::Internal
        }
    }
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

/// `PUT /v1/subjects/{s}` `{"region":"eu"}`: sets the region and answers
/// `{"subject","region"}`; the change is kept in the subject's history as a region receipt
/// (under `regions` in `GET …/consents/history`) naming the token's `sub`.
pub(crate) async fn put_region(
    state: &State,
    caller: &str,
    req: Incoming,
    subject: &str,
) -> Result<Response<Body>, GatewayError> {
    check_subject(subject)?;
    let bytes = body(req, state.settings.gateway.max_body_bytes).await?;
    let region = consent::parse_region_body(&bytes).map_err(GatewayError::BadRequest)?;
    if state.policies.current().get(&region).is_none() {
        return Err(GatewayError::BadRequest(format!(
            "no policy is loaded for region '{region}'; add policies/{region}.yaml first"
        )));
    }
    let mut change = RegionChange::new(subject, region.clone(), caller);
    change.collection_method = Some("api".into());
    state.store.set_region(change).await.map_err(store_error)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"subject": subject, "region": region}),
    ))
}

/// `PUT /v1/subjects/{s}/consents/{purpose}`: records a grant or denial; answers the receipt.
pub(crate) async fn put_consent(
    state: &State,
    caller: &str,
    req: Incoming,
    subject: &str,
    purpose: &str,
) -> Result<Response<Body>, GatewayError> {
    check_subject(subject)?;
    check_purpose(state, purpose)?;
    let bytes = body(req, state.settings.gateway.max_body_bytes).await?;
    let change =
        consent::parse_consent_body(&bytes, subject, purpose, caller, OffsetDateTime::now_utc())
            .map_err(GatewayError::BadRequest)?;
    let receipt = state.store.record(change).await.map_err(store_error)?;
    retention_after_write(state, subject).await;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(&receipt).unwrap_or_default(),
    ))
}

/// `DELETE /v1/subjects/{s}/consents/{purpose}`: withdraws; answers the receipt.
pub(crate) async fn withdraw(
    state: &State,
    caller: &str,
    subject: &str,
    purpose: &str,
) -> Result<Response<Body>, GatewayError> {
    check_subject(subject)?;
    consent::validate_purpose(purpose).map_err(|e| GatewayError::UnknownPurpose(e.to_string()))?;
    let mut change = ConsentChange::new(subject, purpose, ConsentStatus::Withdrawn, caller);
    change.collection_method = Some("api".into());
    let receipt = state.store.record(change).await.map_err(store_error)?;
    retention_after_write(state, subject).await;
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
    let region = state.store.region(subject).await.map_err(store_error)?;
    let records = state.store.current(subject).await.map_err(store_error)?;
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
pub(crate) async fn current(state: &State, subject: &str) -> Result<Response<Body>, GatewayError> {
    check_subject(subject)?;
    Ok(json(StatusCode::OK, &current_json(state, subject).await?))
}

/// The subject's consent receipts, oldest first.
pub(crate) async fn history_receipts(
    state: &State,
    subject: &str,
) -> Result<Vec<consent::Receipt>, GatewayError> {
    Ok(state
        .store
        .history(subject)
        .await
        .map_err(store_error)?
        .receipts)
}

async fn subject_region(state: &State, subject: &str) -> Result<String, GatewayError> {
    Ok(state
        .store
        .region(subject)
        .await
        .map_err(store_error)?
        .unwrap_or_else(|| state.settings.gateway.default_region.clone()))
}

/// Deletes the subject's receipts whose `receipt_retention` has run out (and drops them from
/// `receipts`). A purpose no loaded policy defines keeps the default retention. A failed
/// deletion is logged and retried on the next read or write of this subject.
async fn apply_retention(
    state: &State,
    subject: &str,
    receipts: &mut Vec<consent::Receipt>,
    terms: &(dyn Fn(&str) -> Option<consent::Terms> + Sync),
    now: OffsetDateTime,
) {
    let retention = |purpose: &str| {
        terms(purpose).map_or(crate::policy::DEFAULT_RECEIPT_RETENTION, |t| t.retention())
    };
    let expired = consent::expired_receipts(receipts, now, &retention);
    if expired.is_empty() {
        return;
    }
    match state.store.prune_receipts(subject, &expired).await {
        Ok(n) => tracing::info!(deleted = n, "receipts past their retention deleted"),
        Err(e) => {
            tracing::warn!(error = %e, "receipts past their retention could not be deleted yet")
        }
    }
    receipts.retain(|r| !expired.contains(&r.id));
}

/// After a write: applies retention to the subject's history.
async fn retention_after_write(state: &State, subject: &str) {
    let (Ok(mut history), Ok(region)) = (
        state.store.history(subject).await,
        subject_region(state, subject).await,
    ) else {
        return;
    };
    let set = state.policies.current();
    let terms = |purpose: &str| consent::Terms::lookup(&set, &region, purpose);
    apply_retention(
        state,
        subject,
        &mut history.receipts,
        &terms,
        OffsetDateTime::now_utc(),
    )
    .await;
}

fn render_error(e: consent::RenderError) -> GatewayError {
    match e {
        consent::RenderError::Empty => GatewayError::NotFound(e.to_string()),
        other => GatewayError::BadRequest(other.to_string()),
    }
}

/// `GET /v1/subjects/{s}/consents/history[?format=json|native|kantara|iso27560]`: the stored
/// receipts (`json`, the default), the native receipt document (`native`: receipts with their
/// lawful basis, policy, retention and withdrawal method), a Kantara Consent Receipt v1.1
/// (`kantara`, needs `[controller]`) or ISO/IEC TS 27560 records (`iso27560`).
pub(crate) async fn history(
    state: &State,
    raw_query: Option<&str>,
    subject: &str,
) -> Result<Response<Body>, GatewayError> {
    check_subject(subject)?;
    let format = query(raw_query, &["format"])?
        .into_iter()
        .next()
        .map(|(_, v)| v);
    let format = match format.as_deref() {
        None | Some("json") => "json",
        Some(f @ ("native" | "kantara" | "iso27560")) => f,
        Some(_) => {
            return Err(GatewayError::BadRequest(
                "format must be \"json\", \"native\", \"kantara\" or \"iso27560\"".into(),
            ));
        }
    };
    let controller = state.settings.controller.as_ref();
    if format == "kantara" && controller.is_none() {
        return Err(GatewayError::BadRequest(
            "Kantara receipts need a [controller] table in the config".into(),
        ));
    }
    let mut history = state.store.history(subject).await.map_err(store_error)?;
    let region = subject_region(state, subject).await?;
    let set = state.policies.current();
    let terms = |purpose: &str| consent::Terms::lookup(&set, &region, purpose);
    apply_retention(
        state,
        subject,
        &mut history.receipts,
        &terms,
        OffsetDateTime::now_utc(),
    )
    .await;
    let body = match (format, controller) {
        ("native", c) => consent::native_receipts(subject, &history, c, &terms),
        ("kantara", Some(c)) => {
            consent::kantara_receipt(subject, &history.receipts, c, &terms).map_err(render_error)?
        }
        ("iso27560", c) => consent::iso27560_records(
            subject,
            &history.receipts,
            c,
            &terms,
            OffsetDateTime::now_utc(),
        )
        .map_err(render_error)?,
        _ => serde_json::json!({
            "subject": subject,
            "receipts": history.receipts,
            "regions": history.regions,
        }),
    };
    Ok(json(StatusCode::OK, &body))
}

/// `POST /v1/consents/import` (NDJSON): all lines or none. Besides the format checks, every
/// line's region must have a loaded policy and its purpose must be defined by one, as for the
/// single-write endpoints.
pub(crate) async fn import(
    state: &State,
    caller: &str,
    req: Incoming,
    request_id: &str,
) -> Result<Response<Body>, GatewayError> {
    let bytes = body(req, state.settings.gateway.max_body_bytes).await?;
    let parsed =
        consent::parse_import(&bytes, caller, OffsetDateTime::now_utc()).map_err(store_error)?;
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
        let imported = state
            .store
            .import(parsed.lines)
            .await
            .map_err(store_error)?;
        consent::ImportReport {
            imported,
            rejected: 0,
            errors: Vec::new(),
        }
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
