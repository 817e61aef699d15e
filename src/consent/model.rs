//! The consent data model: statuses, the current record per (subject, purpose),
//! a change to record, and the receipt every change produces.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::timefmt;
use super::validate::{
    ValidationError, validate_collection_method, validate_purpose, validate_recorded_by,
    validate_region, validate_source, validate_subject,
};
use crate::canonical_json;
use crate::hex::encode as hex;

/// A consent decision as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentStatus {
    /// The subject agreed.
    Granted,
    /// The subject refused.
    Denied,
    /// The subject took back an earlier decision.
    Withdrawn,
}

impl ConsentStatus {
    /// The lowercase word used in JSON: `granted`, `denied` or `withdrawn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Withdrawn => "withdrawn",
        }
    }
}

impl std::str::FromStr for ConsentStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "granted" => Ok(Self::Granted),
            "denied" => Ok(Self::Denied),
            "withdrawn" => Ok(Self::Withdrawn),
            _ => Err(ValidationError::Status),
        }
    }
}

/// What a stored record means at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectiveConsent {
    /// Granted and not expired.
    Granted,
    /// Denied.
    Denied,
    /// Withdrawn.
    Withdrawn,
    /// Granted, but `expires_at` is at or before the moment asked about.
    Expired,
}

impl EffectiveConsent {
    /// The lowercase word used in JSON and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
        }
    }
}

/// The current consent state of one subject for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRecord {
    /// The purpose this record is about.
    pub purpose: String,
    /// The recorded decision.
    pub status: ConsentStatus,
    /// When a grant stops counting (UTC); `None` means no expiry.
    #[serde(
        default,
        with = "timefmt::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Where the decision came from (free text, for example a form name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the decision was recorded (UTC).
    #[serde(with = "timefmt")]
    pub recorded_at: OffsetDateTime,
    /// Id of the receipt that set this state.
    pub receipt_id: String,
}

impl ConsentRecord {
    /// The state at `now`: a grant whose `expires_at <= now` is `Expired`.
    pub fn effective(&self, now: OffsetDateTime) -> EffectiveConsent {
        match self.status {
            ConsentStatus::Granted => match self.expires_at {
                Some(expiry) if expiry <= now => EffectiveConsent::Expired,
                _ => EffectiveConsent::Granted,
            },
            ConsentStatus::Denied => EffectiveConsent::Denied,
            ConsentStatus::Withdrawn => EffectiveConsent::Withdrawn,
        }
    }
}

/// A change to record: grant, deny or withdraw one purpose for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// The data subject.
    pub subject: String,
    /// The purpose.
    pub purpose: String,
    /// The new status (`Withdrawn` to withdraw).
    pub status: ConsentStatus,
    /// Optional expiry of a grant.
    pub expires_at: Option<OffsetDateTime>,
    /// Optional free-text origin of the decision.
    pub source: Option<String>,
    /// How the decision was collected, for example `api` or `import`.
    pub collection_method: Option<String>,
    /// When the decision was made; `None` means now.
    pub recorded_at: Option<OffsetDateTime>,
    /// Who recorded the change: the admin token's `sub` (or the importing token's).
    pub recorded_by: String,
}

impl ConsentChange {
    /// A change with only the required parts; set the optional fields directly.
    pub fn new(
        subject: impl Into<String>,
        purpose: impl Into<String>,
        status: ConsentStatus,
        recorded_by: impl Into<String>,
    ) -> Self {
        Self {
            subject: subject.into(),
            purpose: purpose.into(),
            status,
            expires_at: None,
            source: None,
            collection_method: None,
            recorded_at: None,
            recorded_by: recorded_by.into(),
        }
    }

    /// Checks every field of the change (shape only; the API's time rules are in
    /// [`super::validate::check_change_times`]).
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_subject(&self.subject)?;
        validate_purpose(&self.purpose)?;
        if let Some(source) = &self.source {
            validate_source(source)?;
        }
        if let Some(method) = &self.collection_method {
            validate_collection_method(method)?;
        }
        validate_recorded_by(&self.recorded_by)
    }
}

/// A change of a subject's region: it leaves a [`RegionReceipt`] in the subject's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionChange {
    /// The data subject.
    pub subject: String,
    /// The new region.
    pub region: String,
    /// How the change was made, for example `api` or `import`.
    pub collection_method: Option<String>,
    /// When the change was made; `None` means now.
    pub recorded_at: Option<OffsetDateTime>,
    /// Who made the change: the admin token's `sub`.
    pub recorded_by: String,
}

impl RegionChange {
    /// A region change made now.
    pub fn new(
        subject: impl Into<String>,
        region: impl Into<String>,
        recorded_by: impl Into<String>,
    ) -> Self {
        Self {
            subject: subject.into(),
            region: region.into(),
            collection_method: None,
            recorded_at: None,
            recorded_by: recorded_by.into(),
        }
    }

