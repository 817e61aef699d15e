//! Admin acts as audit records: an auditor's read of the audit log or of a subject's access
//! report, and a policy reload, each name the caller (`sub`), the endpoint (the route
//! table's path pattern, so no personal values beyond the subject id a report is about),
//! the outcome and the time. A read that cannot be recorded is not released (`503
//! audit_unavailable`): nobody looks at the log unseen.

use http::StatusCode;

use super::Req;
use super::request::query;
use super::routes::{AdminRoute, Handler};
use crate::audit::{AuditEntry, ConsentUsed, Decision};
use crate::error::GatewayError;

/// What kind of admin act a record is about (its `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// `GET /v1/audit`.
    AuditRead,
    /// `GET /v1/subjects/{s}/report`.
    ReportRead,
    /// `POST /v1/policies/reload` that swapped the set.
    PolicyReload,
    /// `POST /v1/policies/reload` refused (invalid set).
    PolicyReloadRefused,
}

impl Act {
    fn reason(self) -> &'static str {
        match self {
            Self::AuditRead => "admin_audit_read",
            Self::ReportRead => "admin_report_read",
            Self::PolicyReload => "admin_policy_reload",
            Self::PolicyReloadRefused => "admin_policy_reload_refused",
        }
    }
}

/// The read this request makes that must be recorded, if any.
pub(crate) fn recorded_read(entry: &AdminRoute) -> Option<Act> {
    match entry.handler {
        Handler::AuditList => Some(Act::AuditRead),
        Handler::Report => Some(Act::ReportRead),
        _ => None,
    }
}

/// The subject a read is about: the report's subject, or the audit query's `subject` filter.
fn subject_of(req: &Req<'_>, act: Act) -> Option<String> {
    match act {
        Act::ReportRead => Some(req.param(0).to_owned()),
        Act::AuditRead => query(
            req.query,
            &[
                "subject", "caller", "purpose", "decision", "from", "to", "limit", "cursor",
            ],
        )
        .ok()?
        .into_iter()
        .find(|(k, _)| *k == "subject")
        .map(|(_, v)| v)
        .filter(|s| crate::consent::validate_subject(s).is_ok()),
        Act::PolicyReload | Act::PolicyReloadRefused => None,
    }
}

/// Appends the record of `act` (answered with `status`); only successful reads are records
/// of someone having looked.
pub(crate) async fn record(
    req: &Req<'_>,
    entry: &AdminRoute,
    act: Act,
    status: StatusCode,
) -> Result<(), GatewayError> {
    if matches!(act, Act::AuditRead | Act::ReportRead) && !status.is_success() {
        return Ok(());
    }
    let audit_entry = AuditEntry {
        request_id: req.request_id.to_owned(),
        caller: req.caller.map(|c| c.name.clone()),
        subject: subject_of(req, act),
        purpose: None,
        region: None,
        route: Some("admin".to_owned()),
        method: entry.method.as_str().to_owned(),
        path: entry.path.to_owned(),
        decision: Decision::Allow,
        reason: act.reason().to_owned(),
        policy: None,
        consent: ConsentUsed::NotApplicable,
        status: status.as_u16(),
        fields_removed: Vec::new(),
        redactions: Default::default(),
        collection: None,
    };
    req.state.audit.append(audit_entry).await.map_err(|e| {
        tracing::error!(error = %e, reason = act.reason(), "admin act could not be audited");
        GatewayError::AuditUnavailable
    })?;
    Ok(())
}
