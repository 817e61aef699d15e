//! The consent decision: purpose against the caller's claim, region from the store (never from
//! the request), the region's policy and purpose, the subject's consent, GPC.

use std::sync::Arc;

use http::HeaderMap;
use time::OffsetDateTime;

use super::Ctx;
use super::resolve;
use crate::auth::Caller;
use crate::consent::EffectiveConsent;
use crate::error::GatewayError;
use crate::policy::{ConsentState, Policy, Purpose, Verdict};
use crate::state::State;

/// What the decision stage hands on to forwarding.
pub(crate) struct Decided {
    pub(crate) policy: Arc<Policy>,
    pub(crate) purpose: Arc<Purpose>,
    pub(crate) verdict: Verdict,
}

/// Maps a stored consent to the policy's view of it at `now`.
fn consent_state(
    record: Option<&crate::consent::ConsentRecord>,
    now: OffsetDateTime,
) -> ConsentState {
    match record.map(|r| r.effective(now)) {
        None => ConsentState::None,
        Some(EffectiveConsent::Granted) => ConsentState::Granted,
        Some(EffectiveConsent::Denied) => ConsentState::Denied,
        Some(EffectiveConsent::Withdrawn) => ConsentState::Withdrawn,
        Some(EffectiveConsent::Expired) => ConsentState::Expired,
    }
}

/// Runs the decision. Fills `ctx` as it learns things (for the audit record), and fails
/// closed: a store error, a missing policy or an undefined purpose denies.
pub(crate) fn decide(
    state: &State,
    headers: &HeaderMap,
    caller: &Caller,
    subject: &str,
    ctx: &mut Ctx,
) -> Result<Decided, GatewayError> {
    crate::consent::validate_subject(subject).map_err(|e| {
        GatewayError::BadPath(format!("the subject in the path is not a valid id: {e}"))
    })?;
    // `ctx.subject` was filled from the path before authentication (valid ids only).
    let purpose_name = resolve::purpose(headers)?;
    ctx.purpose = Some(purpose_name.clone());
    if !caller.may_declare(&purpose_name) {
        return Err(GatewayError::ForbiddenPurpose(format!(
            "this caller may not declare purpose '{purpose_name}' (not in its token's purposes)"
        )));
    }
    let (region, record) = state.store.lookup(subject, &purpose_name).map_err(|e| {
        tracing::error!(error = %e, request_id = %ctx.request_id, "consent store lookup failed; denying");
        GatewayError::Internal
    })?;
    let region = region.unwrap_or_else(|| state.settings.gateway.default_region.clone());
    ctx.region = Some(region.clone());
    let policy = state.policies.current().get(&region).ok_or_else(|| {
        tracing::error!(%region, request_id = %ctx.request_id, "no policy loaded for region; denying");
        GatewayError::Internal
    })?;
    ctx.policy = Some(policy.label());
    let purpose = policy.purpose(&purpose_name).cloned().ok_or_else(|| {
        GatewayError::UnknownPurpose(format!(
            "purpose '{purpose_name}' is not defined by the policy of the subject's region"
        ))
    })?;
    let consent = consent_state(record.as_ref(), OffsetDateTime::now_utc());
    ctx.consent = Some(if purpose.basis == crate::policy::Basis::Consent {
        consent.as_str()
    } else {
        "n/a"
    });
    let decision = policy.decide(&purpose, consent, resolve::gpc(headers));
    ctx.verdict = Some(decision.verdict);
    ctx.reason = Some(decision.reason);
    state
        .metrics
        .decision(ctx.route_index, decision.verdict.as_str());
    if decision.verdict == Verdict::Deny {
        return Err(GatewayError::ConsentRequired(format!(
            "the subject's consent does not allow purpose '{purpose_name}' ({})",
            decision.reason
        )));
    }
    Ok(Decided {
        policy,
        purpose,
        verdict: decision.verdict,
    })
}
