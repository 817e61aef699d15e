//! The consent decision: purpose against the caller's claim, region from the store (never from
//! the request), the region's policy and purpose, the subject's consent, GPC.
//!
//! [`subject`] is the one decision for one data subject, given what the store said about it.
//! The proxy, collections (one call per record) and the decision API all call it, so they can
//! never disagree.

use std::sync::Arc;

use http::HeaderMap;
use time::OffsetDateTime;

use super::Ctx;
use super::resolve;
use crate::auth::Caller;
use crate::consent::{ConsentRecord, EffectiveConsent};
use crate::error::GatewayError;
use crate::policy::{Basis, ConsentState, Decision, Policy, PolicySet, Purpose, Verdict};
use crate::routing::UnknownSubject;
use crate::state::State;

/// What the decision stage hands on to forwarding: the rules the response is minimised by,
/// whether the verdict is `allow` or `report_deny` (the verdict itself is in [`Ctx`]).
pub(crate) struct Decided {
    pub(crate) policy: Arc<Policy>,
    pub(crate) purpose: Arc<Purpose>,
}

/// Maps a stored consent to the policy's view of it at `now`.
pub(crate) fn consent_state(record: Option<&ConsentRecord>, now: OffsetDateTime) -> ConsentState {
    match record.map(|r| r.effective(now)) {
        None => ConsentState::None,
        Some(EffectiveConsent::Granted) => ConsentState::Granted,
        Some(EffectiveConsent::Denied) => ConsentState::Denied,
        Some(EffectiveConsent::Withdrawn) => ConsentState::Withdrawn,
        Some(EffectiveConsent::Expired) => ConsentState::Expired,
    }
}

/// Everything about one subject's decision except the store lookup.
pub(crate) struct Question<'a> {
    /// The policies in force for the whole request.
    pub(crate) policies: &'a PolicySet,
    /// `gateway.default_region`.
    pub(crate) default_region: &'a str,
    /// The route's choice for subjects without a stored region.
    pub(crate) unknown_subject: UnknownSubject,
    /// A valid purpose name the caller may declare.
    pub(crate) purpose: &'a str,
    /// `Sec-GPC: 1` (or the decision API's `context.gpc`).
    pub(crate) gpc: bool,
    /// The moment consents are judged at.
    pub(crate) now: OffsetDateTime,
}

/// The decision for one subject.
pub(crate) struct Answer {
    /// The region decided under.
    pub(crate) region: String,
    pub(crate) policy: Arc<Policy>,
    pub(crate) purpose: Arc<Purpose>,
    /// The consent state used (`n/a` for bases other than consent).
    pub(crate) consent: &'static str,
    pub(crate) decision: Decision,
}

/// Why no answer could be reached for a subject; each denies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The subject has no stored region and the route says `unknown_subject = "deny"`.
    UnknownSubject,
    /// The region has no loaded policy.
    NoPolicy(String),
    /// The region's policy does not define the purpose.
    UnknownPurpose(String),
}

impl Unanswered {
    /// The error the proxy answers with.
    pub(crate) fn to_error(&self, purpose: &str) -> GatewayError {
        match self {
            Self::UnknownSubject => GatewayError::ConsentRequired(
                "the subject is not known to the consent system (no region is recorded), and this route refuses unknown subjects".into(),
            ),
            Self::NoPolicy(_) => GatewayError::Internal,
            Self::UnknownPurpose(_) => GatewayError::UnknownPurpose(format!(
                "purpose '{purpose}' is not defined by the policy of the subject's region"
            )),
        }
    }

    /// The audit reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::UnknownSubject => "unknown_subject",
            Self::NoPolicy(_) => "no_policy",
            Self::UnknownPurpose(_) => "unknown_purpose",
        }
    }

    /// The region the subject was found in, when one was resolved.
    pub(crate) fn region(&self) -> Option<&str> {
        match self {
            Self::UnknownSubject => None,
            Self::NoPolicy(r) | Self::UnknownPurpose(r) => Some(r),
        }
    }
}

