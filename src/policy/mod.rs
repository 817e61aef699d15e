//! Policies: per-region YAML files, validated at load, resolved across `extends`, versioned,
//! hot-reloaded; the consent decision; and the tools compliance officers run
//! (`policy check`, `policy test`, `policy explain`).
//!
//! The file format is described in the SPEC ("Policy files") and in `policies/schema.json`.

mod decision;
mod errors;
pub(crate) mod loader;
mod model;
mod raw;
mod registry;
mod set;
pub mod tooling;
mod version;

pub use decision::{ConsentState, Decision, Verdict, decide};
pub use errors::{LoadError, LoadErrors};
pub use loader::LoadOptions;
pub use model::{
    ActionSpec, Basis, ConsentMode, DEFAULT_RECEIPT_RETENTION, FieldList, LABEL_HEX_LEN, Mode,
    NonJson, Policy, Purpose, RedactRule, RedactorSpec,
};
pub use registry::{PolicyRegistry, PolicyWatcher};
pub use set::{PolicySet, PolicySummary};

#[cfg(test)]
mod tests;
