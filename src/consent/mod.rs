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
//! - A history renders three ways: [`native_receipts`] (our receipts with their policy terms),
//!   [`kantara_receipt`] (Kantara Consent Receipt v1.1) and [`iso27560_records`] (ISO/IEC TS
//!   27560 records as the W3C DPV guide describes them); [`Terms`] looks up each purpose's
//!   policy terms.

mod change;
mod codec;
mod controller;
mod import;
mod input;
mod iso27560;
mod kantara;
mod migrate;
mod model;
mod native;
mod postgres;
mod retention;
mod sled_store;
mod store;
mod tally;
mod terms;
mod timefmt;
mod validate;

pub use controller::{Address, Controller};
pub use import::{
    IMPORT_COLLECTION_METHOD, ImportLine, ImportReport, LineError, MAX_IMPORT_LINES, ParsedImport,
    parse_import,
};
pub use input::{PUT_CONSENT_KEYS, PUT_REGION_KEYS, parse_consent_body, parse_region_body};
pub use iso27560::{ISO27560_SCHEMA_VERSION, iso27560_records};
pub use kantara::{RenderError, kantara_receipt};
pub use migrate::{MigrateError, MigrateReport, migrate_sled_to_postgres};
pub use model::{
    ConsentChange, ConsentRecord, ConsentStatus, EffectiveConsent, History, Receipt, RegionChange,
    RegionKind, RegionReceipt,
};
pub use native::{NATIVE_SCHEMA_VERSION, native_receipts};
pub use retention::expired as expired_receipts;
pub use store::{CacheState, ConsentStore, Health, Lookup, StoreError};
pub use tally::{CountedState, StateCounts, Tally, TallyCell};
pub use terms::Terms;
pub use validate::{
    MAX_COLLECTION_METHOD_LEN, MAX_PURPOSE_LEN, MAX_RECORDED_BY_LEN, MAX_REGION_LEN,
    MAX_SOURCE_LEN, MAX_SUBJECT_LEN, ValidationError, check_times, parse_timestamp,
    validate_collection_method, validate_purpose, validate_recorded_by, validate_region,
    validate_source, validate_subject,
};
