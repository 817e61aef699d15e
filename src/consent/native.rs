//! consentgate's own receipt format: the stored receipts, each with the policy terms it was
//! recorded under (lawful basis, policy version, retention, withdrawal method) and who
//! recorded it, plus the region receipts.

use serde_json::{Value, json};

use super::controller::Controller;
use super::model::{History, Receipt};
use super::terms::{Terms, iso8601, withdrawal_method};

/// The `schema_version` of native receipts.
pub const NATIVE_SCHEMA_VERSION: &str = "consentgate-receipt-v1";

fn entry(
    subject: &str,
    r: &Receipt,
    controller: Option<&Controller>,
    terms: &dyn Fn(&str) -> Option<Terms>,
) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    // Receipts of purposes no loaded policy defines any more keep their stored fields only.
    if let Some(t) = terms(&r.purpose) {
        v["lawful_basis"] = t.purpose.basis.as_str().into();
        v["policy"] = t.label().into();
        v["retention"] = json!({
            "period": iso8601(t.retention()),
            "rule": "kept while it sets the current state, then for this period",
        });
    }
    v["withdrawal_method"] = withdrawal_method(
        subject,
        &r.purpose,
        controller.map(|c| (c.contact.as_str(), c.email.as_str())),
    )
    .into();
    v
}

/// The native receipt document for a subject's history.
pub fn native_receipts(
    subject: &str,
    history: &History,
    controller: Option<&Controller>,
    terms: &dyn Fn(&str) -> Option<Terms>,
) -> Value {
    json!({
        "schema_version": NATIVE_SCHEMA_VERSION,
        "subject": subject,
        "privacy_notice": controller.map(|c| c.policy_url.as_str()),
        "controller": controller.map(|c| c.name.as_str()),
        "receipts": history
            .receipts
            .iter()
            .map(|r| entry(subject, r, controller, terms))
            .collect::<Vec<_>>(),
        "regions": history.regions,
    })
}
