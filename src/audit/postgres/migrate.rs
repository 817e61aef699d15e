//! `consentgate audit migrate`: copies a file-backend audit log (segments and checkpoints)
//! into one chain in PostgreSQL, byte for byte, so that a replica of that name continues it.
//!
//! The source must verify first. Rows are inserted with `ON CONFLICT DO NOTHING` after a check
//! that every seq already in the chain holds the very same bytes: a second run copies nothing,
//! and a chain that differs is refused before anything is written. The chain's lock is held
//! throughout, so a live replica of that name cannot write beside the copy.

use std::ops::ControlFlow;
use std::path::Path;

use serde::Deserialize;
use tokio_postgres::Client;

use super::schema::{COMPONENT, INSERT_CHECKPOINT, MIGRATIONS, TRY_LOCK};
use crate::audit::checkpoint::{CHECKPOINT_FILE, Checkpoint};
use crate::audit::error::AuditError;
use crate::audit::segment::{list_segments, stream_lines};
use crate::audit::verify::verify_with;
use crate::pg::{self, PgError, PgTarget, classify};

/// Records copied per statement.
const BATCH: usize = 1000;

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditMigrateReport {
    /// The chain written.
    pub replica: String,
    /// Records in the source.
    pub records: u64,
    /// Records newly copied (0 on a second run).
    pub copied: u64,
    /// Checkpoints newly copied.
    pub checkpoints_copied: u64,
}

#[derive(Deserialize)]
struct Indexed {
    seq: u64,
    ts: String,
    subject: Option<String>,
    caller: Option<String>,
    purpose: Option<String>,
    decision: String,
    hash: String,
}

fn db(e: &tokio_postgres::Error) -> AuditError {
    AuditError::Database(classify(e))
}

/// One batch of source lines, as the table's columns.
#[derive(Default)]
struct Batch {
    seqs: Vec<i64>,
    ts: Vec<String>,
    subjects: Vec<Option<String>>,
    callers: Vec<Option<String>>,
    purposes: Vec<Option<String>>,
    decisions: Vec<String>,
    lines: Vec<Vec<u8>>,
    hashes: Vec<String>,
}

impl Batch {
    fn push(&mut self, line: &[u8]) -> Result<(), AuditError> {
        let r: Indexed = serde_json::from_slice(line).map_err(|_| {
            AuditError::Migrate("a source line is not a record (run `audit verify`)".to_owned())
        })?;
        self.seqs.push(i64::try_from(r.seq).unwrap_or(i64::MAX));
        self.ts.push(r.ts);
        self.subjects.push(r.subject);
        self.callers.push(r.caller);
        self.purposes.push(r.purpose);
        self.decisions.push(r.decision);
        self.lines.push(line.to_vec());
        self.hashes.push(r.hash);
        Ok(())
    }

    /// Refuses if any of these seqs already holds other bytes; then inserts the missing ones.
    async fn copy(&mut self, client: &Client, replica: &str) -> Result<u64, AuditError> {
        if self.seqs.is_empty() {
            return Ok(0);
        }
        let differs: i64 = client
            .query_one(
                "SELECT count(*) FROM audit_records r
                 JOIN unnest($2::bigint[], $3::bytea[]) AS u(seq, line) ON r.seq = u.seq
                 WHERE r.replica = $1 AND r.line <> u.line",
                &[&replica, &self.seqs, &self.lines],
            )
            .await
            .map_err(|e| db(&e))?
            .get(0);
        if differs > 0 {
            return Err(AuditError::Migrate(format!(
                "chain {replica} in the database already holds different records at {differs} of seqs {}..={}: refusing to mix two logs",
                self.seqs.first().copied().unwrap_or(0),
                self.seqs.last().copied().unwrap_or(0)
            )));
        }
        let copied = client
            .execute(
                "INSERT INTO audit_records (replica, seq, ts, subject, caller, purpose, decision, line, hash)
                 SELECT $1, u.seq, u.ts::timestamptz, u.subject, u.caller, u.purpose, u.decision, u.line, u.hash
                 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[])
                     AS u(seq, ts, subject, caller, purpose, decision, line, hash)
                 ON CONFLICT (replica, seq) DO NOTHING",
                &[
                    &replica,
                    &self.seqs,
                    &self.ts,
                    &self.subjects,
                    &self.callers,
                    &self.purposes,
                    &self.decisions,
                    &self.lines,
                    &self.hashes,
                ],
            )
            .await
            .map_err(|e| db(&e))?;
        *self = Batch::default();
        Ok(copied)
    }
}

/// Copies the audit log in `dir` into chain `replica` of the database at `target`. Blocks
/// (it runs its own runtime): call it from a plain thread, such as the CLI's.
pub fn migrate_files_to_postgres(
    dir: &Path,
    target: &PgTarget,
    replica: &str,
) -> Result<AuditMigrateReport, AuditError> {
    if !crate::config::valid_replica_name(replica) {
        return Err(AuditError::Migrate(
            "the replica name must be 1-64 characters of A-Za-z0-9._-".to_owned(),
        ));
    }
    let report = verify_with(dir, Default::default())?;
    if let Some(seq) = report.first_bad_seq {
        return Err(AuditError::Migrate(format!(
            "the source log does not verify at seq {seq} ({}); nothing was copied",
            report.reason.unwrap_or_default()
        )));
    }
    let connector = target.connector().map_err(AuditError::Database)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AuditError::Database(PgError::Other(e.to_string())))?;
    let (mut client, connection) = rt
        .block_on(connector.named("consentgate-audit-migrate").connect())
        .map_err(AuditError::Database)?;
    rt.spawn(connection);
    rt.block_on(async {
        pg::migrate::apply(&mut client, COMPONENT, MIGRATIONS)
            .await
            .map_err(AuditError::Database)?;
        let locked: bool = client
            .query_one(TRY_LOCK, &[&replica])
            .await
            .map_err(|e| db(&e))?
            .get(0);
        if locked {
            Ok(())
        } else {
            Err(AuditError::ReplicaInUse(replica.to_owned()))
        }
    })?;
    let segments = list_segments(dir)?;
    let (mut records, mut copied) = (0u64, 0u64);
    let mut batch = Batch::default();
    stream_lines(&segments, |line| {
        if !line.complete {
            return Ok(ControlFlow::Continue(()));
        }
        batch.push(line.bytes)?;
        records += 1;
        if batch.seqs.len() >= BATCH {
            copied += rt.block_on(batch.copy(&client, replica))?;
        }
        Ok(ControlFlow::<()>::Continue(()))
    })?;
    copied += rt.block_on(batch.copy(&client, replica))?;
    let checkpoints_copied = rt.block_on(copy_checkpoints(&client, dir, replica))?;
    Ok(AuditMigrateReport {
        replica: replica.to_owned(),
        records,
        copied,
        checkpoints_copied,
    })
}

/// Copies `checkpoints.jsonl`'s lines as they are (their signatures cover no chain name:
/// they were made for the file log, which this chain continues).
async fn copy_checkpoints(client: &Client, dir: &Path, replica: &str) -> Result<u64, AuditError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(AuditError::io(&path, e)),
    };
    let mut copied = 0;
    for line in text.split(|b| *b == b'\n') {
        let Ok(cp) = serde_json::from_slice::<Checkpoint>(line) else {
            continue;
        };
        let seq = i64::try_from(cp.seq).unwrap_or(i64::MAX);
        copied += client
            .execute(INSERT_CHECKPOINT, &[&replica, &seq, &line])
            .await
            .map_err(|e| db(&e))?;
    }
    Ok(copied)
}
