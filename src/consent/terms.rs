//! What the loaded policies say about a purpose, as receipts show it: lawful basis, consent
//! mode, categories, third party and how long receipts are kept.

use std::sync::Arc;
use std::time::Duration;

use crate::policy::{Basis, ConsentMode, Policy, PolicySet, Purpose};

/// The policy terms of one purpose.
#[derive(Debug, Clone)]
pub struct Terms {
    /// The policy the terms come from.
    pub policy: Arc<Policy>,
    /// The purpose as that policy defines it.
    pub purpose: Arc<Purpose>,
}

impl Terms {
    /// The terms of `purpose` for a subject in `region`: that region's policy when it defines
    /// the purpose, else the first policy (by region name) that does.
    pub fn lookup(set: &PolicySet, region: &str, purpose: &str) -> Option<Self> {
        let found = |policy: Arc<Policy>| {
            let p = policy.purpose(purpose)?.clone();
            Some(Self { policy, purpose: p })
        };
        set.get(region)
            .and_then(found)
            .or_else(|| set.iter().find_map(|p| found(p.clone())))
    }

    /// The policy label, `region@version`.
    pub fn label(&self) -> String {
        self.policy.label()
    }

    /// How long a receipt is kept once it no longer sets the current state.
    pub fn retention(&self) -> Duration {
        self.policy.receipt_retention
    }

    /// The lawful basis as the DPV GDPR extension names it (`eu-gdpr:A6-1-a` for consent …).
    pub fn lawful_basis_dpv(&self) -> &'static str {
        match self.purpose.basis {
            Basis::Consent => "eu-gdpr:A6-1-a",
            Basis::Contract => "eu-gdpr:A6-1-b",
            Basis::LegalObligation => "eu-gdpr:A6-1-c",
            Basis::VitalInterest => "eu-gdpr:A6-1-d",
            Basis::PublicTask => "eu-gdpr:A6-1-e",
            Basis::LegitimateInterest => "eu-gdpr:A6-1-f",
        }
    }

    /// Whether the controller relies on implied consent: a `basis: consent, consent: opt_out`
    /// purpose is processed unless the person objects.
    pub fn implied(&self) -> bool {
        self.purpose.consent == Some(ConsentMode::OptOut)
    }
}

/// A duration as ISO 8601 (`P6Y` in years of 365.25 days, `P400D`, or `PT90S`), the form
/// 27560 records use.
pub(crate) fn iso8601(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(31_557_600) && secs > 0 {
        format!("P{}Y", secs / 31_557_600)
    } else if secs.is_multiple_of(86_400) {
        format!("P{}D", secs / 86_400)
    } else {
        format!("PT{secs}S")
    }
}

/// How a data subject withdraws consent for `purpose`, as receipts state it.
pub(crate) fn withdrawal_method(
    subject: &str,
    purpose: &str,
    contact: Option<(&str, &str)>,
) -> String {
    let api =
        format!("DELETE /v1/subjects/{subject}/consents/{purpose} on the consentgate admin API");
    match contact {
        Some((who, email)) => format!("ask {who} ({email}) to withdraw, who records it by {api}"),
        None => format!("recorded by {api}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EU: &str = "region: eu\nname: EU\npurposes:\n  marketing:\n    basis: consent\n    consent: opt_out\n    fields: {allow: [id]}\n";
    const BR: &str = "region: br\nname: BR\npurposes:\n  credit:\n    basis: legitimate_interest\n    fields: {allow: [id]}\n  marketing:\n    basis: consent\n    fields: {allow: [id]}\n";

    #[test]
    fn lookup_prefers_the_subjects_region_then_any_policy() {
        let set = PolicySet::from_texts(&[("eu.yaml", EU), ("br.yaml", BR)]).unwrap();
        let t = Terms::lookup(&set, "eu", "marketing").unwrap();
        assert_eq!(t.policy.region, "eu");
        assert!(t.implied());
        assert_eq!(t.lawful_basis_dpv(), "eu-gdpr:A6-1-a");
        let t = Terms::lookup(&set, "eu", "credit").unwrap();
        assert_eq!(t.policy.region, "br", "eu does not define it; br does");
        assert_eq!(t.lawful_basis_dpv(), "eu-gdpr:A6-1-f");
        assert!(!t.implied());
        assert!(Terms::lookup(&set, "br", "marketing").is_some_and(|t| t.policy.region == "br"));
        assert!(Terms::lookup(&set, "eu", "nothing").is_none());
        assert!(Terms::lookup(&set, "nowhere", "marketing").is_some());
    }

    #[test]
    fn iso8601_durations() {
        assert_eq!(iso8601(crate::policy::DEFAULT_RECEIPT_RETENTION), "P6Y");
        assert_eq!(iso8601(Duration::from_secs(400 * 86_400)), "P400D");
        assert_eq!(iso8601(Duration::from_secs(90)), "PT90S");
    }
}
