//! Kantara Initiative Consent Receipt v1.1 (`KI-CR-v1.1.0`) built from a subject's receipt
//! history and the policy terms of each purpose.
//!
//! Mapping:
//! - one service (`Controller::service`) listing every purpose the subject has a record for,
//!   sorted by purpose name, each from the latest receipt of that purpose;
//! - `collectionMethod`: the latest receipt's `source` (where the decision was collected,
//!   for example `web form`), else its `collection_method` (`api`, `import`);
//! - `purposeCategory`, `piiCategory` and `thirdPartyName` come from the purpose's
//!   `purpose_category`, `pii_category` and `third_party` keys in the policy (the subject's
//!   region's, else the first policy that defines the purpose); a purpose without declared
//!   categories cannot be put on a receipt ([`RenderError::Undeclared`]);
//! - `consentType`: `IMPLICIT` for a `consent: opt_out` purpose (processed unless the person
//!   objects), else `EXPLICIT` (the decision on record was given explicitly). A denial or a
//!   withdrawal is not a consent type: `termination` says when and how the consent ended;
//! - `sensitive` / `spiCat`: from the purposes' `spi_category` keys;
//! - `consentTimestamp`: epoch seconds of the latest `recorded_at`; `consentReceiptID`: the id
//!   of the latest receipt, so every change gives a new receipt id.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::controller::Controller;
use super::model::{ConsentStatus, Receipt};
use super::terms::Terms;
use super::timefmt;

/// Why a receipt cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The subject has no consent receipts.
    #[error("no consent has been recorded for this subject")]
    Empty,
    /// A purpose in the history is defined by no loaded policy.
    #[error(
        "purpose '{0}' is in this subject's history but no loaded policy defines it, so its lawful basis and categories are unknown"
    )]
    UnknownPurpose(String),
    /// A purpose's policy does not declare a key the format needs.
    #[error(
        "purpose '{purpose}' in policy '{region}' declares no {key}; add {key}: [...] to the purpose to issue receipts for it"
    )]
    Undeclared {
        /// The purpose.
        purpose: String,
        /// The region of the policy consulted.
        region: String,
        /// The missing policy key.
        key: &'static str,
    },
}

/// Builds a Kantara Consent Receipt v1.1 for `subject` from its history (oldest first, as
/// `ConsentStore::history` returns it); `terms` gives each purpose's policy terms.
pub fn kantara_receipt(
    subject: &str,
    history: &[Receipt],
    controller: &Controller,
    terms: &dyn Fn(&str) -> Option<Terms>,
) -> Result<Value, RenderError> {
    let last = history.last().ok_or(RenderError::Empty)?;
    let mut latest: BTreeMap<&str, &Receipt> = BTreeMap::new();
    for receipt in history {
        latest.insert(receipt.purpose.as_str(), receipt);
    }
    let mut purposes = Vec::with_capacity(latest.len());
    let mut spi: BTreeSet<String> = BTreeSet::new();
    for receipt in latest.values() {
        let t = terms(&receipt.purpose)
            .ok_or_else(|| RenderError::UnknownPurpose(receipt.purpose.clone()))?;
        spi.extend(t.purpose.spi_category.iter().cloned());
        purposes.push(purpose_entry(receipt, &t)?);
    }
    let timestamp = history
        .iter()
        .map(|r| r.recorded_at.unix_timestamp())
        .max()
        .unwrap_or(0)
        .max(0);
    let method = last
        .source
        .as_deref()
        .or(last.collection_method.as_deref())
        .unwrap_or("not recorded");
    let mut receipt = json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": controller.jurisdiction,
        "consentTimestamp": timestamp,
        "collectionMethod": method,
        "consentReceiptID": last.id,
        "language": controller.language,
        "piiPrincipalId": subject,
        "piiControllers": [{
            "piiController": controller.name,
            "contact": controller.contact,
            "address": postal_address(controller),
            "email": controller.email,
            "phone": controller.phone,
        }],
        "policyUrl": controller.policy_url,
        "services": [{
            "service": controller.service,
            "purposes": purposes,
        }],
        "sensitive": !spi.is_empty(),
    });
    if !spi.is_empty() {
        receipt["spiCat"] = spi.into_iter().collect::<Vec<_>>().into();
    }
    Ok(receipt)
}

/// The controller's address as a schema.org `PostalAddress`.
pub(crate) fn postal_address(c: &Controller) -> Value {
    let a = &c.address;
    let mut out = Map::new();
    out.insert("streetAddress".into(), a.street.clone().into());
    for (key, value) in [
        ("addressLocality", &a.locality),
        ("addressRegion", &a.region),
        ("postalCode", &a.postal_code),
    ] {
        if let Some(v) = value {
            out.insert(key.into(), v.clone().into());
        }
    }
    out.insert("addressCountry".into(), a.country.clone().into());
    Value::Object(out)
}

fn required<'a>(
    t: &'a Terms,
    list: &'a [String],
    key: &'static str,
) -> Result<&'a [String], RenderError> {
    if list.is_empty() {
        Err(RenderError::Undeclared {
            purpose: t.purpose.name.clone(),
            region: t.policy.region.clone(),
            key,
        })
    } else {
        Ok(list)
    }
}

fn purpose_entry(receipt: &Receipt, t: &Terms) -> Result<Value, RenderError> {
    let at = |time| timefmt::format(time).unwrap_or_else(|_| "an unknown time".to_owned());
    let termination = match receipt.status {
        ConsentStatus::Granted => match receipt.expires_at {
            Some(expiry) => format!(
                "expires at {}, or earlier when withdrawn by the PII principal",
                at(expiry)
            ),
            None => "when withdrawn by the PII principal".to_owned(),
        },
        ConsentStatus::Denied => format!(
            "refused by the PII principal at {}; nothing is processed on consent",
            at(receipt.recorded_at)
        ),
        ConsentStatus::Withdrawn => format!(
            "withdrawn by the PII principal at {}; nothing is processed on consent since",
            at(receipt.recorded_at)
        ),
    };
    let mut entry = json!({
        "purpose": receipt.purpose,
        "purposeCategory": required(t, &t.purpose.purpose_category, "purpose_category")?,
        "consentType": if t.implied() { "IMPLICIT" } else { "EXPLICIT" },
        "piiCategory": required(t, &t.purpose.pii_category, "pii_category")?,
        "termination": termination,
        "thirdPartyDisclosure": t.purpose.third_party.is_some(),
    });
    if let Some(name) = &t.purpose.third_party {
        entry["thirdPartyName"] = name.clone().into();
    }
    Ok(entry)
}
