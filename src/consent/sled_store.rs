//! [`ConsentStore`] on sled: two trees (`subjects` for regions and current
//! consents, `history` for receipts; layout in `codec`), multi-tree
//! transactions for atomic changes and a `flush` (fsync) after every write
//! before it is acknowledged.
//!
//! Receipt ids come from sled's persistent monotonic counter
//! (`generate_id`): unique and increasing for the life of the database, not
//! contiguous (gaps after restarts or retried transactions). The same counter
//! orders the history keys, so history is in insertion order, also for
//! imported lines that carry an older `recorded_at`.

use std::path::Path;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use time::OffsetDateTime;

use super::codec::{
    CONSENTS, HISTORY, HISTORY_TREE, SUBJECTS_TREE, consent_key, decode_consent, decode_json,
    decode_region, encode_consent, encode_json, encode_region, history_key, region_key,
    subject_prefix,
};
use super::import::{ImportReport, parse_import};
use super::model::{ConsentChange, ConsentRecord, Receipt, receipt_id};
use super::store::{ConsentStore, StoreError};
use super::validate::{validate_purpose, validate_region, validate_subject};

/// A consent store in a sled database directory.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    subjects: sled::Tree,
    history: sled::Tree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl SledStore {
    /// Opens (or creates) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path.as_ref()).open()?;
        Ok(Self {
            subjects: db.open_tree(SUBJECTS_TREE)?,
            history: db.open_tree(HISTORY_TREE)?,
            db,
        })
    }

    /// Writes everything to disk (fsync).
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Applies one validated change inside a transaction and returns its receipt.
fn apply_change(
    subjects: &TransactionalTree,
    history: &TransactionalTree,
    change: &ConsentChange,
    recorded_at: OffsetDateTime,
) -> TxResult<Receipt> {
    let key = consent_key(&change.subject, &change.purpose);
    let prev_status = match subjects.get(&key)? {
        Some(bytes) => Some(
            decode_consent(&change.purpose, &bytes)
                .map_err(ConflictableTransactionError::Abort)?
                .status,
        ),
        None => None,
    };
    let counter = subjects.generate_id()?;
    let mut receipt = Receipt {
        id: receipt_id(counter),
        subject: change.subject.clone(),
        purpose: change.purpose.clone(),
        status: change.status,
        recorded_at,
        expires_at: change.expires_at,
        source: change.source.clone(),
        collection_method: change.collection_method.clone(),
        prev_status,
        sha256: String::new(),
    };
    receipt.sha256 = receipt
        .compute_sha256()
        .map_err(|e| ConflictableTransactionError::Abort(StoreError::Encode(e)))?;
    let receipt_bytes = encode_json(&receipt).map_err(ConflictableTransactionError::Abort)?;
    let record_bytes =
        encode_consent(&receipt.to_record()).map_err(ConflictableTransactionError::Abort)?;
    history.insert(history_key(&change.subject, counter), receipt_bytes)?;
    subjects.insert(key, record_bytes)?;
    Ok(receipt)
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

impl ConsentStore for SledStore {
    fn region(&self, subject: &str) -> Result<Option<String>, StoreError> {
        validate_subject(subject)?;
        self.subjects
            .get(region_key(subject))?
            .map(|bytes| decode_region(&bytes))
            .transpose()
    }

    fn set_region(&self, subject: &str, region: &str) -> Result<(), StoreError> {
        validate_subject(subject)?;
        validate_region(region)?;
        self.subjects
            .insert(region_key(subject), encode_region(region))?;
        self.flush()?;
        tracing::debug!(region, "subject region set");
        Ok(())
    }

    fn consent(&self, subject: &str, purpose: &str) -> Result<Option<ConsentRecord>, StoreError> {
        validate_subject(subject)?;
        validate_purpose(purpose)?;
        self.subjects
            .get(consent_key(subject, purpose))?
            .map(|bytes| decode_consent(purpose, &bytes))
            .transpose()
    }

    fn lookup(
        &self,
        subject: &str,
        purpose: &str,
    ) -> Result<(Option<String>, Option<ConsentRecord>), StoreError> {
        Ok((self.region(subject)?, self.consent(subject, purpose)?))
    }

    fn record(&self, change: ConsentChange) -> Result<Receipt, StoreError> {
        change.validate()?;
        let recorded_at = change.recorded_at.unwrap_or_else(OffsetDateTime::now_utc);
        let receipt = (&self.subjects, &self.history)
            .transaction(|(subjects, history)| {
                apply_change(subjects, history, &change, recorded_at)
            })
            .map_err(tx_error)?;
        self.flush()?;
        tracing::debug!(
            purpose = %receipt.purpose,
            status = receipt.status.as_str(),
            receipt = %receipt.id,
            "consent recorded"
        );
        Ok(receipt)
    }

    fn current(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        validate_subject(subject)?;
        let prefix = subject_prefix(subject);
        let mut records = Vec::new();
        for item in self.subjects.scan_prefix(&prefix) {
            let (key, bytes) = item?;
            if key.len() == prefix.len() {
                continue; // the region row
            }
            let purpose = key
                .get(prefix.len()..)
                .and_then(|p| std::str::from_utf8(p).ok())
                .ok_or(StoreError::Corrupt { tree: CONSENTS })?;
            records.push(decode_consent(purpose, &bytes)?);
        }
        Ok(records)
    }

    fn history(&self, subject: &str) -> Result<Vec<Receipt>, StoreError> {
        validate_subject(subject)?;
        let mut receipts = Vec::new();
        for item in self.history.scan_prefix(subject_prefix(subject)) {
            let (_, bytes) = item?;
            let receipt: Receipt = decode_json(HISTORY, &bytes)?;
            if receipt.subject != subject {
                return Err(StoreError::Corrupt { tree: HISTORY });
            }
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    fn import(&self, ndjson: &[u8]) -> Result<ImportReport, StoreError> {
        let parsed = parse_import(ndjson)?;
        if !parsed.errors.is_empty() {
            tracing::info!(
                bad_lines = parsed.errors.len(),
                "consent import refused; nothing applied"
            );
            return Ok(ImportReport {
                imported: 0,
                rejected: parsed.errors.len(),
                errors: parsed.errors,
            });
        }
        let now = OffsetDateTime::now_utc();
        (&self.subjects, &self.history)
            .transaction(|(subjects, history)| {
                for line in &parsed.lines {
                    if let Some(region) = &line.region {
                        subjects.insert(region_key(&line.change.subject), encode_region(region))?;
                    }
                    let recorded_at = line.change.recorded_at.unwrap_or(now);
                    apply_change(subjects, history, &line.change, recorded_at)?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        self.flush()?;
        tracing::info!(lines = parsed.lines.len(), "consent import applied");
        Ok(ImportReport {
            imported: parsed.lines.len(),
            rejected: 0,
            errors: Vec::new(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::consent::model::{ConsentStatus, EffectiveConsent};
    use crate::consent::validate::ValidationError;
    use time::macros::datetime;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path().join("db")).unwrap();
        (dir, store)
    }

    fn grant(subject: &str, purpose: &str) -> ConsentChange {
        ConsentChange::new(subject, purpose, ConsentStatus::Granted)
    }

    #[test]
    fn region_round_trip_and_validation() {
        let (_dir, s) = store();
        assert_eq!(s.region("c-1").unwrap(), None);
        s.set_region("c-1", "eu").unwrap();
        assert_eq!(s.region("c-1").unwrap().as_deref(), Some("eu"));
        s.set_region("c-1", "us-ca").unwrap();
        assert_eq!(s.region("c-1").unwrap().as_deref(), Some("us-ca"));
        assert!(matches!(
            s.set_region("c-1", "EU"),
            Err(StoreError::Invalid(ValidationError::Region))
        ));
        assert!(matches!(
            s.region("a\0b"),
            Err(StoreError::Invalid(ValidationError::Subject))
        ));
    }

    #[test]
    fn record_round_trip_with_receipt() {
        let (_dir, s) = store();
        let mut change = grant("c-1", "marketing");
        change.expires_at = Some(datetime!(2030-01-01 00:00 UTC));
        change.source = Some("signup form".into());
        change.collection_method = Some("api".into());
        let receipt = s.record(change).unwrap();
        assert!(receipt.id.starts_with("rcpt_"));
        assert!(receipt.verify());
        assert_eq!(receipt.prev_status, None);
        let record = s.consent("c-1", "marketing").unwrap().unwrap();
        assert_eq!(record, receipt.to_record());
        assert_eq!(record.source.as_deref(), Some("signup form"));
        assert_eq!(
            record.effective(datetime!(2029-12-31 00:00 UTC)),
            EffectiveConsent::Granted
        );
        assert_eq!(
            record.effective(datetime!(2030-01-01 00:00 UTC)),
            EffectiveConsent::Expired
        );
        assert_eq!(s.consent("c-1", "analytics").unwrap(), None);
        assert_eq!(s.consent("c-2", "marketing").unwrap(), None);
    }

    #[test]
    fn lookup_returns_region_and_consent() {
        let (_dir, s) = store();
        let s: std::sync::Arc<dyn ConsentStore> = std::sync::Arc::new(s);
        assert_eq!(s.lookup("c-1", "marketing").unwrap(), (None, None));
        s.set_region("c-1", "eu").unwrap();
        let receipt = s.record(grant("c-1", "marketing")).unwrap();
        let (region, consent) = s.lookup("c-1", "marketing").unwrap();
        assert_eq!(region.as_deref(), Some("eu"));
        assert_eq!(consent.unwrap().receipt_id, receipt.id);
        assert!(s.lookup("c-1", "Marketing").is_err());
    }

    #[test]
    fn withdraw_and_history_order() {
        let (_dir, s) = store();
        let r1 = s.record(grant("c-1", "marketing")).unwrap();
        let r2 = s.record(grant("c-1", "analytics")).unwrap();
        let r3 = s
            .record(ConsentChange::new(
                "c-1",
                "marketing",
                ConsentStatus::Withdrawn,
            ))
            .unwrap();
        s.record(grant("c-10", "marketing")).unwrap();
        s.set_region("c-1", "eu").unwrap();
        s.set_region("c-10", "eu").unwrap();
        assert_eq!(r3.prev_status, Some(ConsentStatus::Granted));
        assert!(r1.id < r2.id && r2.id < r3.id);
        let record = s.consent("c-1", "marketing").unwrap().unwrap();
        assert_eq!(
            record.effective(OffsetDateTime::now_utc()),
            EffectiveConsent::Withdrawn
        );
        let history = s.history("c-1").unwrap();
        assert_eq!(history, vec![r1, r2.clone(), r3.clone()]);
        assert!(history.iter().all(Receipt::verify));
        let current = s.current("c-1").unwrap();
        assert_eq!(current, vec![r2.to_record(), r3.to_record()]);
        assert_eq!(s.history("c-2").unwrap(), vec![]);
    }

    #[test]
    fn record_refuses_invalid_changes() {
        let (_dir, s) = store();
        let mut change = grant("c-1", "marketing");
        change.source = Some("line\nbreak".into());
        assert!(matches!(
            s.record(change),
            Err(StoreError::Invalid(ValidationError::Source))
        ));
        assert!(matches!(
            s.record(grant("c/1", "marketing")),
            Err(StoreError::Invalid(ValidationError::Subject))
        ));
        assert_eq!(s.history("c-1").unwrap(), vec![]);
    }

    #[test]
    fn import_applies_all_lines() {
        let (_dir, s) = store();
        let input = concat!(
            "{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"granted\",\"region\":\"eu\",\"recorded_at\":\"2024-01-01T00:00:00Z\"}\n",
            "\n",
            "{\"subject\":\"c-2\",\"purpose\":\"marketing\",\"status\":\"denied\"}\n",
            "{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"withdrawn\",\"source\":\"cmp\"}\n",
        );
        let report = s.import(input.as_bytes()).unwrap();
        assert_eq!(
            report,
            ImportReport {
                imported: 3,
                rejected: 0,
                errors: vec![]
            }
        );
        assert_eq!(s.region("c-1").unwrap().as_deref(), Some("eu"));
        assert_eq!(s.region("c-2").unwrap(), None);
        let history = s.history("c-1").unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].recorded_at, datetime!(2024-01-01 00:00 UTC));
        assert_eq!(history[1].prev_status, Some(ConsentStatus::Granted));
        assert_eq!(history[1].collection_method.as_deref(), Some("import"));
        let record = s.consent("c-1", "marketing").unwrap().unwrap();
        assert_eq!(record.status, ConsentStatus::Withdrawn);
    }

    #[test]
    fn import_with_a_bad_line_applies_nothing() {
        let (_dir, s) = store();
        s.record(grant("c-1", "marketing")).unwrap();
        let input = concat!(
            "{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"withdrawn\",\"region\":\"eu\"}\n",
            "{\"subject\":\"c-2\",\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
            "{\"subject\":\"c-3\",\"purpose\":\"marketing\",\"status\":\"granted\",\"color\":\"red\"}\n",
        );
        let report = s.import(input.as_bytes()).unwrap();
        assert_eq!(report.imported, 0);
        assert_eq!(report.rejected, 1);
        assert_eq!(report.errors[0].line, 3);
        assert_eq!(s.region("c-1").unwrap(), None);
        assert_eq!(s.history("c-1").unwrap().len(), 1);
        assert_eq!(s.consent("c-2", "marketing").unwrap(), None);
        assert_eq!(
            s.consent("c-1", "marketing").unwrap().unwrap().status,
            ConsentStatus::Granted
        );
    }

    #[test]
    fn unknown_format_byte_is_an_error_not_no_consent() {
        let (_dir, s) = store();
        s.set_region("c-1", "eu").unwrap();
        s.record(grant("c-1", "marketing")).unwrap();
        s.subjects
            .insert(consent_key("c-1", "marketing"), &[0x7f, b'{', b'}'][..])
            .unwrap();
        assert!(matches!(
            s.consent("c-1", "marketing"),
            Err(StoreError::UnknownFormat {
                tree: "consents",
                byte: 0x7f
            })
        ));
        assert!(s.lookup("c-1", "marketing").is_err());
        assert!(s.current("c-1").is_err());
        assert!(s.record(grant("c-1", "marketing")).is_err());
        s.subjects
            .insert(region_key("c-1"), &[0x02, b'e', b'u'][..])
            .unwrap();
        assert!(matches!(
            s.region("c-1"),
            Err(StoreError::UnknownFormat {
                tree: "regions",
                byte: 0x02
            })
        ));
        s.history
            .insert(history_key("c-1", u64::MAX), &[0x00][..])
            .unwrap();
        assert!(matches!(
            s.history("c-1"),
            Err(StoreError::UnknownFormat {
                tree: "history",
                ..
            })
        ));
    }

    #[test]
    fn corrupt_value_is_an_error() {
        let (_dir, s) = store();
        s.subjects
            .insert(consent_key("c-1", "marketing"), &[0x01, b'{'][..])
            .unwrap();
        assert!(matches!(
            s.consent("c-1", "marketing"),
            Err(StoreError::Corrupt { tree: "consents" })
        ));
    }

    #[test]
    fn reopen_after_drop_finds_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let receipt = {
            let s = SledStore::open(&path).unwrap();
            s.set_region("c-1", "eu").unwrap();
            s.record(grant("c-1", "marketing")).unwrap()
        };
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.region("c-1").unwrap().as_deref(), Some("eu"));
        assert_eq!(s.history("c-1").unwrap(), vec![receipt.clone()]);
        let next = s.record(grant("c-1", "marketing")).unwrap();
        assert!(next.id > receipt.id, "ids keep increasing after reopen");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(16))]
            #[test]
            fn prefix_scans_return_exactly_that_subjects_rows(
                rows in proptest::collection::vec(
                    ("[a-c][a-c.:@-]{0,3}", "[a-c][a-c0-9_]{0,3}"), 1..20)
            ) {
                let (_dir, s) = store();
                for (subject, purpose) in &rows {
                    s.record(grant(subject, purpose)).unwrap();
                    s.set_region(subject, "eu").unwrap();
                }
                for (subject, _) in &rows {
                    let mut want: Vec<&str> = rows
                        .iter()
                        .filter(|(s2, _)| s2 == subject)
                        .map(|(_, p)| p.as_str())
                        .collect();
                    let history = s.history(subject).unwrap();
                    prop_assert_eq!(history.len(), want.len());
                    prop_assert!(history.iter().all(|r| &r.subject == subject));
                    want.sort_unstable();
                    want.dedup();
                    let current: Vec<String> =
                        s.current(subject).unwrap().into_iter().map(|r| r.purpose).collect();
                    prop_assert_eq!(current, want);
                }
            }
        }
    }
}
