//! Consent state: who agreed to what, per data subject and purpose, each subject's region,
//! and an append-only history of hashed receipts naming who recorded each change.
//!
//! - [`ConsentStore`] is the backend-neutral store the data plane and the admin API use
//!   (sled embedded, or PostgreSQL shared by replicas). Every write is durable before it
//!   returns; current state and history change together.
//! - The data plane calls [`ConsentStore::lookup`] once per request (or
//!   [`ConsentStore::lookup_many`] for a collection) and [`ConsentRecord::effective`] to
//!   decide; any [`StoreError`] must deny.
//! - Receipt logic (previous state, ids, hashes, `recorded_by`) is shared by all backends
//!   (`change`); input from outside is checked by one validator (`input`, `validate`).
//! - [`kantara_receipt`] renders a history as a Kantara Consent Receipt v1.1.

mod change;
mod codec;
mod import;
mod input;
mod kantara;
mod migrate;
mod model;
mod postgres;
mod sled_store;
mod store;
mod tally;
mod timefmt;
mod validate;

pub use import::{
    IMPORT_COLLECTION_METHOD, ImportLine, ImportReport, LineError, MAX_IMPORT_LINES, ParsedImport,
    parse_import,
};
pub use input::{PUT_CONSENT_KEYS, PUT_REGION_KEYS, parse_consent_body, parse_region_body};
pub use kantara::{Controller, kantara_receipt};
pub use migrate::{MigrateError, MigrateReport, migrate_sled_to_postgres};
pub use model::{
    ConsentChange, ConsentRecord, ConsentStatus, EffectiveConsent, History, Receipt, RegionChange,
    RegionKind, RegionReceipt,
};
pub use store::{CacheState, ConsentStore, Health, Lookup, StoreError};
pub use tally::{CountedState, StateCounts, Tally, TallyCell};
pub use validate::{
    MAX_COLLECTION_METHOD_LEN, MAX_PURPOSE_LEN, MAX_RECORDED_BY_LEN, MAX_REGION_LEN,
    MAX_SOURCE_LEN, MAX_SUBJECT_LEN, ValidationError, check_times, parse_timestamp,
    validate_collection_method, validate_purpose, validate_recorded_by, validate_region,
    validate_source, validate_subject,
};
