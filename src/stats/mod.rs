//! Compliance figures: what counts as an incident, a GPC signal applied, and the consent
//! figures per region × purpose, shared by the Prometheus series ([`crate::metrics`]) and
//! `GET /v1/stats` (accesses from the audit log over a window: [`StatsIndex`]).
//!
//! Every figure is defined in README ("Compliance metrics").

mod summary;
mod window;

pub use summary::{Cell, Summary};
pub use window::{StatsIndex, Window};

use crate::audit::Decision;
use crate::consent::{StateCounts, TallyCell};
use crate::metrics::UNLISTED;
use crate::policy::PolicySet;

/// Reasons of refusals made because something needed to decide safely was missing: a body
/// that could not be decoded or minimised, the consent store or the audit log unavailable.
pub const FAIL_CLOSED_REASONS: [&str; 4] = [
    "unprocessable_upstream_body",
    "collection_too_large",
    "store_unavailable",
    "audit_unavailable",
];

/// A kind of compliance incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentKind {
    /// A report-mode policy would have denied; the access went through.
    ReportDeny,
    /// A refusal for one of [`FAIL_CLOSED_REASONS`].
    FailClosed,
    /// An access whose audit record could not be written (answered `503`).
    AuditFailure,
    /// A policy reload refused (the last good set kept serving).
    PolicyReloadFailure,
}

impl IncidentKind {
    /// The label value (`report_deny`, `fail_closed`, `audit_failure`,
    /// `policy_reload_failure`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReportDeny => "report_deny",
            Self::FailClosed => "fail_closed",
            Self::AuditFailure => "audit_failure",
            Self::PolicyReloadFailure => "policy_reload_failure",
        }
    }
}

/// The incident an audited access is, if any.
pub fn incident_of(decision: Decision, reason: &str) -> Option<IncidentKind> {
    match decision {
        Decision::ReportDeny => Some(IncidentKind::ReportDeny),
        Decision::Deny | Decision::Allow if FAIL_CLOSED_REASONS.contains(&reason) => {
            Some(IncidentKind::FailClosed)
        }
        _ => None,
    }
}

/// Whether the access was decided by a `Sec-GPC: 1` signal (denied, or marked in report
/// mode).
pub fn gpc_applied(reason: &str) -> bool {
    reason == "gpc_opt_out"
}

/// The consent figures of one region × purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentCell {
    /// A region with a loaded policy, or [`UNLISTED`].
    pub region: String,
    /// A purpose of that region's policy, or [`UNLISTED`].
    pub purpose: String,
    /// Subjects per state.
    pub counts: StateCounts,
}

/// The store's tally as figures: one cell per region × purpose of the loaded policies (zeros
/// included), subjects without a stored region under the default region, and anything the
/// policies do not name summed under [`UNLISTED`] (only when non-zero).
pub fn consent_cells(
    set: &PolicySet,
    tally: &[TallyCell],
    default_region: &str,
) -> Vec<ConsentCell> {
    let mut cells: std::collections::BTreeMap<(String, String), StateCounts> = set
        .iter()
        .flat_map(|p| {
            p.purposes
                .keys()
                .map(|purpose| ((p.region.clone(), purpose.clone()), StateCounts::default()))
        })
        .collect();
    for t in tally {
        let region = t.region.as_deref().unwrap_or(default_region);
        let key = match cells.contains_key(&(region.to_owned(), t.purpose.clone())) {
            true => (region.to_owned(), t.purpose.clone()),
            false => (UNLISTED.to_owned(), UNLISTED.to_owned()),
        };
        let cell = cells.entry(key).or_default();
        for (sum, n) in cell.0.iter_mut().zip(t.counts.0) {
            *sum += n;
        }
    }
    cells
        .into_iter()
        .map(|((region, purpose), counts)| ConsentCell {
            region,
            purpose,
            counts,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_and_gpc_are_named_by_decision_and_reason() {
        assert_eq!(
            incident_of(Decision::ReportDeny, "consent_denied"),
            Some(IncidentKind::ReportDeny)
        );
        assert_eq!(
            incident_of(Decision::Deny, "store_unavailable"),
            Some(IncidentKind::FailClosed)
        );
        assert_eq!(
            incident_of(Decision::Allow, "unprocessable_upstream_body"),
            Some(IncidentKind::FailClosed)
        );
        assert_eq!(incident_of(Decision::Deny, "consent_required"), None);
        assert_eq!(incident_of(Decision::Allow, "opt_in_consent_granted"), None);
        assert!(gpc_applied("gpc_opt_out"));
        assert!(!gpc_applied("consent_denied"));
    }
}
