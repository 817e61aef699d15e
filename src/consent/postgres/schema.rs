//! The consent store's tables in PostgreSQL (component `consent` of
//! `crate::pg::migrate`).
//!
//! - `consent_subjects (subject, region)`: one row per subject that was ever written; its
//!   row lock serialises writes about that subject (so counter order is commit order per
//!   subject, and `prev_status`/`prev_region` are exact).
//! - `consent_current (subject, purpose, receipt_seq, record)`: the current record per
//!   purpose, as the JSON of `ConsentRecord` (timestamps at full nanosecond precision).
//! - `consent_receipts (seq, subject, kind, body)`: every receipt, `body` being the exact
//!   JSON the receipt was hashed over (plus `sha256`); `kind` 1 = consent, 2 = region; `seq`
//!   is the number in the receipt id.
//! - sequence `consent_receipt_seq`: the receipt counter (gaps after rollbacks, like
//!   sled's).

use crate::pg::migrate::Migration;

/// Component name in `consentgate_migrations`.
pub(crate) const COMPONENT: &str = "consent";

/// Receipt kinds in `consent_receipts.kind`.
pub(crate) const KIND_CONSENT: i16 = 1;
/// A region receipt.
pub(crate) const KIND_REGION: i16 = 2;

/// The notification channel every write notifies (payload: a subject, `*` for all).
pub(crate) const CHANNEL: &str = "consentgate_store";

/// Every migration of the consent store, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "consent store: subjects, current consents, receipts",
    sql: "
        CREATE TABLE consent_subjects (
            subject text PRIMARY KEY,
            region text
        );
        CREATE TABLE consent_current (
            subject text NOT NULL REFERENCES consent_subjects (subject),
            purpose text NOT NULL,
            receipt_seq bigint NOT NULL,
            record text NOT NULL,
            PRIMARY KEY (subject, purpose)
        );
        CREATE TABLE consent_receipts (
            seq bigint PRIMARY KEY,
            subject text NOT NULL REFERENCES consent_subjects (subject),
            kind smallint NOT NULL CHECK (kind IN (1, 2)),
            body text NOT NULL
        );
        CREATE INDEX consent_receipts_by_subject ON consent_receipts (subject, seq);
        CREATE SEQUENCE consent_receipt_seq AS bigint MINVALUE 0 START 1;
    ",
}];
