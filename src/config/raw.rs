//! The TOML file as written: serde structs that reject unknown keys. Validation happens in
//! [`super::Settings::from_raw`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) gateway: RawGateway,
    pub(crate) admin: RawAdmin,
    pub(crate) auth: RawAuth,
    pub(crate) store: RawStore,
    pub(crate) audit: RawAudit,
    pub(crate) policies: RawPolicies,
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RawRoute>,
    pub(crate) controller: Option<crate::consent::Controller>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub(crate) listen: String,
    pub(crate) tls_cert: Option<String>,
    pub(crate) tls_key: Option<String>,
    pub(crate) client_ca: Option<String>,
    pub(crate) upstream_ca: Option<String>,
    pub(crate) default_region: String,
    pub(crate) max_body_bytes: Option<u64>,
    pub(crate) upstream_timeout: Option<String>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) max_buffered_bytes: Option<u64>,
    pub(crate) shutdown_grace: Option<String>,
    pub(crate) workers: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) jwks: Option<String>,
    pub(crate) hs256_secret_file: Option<String>,
    pub(crate) leeway: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) backend: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) password_file: Option<String>,
    pub(crate) max_staleness: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub(crate) backend: Option<String>,
    pub(crate) dir: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) password_file: Option<String>,
    pub(crate) replica: Option<String>,
    pub(crate) sync: Option<String>,
    pub(crate) checkpoint_key: Option<String>,
    pub(crate) checkpoint_every: Option<CheckpointEvery>,
    pub(crate) segment_bytes: Option<u64>,
    pub(crate) retention: Option<String>,
}

/// `checkpoint_every` is a duration string, a record count, or a list of both.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum CheckpointEvery {
    Count(u64),
    Text(String),
    Both(Vec<CheckpointEveryItem>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum CheckpointEveryItem {
    Count(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicies {
    pub(crate) dir: String,
    pub(crate) hash_secret_file: Option<String>,
    pub(crate) watch: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: toml::Spanned<String>,
    #[serde(rename = "match")]
    pub(crate) pattern: String,
    pub(crate) upstream: String,
    pub(crate) personal_data: bool,
    #[serde(default)]
    pub(crate) public: bool,
    pub(crate) subject_case: Option<String>,
    pub(crate) unknown_subject: Option<String>,
    pub(crate) collection: Option<RawCollection>,
}

/// `collection = { path, subject, envelope, max_elements }` or `{ format = "ndjson", subject }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollection {
    pub(crate) format: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) subject: String,
    pub(crate) envelope: Option<Vec<String>>,
    pub(crate) max_elements: Option<u64>,
}
