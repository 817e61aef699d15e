//! Policy versions: SHA-256 over a canonical serialisation of the resolved policy.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use serde::Serialize;

use super::model::{Mode, NonJson, Policy, Purpose, RedactorSpec};

/// The canonical form: compact JSON, struct fields in this fixed order, maps sorted by key.
/// `extends` is not included: the content is already resolved.
#[derive(Serialize)]
struct Canonical<'a> {
    format: &'static str,
    region: &'a str,
    name: &'a str,
    mode: Mode,
    honor_gpc: bool,
    non_json: NonJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_retention_secs: Option<u64>,
    purposes: BTreeMap<&'a str, &'a Purpose>,
    redactors: &'a BTreeMap<String, RedactorSpec>,
}

/// Hex SHA-256 of the policy's canonical resolved content (ignores `policy.version`).
pub(crate) fn version_of(policy: &Policy) -> String {
    let canonical = Canonical {
        format: "consentgate-policy-v1",
        region: &policy.region,
        name: &policy.name,
        mode: policy.mode,
        honor_gpc: policy.honor_gpc,
        non_json: policy.non_json,
        // Absent at the default, so policies that do not set it keep their versions.
        receipt_retention_secs: (policy.receipt_retention
            != super::model::DEFAULT_RECEIPT_RETENTION)
            .then_some(policy.receipt_retention.as_secs()),
        purposes: policy
            .purposes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect(),
        redactors: &policy.redactors,
    };
    // Serialising plain data to a Vec cannot fail; an empty input still yields a stable hash.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    let d = digest::digest(&digest::SHA256, &bytes);
    crate::hex::encode(d.as_ref())
}
