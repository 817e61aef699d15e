//! The sled backend: two trees (`subjects` for regions and current consents, `history` for
//! receipts; layout in `codec`), multi-tree transactions for atomic changes and a `flush`
//! (fsync) after every write before it is acknowledged.
//!
//! Receipt ids come from sled's persistent monotonic counter (`generate_id`): unique and
//! increasing for the life of the database, not contiguous (gaps after restarts or retried
//! transactions). The same counter orders the history keys, so history is in insertion
//! order, also for imported lines that carry an older `recorded_at`.
//!
//! Reads are point reads or short prefix scans (microseconds) and run inline; writes block
//! on the fsync and are run by the facade on the blocking pool.

use std::path::Path;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use time::OffsetDateTime;

use super::change::{self, ChangeTx, Write, Written};
use super::codec::SEP;
use super::codec::{
    CONSENTS, HISTORY, HISTORY_TREE, HistoryEntry, SUBJECTS_TREE, consent_key, decode_consent,
    decode_history, decode_region, encode_consent, encode_json, encode_region,
    encode_region_receipt, history_key, region_key, subject_prefix,
};
use super::model::{ConsentRecord, ConsentStatus, History, Receipt, RegionReceipt};
use super::store::{Lookup, StoreError};
use super::tally::Row;

/// A consent store in a sled database directory.
#[derive(Debug, Clone)]
pub(crate) struct SledStore {
    db: sled::Db,
    subjects: sled::Tree,
    history: sled::Tree,
}

/// A sled error as a store error (sled types stay in this module).
pub(crate) fn sled_error(e: sled::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// [`ChangeTx`] over the two trees of one sled transaction.
struct SledTx<'a> {
    subjects: &'a TransactionalTree,
    history: &'a TransactionalTree,
}

type TxError = ConflictableTransactionError<StoreError>;

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        ConflictableTransactionError::Abort(e)
    }
}

impl ChangeTx for SledTx<'_> {
    type Error = TxError;

    fn status(&mut self, subject: &str, purpose: &str) -> Result<Option<ConsentStatus>, TxError> {
        match self.subjects.get(consent_key(subject, purpose))? {
            Some(bytes) => Ok(Some(decode_consent(purpose, &bytes)?.status)),
            None => Ok(None),
        }
    }

    fn region(&mut self, subject: &str) -> Result<Option<String>, TxError> {
        match self.subjects.get(region_key(subject))? {
            Some(bytes) => Ok(Some(decode_region(&bytes)?)),
            None => Ok(None),
        }
    }

    fn next_counter(&mut self) -> Result<u64, TxError> {
        Ok(self.subjects.generate_id()?)
    }

    fn put_consent(&mut self, counter: u64, receipt: &Receipt) -> Result<(), TxError> {
        let receipt_bytes = encode_json(receipt)?;
        let record_bytes = encode_consent(&receipt.to_record())?;
        self.history
            .insert(history_key(&receipt.subject, counter), receipt_bytes)?;
        self.subjects.insert(
            consent_key(&receipt.subject, &receipt.purpose),
            record_bytes,
        )?;
        Ok(())
    }

    fn put_region(&mut self, counter: u64, receipt: &RegionReceipt) -> Result<(), TxError> {
        let receipt_bytes = encode_region_receipt(receipt)?;
        self.history
            .insert(history_key(&receipt.subject, counter), receipt_bytes)?;
        self.subjects
            .insert(region_key(&receipt.subject), encode_region(&receipt.region))?;
        Ok(())
    }
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => sled_error(e),
    }
}

