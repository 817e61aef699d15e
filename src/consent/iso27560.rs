//! Consent records shaped as ISO/IEC TS 27560:2023 describes them, with the field names of
//! the W3C DPV community group's guide to 27560 ("Consent Records and Receipts as per ISO/IEC
//! TS 27560:2023 using DPV"): one record per purpose, its events (every receipt of that
//! purpose, oldest first) and the parties, notice, lawful basis, retention and withdrawal
//! method. States and lawful bases are DPV concepts (`dpv:ConsentGiven`, `eu-gdpr:A6-1-a`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::controller::Controller;
use super::kantara::{RenderError, postal_address};
use super::model::{ConsentStatus, Receipt};
use super::terms::{Terms, iso8601, withdrawal_method};
use super::timefmt;

/// The `schema_version` of records this module writes.
pub const ISO27560_SCHEMA_VERSION: &str = "consentgate-iso27560-v1";

fn time(t: OffsetDateTime) -> Value {
    timefmt::format(t).map_or(Value::Null, Value::from)
}

/// The DPV consent state a receipt sets, at `now` (an elapsed grant is `dpv:ConsentExpired`).
fn state(r: &Receipt, now: OffsetDateTime) -> &'static str {
    match r.status {
        ConsentStatus::Granted if r.expires_at.is_some_and(|e| e <= now) => "dpv:ConsentExpired",
        ConsentStatus::Granted => "dpv:ConsentGiven",
        ConsentStatus::Denied => "dpv:ConsentRefused",
        ConsentStatus::Withdrawn => "dpv:ConsentWithdrawn",
    }
}

fn event(r: &Receipt, now: OffsetDateTime) -> Value {
    let mut e = json!({
        "event_id": r.id,
        "event_time": time(r.recorded_at),
        "event_type": if r.source.is_some() || r.collection_method.is_some() { "dpv:ExplicitlyExpressedConsent" } else { "dpv:Consent" },
        "event_state": state(r, now),
        "collection_method": r.source.as_deref().or(r.collection_method.as_deref()),
        "recorded_by": r.recorded_by,
        "sha256": r.sha256,
    });
    if let Some(expiry) = r.expires_at {
        e["validity_end"] = time(expiry);
        e["validity_duration"] = iso8601(
            (expiry - r.recorded_at)
                .max(time::Duration::ZERO)
                .unsigned_abs(),
        )
        .into();
    }
    e
}

/// The subject's consent records, one per purpose, sorted by purpose. `controller` names the
/// PII controller and the privacy notice when configured.
pub fn iso27560_records(
    subject: &str,
    history: &[Receipt],
    controller: Option<&Controller>,
    terms: &dyn Fn(&str) -> Option<Terms>,
    now: OffsetDateTime,
) -> Result<Value, RenderError> {
    if history.is_empty() {
        return Err(RenderError::Empty);
    }
    let mut by_purpose: BTreeMap<&str, Vec<&Receipt>> = BTreeMap::new();
    for r in history {
        by_purpose.entry(&r.purpose).or_default().push(r);
    }
    let parties: Vec<Value> = controller
        .map(|c| {
            vec![json!({
                "party_type": "dpv:DataController",
                "party_name": c.name,
                "party_contact": c.contact,
                "party_address": postal_address(c),
                "party_email": c.email,
                "party_phone": c.phone,
                "jurisdiction": c.jurisdiction,
            })]
        })
        .unwrap_or_default();
    let mut records = Vec::with_capacity(by_purpose.len());
    for (purpose, receipts) in by_purpose {
        let t = terms(purpose).ok_or_else(|| RenderError::UnknownPurpose(purpose.to_owned()))?;
        let Some(last) = receipts.last() else {
            continue;
        };
        let mut p = json!({
            "purpose": purpose,
            "purpose_category": t.purpose.purpose_category,
            "lawful_basis": t.lawful_basis_dpv(),
            "lawful_basis_name": t.purpose.basis.as_str(),
            "pii_categories": t.purpose.pii_category,
            "sensitive_pii_categories": t.purpose.spi_category,
            "policy": t.label(),
            "retention_period": iso8601(t.retention()),
            "withdrawal_method": withdrawal_method(subject, purpose, controller.map(|c| (c.contact.as_str(), c.email.as_str()))),
        });
        if let Some(tp) = &t.purpose.third_party {
            p["recipient_third_parties"] = json!([{"party_name": tp}]);
        }
        if let Some(c) = controller {
            p["services"] = json!([c.service]);
            p["jurisdiction"] = c.jurisdiction.clone().into();
        }
        let mut record = json!({
            "schema_version": ISO27560_SCHEMA_VERSION,
            "conforms_to": "ISO/IEC TS 27560:2023",
            "record_id": last.id,
            "pii_principal_id": subject,
            "consent_state": state(last, now),
            "recorded_by": last.recorded_by,
            "purposes": [p],
            "events": receipts.iter().map(|r| event(r, now)).collect::<Vec<_>>(),
            "pii_controllers": parties,
        });
        if let Some(c) = controller {
            record["notice"] = json!({"notice_url": c.policy_url, "language": c.language});
        }
        records.push(record);
    }
    Ok(json!({"subject": subject, "records": records}))
}
