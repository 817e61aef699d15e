//! The consent decision (SPEC request pipeline, step 5). Pure.

use serde::{Deserialize, Serialize};

use super::model::{Basis, ConsentMode, Mode, Policy, Purpose};

/// The subject's consent state for a purpose, as the consent store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentState {
    /// Granted and not expired.
    Granted,
    /// The subject said no.
    Denied,
    /// A consent was withdrawn.
    Withdrawn,
    /// A granted consent passed its expiry.
    Expired,
    /// Nothing recorded.
    None,
}

impl ConsentState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::None => "none",
        }
    }
}

/// What the gateway does with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Release the (minimised, redacted) data.
    Allow,
    /// Refuse (`403 consent_required`).
    Deny,
    /// Would deny, but the policy is in report mode: release, minimised and redacted like
    /// [`Verdict::Allow`], and audit as `report_deny`.
    ReportDeny,
}

impl Verdict {
    /// `allow`, `deny` or `report_deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ReportDeny => "report_deny",
        }
    }
}

/// A verdict and a short machine-readable reason (for the audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// E.g. `opt_in_consent_granted`, `consent_withdrawn`, `gpc_opt_out`, `basis_contract`.
    pub reason: &'static str,
}

/// Decides whether `purpose` of `policy` may see the subject's data.
///
/// - `basis: consent`, `consent: opt_in`: allowed only with `Granted`.
/// - `basis: consent`, `consent: opt_out`: allowed unless `Denied` or `Withdrawn`
///   (`Expired` and `None` mean no objection is on record).
/// - For `opt_out` purposes, `Sec-GPC: 1` (`gpc`) denies when the purpose has
///   `gpc_opt_out: true` and the policy has `honor_gpc: true`. An explicit `opt_in` grant is
///   not overridden by GPC (SPEC step 5: opt-in needs a granted, unexpired consent).
/// - Other bases are allowed (reason `basis_<name>`).
///
/// In report mode (policy or purpose override) a deny becomes [`Verdict::ReportDeny`].
pub fn decide(policy: &Policy, purpose: &Purpose, consent: ConsentState, gpc: bool) -> Decision {
    let denied = |reason| Decision {
        verdict: match policy.effective_mode(purpose) {
            Mode::Enforce => Verdict::Deny,
            Mode::Report => Verdict::ReportDeny,
        },
        reason,
    };
    let allowed = |reason| Decision {
        verdict: Verdict::Allow,
        reason,
    };
    let gpc_applies = gpc && purpose.gpc_opt_out && policy.honor_gpc;
    match (purpose.basis, purpose.consent.unwrap_or(ConsentMode::OptIn)) {
        (Basis::Consent, ConsentMode::OptIn) => match consent {
            ConsentState::Granted => allowed("opt_in_consent_granted"),
            ConsentState::Denied => denied("consent_denied"),
            ConsentState::Withdrawn => denied("consent_withdrawn"),
            ConsentState::Expired => denied("consent_expired"),
            ConsentState::None => denied("consent_missing"),
        },
        (Basis::Consent, ConsentMode::OptOut) => match consent {
            ConsentState::Denied => denied("consent_denied"),
            ConsentState::Withdrawn => denied("consent_withdrawn"),
            _ if gpc_applies => denied("gpc_opt_out"),
            _ => allowed("opt_out_not_objected"),
        },
        (Basis::Contract, _) => allowed("basis_contract"),
        (Basis::LegalObligation, _) => allowed("basis_legal_obligation"),
        (Basis::LegitimateInterest, _) => allowed("basis_legitimate_interest"),
        (Basis::VitalInterest, _) => allowed("basis_vital_interest"),
        (Basis::PublicTask, _) => allowed("basis_public_task"),
    }
}

impl Policy {
    /// [`decide`] for this policy.
    pub fn decide(&self, purpose: &Purpose, consent: ConsentState, gpc: bool) -> Decision {
        decide(self, purpose, consent, gpc)
    }
}