impl SledStore {
    /// Opens (or creates) the database in directory `path`.
    pub(crate) fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path.as_ref())
            .open()
            .map_err(sled_error)?;
        Ok(Self {
            subjects: db.open_tree(SUBJECTS_TREE).map_err(sled_error)?,
            history: db.open_tree(HISTORY_TREE).map_err(sled_error)?,
            db,
        })
    }

    /// The subject's stored region.
    pub(crate) fn region(&self, subject: &str) -> Result<Option<String>, StoreError> {
        self.subjects
            .get(region_key(subject))
            .map_err(sled_error)?
            .map(|bytes| decode_region(&bytes))
            .transpose()
    }

    fn consent(&self, subject: &str, purpose: &str) -> Result<Option<ConsentRecord>, StoreError> {
        self.subjects
            .get(consent_key(subject, purpose))
            .map_err(sled_error)?
            .map(|bytes| decode_consent(purpose, &bytes))
            .transpose()
    }

    /// Region and consent for one purpose: two point reads on the same page.
    pub(crate) fn lookup(&self, subject: &str, purpose: &str) -> Result<Lookup, StoreError> {
        Ok(Lookup {
            region: self.region(subject)?,
            consent: self.consent(subject, purpose)?,
        })
    }

    /// Applies writes in one transaction, then flushes (fsync) before returning.
    pub(crate) fn apply(
        &self,
        writes: &[Write],
        now: OffsetDateTime,
    ) -> Result<Vec<Written>, StoreError> {
        let written = (&self.subjects, &self.history)
            .transaction(|(subjects, history)| {
                let mut tx = SledTx { subjects, history };
                change::apply(&mut tx, writes, now)
            })
            .map_err(tx_error)?;
        self.db.flush().map_err(sled_error)?;
        Ok(written)
    }

    /// The subject's current record for every purpose, sorted by purpose.
    pub(crate) fn current(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let prefix = subject_prefix(subject);
        let mut records = Vec::new();
        for item in self.subjects.scan_prefix(&prefix) {
            let (key, bytes) = item.map_err(sled_error)?;
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

    /// Every receipt of the subject, oldest first.
    pub(crate) fn history(&self, subject: &str) -> Result<History, StoreError> {
        let mut history = History::default();
        for item in self.history.scan_prefix(subject_prefix(subject)) {
            let (_, bytes) = item.map_err(sled_error)?;
            let about = match decode_history(&bytes)? {
                HistoryEntry::Consent(r) => {
                    let subject_ok = r.subject == subject;
                    history.receipts.push(r);
                    subject_ok
                }
                HistoryEntry::Region(r) => {
                    let subject_ok = r.subject == subject;
                    history.regions.push(r);
                    subject_ok
                }
            };
            if !about {
                return Err(StoreError::Corrupt { tree: HISTORY });
            }
        }
        Ok(history)
    }
}

impl SledStore {
    /// Removes consent receipts by counter, except those a current record points at; then
    /// flushes.
    pub(crate) fn prune_receipts(
        &self,
        subject: &str,
        counters: &[u64],
    ) -> Result<usize, StoreError> {
        let current: Vec<u64> = self
            .current(subject)?
            .iter()
            .filter_map(|r| super::model::receipt_counter(&r.receipt_id))
            .collect();
        let mut removed = 0;
        for counter in counters.iter().filter(|c| !current.contains(c)) {
            let key = history_key(subject, *counter);
            let Some(bytes) = self.history.get(&key).map_err(sled_error)? else {
                continue;
            };
            // Only consent receipts of this subject expire; region receipts are kept.
            match decode_history(&bytes)? {
                HistoryEntry::Consent(r) if r.subject == subject => {
                    self.history.remove(&key).map_err(sled_error)?;
                    removed += 1;
                }
                _ => {}
            }
        }
        if removed > 0 {
            self.db.flush().map_err(sled_error)?;
        }
        Ok(removed)
    }
}

/// Everything the sled store holds about one subject, for `store migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SubjectDump {
    /// The subject id.
    pub(crate) subject: String,
    /// Its region, if set.
    pub(crate) region: Option<String>,
    /// Current records, sorted by purpose.
    pub(crate) current: Vec<ConsentRecord>,
    /// Receipts in counter order: (counter, decoded entry, the stored JSON bytes).
    pub(crate) history: Vec<(u64, HistoryEntry, String)>,
}

/// Splits `subject 0x00 rest` keys.
fn split_key(key: &[u8]) -> Option<(&str, &[u8])> {
    let at = key.iter().position(|&b| b == SEP)?;
    let subject = std::str::from_utf8(key.get(..at)?).ok()?;
    Some((subject, key.get(at + 1..)?))
}

