//! One evaluation: the AuthZEN tuple checked against the caller's token, then the same
//! per-subject decision the proxy makes ([`crate::pipeline::decide::subject`]), from the same
//! store lookup and the same policies.

use serde_json::Value;
use time::OffsetDateTime;

use super::answer::{Answers, Decided, RulesCache};
use super::request::Evaluation;
use crate::audit::{AuditEntry, Decision};
use crate::auth::Caller;
use crate::consent::Lookup;
use crate::error::GatewayError;
use crate::pipeline::decide::{self, Question, Unanswered};
use crate::policy::{PolicySet, Verdict};
use crate::routing::UnknownSubject;

/// An evaluation whose tuple passed the checks: what to look up and decide.
pub(crate) struct Checked {
    pub(crate) subject: String,
    pub(crate) purpose: String,
    pub(crate) gpc: bool,
}

/// The AuthZEN subject is the calling service itself, the action a purpose its token may
/// declare and some loaded policy defines, the resource a data subject. `header_gpc` is the
/// request's `Sec-GPC: 1`; `context.gpc: true` counts as well (either signal opts out).
pub(crate) fn check(
    e: Evaluation<'_>,
    caller: &Caller,
    header_gpc: bool,
    policies: &PolicySet,
) -> Result<Checked, GatewayError> {
    let bad = |m: &str| GatewayError::BadRequest(m.to_owned());
    let subject = e
        .subject
        .ok_or_else(|| bad("the evaluation has no 'subject' (the calling service)"))?;
    if subject.kind != "service" {
        return Err(bad(
            "subject.type must be \"service\": the subject is the calling service itself",
        ));
    }
    if subject.id != caller.name {
        return Err(GatewayError::ForbiddenPurpose(
            "subject.id must be the caller's own name (the token's sub): a service asks only for itself".into(),
        ));
    }
    let action = e.action.ok_or_else(|| {
        GatewayError::MissingPurpose(
            "the evaluation has no 'action'; name the purpose in action.name".into(),
        )
    })?;
    let purpose = action.name.as_str();
    crate::consent::validate_purpose(purpose).map_err(|_| {
        GatewayError::UnknownPurpose(
            "action.name must be one purpose name (lower-case letters, digits, '_')".into(),
        )
    })?;
    if !caller.may_declare(purpose) {
        return Err(GatewayError::ForbiddenPurpose(format!(
            "this caller may not declare purpose '{purpose}' (not in its token's purposes)"
        )));
    }
    if !policies.iter().any(|p| p.purpose(purpose).is_some()) {
        return Err(GatewayError::UnknownPurpose(format!(
            "purpose '{purpose}' is not defined by any loaded policy"
        )));
    }
    let resource = e
        .resource
        .ok_or_else(|| bad("the evaluation has no 'resource' (the data subject)"))?;
    if resource.kind != "data_subject" {
        return Err(bad(
            "resource.type must be \"data_subject\": the resource is the person whose data it is",
        ));
    }
    crate::consent::validate_subject(&resource.id).map_err(|e| {
        GatewayError::BadRequest(format!("resource.id is not a valid subject id: {e}"))
    })?;
    let context_gpc = match e.context.and_then(|c| c.get("gpc")) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("context.gpc must be true or false")),
    };
    Ok(Checked {
        subject: resource.id.clone(),
        purpose: purpose.to_owned(),
        gpc: header_gpc || context_gpc,
    })
}

/// The result of one evaluation (its answer went to the request's [`Answers`]): its boolean
/// and its record.
pub(crate) struct Evaluated {
    pub(crate) decision: bool,
    pub(crate) entry: AuditEntry,
}

/// What every record of the request shares.
pub(crate) struct Shared<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) caller: &'a str,
    pub(crate) path: &'a str,
    pub(crate) policies: &'a PolicySet,
    pub(crate) default_region: &'a str,
    pub(crate) now: OffsetDateTime,
    /// The HTTP status the records say was released.
    pub(crate) status: u16,
}

