//! Consent state: who agreed to what, per data subject and purpose, with an
//! append-only history of hashed receipts.
//!
//! - [`ConsentStore`] is the interface the proxy and the admin API use;
//!   [`SledStore`] implements it on a sled database. Every write is flushed
//!   to disk before it returns; current state and history change together.
//! - The proxy calls [`ConsentStore::lookup`] once per request (two point
//!   reads) and [`ConsentRecord::effective`] to decide; any [`StoreError`]
//!   must deny.
//! - The validation functions are shared with the HTTP layer.
//! - [`kantara_receipt`] renders a history as a Kantara Consent Receipt v1.1.

mod codec;
mod import;
mod kantara;
mod model;
mod sled_store;
mod store;
mod timefmt;
mod validate;

pub use import::{
    IMPORT_COLLECTION_METHOD, ImportLine, ImportReport, LineError, MAX_IMPORT_LINES, ParsedImport,
    parse_import,
};
pub use kantara::{Controller, kantara_receipt};
pub use model::{ConsentChange, ConsentRecord, ConsentStatus, EffectiveConsent, Receipt};
pub use sled_store::SledStore;
pub use store::{ConsentStore, StoreError};
pub use validate::{
    MAX_COLLECTION_METHOD_LEN, MAX_PURPOSE_LEN, MAX_REGION_LEN, MAX_SOURCE_LEN, MAX_SUBJECT_LEN,
    ValidationError, parse_timestamp, validate_collection_method, validate_purpose,
    validate_region, validate_source, validate_subject,
};
