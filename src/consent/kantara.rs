//! Kantara Initiative Consent Receipt v1.1 (`KI-CR-v1.1.0`) built from a
//! subject's receipt history.
//!
//! Mapping (our choices, since the specification has no withdrawn state):
//! - one service (`Controller::service`) listing every purpose the subject has
//!   a current record for, sorted by purpose name;
//! - `consentType`: `EXPLICIT` for granted, `DENIED` for denied, `WITHDRAWN`
//!   for withdrawn; `termination` says when the grant ends (`expires at …` or
//!   `until withdrawn by the PII principal`) or when it was denied/withdrawn;
//! - `purposeCategory` is `[purpose]`, `piiCategory` is `["unspecified"]`,
//!   `primaryPurpose`, `thirdPartyDisclosure` and `sensitive` are `false`,
//!   `spiCat` is empty: the gateway does not know more;
//! - `consentTimestamp`: epoch seconds of the latest `recorded_at`;
//!   `consentReceiptID`: the id of the latest receipt (so a new change gives a
//!   new receipt id); `collectionMethod`: that receipt's method or `unspecified`.
//! - An empty history gives `consentTimestamp: 0`, an empty
//!   `consentReceiptID` and no purposes; callers should answer 404 instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{ConsentStatus, Receipt};
use super::timefmt;

/// The data controller named on Kantara receipts: the `[controller]` table
/// of the gateway config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    /// Legal name of the controller.
    pub name: String,
    /// Contact person or office (for example the data protection officer).
    pub contact: String,
    /// Postal address.
    pub address: String,
    /// Contact e-mail.
    pub email: String,
    /// Contact phone number.
    pub phone: String,
    /// Jurisdiction of the controller, for example `EU` or `US-CA`.
    pub jurisdiction: String,
    /// URL of the privacy policy.
    pub policy_url: String,
    /// Name of the service the consents are for.
    pub service: String,
    /// Language of the receipt (default `en`).
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "en".to_owned()
}

/// Builds a Kantara Consent Receipt v1.1 for `subject` from its history
/// (oldest first, as returned by `ConsentStore::history`).
pub fn kantara_receipt(subject: &str, history: &[Receipt], controller: &Controller) -> Value {
    let mut latest: BTreeMap<&str, &Receipt> = BTreeMap::new();
    for receipt in history {
        latest.insert(receipt.purpose.as_str(), receipt);
    }
    let purposes: Vec<Value> = latest.values().map(|r| purpose_entry(r)).collect();
    let timestamp = history
        .iter()
        .map(|r| r.recorded_at.unix_timestamp())
        .max()
        .unwrap_or(0);
    let last = history.last();
    json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": controller.jurisdiction,
        "consentTimestamp": timestamp,
        "collectionMethod": last
            .and_then(|r| r.collection_method.as_deref())
            .unwrap_or("unspecified"),
        "consentReceiptID": last.map(|r| r.id.as_str()).unwrap_or(""),
        "language": controller.language,
        "piiPrincipalId": subject,
        "piiControllers": [{
            "piiController": controller.name,
            "contact": controller.contact,
            "address": controller.address,
            "email": controller.email,
            "phone": controller.phone,
        }],
        "policyUrl": controller.policy_url,
        "services": [{
            "service": controller.service,
            "purposes": purposes,
        }],
        "sensitive": false,
        "spiCat": [],
    })
}

