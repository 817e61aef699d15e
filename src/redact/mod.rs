//! JSON minimisation and redaction (pure: values in, values out, no I/O).
//!
//! A [`Plan`] holds a field filter (allow-list or deny-list of [`FieldPath`]s), field-scoped
//! redaction rules and free-text detectors. [`Plan::apply`] walks a `serde_json::Value` once:
//! it removes what the filter does not allow, rewrites values covered by field rules, then runs
//! the detectors over every remaining string, and returns an [`Outcome`] (removed paths and
//! redaction counts, never values). [`Plan::minimise_json`] does the same in one pass over JSON
//! text without building a tree (the pipeline's path); the tree walk stays as its oracle.

mod detect;
mod matcher;
mod path;
mod plan;
mod redactor;
mod stream;
mod validate;
mod walk;

#[cfg(test)]
mod proptests;

pub use detect::Detector;
pub use path::{FieldPath, PathError};
pub use plan::{DetectedSpan, Explanation, ExplanationKind, FieldFilter, FieldRule, Outcome, Plan};
pub use redactor::{Action, HASH_PREFIX, REDACTED, Redactor, RedactorError};
pub use stream::StreamError;
#[doc(hidden)]
pub use stream::locate;
pub use validate::Validator;

#[cfg(test)]
mod tests;
