//! The storage interface the gateway uses, and its error type.

use super::import::ImportReport;
use super::model::{ConsentChange, ConsentRecord, Receipt};
use super::validate::ValidationError;

/// Why a consent store operation failed. Callers must treat every error as
/// "no decision possible" (fail closed), never as "no consent".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage backend failed (I/O, corruption it detected, ...).
    #[error("consent store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An input value was refused; the message says which and why.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A stored value starts with a format byte this build does not know
    /// (written by a newer version, or damaged).
    #[error("consent store value in `{tree}` has unknown format byte {byte:#04x}")]
    UnknownFormat {
        /// Which collection held the value.
        tree: &'static str,
        /// The format byte found.
        byte: u8,
    },
    /// A stored value could not be decoded.
    #[error("consent store value in `{tree}` is corrupt")]
    Corrupt {
        /// Which collection held the value.
        tree: &'static str,
    },
    /// A value could not be encoded for storage.
    #[error("consent store could not encode a value: {0}")]
    Encode(#[source] serde_json::Error),
    /// An import had more lines than one import may carry.
    #[error("import has more than {max} lines; split it into smaller imports")]
    ImportTooLarge {
        /// The most non-blank lines one import may carry.
        max: usize,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// Where the consent state lives. Every write is durable (flushed to disk)
/// before the method returns, and a change updates the current state and the
/// history together or not at all.
pub trait ConsentStore: Send + Sync + 'static {
    /// The subject's stored region, if one was set.
    fn region(&self, subject: &str) -> Result<Option<String>, StoreError>;
    /// Sets (or replaces) the subject's region.
    fn set_region(&self, subject: &str, region: &str) -> Result<(), StoreError>;
    /// The current consent record for one purpose, if any.
    fn consent(&self, subject: &str, purpose: &str) -> Result<Option<ConsentRecord>, StoreError>;
    /// Region and consent for one request: what the proxy calls per request.
    fn lookup(
        &self,
        subject: &str,
        purpose: &str,
    ) -> Result<(Option<String>, Option<ConsentRecord>), StoreError>;
    /// Records a grant, denial or withdrawal and returns its receipt.
    fn record(&self, change: ConsentChange) -> Result<Receipt, StoreError>;
    /// The subject's current record for every purpose, sorted by purpose.
    fn current(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError>;
    /// Every receipt of the subject, oldest (first recorded) first.
    fn history(&self, subject: &str) -> Result<Vec<Receipt>, StoreError>;
    /// Imports NDJSON consent lines: all of them, or none if any line is bad.
    fn import(&self, ndjson: &[u8]) -> Result<ImportReport, StoreError>;
}