impl SledStore {
    /// Every region and current record, in key order (one pass, for the tally).
    pub(crate) fn tally_rows(&self) -> Result<Vec<(String, Row)>, StoreError> {
        let mut rows = Vec::new();
        for item in self.subjects.iter() {
            let (key, bytes) = item.map_err(sled_error)?;
            let (subject, rest) = split_key(&key).ok_or(StoreError::Corrupt { tree: CONSENTS })?;
            let row = if rest.is_empty() {
                Row::Region(decode_region(&bytes)?)
            } else {
                let purpose = std::str::from_utf8(rest)
                    .map_err(|_| StoreError::Corrupt { tree: CONSENTS })?;
                Row::Consent(decode_consent(purpose, &bytes)?)
            };
            rows.push((subject.to_owned(), row));
        }
        Ok(rows)
    }

    /// Every subject with its region, current records and receipts (stored bytes kept),
    /// ordered by subject (byte order).
    pub(crate) fn export(&self) -> Result<Vec<SubjectDump>, StoreError> {
        let mut out: std::collections::BTreeMap<String, SubjectDump> = Default::default();
        for item in self.subjects.iter() {
            let (key, bytes) = item.map_err(sled_error)?;
            let (subject, rest) = split_key(&key).ok_or(StoreError::Corrupt { tree: CONSENTS })?;
            let dump = out.entry(subject.to_owned()).or_default();
            dump.subject = subject.to_owned();
            if rest.is_empty() {
                dump.region = Some(decode_region(&bytes)?);
            } else {
                let purpose = std::str::from_utf8(rest)
                    .map_err(|_| StoreError::Corrupt { tree: CONSENTS })?;
                dump.current.push(decode_consent(purpose, &bytes)?);
            }
        }
        for item in self.history.iter() {
            let (key, bytes) = item.map_err(sled_error)?;
            let corrupt = || StoreError::Corrupt { tree: HISTORY };
            let (subject, rest) = split_key(&key).ok_or_else(corrupt)?;
            let counter = u64::from_be_bytes(rest.try_into().map_err(|_| corrupt())?);
            let entry = decode_history(&bytes)?;
            let json = bytes
                .get(1..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(corrupt)?
                .to_owned();
            let dump = out.entry(subject.to_owned()).or_default();
            dump.subject = subject.to_owned();
            dump.history.push((counter, entry, json));
        }
        Ok(out.into_values().collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use crate::consent::ConsentStore;
    use crate::consent::import::parse_import;
    use crate::consent::model::{ConsentChange, EffectiveConsent, RegionChange};
    use crate::consent::validate::ValidationError;
    use time::macros::datetime;

    /// Opens `path` again once an earlier handle is dropped. sled's I/O threads can hold the
    /// database's file (and its lock) for a moment after the last handle goes, so a reopen in
    /// the same process retries while the lock is still held (at most 5 s).
    pub(crate) fn reopen(path: &Path) -> SledStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match SledStore::open(path) {
                Ok(store) => return store,
                Err(e)
                    if std::time::Instant::now() < deadline && e.to_string().contains("lock") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopening {}: {e}", path.display()),
            }
        }
    }

    fn store() -> (tempfile::TempDir, SledStore, ConsentStore) {
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(dir.path().join("db")).unwrap();
        let store = ConsentStore::from_sled(sled.clone()).unwrap();
        (dir, sled, store)
    }

    fn grant(subject: &str, purpose: &str) -> ConsentChange {
        ConsentChange::new(subject, purpose, ConsentStatus::Granted, "tester")
    }

    fn region(subject: &str, region: &str) -> RegionChange {
        RegionChange::new(subject, region, "tester")
    }

    #[tokio::test]
    async fn region_round_trip_history_and_validation() {
        let (_dir, _, s) = store();
        assert_eq!(s.region("c-1").await.unwrap(), None);
        let r1 = s.set_region(region("c-1", "eu")).await.unwrap();
        assert_eq!(s.region("c-1").await.unwrap().as_deref(), Some("eu"));
        let r2 = s.set_region(region("c-1", "us-ca")).await.unwrap();
        assert_eq!(s.region("c-1").await.unwrap().as_deref(), Some("us-ca"));
        assert_eq!(r1.prev_region, None);
        assert_eq!(r2.prev_region.as_deref(), Some("eu"));
        assert!(r1.verify() && r2.verify());
        assert_eq!(s.history("c-1").await.unwrap().regions, vec![r1, r2]);
        assert!(matches!(
            s.set_region(region("c-1", "EU")).await,
            Err(StoreError::Invalid(ValidationError::Region))
        ));
        assert!(matches!(
            s.set_region(RegionChange::new("c-1", "eu", "")).await,
            Err(StoreError::Invalid(ValidationError::RecordedBy))
        ));
        assert!(matches!(
            s.region("a\0b").await,
            Err(StoreError::Invalid(ValidationError::Subject))
        ));
    }

    #[tokio::test]
    async fn record_round_trip_with_receipt() {
        let (_dir, _, s) = store();
        let mut change = grant("c-1", "marketing");
        change.expires_at = Some(datetime!(2030-01-01 00:00 UTC));
        change.source = Some("signup form".into());
        change.collection_method = Some("api".into());
        let receipt = s.record(change).await.unwrap();
        assert!(receipt.id.starts_with("rcpt_"));
        assert!(receipt.verify());
        assert_eq!(receipt.prev_status, None);
        assert_eq!(receipt.recorded_by.as_deref(), Some("tester"));
        let record = s.lookup("c-1", "marketing").await.unwrap().consent.unwrap();
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
        assert_eq!(s.lookup("c-1", "analytics").await.unwrap().consent, None);
        assert_eq!(s.lookup("c-2", "marketing").await.unwrap().consent, None);
    }

    #[tokio::test]
    async fn lookup_and_lookup_many() {
        let (_dir, _, s) = store();
        assert_eq!(
            s.lookup("c-1", "marketing").await.unwrap(),
            Lookup::default()
        );
        s.set_region(region("c-1", "eu")).await.unwrap();
        let receipt = s.record(grant("c-1", "marketing")).await.unwrap();
        let found = s.lookup("c-1", "marketing").await.unwrap();
        assert_eq!(found.region.as_deref(), Some("eu"));
        assert_eq!(found.consent.unwrap().receipt_id, receipt.id);
        assert!(s.lookup("c-1", "Marketing").await.is_err());
        let many = s
            .lookup_many(&["c-2", "c-1", "c-1"], "marketing")
            .await
            .unwrap();
        assert_eq!(many.len(), 3);
        assert_eq!(many[0], Lookup::default());
        assert_eq!(many[1], many[2]);
        assert_eq!(many[1].region.as_deref(), Some("eu"));
        assert!(
            s.lookup_many(&["c-1", "bad id"], "marketing")
                .await
                .is_err()
        );
        assert!(s.lookup_many(&[], "marketing").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn withdraw_and_history_order() {
        let (_dir, _, s) = store();
        let r1 = s.record(grant("c-1", "marketing")).await.unwrap();
        let r2 = s.record(grant("c-1", "analytics")).await.unwrap();
        let r3 = s
            .record(ConsentChange::new(
                "c-1",
                "marketing",
                ConsentStatus::Withdrawn,
                "dpo",
            ))
            .await
            .unwrap();
        s.record(grant("c-10", "marketing")).await.unwrap();
        s.set_region(region("c-1", "eu")).await.unwrap();
        s.set_region(region("c-10", "eu")).await.unwrap();
        assert_eq!(r3.prev_status, Some(ConsentStatus::Granted));
        assert_eq!(r3.recorded_by.as_deref(), Some("dpo"));
        assert!(r1.id < r2.id && r2.id < r3.id);
        let record = s.lookup("c-1", "marketing").await.unwrap().consent.unwrap();
        assert_eq!(
            record.effective(OffsetDateTime::now_utc()),
            EffectiveConsent::Withdrawn
        );
        let history = s.history("c-1").await.unwrap();
        assert_eq!(history.receipts, vec![r1, r2.clone(), r3.clone()]);
        assert!(history.receipts.iter().all(Receipt::verify));
        assert_eq!(history.regions.len(), 1);
        assert!(history.regions[0].id > r3.id);
        let current = s.current("c-1").await.unwrap();
        assert_eq!(current, vec![r2.to_record(), r3.to_record()]);
        assert_eq!(s.history("c-2").await.unwrap(), History::default());
    }

    #[tokio::test]
    async fn record_refuses_invalid_changes() {
        let (_dir, _, s) = store();
        let mut change = grant("c-1", "marketing");
        change.source = Some("line\nbreak".into());
        assert!(matches!(
            s.record(change).await,
            Err(StoreError::Invalid(ValidationError::Source))
        ));
        assert!(matches!(
            s.record(grant("c/1", "marketing")).await,
            Err(StoreError::Invalid(ValidationError::Subject))
        ));
        assert_eq!(s.history("c-1").await.unwrap(), History::default());
    }

    #[tokio::test]
    async fn import_applies_all_lines_with_region_receipts_on_change() {
        let (_dir, _, s) = store();
        let input = concat!(
            "{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"granted\",\"region\":\"eu\",\"recorded_at\":\"2024-01-01T00:00:00Z\"}\n",
            "\n",
            "{\"subject\":\"c-2\",\"purpose\":\"marketing\",\"status\":\"denied\"}\n",
            "{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"withdrawn\",\"source\":\"cmp\",\"region\":\"eu\"}\n",
        );
        let parsed = parse_import(input.as_bytes(), "cmp-sync", OffsetDateTime::now_utc()).unwrap();
        assert!(parsed.errors.is_empty());
        assert_eq!(s.import(parsed.lines).await.unwrap(), 3);
        assert_eq!(s.region("c-1").await.unwrap().as_deref(), Some("eu"));
        assert_eq!(s.region("c-2").await.unwrap(), None);
        let history = s.history("c-1").await.unwrap();
        assert_eq!(history.receipts.len(), 2);
        assert_eq!(
            history.regions.len(),
            1,
            "the unchanged region is not repeated"
        );
        assert_eq!(history.regions[0].recorded_by.as_deref(), Some("cmp-sync"));
        assert_eq!(
            history.regions[0].collection_method.as_deref(),
            Some("import")
        );
        assert_eq!(
            history.receipts[0].recorded_at,
            datetime!(2024-01-01 00:00 UTC)
        );
        assert_eq!(
            history.receipts[1].prev_status,
            Some(ConsentStatus::Granted)
        );
        assert_eq!(
            history.receipts[1].collection_method.as_deref(),
            Some("import")
        );
        assert_eq!(history.receipts[1].recorded_by.as_deref(), Some("cmp-sync"));
        let record = s.lookup("c-1", "marketing").await.unwrap().consent.unwrap();
        assert_eq!(record.status, ConsentStatus::Withdrawn);
    }

    #[tokio::test]
    async fn a_failed_import_applies_nothing() {
        let (_dir, sled, s) = store();
        s.record(grant("c-1", "marketing")).await.unwrap();
        // A line that passed parsing but fails in the transaction (a corrupt stored value)
        // aborts every line before it too.
        sled.subjects
            .insert(consent_key("c-3", "marketing"), &[0x01, 9][..])
            .unwrap();
        let input = concat!(
            "{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"withdrawn\",\"region\":\"eu\"}\n",
            "{\"subject\":\"c-2\",\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
            "{\"subject\":\"c-3\",\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
        );
        let parsed = parse_import(input.as_bytes(), "cmp", OffsetDateTime::now_utc()).unwrap();
        assert!(s.import(parsed.lines).await.is_err());
        assert_eq!(s.region("c-1").await.unwrap(), None);
        assert_eq!(s.history("c-1").await.unwrap().receipts.len(), 1);
        assert_eq!(s.lookup("c-2", "marketing").await.unwrap().consent, None);
        assert_eq!(
            s.lookup("c-1", "marketing")
                .await
                .unwrap()
                .consent
                .unwrap()
                .status,
            ConsentStatus::Granted
        );
    }

    #[tokio::test]
    async fn unknown_format_byte_is_an_error_not_no_consent() {
        let (_dir, sled, s) = store();
        s.set_region(region("c-1", "eu")).await.unwrap();
        s.record(grant("c-1", "marketing")).await.unwrap();
        sled.subjects
            .insert(consent_key("c-1", "marketing"), &[0x7f, b'{', b'}'][..])
            .unwrap();
        assert!(matches!(
            s.lookup("c-1", "marketing").await,
            Err(StoreError::UnknownFormat {
                tree: "consents",
                byte: 0x7f
            })
        ));
        assert!(s.current("c-1").await.is_err());
        assert!(s.record(grant("c-1", "marketing")).await.is_err());
        sled.subjects
            .insert(region_key("c-1"), &[0x02, b'e', b'u'][..])
            .unwrap();
        assert!(matches!(
            s.region("c-1").await,
            Err(StoreError::UnknownFormat {
                tree: "regions",
                byte: 0x02
            })
        ));
        sled.history
            .insert(history_key("c-1", u64::MAX), &[0x00][..])
            .unwrap();
        assert!(matches!(
            s.history("c-1").await,
            Err(StoreError::UnknownFormat {
                tree: "history",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn corrupt_value_is_an_error() {
        let (_dir, sled, s) = store();
        sled.subjects
            .insert(consent_key("c-1", "marketing"), &[0x01, b'{'][..])
            .unwrap();
        assert!(matches!(
            s.lookup("c-1", "marketing").await,
            Err(StoreError::Corrupt { tree: "consents" })
        ));
    }

    #[tokio::test]
    async fn reopen_after_drop_finds_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let receipt = {
            let s = ConsentStore::open_sled(&path).unwrap();
            s.set_region(region("c-1", "eu")).await.unwrap();
            s.record(grant("c-1", "marketing")).await.unwrap()
        };
        let s = ConsentStore::from_sled(reopen(&path)).unwrap();
        assert_eq!(s.region("c-1").await.unwrap().as_deref(), Some("eu"));
        assert_eq!(
            s.history("c-1").await.unwrap().receipts,
            vec![receipt.clone()]
        );
        let next = s.record(grant("c-1", "marketing")).await.unwrap();
        assert!(next.id > receipt.id, "ids keep increasing after reopen");
    }

    #[test]
    fn sled_agrees_with_the_in_memory_reference() {
        use crate::consent::change::tests::MemTx;
        use crate::consent::change::{Write, apply};
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(dir.path().join("db")).unwrap();
        let writes = vec![
            Write::Region(region("c-1", "eu")),
            Write::Consent(grant("c-1", "marketing")),
            Write::RegionIfChanged(region("c-1", "eu")),
            Write::Consent(ConsentChange::new(
                "c-1",
                "marketing",
                ConsentStatus::Denied,
                "x",
            )),
            Write::RegionIfChanged(region("c-1", "br")),
        ];
        let now = datetime!(2026-01-01 00:00 UTC);
        let from_sled = sled.apply(&writes, now).unwrap();
        let mut mem = MemTx::default();
        let from_mem = apply(&mut mem, &writes, now).unwrap();
        // Same receipts except for the ids (and so the hashes): compare the rest.
        let strip = |w: &Written| match w {
            Written::Consent(r) => format!(
                "{:?}",
                (
                    &r.subject,
                    &r.purpose,
                    r.status,
                    r.prev_status,
                    &r.recorded_by
                )
            ),
            Written::Region(r) => format!(
                "{:?}",
                (&r.subject, &r.region, &r.prev_region, &r.recorded_by)
            ),
            Written::Unchanged => "unchanged".into(),
        };
        let a: Vec<String> = from_sled.iter().map(strip).collect();
        let b: Vec<String> = from_mem.iter().map(strip).collect();
        assert_eq!(a, b);
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
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    let (_dir, _, s) = store();
                    for (subject, purpose) in &rows {
                        s.record(grant(subject, purpose)).await.unwrap();
                        s.set_region(region(subject, "eu")).await.unwrap();
                    }
                    for (subject, _) in &rows {
                        let mut want: Vec<&str> = rows
                            .iter()
                            .filter(|(s2, _)| s2 == subject)
                            .map(|(_, p)| p.as_str())
                            .collect();
                        let history = s.history(subject).await.unwrap();
                        prop_assert_eq!(history.receipts.len(), want.len());
                        prop_assert_eq!(history.regions.len(), want.len());
                        prop_assert!(history.receipts.iter().all(|r| &r.subject == subject));
                        want.sort_unstable();
                        want.dedup();
                        let current: Vec<String> =
                            s.current(subject).await.unwrap().into_iter().map(|r| r.purpose).collect();
                        prop_assert_eq!(current, want);
                    }
                    Ok(())
                })?;
            }
        }
    }
}
