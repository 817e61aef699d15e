//! Per-record decisions for a batch of a collection's records: each record's subject, one
//! batched store call for all of them, the one decision function ([`decide::subject`]) per
//! record, minimisation by the record's own region's plan, and one audit entry per record.

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;

use super::super::audit::consent_used;
use super::super::decide::{self, Question};
use crate::audit::{AuditEntry, CollectionPos, Decision};
use crate::consent::Lookup;
use crate::error::GatewayError;
use crate::policy::{Purpose, Verdict};
use crate::redact::Outcome;
use crate::routing::{Collection, Route, SubjectCase, get_path};
use crate::state::State;

/// What every record of one response shares.
pub(crate) struct Request {
    pub(crate) request_id: String,
    pub(crate) caller: String,
    pub(crate) route: String,
    pub(crate) route_index: usize,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) purpose: String,
    pub(crate) gpc: bool,
}

impl Request {
    /// An audit entry for this request with no subject (nothing to attribute, or a record
    /// that named no valid subject).
    pub(crate) fn entry(&self, decision: Decision, reason: &str, status: u16) -> AuditEntry {
        AuditEntry {
            request_id: self.request_id.clone(),
            caller: Some(self.caller.clone()),
            subject: None,
            purpose: Some(self.purpose.clone()),
            region: None,
            route: Some(self.route.clone()),
            method: self.method.clone(),
            path: self.path.clone(),
            decision,
            reason: reason.to_owned(),
            policy: None,
            consent: crate::audit::ConsentUsed::NotApplicable,
            status,
            fields_removed: Vec::new(),
            redactions: Default::default(),
            collection: None,
        }
    }
}

/// The one place a released record is minimised and redacted (today: the tree walker).
fn minimise(purpose: &Purpose, record: &mut Value) -> Outcome {
    purpose.apply(record)
}

/// A record's subject: a string at `collection.subject`, after the route's `subject_case`,
/// that is a valid subject id; anything else is `None` (the record is withheld).
fn subject_of(record: &Value, collection: &Collection, case: SubjectCase) -> Option<String> {
    let mut id = get_path(record, &collection.subject)?.as_str()?.to_owned();
    if case == SubjectCase::Lower {
        id.make_ascii_lowercase();
    }
    crate::consent::validate_subject(&id).ok()?;
    Some(id)
}

/// Decides a batch of records. `records[i]` is `None` for a line that was not a JSON record.
/// Released records are minimised in place and marked `true`; withheld ones `false`. Returns
/// one audit entry per record, in order, at positions from `start.index` (of `start.count`).
/// One store call.
pub(crate) async fn decide(
    state: &State,
    route: &Route,
    collection: &Collection,
    req: &Request,
    records: &mut [Option<Value>],
    start: CollectionPos,
    status: u16,
) -> Result<(Vec<bool>, Vec<AuditEntry>), GatewayError> {
    let subjects: Vec<Option<String>> = records
        .iter()
        .map(|r| {
            r.as_ref()
                .and_then(|r| subject_of(r, collection, route.subject_case))
        })
        .collect();
    let mut distinct: Vec<&str> = subjects.iter().flatten().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let found = state
        .store
        .lookup_many(&distinct, &req.purpose)
        .await
        .map_err(|e| decide::store_lookup_error(e, &req.request_id))?;
    let lookups: HashMap<&str, Lookup> = distinct.iter().copied().zip(found).collect();
    let policies = state.policies.current();
    let question = Question {
        policies: &policies,
        default_region: &state.settings.gateway.default_region,
        unknown_subject: route.unknown_subject,
        purpose: &req.purpose,
        gpc: req.gpc,
        now: OffsetDateTime::now_utc(),
    };
    let mut keep = Vec::with_capacity(records.len());
    let mut entries = Vec::with_capacity(records.len());
    for (i, (record, subject)) in records.iter_mut().zip(&subjects).enumerate() {
        let position = CollectionPos {
            index: start.index + i as u64,
            count: start.count,
        };
        let (released, mut entry) = match (record.as_mut(), subject) {
            // Repeated subjects share one lookup.
            (Some(record), Some(subject)) => match lookups.get(subject.as_str()) {
                Some(lookup) => one(&question, req, record, subject, lookup.clone(), status),
                // Every distinct subject was looked up; fail closed all the same.
                None => (false, req.entry(Decision::Deny, "internal", status)),
            },
            (parsed, _) => {
                let reason = if parsed.is_some() {
                    "invalid_subject"
                } else {
                    "unprocessable_record"
                };
                (false, req.entry(Decision::Deny, reason, status))
            }
        };
        entry.collection = Some(position);
        keep.push(released);
        entries.push(entry);
    }
    Ok((keep, entries))
}

/// One record with a valid subject: decided exactly as a single-subject request.
fn one(
    question: &Question<'_>,
    req: &Request,
    record: &mut Value,
    subject: &str,
    lookup: Lookup,
    status: u16,
) -> (bool, AuditEntry) {
    let mut entry = req.entry(Decision::Deny, "deny", status);
    entry.subject = Some(subject.to_owned());
    let answer = match decide::subject(question, lookup.region, lookup.consent.as_ref()) {
        Ok(answer) => answer,
        Err(why) => {
            if let decide::Unanswered::NoPolicy(region) = &why {
                tracing::error!(%region, request_id = %req.request_id, "no policy loaded for region; withholding the record");
            }
            entry.region = why.region().map(str::to_owned);
            entry.reason = why.reason().to_owned();
            return (false, entry);
        }
    };
    entry.region = Some(answer.region);
    entry.policy = Some(answer.policy.label());
    entry.consent = consent_used(Some(answer.consent));
    entry.reason = answer.decision.reason.to_owned();
    entry.decision = match answer.decision.verdict {
        Verdict::Allow => Decision::Allow,
        Verdict::ReportDeny => Decision::ReportDeny,
        Verdict::Deny => return (false, entry),
    };
    // Report mode skips only the consent denial: the record is minimised like an allowed one.
    let outcome = minimise(&answer.purpose, record);
    entry.fields_removed = outcome.fields_removed;
    entry.redactions = outcome.redactions;
    (true, entry)
}