fn purpose_entry(receipt: &Receipt) -> Value {
    let at = |t| timefmt::format(t).unwrap_or_else(|_| "an unknown time".to_owned());
    let (consent_type, termination) = match receipt.status {
        ConsentStatus::Granted => (
            "EXPLICIT",
            match receipt.expires_at {
                Some(expiry) => format!("expires at {}", at(expiry)),
                None => "until withdrawn by the PII principal".to_owned(),
            },
        ),
        ConsentStatus::Denied => ("DENIED", format!("denied at {}", at(receipt.recorded_at))),
        ConsentStatus::Withdrawn => (
            "WITHDRAWN",
            format!("withdrawn at {}", at(receipt.recorded_at)),
        ),
    };
    json!({
        "purpose": receipt.purpose,
        "purposeCategory": [receipt.purpose],
        "consentType": consent_type,
        "piiCategory": ["unspecified"],
        "primaryPurpose": false,
        "termination": termination,
        "thirdPartyDisclosure": false,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::consent::model::receipt_id;
    use time::macros::datetime;

    fn controller() -> Controller {
        serde_json::from_value(json!({
            "name": "Example Ltd", "contact": "DPO", "address": "1 Main St",
            "email": "dpo@example.com", "phone": "+1 555 0100", "jurisdiction": "EU",
            "policy_url": "https://example.com/privacy", "service": "Example Shop"
        }))
        .unwrap()
    }

    fn receipt(n: u64, purpose: &str, status: ConsentStatus, day: u8) -> Receipt {
        Receipt {
            id: receipt_id(n),
            subject: "c-1".into(),
            purpose: purpose.into(),
            status,
            recorded_at: datetime!(2025-01-01 00:00 UTC).replace_day(day).unwrap(),
            expires_at: None,
            source: None,
            collection_method: Some("api".into()),
            prev_status: None,
            recorded_by: None,
            sha256: String::new(),
        }
    }

    #[test]
    fn builds_a_v1_1_receipt_from_the_latest_state() {
        let mut grant = receipt(3, "marketing", ConsentStatus::Granted, 3);
        grant.expires_at = Some(datetime!(2026-01-01 00:00 UTC));
        let history = vec![
            receipt(1, "marketing", ConsentStatus::Denied, 1),
            receipt(2, "analytics", ConsentStatus::Withdrawn, 2),
            grant,
        ];
        let v = kantara_receipt("c-1", &history, &controller());
        assert_eq!(v["version"], "KI-CR-v1.1.0");
        assert_eq!(v["jurisdiction"], "EU");
        assert_eq!(v["consentTimestamp"], 1_735_862_400);
        assert_eq!(v["consentReceiptID"], "rcpt_00000000000000000003");
        assert_eq!(v["collectionMethod"], "api");
        assert_eq!(v["language"], "en");
        assert_eq!(v["piiPrincipalId"], "c-1");
        assert_eq!(v["piiControllers"][0]["piiController"], "Example Ltd");
        assert_eq!(v["piiControllers"][0]["email"], "dpo@example.com");
        assert_eq!(v["policyUrl"], "https://example.com/privacy");
        assert_eq!(v["sensitive"], false);
        assert_eq!(v["spiCat"], json!([]));
        let service = &v["services"][0];
        assert_eq!(service["service"], "Example Shop");
        let purposes = service["purposes"].as_array().unwrap();
        assert_eq!(purposes.len(), 2);
        assert_eq!(purposes[0]["purpose"], "analytics");
        assert_eq!(purposes[0]["consentType"], "WITHDRAWN");
        assert_eq!(purposes[1]["purpose"], "marketing");
        assert_eq!(purposes[1]["consentType"], "EXPLICIT");
        assert_eq!(
            purposes[1]["termination"],
            "expires at 2026-01-01T00:00:00Z"
        );
        assert_eq!(purposes[1]["purposeCategory"], json!(["marketing"]));
        assert_eq!(purposes[1]["thirdPartyDisclosure"], false);
    }

    #[test]
    fn empty_history_and_unknown_config_keys() {
        let v = kantara_receipt("c-1", &[], &controller());
        assert_eq!(v["consentTimestamp"], 0);
        assert_eq!(v["services"][0]["purposes"], json!([]));
        let bad = serde_json::from_value::<Controller>(json!({
            "name": "x", "contact": "x", "address": "x", "email": "x", "phone": "x",
            "jurisdiction": "x", "policy_url": "x", "service": "x", "colour": "red"
        }));
        assert!(bad.is_err());
    }
}
