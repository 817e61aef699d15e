//! `consentgate store migrate --from sled:DIR --to URL`: copies every subject's region,
//! current consents and receipts from a sled store into PostgreSQL, byte for byte (receipt
//! ids, full-precision timestamps, the stored receipt JSON and its hash).
//!
//! - Every source receipt's hash is checked first; one bad receipt stops the migration.
//! - One transaction, with the tables locked against concurrent writes: a subject absent
//!   from the target is copied; a subject whose target rows equal the source exactly is left
//!   as it is (so a second run changes nothing); anything else — the subject exists with
//!   other data, or a source receipt id is already used — is a conflict, and nothing at all
//!   is copied.
//! - Before the commit the copy is verified: row counts per subject, and every copied
//!   receipt read back, compared byte for byte and its hash checked. The receipt counter
//!   is moved past the highest copied id, and running replicas are told to drop their caches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::codec::HistoryEntry;
use super::model::{Receipt, RegionReceipt, receipt_counter, receipt_id};
use super::postgres::schema::{CHANNEL, COMPONENT, KIND_CONSENT, KIND_REGION, MIGRATIONS};
use super::sled_store::{SledStore, SubjectDump};
use super::store::StoreError;
use super::validate::validate_subject;
use crate::pg::{self, PgError, PgTarget};

/// Subjects per query.
const CHUNK: usize = 2000;

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MigrateReport {
    /// Subjects in the source.
    pub subjects: usize,
    /// Subjects copied by this run.
    pub copied: usize,
    /// Subjects already in the target with the same data (left as they were).
    pub unchanged: usize,
    /// Receipts copied by this run.
    pub receipts_copied: usize,
    /// Current consent records copied by this run.
    pub consents_copied: usize,
    /// Receipts in the source, every one hash-checked.
    pub receipts_verified: usize,
}

/// Why a migration stopped (nothing was committed in any case).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The sled store could not be opened or read.
    #[error("cannot read the sled store {path}: {source} (is a gateway still running on it?)")]
    Source {
        /// The sled directory.
        path: PathBuf,
        /// What went wrong.
        source: StoreError,
    },
    /// PostgreSQL refused or could not be reached.
    #[error("{0}")]
    Database(#[from] PgError),
    /// A source receipt does not match its hash or its key.
    #[error("receipt {id} in the source fails its check ({why}); nothing was copied")]
    BadReceipt {
        /// The receipt id.
        id: String,
        /// What failed.
        why: &'static str,
    },
    /// Target subjects hold other data than the source.
    #[error(
        "{count} subject(s) conflict with the target ({examples}); nothing was copied. Resolve them in the target (or migrate into an empty database) and run again"
    )]
    Conflict {
        /// How many subjects conflict.
        count: usize,
        /// The first few, with what differs.
        examples: String,
    },
    /// The copy did not read back as written.
    #[error("verification after copying failed: {0}; nothing was committed")]
    Verify(String),
}

impl MigrateError {
    /// Exit code for the CLI: 2 for usage, configuration and connection problems, 1 when a
    /// check failed (bad receipt, conflict, verification).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Source { .. } | Self::Database(_) => 2,
            Self::BadReceipt { .. } | Self::Conflict { .. } | Self::Verify(_) => 1,
        }
    }
}

fn db(e: tokio_postgres::Error) -> MigrateError {
    MigrateError::Database(pg::classify(&e))
}

/// One subject as rows for the target.
#[derive(Debug, PartialEq, Eq)]
struct Rows {
    region: Option<String>,
    /// (purpose, receipt seq, record JSON), sorted by purpose.
    current: Vec<(String, i64, String)>,
    /// (seq, kind, body), sorted by seq.
    receipts: Vec<(i64, i16, String)>,
}

fn seq(counter: u64, id: &str) -> Result<i64, MigrateError> {
    i64::try_from(counter).map_err(|_| MigrateError::BadReceipt {
        id: id.to_owned(),
        why: "its counter does not fit PostgreSQL's bigint",
    })
}