    /// Checks every field of the change.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_subject(&self.subject)?;
        validate_region(&self.region)?;
        if let Some(method) = &self.collection_method {
            validate_collection_method(method)?;
        }
        validate_recorded_by(&self.recorded_by)
    }
}

/// The permanent record of one consent change. `sha256` is the lowercase hex
/// SHA-256 of the canonical JSON (keys sorted, no whitespace) of the receipt
/// without the `sha256` field, so a receipt can be quoted and checked later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Unique, sortable id: `rcpt_` and a 20-digit zero-padded counter.
    pub id: String,
    /// The data subject.
    pub subject: String,
    /// The purpose.
    pub purpose: String,
    /// The status recorded by this change.
    pub status: ConsentStatus,
    /// When the change was made (UTC).
    #[serde(with = "timefmt")]
    pub recorded_at: OffsetDateTime,
    /// Expiry of a grant, if any.
    #[serde(
        default,
        with = "timefmt::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Free-text origin of the decision, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How the decision was collected, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_method: Option<String>,
    /// The status before this change, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_status: Option<ConsentStatus>,
    /// Who recorded the change (the admin or importing token's `sub`). Receipts written
    /// before attribution existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// Hex SHA-256 of the canonical JSON of the other fields.
    pub sha256: String,
}

/// Hex SHA-256 of the canonical JSON of `value` without its `sha256` key.
fn receipt_hash<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(value)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("sha256");
    }
    let digest = digest::digest(&digest::SHA256, &canonical_json::to_vec(&value));
    Ok(hex(digest.as_ref()))
}

impl Receipt {
    /// Computes the hash this receipt should carry (ignores the current `sha256`).
    pub fn compute_sha256(&self) -> Result<String, serde_json::Error> {
        receipt_hash(self)
    }

    /// True when `sha256` matches the other fields.
    pub fn verify(&self) -> bool {
        self.compute_sha256().is_ok_and(|h| h == self.sha256)
    }

    /// The current-state record this receipt sets.
    pub fn to_record(&self) -> ConsentRecord {
        ConsentRecord {
            purpose: self.purpose.clone(),
            status: self.status,
            expires_at: self.expires_at,
            source: self.source.clone(),
            recorded_at: self.recorded_at,
            receipt_id: self.id.clone(),
        }
    }
}

/// The permanent record of one region change, hashed like a [`Receipt`]. Its `kind` is
/// always `"region"`, which tells it apart from consent receipts in a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionReceipt {
    /// Always `"region"`.
    pub kind: RegionKind,
    /// Unique, sortable id from the same counter as consent receipts.
    pub id: String,
    /// The data subject.
    pub subject: String,
    /// The region set by this change.
    pub region: String,
    /// The region before this change, if one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_region: Option<String>,
    /// When the change was made (UTC).
    #[serde(with = "timefmt")]
    pub recorded_at: OffsetDateTime,
    /// How the change was made (`api`, `import`, ...), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_method: Option<String>,
    /// Who made the change (the admin token's `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// Hex SHA-256 of the canonical JSON of the other fields.
    pub sha256: String,
}

/// The `kind` tag of a [`RegionReceipt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionKind {
    /// A region change.
    Region,
}

impl RegionReceipt {
    /// Computes the hash this receipt should carry (ignores the current `sha256`).
    pub fn compute_sha256(&self) -> Result<String, serde_json::Error> {
        receipt_hash(self)
    }

    /// True when `sha256` matches the other fields.
    pub fn verify(&self) -> bool {
        self.compute_sha256().is_ok_and(|h| h == self.sha256)
    }
}

/// A subject's history: consent receipts and region receipts, each oldest first. Ids come
/// from one counter, so merging both lists by id gives the order the changes were made in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct History {
    /// Consent receipts (grants, denials, withdrawals).
    pub receipts: Vec<Receipt>,
    /// Region receipts.
    pub regions: Vec<RegionReceipt>,
}

/// Receipt id for a counter value: `rcpt_` and 20 zero-padded digits, so ids
/// sort in the order they were given out.
pub(crate) fn receipt_id(counter: u64) -> String {
    format!("rcpt_{counter:020}")
}

