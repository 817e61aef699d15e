//! A validated set of policies, one per region.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::errors::LoadErrors;
use super::loader::{LoadOptions, load_dir};
use super::model::{Mode, Policy};

/// Every policy of a folder, validated together.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: BTreeMap<String, Arc<Policy>>,
}

/// What `GET /v1/policies` shows for one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    /// Region.
    pub region: String,
    /// Human name.
    pub name: String,
    /// Full hex version.
    pub version: String,
    /// `region@<12 hex>`.
    pub label: String,
    /// Default mode.
    pub mode: Mode,
    /// Purpose names, sorted.
    pub purposes: Vec<String>,
}

impl PolicySet {
    /// Loads and validates every policy in `dir`; all problems are reported together.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Self, LoadErrors> {
        load_dir(dir, opts).map(|policies| Self { policies })
    }

    /// A set from `(file name, YAML)` pairs, for tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) fn from_texts(texts: &[(&str, &str)]) -> Result<Self, Vec<String>> {
        let texts: Vec<(String, String)> = texts
            .iter()
            .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
            .collect();
        let mut errors = std::collections::BTreeSet::new();
        let policies = super::loader::load_texts(&texts, &LoadOptions::default(), &mut errors);
        if errors.is_empty() {
            Ok(Self { policies })
        } else {
            Err(errors.iter().map(ToString::to_string).collect())
        }
    }

    /// The policy for `region`.
    pub fn get(&self, region: &str) -> Option<Arc<Policy>> {
        self.policies.get(region).cloned()
    }

    /// Region names, sorted.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// Policies, sorted by region.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values()
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// One summary per region, sorted by region.
    pub fn summaries(&self) -> Vec<PolicySummary> {
        self.policies
            .values()
            .map(|p| PolicySummary {
                region: p.region.clone(),
                name: p.name.clone(),
                version: p.version.clone(),
                label: p.label(),
                mode: p.mode,
                purposes: p.purposes.keys().cloned().collect(),
            })
            .collect()
    }
}