/// Checks a dump and turns it into target rows.
fn rows_of(dump: &SubjectDump) -> Result<Rows, MigrateError> {
    let mut receipts = Vec::with_capacity(dump.history.len());
    for (counter, entry, json) in &dump.history {
        let (id, subject, ok, kind) = match entry {
            HistoryEntry::Consent(r) => (&r.id, &r.subject, Receipt::verify(r), KIND_CONSENT),
            HistoryEntry::Region(r) => (&r.id, &r.subject, RegionReceipt::verify(r), KIND_REGION),
        };
        let bad = |why| MigrateError::BadReceipt {
            id: id.clone(),
            why,
        };
        if !ok {
            return Err(bad("its sha256 does not match its content"));
        }
        if *subject != dump.subject || *id != receipt_id(*counter) {
            return Err(bad("it is stored under another subject or counter"));
        }
        receipts.push((seq(*counter, id)?, kind, json.clone()));
    }
    let mut current = Vec::with_capacity(dump.current.len());
    for record in &dump.current {
        let counter = receipt_counter(&record.receipt_id).ok_or(MigrateError::BadReceipt {
            id: record.receipt_id.clone(),
            why: "a current consent names a malformed receipt id",
        })?;
        let json = serde_json::to_string(record).map_err(|_| MigrateError::BadReceipt {
            id: record.receipt_id.clone(),
            why: "its current consent cannot be encoded",
        })?;
        current.push((
            record.purpose.clone(),
            seq(counter, &record.receipt_id)?,
            json,
        ));
    }
    current.sort();
    receipts.sort();
    Ok(Rows {
        region: dump.region.clone(),
        current,
        receipts,
    })
}

/// Copies the sled store in `sled_dir` into the PostgreSQL database of `target`.
pub async fn migrate_sled_to_postgres(
    sled_dir: &Path,
    target: &PgTarget,
) -> Result<MigrateReport, MigrateError> {
    let source = |source| MigrateError::Source {
        path: sled_dir.to_path_buf(),
        source,
    };
    if !sled_dir.is_dir() {
        return Err(source(StoreError::Start("no such directory".into())));
    }
    let dumps = SledStore::open(sled_dir)
        .and_then(|s| s.export())
        .map_err(source)?;
    let mut report = MigrateReport {
        subjects: dumps.len(),
        ..MigrateReport::default()
    };
    let mut source_rows: Vec<(String, Rows)> = Vec::with_capacity(dumps.len());
    for dump in &dumps {
        validate_subject(&dump.subject).map_err(|e| source(StoreError::Invalid(e)))?;
        let rows = rows_of(dump)?;
        report.receipts_verified += rows.receipts.len();
        source_rows.push((dump.subject.clone(), rows));
    }
    drop(dumps);

    let connector = target.connector()?;
    let (mut client, connection) = connector.connect().await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = copy(&mut client, &source_rows, &mut report).await;
    driver.abort();
    result.map(|()| report)
}

