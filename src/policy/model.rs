//! The resolved policy model (after `extends`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redact::{DetectedSpan, Detector, Explanation, Outcome, Plan, StreamError, Validator};

/// Whether a policy (or purpose) enforces its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denials are enforced.
    Enforce,
    /// Denials are decided and audited as `report_deny`, and the response is released
    /// minimised and redacted exactly as an allowed one (only the 403 is skipped).
    Report,
}

/// What to do with a personal-data response that is not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonJson {
    /// Block it (`502`).
    Block,
    /// Pass it through unchanged.
    Pass,
}

/// The legal basis of a purpose (GDPR art. 6 vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The person's consent.
    Consent,
    /// Needed to perform a contract with the person.
    Contract,
    /// Required by law.
    LegalObligation,
    /// The controller's legitimate interest.
    LegitimateInterest,
    /// To protect someone's life.
    VitalInterest,
    /// A task in the public interest.
    PublicTask,
}

impl Basis {
    /// The name as written in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::LegitimateInterest => "legitimate_interest",
            Self::VitalInterest => "vital_interest",
            Self::PublicTask => "public_task",
        }
    }
}

/// How consent works for a `basis: consent` purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Needs a granted, unexpired consent.
    OptIn,
    /// Allowed unless the person said no (or sent GPC, when honoured).
    OptOut,
}

/// A purpose's field filter as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldList {
    /// Keep only these paths.
    Allow(Vec<String>),
    /// Remove these paths.
    Deny(Vec<String>),
}

/// A redaction rule as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactRule {
    /// Apply redactor `with` to the values at `fields`.
    Fields {
        /// Field paths.
        fields: Vec<String>,
        /// Redactor name.
        with: String,
    },
    /// Run these redactors over every remaining string.
    Text(Vec<String>),
}

/// A redactor's definition as written (resolved across `extends`): exactly one of `pattern`
/// and `detector`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedactorSpec {
    /// The regex, for a custom redactor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The built-in detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<Detector>,
    /// `replace`, `mask` or `hash`.
    pub action: ActionSpec,
    /// Optional checksum validator (custom patterns only).
    pub validate: Option<Validator>,
}

/// A redactor action as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpec {
    /// Replacement text.
    Replace(String),
    /// Keep the last N characters.
    Mask {
        /// Visible trailing characters.
        keep_last: usize,
    },
    /// Keyed pseudonym.
    Hash,
}

/// One purpose of a resolved policy.
#[derive(Debug, Clone, Serialize)]
pub struct Purpose {
    /// The purpose name (the `X-Purpose` value).
    pub name: String,
    /// Legal basis.
    pub basis: Basis,
    /// Consent mode (only for `basis: consent`).
    pub consent: Option<ConsentMode>,
    /// Whether a GPC signal opts the person out of this purpose (when the policy honours GPC).
    pub gpc_opt_out: bool,
    /// Per-purpose override of the policy's mode.
    pub mode: Option<Mode>,
    /// Field filter.
    pub fields: FieldList,
    /// Redaction rules, in order.
    pub redact: Vec<RedactRule>,
    /// Kantara `purposeCategory` entries declared for this purpose (empty: none declared).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub purpose_category: Vec<String>,
    /// Kantara `piiCategory` entries: the kinds of personal data this purpose uses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pii_category: Vec<String>,
    /// Kantara `spiCat` entries: sensitive categories of personal data this purpose uses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spi_category: Vec<String>,
    /// The third party the data is disclosed to for this purpose, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub third_party: Option<String>,
    #[serde(skip)]
    pub(crate) plan: Plan,
}

impl Purpose {
    /// Minimises and redacts `doc` in place.
    pub fn apply(&self, doc: &mut Value) -> Outcome {
        self.plan.apply(doc)
    }

    /// Minimises and redacts JSON text in one pass, appending the released text to `out`
    /// (see [`Plan::minimise_json`]); the same result as [`Purpose::apply`] on the parsed text.
    pub fn minimise_json(&self, input: &[u8], out: &mut Vec<u8>) -> Result<Outcome, StreamError> {
        self.plan.minimise_json(input, out)
    }

    /// Runs this purpose's text detectors over one free-text value; `Some(new text)` only if
    /// something was replaced.
    pub fn redact_str(&self, text: &str) -> Option<String> {
        self.plan.redact_text(text, &mut |_, _| {})
    }

    /// The spans of a free-text value this purpose's text detectors would replace.
    pub fn detect_spans(&self, text: &str) -> Vec<DetectedSpan> {
        self.plan.detect_spans(text)
    }

    /// Like [`Purpose::apply`], also naming the rule behind each removed or redacted path.
    pub fn apply_explain(&self, doc: &mut Value) -> (Outcome, Vec<Explanation>) {
        self.plan.apply_explain(doc)
    }
}

/// A resolved, validated policy for one region.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Region (the file stem).
    pub region: String,
    /// Human name.
    pub name: String,
    /// The policy it extends, if any.
    pub extends: Option<String>,
    /// Default mode.
    pub mode: Mode,
    /// Whether `Sec-GPC: 1` is honoured.
    pub honor_gpc: bool,
    /// What to do with non-JSON responses.
    pub non_json: NonJson,
    /// How long consent history keeps a receipt that no longer sets a current state
    /// (`receipt_retention`, default [`DEFAULT_RECEIPT_RETENTION`]).
    pub receipt_retention: std::time::Duration,
    /// Purposes by name.
    pub purposes: BTreeMap<String, Arc<Purpose>>,
    /// Redactor definitions by name (inherited ones included).
    pub redactors: BTreeMap<String, RedactorSpec>,
    /// Hex SHA-256 of the canonical resolved content.
    pub version: String,
}

/// `receipt_retention` when a policy does not set one: six years (of 365.25 days, as
/// `"6years"` reads), the longest limitation period for claims in most EU member states and
/// the UK, so proof of consent outlives any claim it may be needed against.
pub const DEFAULT_RECEIPT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(6 * 31_557_600);

/// Length of the version prefix in [`Policy::label`].
pub const LABEL_HEX_LEN: usize = 12;

impl Policy {
    /// A purpose by name.
    pub fn purpose(&self, name: &str) -> Option<&Arc<Purpose>> {
        self.purposes.get(name)
    }

    /// `region@<first 12 hex digits of the version>`, as written in audit records.
    pub fn label(&self) -> String {
        format!(
            "{}@{}",
            self.region,
            self.version.get(..LABEL_HEX_LEN).unwrap_or(&self.version)
        )
    }

    /// The mode in force for `purpose` (its override, else the policy's).
    pub fn effective_mode(&self, purpose: &Purpose) -> Mode {
        purpose.mode.unwrap_or(self.mode)
    }
}