fn entry(shared: &Shared<'_>, subject: Option<String>, purpose: Option<String>) -> AuditEntry {
    AuditEntry {
        request_id: shared.request_id.to_owned(),
        caller: Some(shared.caller.to_owned()),
        subject,
        purpose,
        region: None,
        route: Some(super::ROUTE.to_owned()),
        method: "POST".to_owned(),
        path: shared.path.to_owned(),
        decision: Decision::Deny,
        reason: String::new(),
        policy: None,
        consent: crate::pipeline::consent_used(None),
        status: shared.status,
        fields_removed: Vec::new(),
        redactions: Default::default(),
        collection: None,
    }
}

/// An evaluation refused before a decision: `decision: false` with the error in `context`.
pub(crate) fn refused(
    shared: &Shared<'_>,
    e: Evaluation<'_>,
    err: &GatewayError,
    answers: &mut Answers,
) -> Evaluated {
    let subject = e
        .resource
        .map(|r| r.id.clone())
        .filter(|id| crate::consent::validate_subject(id).is_ok());
    let purpose = e
        .action
        .map(|a| a.name.clone())
        .filter(|p| crate::consent::validate_purpose(p).is_ok());
    denied(entry(shared, subject, purpose), err, answers)
}

/// A refused evaluation: `decision: false` with the error in `context`, recorded with its code.
fn denied(mut record: AuditEntry, err: &GatewayError, answers: &mut Answers) -> Evaluated {
    record.reason = err.code().to_owned();
    answers.refused(err);
    Evaluated {
        decision: false,
        entry: record,
    }
}

/// Decides a checked evaluation from its store lookup. A subject whose region lacks the
/// purpose (or has no policy) is refused: the evaluation comes with the error the single
/// endpoint answers with.
pub(crate) fn decide(
    shared: &Shared<'_>,
    c: Checked,
    lookup: Lookup,
    answers: &mut Answers,
    rules: &mut RulesCache,
) -> (Evaluated, Option<GatewayError>) {
    let question = Question {
        policies: shared.policies,
        default_region: shared.default_region,
        unknown_subject: UnknownSubject::DefaultRegion,
        purpose: &c.purpose,
        gpc: c.gpc,
        now: shared.now,
    };
    let answer = match decide::subject(&question, lookup.region, lookup.consent.as_ref()) {
        Ok(a) => a,
        Err(why) => {
            if let Unanswered::NoPolicy(region) = &why {
                tracing::error!(%region, request_id = shared.request_id, "no policy loaded for region; denying");
            }
            let err = why.to_error(&c.purpose);
            let region = why.region().map(str::to_owned);
            return (
                refused_after_lookup(shared, c, region, &err, answers),
                Some(err),
            );
        }
    };
    let verdict = answer.decision.verdict;
    // Report mode decides and records "would deny" but does not enforce it, exactly as the
    // proxy releases the (minimised) data.
    let decision = verdict != Verdict::Deny;
    let rules = rules.get(&answer.policy, &answer.purpose);
    answers.decided(
        rules,
        &Decided {
            decision,
            reason: answer.decision.reason,
            verdict: verdict.as_str(),
            region: &answer.region,
            consent: answer.consent,
        },
    );
    let mut record = entry(shared, Some(c.subject), Some(c.purpose));
    record.region = Some(answer.region);
    record.policy = Some(rules.label.clone());
    record.consent = crate::pipeline::consent_used(Some(answer.consent));
    record.reason = answer.decision.reason.to_owned();
    record.decision = match verdict {
        Verdict::Allow => Decision::Allow,
        Verdict::Deny => Decision::Deny,
        Verdict::ReportDeny => Decision::ReportDeny,
    };
    (
        Evaluated {
            decision,
            entry: record,
        },
        None,
    )
}

/// A refusal that happened after the checks (the region lacks the purpose, no policy):
/// recorded with what was resolved.
fn refused_after_lookup(
    shared: &Shared<'_>,
    c: Checked,
    region: Option<String>,
    err: &GatewayError,
    answers: &mut Answers,
) -> Evaluated {
    let mut record = entry(shared, Some(c.subject), Some(c.purpose));
    record.region = region;
    denied(record, err, answers)
}
