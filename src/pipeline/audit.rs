//! The audit stage: one record per personal-data request, whatever its outcome, made durable
//! before anything is released. If the record cannot be written, the answer becomes
//! `503 audit_unavailable` and nothing else is released.

use http::header::HeaderValue;
use http::{Method, Response};

use super::{Ctx, error_response};
use crate::audit::{AuditEntry, AuditError, ConsentUsed, Decision};
use crate::error::GatewayError;
use crate::http::Body;
use crate::http::headers::{X_DECISION, X_REGION};
use crate::policy::Verdict;
use crate::state::State;

/// The audit record's consent field for a decision's consent state (`n/a` and unknown
/// strings are "not applicable").
pub(crate) fn consent_used(s: Option<&str>) -> ConsentUsed {
    match s {
        Some("granted") => ConsentUsed::Granted,
        Some("denied") => ConsentUsed::Denied,
        Some("withdrawn") => ConsentUsed::Withdrawn,
        Some("expired") => ConsentUsed::Expired,
        Some("none") => ConsentUsed::None,
        _ => ConsentUsed::NotApplicable,
    }
}

/// The decision as recorded: the consent verdict when one was reached and the request was not
/// refused for another reason before it; `deny` for every refusal.
fn decision(ctx: &Ctx, error: Option<&GatewayError>) -> (Decision, &'static str) {
    match (ctx.verdict, error) {
        (Some(Verdict::ReportDeny), _) => {
            (Decision::ReportDeny, ctx.reason.unwrap_or("report_deny"))
        }
        (Some(Verdict::Allow), None) => (Decision::Allow, ctx.reason.unwrap_or("allow")),
        // Allowed, but the upstream exchange failed: nothing was released.
        (Some(Verdict::Allow), Some(e)) => (Decision::Allow, e.code()),
        (Some(Verdict::Deny), _) => (Decision::Deny, ctx.reason.unwrap_or("deny")),
        (None, Some(e)) => (Decision::Deny, e.code()),
        (None, None) => (Decision::Deny, "internal"),
    }
}

/// Appends `entries` as one batch and returns once they are durable. On a data-plane worker
/// serving no other request they are written on this very thread when the writer is idle
/// ([`crate::audit::AuditLog::append_all_now_if_idle`]: no wake-ups of and by the writer
/// thread); otherwise they are handed to the writer thread's group commit.
pub(crate) async fn append_all(state: &State, entries: &[AuditEntry]) -> Result<(), AuditError> {
    if crate::server::alone() {
        state.audit.append_all_now_if_idle(entries).await
    } else {
        state.audit.append_all(entries).await
    }
}

/// Writes the record for `resp` and returns what may be released, and whether the record was
/// written. The record takes the request's details out of `ctx` (only the id, route and caller
/// stay, for the log line).
pub(crate) async fn record(
    state: &State,
    ctx: &mut Ctx,
    method: &Method,
    mut resp: Response<Body>,
    error: Option<&GatewayError>,
) -> (Response<Body>, bool) {
    if ctx.audited {
        return (resp, true);
    }
    let (decision, reason) = decision(ctx, error);
    let region = ctx
        .region
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok());
    let entry = AuditEntry {
        request_id: ctx.request_id.clone(),
        caller: ctx.caller.clone(),
        subject: ctx.subject.take(),
        purpose: ctx.purpose.take(),
        region: ctx.region.take(),
        route: ctx.route.clone(),
        method: method.as_str().to_string(),
        path: std::mem::take(&mut ctx.path),
        decision,
        reason: reason.to_string(),
        policy: ctx.policy.take(),
        consent: consent_used(ctx.consent),
        status: resp.status().as_u16(),
        fields_removed: std::mem::take(&mut ctx.fields_removed),
        redactions: std::mem::take(&mut ctx.redactions),
        collection: None,
    };
    // A refusal before authentication names no subject and releases only an error: its
    // record joins the next group commit without waiting for it (bounded; see append_lazy).
    let access = crate::metrics::Access::from(&entry);
    let written = if ctx.caller.is_none() && decision == Decision::Deny {
        state.audit.append_lazy(entry).await
    } else {
        append_all(state, std::slice::from_ref(&entry)).await
    };
    state.metrics.access(&access, written.is_ok());
    if let Err(e) = written {
        tracing::error!(error = %e, request_id = %ctx.request_id, "audit record not written; releasing nothing");
        return (
            error_response(&GatewayError::AuditUnavailable, &ctx.request_id),
            false,
        );
    }
    let header = match decision {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::ReportDeny => "report-deny",
    };
    resp.headers_mut()
        .insert(&X_DECISION, HeaderValue::from_static(header));
    if let Some(region) = region {
        resp.headers_mut().insert(&X_REGION, region);
    }
    (resp, true)
}
