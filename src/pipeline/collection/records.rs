//! Per-record decisions for a batch of a collection's records: each record's subject, one
//! batched store call for all of them, the one decision function ([`decide::subject`]) per
//! record, minimisation by the record's own region's plan (one pass over the record's text,
//! written straight to the released body), and one audit entry per record.

use std::borrow::Cow;

use time::OffsetDateTime;

use super::super::audit::consent_used;
use super::super::decide::{self, Question};
use crate::audit::{AuditEntry, CollectionPos, Decision};
use crate::consent::Lookup;
use crate::error::GatewayError;
use crate::policy::Verdict;
use crate::routing::{Route, SubjectCase};
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

/// One record of a batch, as read from the upstream.
pub(crate) enum Record<'a> {
    /// A JSON value (validated): its text, and the string at the route's subject path.
    Json {
        text: &'a [u8],
        subject: Option<Cow<'a, str>>,
    },
    /// Not a record the gateway can read (an NDJSON line that is not a JSON object).
    Unreadable,
}

/// A record's subject: the string at the subject path after the route's `subject_case`, if
/// it is a valid subject id; anything else is `None` (the record is withheld).
fn valid_subject(found: Option<&Cow<'_, str>>, case: SubjectCase) -> Option<String> {
    let mut id = found?.as_ref().to_owned();
    if case == SubjectCase::Lower {
        id.make_ascii_lowercase();
    }
    crate::consent::validate_subject(&id).ok()?;
    Some(id)
}

/// Decides a batch of records with one store call. Each released record is minimised by its
/// own region's plan and appended to `out` followed by `sep`; withheld ones leave no trace
/// there. Returns one audit entry per record, in order, at positions from `start.index` (of
/// `start.count`); the entries whose decision is not `deny` are the released ones.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decide(
    state: &State,
    route: &Route,
    req: &Request,
    records: &[Record<'_>],
    start: CollectionPos,
    status: u16,
    out: &mut Vec<u8>,
    sep: u8,
) -> Result<Vec<AuditEntry>, GatewayError> {
    let subjects: Vec<Option<String>> = records
        .iter()
        .map(|r| match r {
            Record::Json { subject, .. } => valid_subject(subject.as_ref(), route.subject_case),
            Record::Unreadable => None,
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
    let policies = state.policies.current();
    let question = Question {
        policies: &policies,
        default_region: &state.settings.gateway.default_region,
        unknown_subject: route.unknown_subject,
        purpose: &req.purpose,
        gpc: req.gpc,
        now: OffsetDateTime::now_utc(),
    };
    let mut entries = Vec::with_capacity(records.len());
    for (i, (record, subject)) in records.iter().zip(&subjects).enumerate() {
        let mut entry = match (record, subject) {
            (Record::Json { text, .. }, Some(subject)) => {
                // Repeated subjects share one lookup.
                match distinct
                    .binary_search(&subject.as_str())
                    .ok()
                    .and_then(|at| found.get(at))
                {
                    Some(lookup) => one(&question, req, text, subject, lookup, status, out, sep),
                    // Every distinct subject was looked up; fail closed all the same.
                    None => req.entry(Decision::Deny, "internal", status),
                }
            }
            (Record::Json { .. }, None) => req.entry(Decision::Deny, "invalid_subject", status),
            (Record::Unreadable, _) => req.entry(Decision::Deny, "unprocessable_record", status),
        };
        entry.collection = Some(CollectionPos {
            index: start.index + i as u64,
            count: start.count,
        });
        entries.push(entry);
    }
    Ok(entries)
}

/// One record with a valid subject: decided exactly as a single-subject request; released
/// (minimised into `out`, then `sep`) unless denied.
#[allow(clippy::too_many_arguments)]
fn one(
    question: &Question<'_>,
    req: &Request,
    text: &[u8],
    subject: &str,
    lookup: &Lookup,
    status: u16,
    out: &mut Vec<u8>,
    sep: u8,
) -> AuditEntry {
    let mut entry = req.entry(Decision::Deny, "deny", status);
    entry.subject = Some(subject.to_owned());
    let answer = match decide::subject(question, lookup.region.clone(), lookup.consent.as_ref()) {
        Ok(answer) => answer,
        Err(why) => {
            if let decide::Unanswered::NoPolicy(region) = &why {
                tracing::error!(%region, request_id = %req.request_id, "no policy loaded for region; withholding the record");
            }
            entry.region = why.region().map(str::to_owned);
            entry.reason = why.reason().to_owned();
            return entry;
        }
    };
    entry.region = Some(answer.region);
    entry.policy = Some(answer.policy.label());
    entry.consent = consent_used(Some(answer.consent));
    entry.reason = answer.decision.reason.to_owned();
    let decision = match answer.decision.verdict {
        Verdict::Allow => Decision::Allow,
        Verdict::ReportDeny => Decision::ReportDeny,
        Verdict::Deny => return entry,
    };
    // Report mode skips only the consent denial: the record is minimised like an allowed one.
    let mark = out.len();
    match answer.purpose.minimise_json(text, out) {
        Ok(outcome) => {
            out.push(sep);
            entry.decision = decision;
            entry.fields_removed = outcome.fields_removed;
            entry.redactions = outcome.redactions;
        }
        // The text was validated when it was read, so this is not expected; withhold it.
        Err(e) => {
            out.truncate(mark);
            tracing::error!(error = %e, request_id = %req.request_id, "a collection record could not be minimised; withholding it");
            entry.reason = "unprocessable_record".to_owned();
        }
    }
    entry
}