/// Decides for one subject from its stored region and consent record. Pure.
pub(crate) fn subject(
    q: &Question<'_>,
    region: Option<String>,
    record: Option<&ConsentRecord>,
) -> Result<Answer, Unanswered> {
    let region = match (region, q.unknown_subject) {
        (Some(r), _) => r,
        (None, UnknownSubject::DefaultRegion) => q.default_region.to_owned(),
        (None, UnknownSubject::Deny) => return Err(Unanswered::UnknownSubject),
    };
    let Some(policy) = q.policies.get(&region) else {
        return Err(Unanswered::NoPolicy(region));
    };
    let Some(purpose) = policy.purpose(q.purpose).cloned() else {
        return Err(Unanswered::UnknownPurpose(region));
    };
    let state = consent_state(record, q.now);
    let decision = policy.decide(&purpose, state, q.gpc);
    Ok(Answer {
        region,
        consent: if purpose.basis == Basis::Consent {
            state.as_str()
        } else {
            "n/a"
        },
        policy,
        purpose,
        decision,
    })
}

/// Maps a failed store lookup: unreachable → 503 `store_unavailable`, anything else → 500.
pub(crate) fn store_lookup_error(e: crate::consent::StoreError, request_id: &str) -> GatewayError {
    match e {
        crate::consent::StoreError::Unavailable(reason) => {
            tracing::warn!(%reason, %request_id, "consent store unavailable; denying");
            GatewayError::StoreUnavailable
        }
        e => {
            tracing::error!(error = %e, %request_id, "consent store lookup failed; denying");
            GatewayError::Internal
        }
    }
}

/// Runs the decision for a single-subject request. Fills `ctx` as it learns things (for the
/// audit record), and fails closed: a store error (503 `store_unavailable` when the store
/// cannot be reached, else 500), a missing policy or an undefined purpose denies.
pub(crate) async fn decide(
    state: &State,
    headers: &HeaderMap,
    caller: &Caller,
    subject_id: &str,
    unknown_subject: UnknownSubject,
    ctx: &mut Ctx,
) -> Result<Decided, GatewayError> {
    crate::consent::validate_subject(subject_id).map_err(|e| {
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
    let crate::consent::Lookup {
        region,
        consent: record,
    } = state
        .store
        .lookup(subject_id, &purpose_name)
        .await
        .map_err(|e| store_lookup_error(e, &ctx.request_id))?;
    let policies = state.policies.current();
    let question = Question {
        policies: &policies,
        default_region: &state.settings.gateway.default_region,
        unknown_subject,
        purpose: &purpose_name,
        gpc: resolve::gpc(headers),
        now: OffsetDateTime::now_utc(),
    };
    let answer = subject(&question, region, record.as_ref()).map_err(|why| {
        ctx.region = why.region().map(str::to_owned);
        ctx.reason = Some(why.reason());
        if let Unanswered::NoPolicy(region) = &why {
            tracing::error!(%region, request_id = %ctx.request_id, "no policy loaded for region; denying");
        }
        if why == Unanswered::UnknownSubject {
            ctx.verdict = Some(Verdict::Deny);
        }
        why.to_error(&purpose_name)
    })?;
    ctx.region = Some(answer.region);
    ctx.policy = Some(answer.policy.label());
    ctx.consent = Some(answer.consent);
    let decision = answer.decision;
    ctx.verdict = Some(decision.verdict);
    ctx.reason = Some(decision.reason);
    if decision.verdict == Verdict::Deny {
        return Err(GatewayError::ConsentRequired(format!(
            "the subject's consent does not allow purpose '{purpose_name}' ({})",
            decision.reason
        )));
    }
    Ok(Decided {
        policy: answer.policy,
        purpose: answer.purpose,
    })
}