async fn copy(
    client: &mut tokio_postgres::Client,
    source: &[(String, Rows)],
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    pg::migrate::apply(client, COMPONENT, MIGRATIONS).await?;
    let tx = client.transaction().await.map_err(db)?;
    tx.batch_execute(
        "SET LOCAL synchronous_commit = on;
         LOCK TABLE consent_subjects, consent_current, consent_receipts IN SHARE ROW EXCLUSIVE MODE",
    )
    .await
    .map_err(db)?;

    let mut conflicts: Vec<String> = Vec::new();
    let mut to_copy: Vec<&(String, Rows)> = Vec::new();
    for chunk in source.chunks(CHUNK) {
        let names: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
        let target = target_rows(&tx, &names).await?;
        for item in chunk {
            let (subject, rows) = item;
            match target.get(subject.as_str()) {
                None => to_copy.push(item),
                Some(existing) if existing == rows => report.unchanged += 1,
                Some(existing) => {
                    conflicts.push(format!("{subject}: {}", difference(existing, rows)))
                }
            }
        }
    }
    // A copied receipt id must not be taken already (by another subject in the target).
    let copy_seqs: Vec<i64> = to_copy
        .iter()
        .flat_map(|(_, r)| r.receipts.iter().map(|(seq, _, _)| *seq))
        .collect();
    for chunk in copy_seqs.chunks(CHUNK * 10) {
        let taken = tx
            .query(
                "SELECT seq, subject FROM consent_receipts WHERE seq = ANY($1) ORDER BY seq LIMIT 5",
                &[&chunk],
            )
            .await
            .map_err(db)?;
        for row in taken {
            let seq: i64 = row.try_get(0).map_err(db)?;
            let owner: String = row.try_get(1).map_err(db)?;
            conflicts.push(format!(
                "receipt id {} is already used in the target by {owner}",
                receipt_id(u64::try_from(seq).unwrap_or(0))
            ));
        }
    }
    if !conflicts.is_empty() {
        let count = conflicts.len();
        conflicts.truncate(5);
        return Err(MigrateError::Conflict {
            count,
            examples: conflicts.join("; "),
        });
    }

    for chunk in to_copy.chunks(CHUNK) {
        insert(&tx, chunk).await?;
        for (_, rows) in chunk {
            report.copied += 1;
            report.receipts_copied += rows.receipts.len();
            report.consents_copied += rows.current.len();
        }
    }
    // Verify: what was copied reads back exactly.
    for chunk in to_copy.chunks(CHUNK) {
        let names: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
        let back = target_rows(&tx, &names).await?;
        for (subject, rows) in chunk {
            let Some(read) = back.get(subject.as_str()) else {
                return Err(MigrateError::Verify(format!("{subject} was not written")));
            };
            if read != rows {
                return Err(MigrateError::Verify(format!(
                    "{subject}: {}",
                    difference(read, rows)
                )));
            }
            for (seq, kind, body) in &read.receipts {
                let ok = match *kind {
                    KIND_CONSENT => serde_json::from_str::<Receipt>(body).is_ok_and(|r| r.verify()),
                    _ => serde_json::from_str::<RegionReceipt>(body).is_ok_and(|r| r.verify()),
                };
                if !ok {
                    return Err(MigrateError::Verify(format!(
                        "receipt {} does not verify after copying",
                        receipt_id(u64::try_from(*seq).unwrap_or(0))
                    )));
                }
            }
        }
    }
    if report.copied > 0 {
        let max = copy_seqs.iter().copied().max().unwrap_or(0);
        tx.execute(
            "SELECT setval('consent_receipt_seq', GREATEST($1::bigint, (SELECT last_value FROM consent_receipt_seq)))",
            &[&max],
        )
        .await
        .map_err(db)?;
        tx.execute("SELECT pg_notify($1, '*')", &[&CHANNEL])
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// What differs between target and source rows, in words (no consent contents).
fn difference(target: &Rows, source: &Rows) -> String {
    if target.region != source.region {
        "its region differs".into()
    } else if target.receipts != source.receipts {
        format!(
            "its receipts differ ({} in the target, {} in the source)",
            target.receipts.len(),
            source.receipts.len()
        )
    } else {
        "its current consents differ".into()
    }
}

/// The target's rows for `subjects` (only subjects the target has).
async fn target_rows(
    tx: &tokio_postgres::Transaction<'_>,
    subjects: &[&str],
) -> Result<HashMap<String, Rows>, MigrateError> {
    let mut out: HashMap<String, Rows> = HashMap::new();
    for row in tx
        .query(
            "SELECT subject, region FROM consent_subjects WHERE subject = ANY($1)",
            &[&subjects],
        )
        .await
        .map_err(db)?
    {
        out.insert(
            row.try_get(0).map_err(db)?,
            Rows {
                region: row.try_get(1).map_err(db)?,
                current: Vec::new(),
                receipts: Vec::new(),
            },
        );
    }
    for row in tx
        .query(
            "SELECT subject, purpose, receipt_seq, record FROM consent_current WHERE subject = ANY($1)",
            &[&subjects],
        )
        .await
        .map_err(db)?
    {
        let subject: String = row.try_get(0).map_err(db)?;
        if let Some(rows) = out.get_mut(&subject) {
            rows.current.push((
                row.try_get(1).map_err(db)?,
                row.try_get(2).map_err(db)?,
                row.try_get(3).map_err(db)?,
            ));
        }
    }
    for row in tx
        .query(
            "SELECT subject, seq, kind, body FROM consent_receipts WHERE subject = ANY($1)",
            &[&subjects],
        )
        .await
        .map_err(db)?
    {
        let subject: String = row.try_get(0).map_err(db)?;
        if let Some(rows) = out.get_mut(&subject) {
            rows.receipts.push((
                row.try_get(1).map_err(db)?,
                row.try_get(2).map_err(db)?,
                row.try_get(3).map_err(db)?,
            ));
        }
    }
    for rows in out.values_mut() {
        rows.current.sort();
        rows.receipts.sort();
    }
    Ok(out)
}

async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    chunk: &[&(String, Rows)],
) -> Result<(), MigrateError> {
    let subjects: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
    let regions: Vec<Option<&str>> = chunk.iter().map(|(_, r)| r.region.as_deref()).collect();
    tx.execute(
        "INSERT INTO consent_subjects (subject, region)
         SELECT * FROM unnest($1::text[], $2::text[])",
        &[&subjects, &regions],
    )
    .await
    .map_err(db)?;
    let (mut who, mut seqs, mut kinds, mut bodies) = (vec![], vec![], vec![], vec![]);
    let (mut c_who, mut purposes, mut c_seqs, mut records) = (vec![], vec![], vec![], vec![]);
    for (subject, rows) in chunk {
        for (seq, kind, body) in &rows.receipts {
            who.push(subject.as_str());
            seqs.push(*seq);
            kinds.push(*kind);
            bodies.push(body.as_str());
        }
        for (purpose, seq, record) in &rows.current {
            c_who.push(subject.as_str());
            purposes.push(purpose.as_str());
            c_seqs.push(*seq);
            records.push(record.as_str());
        }
    }
    tx.execute(
        "INSERT INTO consent_receipts (seq, subject, kind, body)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::int2[], $4::text[])",
        &[&seqs, &who, &kinds, &bodies],
    )
    .await
    .map_err(db)?;
    tx.execute(
        "INSERT INTO consent_current (subject, purpose, receipt_seq, record)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])",
        &[&c_who, &purposes, &c_seqs, &records],
    )
    .await
    .map_err(db)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::consent::ConsentStore;
    use crate::consent::model::{ConsentChange, ConsentRecord, ConsentStatus, RegionChange};

    #[tokio::test]
    async fn dumps_become_checked_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConsentStore::open_sled(dir.path().join("db")).unwrap();
        store
            .set_region(RegionChange::new("m-1", "eu", "t"))
            .await
            .unwrap();
        store
            .record(ConsentChange::new(
                "m-1",
                "ads",
                ConsentStatus::Granted,
                "t",
            ))
            .await
            .unwrap();
        drop(store);
        let sled = crate::consent::sled_store::tests::reopen(&dir.path().join("db"));
        let dumps = sled.export().unwrap();
        assert_eq!(dumps.len(), 1);
        let rows = rows_of(&dumps[0]).unwrap();
        assert_eq!(rows.region.as_deref(), Some("eu"));
        assert_eq!(rows.receipts.len(), 2);
        assert_eq!(rows.receipts[0].1, KIND_REGION);
        assert_eq!(rows.current.len(), 1);
        assert_eq!(rows.current[0].1, rows.receipts[1].0);
        let record: ConsentRecord = serde_json::from_str(&rows.current[0].2).unwrap();
        assert_eq!(record, dumps[0].current[0]);

        // A tampered receipt is refused.
        let mut bad = dumps[0].clone();
        if let HistoryEntry::Consent(r) = &mut bad.history[1].1 {
            r.recorded_by = Some("mallory".into());
        }
        assert!(matches!(
            rows_of(&bad),
            Err(MigrateError::BadReceipt { .. })
        ));
    }
}