/// The counter inside a receipt id written by [`receipt_id`].
pub(crate) fn receipt_counter(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("rcpt_")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(status: ConsentStatus, expires_at: Option<OffsetDateTime>) -> ConsentRecord {
        ConsentRecord {
            purpose: "marketing".into(),
            status,
            expires_at,
            source: None,
            recorded_at: datetime!(2025-01-01 00:00 UTC),
            receipt_id: receipt_id(1),
        }
    }

    #[test]
    fn effective_handles_expiry_at_the_boundary() {
        let expiry = datetime!(2025-06-01 00:00 UTC);
        let r = record(ConsentStatus::Granted, Some(expiry));
        assert_eq!(
            r.effective(expiry - time::Duration::SECOND),
            EffectiveConsent::Granted
        );
        assert_eq!(r.effective(expiry), EffectiveConsent::Expired);
        assert_eq!(
            record(ConsentStatus::Granted, None).effective(expiry),
            EffectiveConsent::Granted
        );
        assert_eq!(
            record(ConsentStatus::Withdrawn, Some(expiry)).effective(expiry),
            EffectiveConsent::Withdrawn
        );
        assert_eq!(
            record(ConsentStatus::Denied, None).effective(expiry),
            EffectiveConsent::Denied
        );
    }

    #[test]
    fn status_words() {
        for s in [
            ConsentStatus::Granted,
            ConsentStatus::Denied,
            ConsentStatus::Withdrawn,
        ] {
            assert_eq!(s.as_str().parse::<ConsentStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(
            "Granted".parse::<ConsentStatus>(),
            Err(ValidationError::Status)
        );
        assert_eq!(EffectiveConsent::Expired.as_str(), "expired");
    }

    #[test]
    fn record_json_round_trip() {
        let mut r = record(
            ConsentStatus::Granted,
            Some(datetime!(2026-01-01 12:30:00.5 UTC)),
        );
        r.source = Some("web form".into());
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains("\"expires_at\":\"2026-01-01T12:30:00.5Z\""),
            "{json}"
        );
        let back: ConsentRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn receipt_hash_is_over_canonical_json_without_sha256() {
        let mut receipt = Receipt {
            id: receipt_id(7),
            subject: "cust-1".into(),
            purpose: "marketing".into(),
            status: ConsentStatus::Granted,
            recorded_at: datetime!(2025-01-01 00:00 UTC),
            expires_at: None,
            source: None,
            collection_method: Some("api".into()),
            prev_status: None,
            recorded_by: None,
            sha256: String::new(),
        };
        receipt.sha256 = receipt.compute_sha256().unwrap();
        let canonical = r#"{"collection_method":"api","id":"rcpt_00000000000000000007","purpose":"marketing","recorded_at":"2025-01-01T00:00:00Z","status":"granted","subject":"cust-1"}"#;
        let expected = hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        assert_eq!(receipt.sha256, expected);
        assert!(receipt.verify());
        receipt.status = ConsentStatus::Denied;
        assert!(!receipt.verify());
    }

    #[test]
    fn receipt_hash_covers_recorded_by() {
        let mut receipt = Receipt {
            id: receipt_id(8),
            subject: "cust-1".into(),
            purpose: "marketing".into(),
            status: ConsentStatus::Granted,
            recorded_at: datetime!(2025-01-01 00:00 UTC),
            expires_at: None,
            source: None,
            collection_method: None,
            prev_status: None,
            recorded_by: Some("crm-admin".into()),
            sha256: String::new(),
        };
        receipt.sha256 = receipt.compute_sha256().unwrap();
        assert!(receipt.verify());
        receipt.recorded_by = Some("someone-else".into());
        assert!(!receipt.verify(), "changing recorded_by breaks the hash");
        receipt.recorded_by = None;
        assert!(!receipt.verify(), "removing recorded_by breaks the hash");
    }

    #[test]
    fn region_receipt_hash_and_json() {
        let mut r = RegionReceipt {
            kind: RegionKind::Region,
            id: receipt_id(3),
            subject: "cust-1".into(),
            region: "eu".into(),
            prev_region: Some("us-ca".into()),
            recorded_at: datetime!(2025-01-01 00:00:00.000000001 UTC),
            collection_method: Some("api".into()),
            recorded_by: Some("ops".into()),
            sha256: String::new(),
        };
        r.sha256 = r.compute_sha256().unwrap();
        assert!(r.verify());
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"kind\":\"region\""), "{json}");
        let back: RegionReceipt = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_str::<Receipt>(&json).is_err());
        r.region = "br".into();
        assert!(!r.verify());
    }

    #[test]
    fn receipt_counter_parses_ids() {
        assert_eq!(receipt_counter(&receipt_id(42)), Some(42));
        assert_eq!(receipt_counter(&receipt_id(u64::MAX)), Some(u64::MAX));
        assert_eq!(receipt_counter("rcpt_42"), None);
        assert_eq!(receipt_counter("xxxx_00000000000000000042"), None);
        assert_eq!(receipt_counter("rcpt_0000000000000000004x"), None);
    }

    #[test]
    fn receipt_ids_sort_numerically() {
        assert!(receipt_id(9) < receipt_id(10));
        assert!(receipt_id(99_999) < receipt_id(u64::MAX));
        assert_eq!(receipt_id(u64::MAX).len(), 25);
    }
}
