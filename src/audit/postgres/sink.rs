//! The PostgreSQL backend of the writer: one dedicated connection that holds the chain's
//! lock and appends each batch in one statement (its own transaction: committed, so durable
//! under PostgreSQL's default `synchronous_commit`, before the batch is acknowledged).
//!
//! The writer thread drives the connection with a current-thread runtime of its own. After
//! any failure the connection is dropped (which releases the lock); the next batch, or the
//! idle probe, connects again, takes the lock again and re-reads the head from the table:
//! the database is the truth. A batch whose COMMIT was sent but not answered may be in the
//! table although it was reported failed (its requests were refused): records may then
//! describe responses that were not released, never the other way round.

use std::time::{Duration, Instant};

use serde::Deserialize;
use time::OffsetDateTime;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use super::schema::{
    COMMIT_WINDOW_SECS, COMPONENT, HEAD, INSERT_CHECKPOINT, INSERT_RECORDS, MIGRATIONS, TRY_LOCK,
};
use crate::audit::checkpoint::{Checkpoint, Signer};
use crate::audit::error::AuditError;
use crate::audit::metrics::Metrics;
use crate::audit::record::{LineCheck, check_line, format_ts};
use crate::audit::recover::Head;
use crate::audit::writer::{Sealed, Sink};
use crate::pg::{self, Connector, PgError, classify};

/// The record members the table indexes, read back from a sealed line.
#[derive(Deserialize)]
struct Indexed {
    subject: Option<String>,
    caller: Option<String>,
    purpose: Option<String>,
    decision: String,
    hash: String,
}

/// What connecting found.
#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) head: Head,
    /// The chain's latest checkpoint.
    pub(crate) latest: Option<Checkpoint>,
    /// The head record does not verify on its own (reported, not fixed).
    pub(crate) problem: Option<String>,
}

/// This replica's chain in PostgreSQL.
pub(crate) struct PgSink {
    rt: Runtime,
    connector: Connector,
    replica: String,
    client: Option<Client>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("replica", &self.replica)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

fn db(e: &tokio_postgres::Error) -> AuditError {
    AuditError::Database(classify(e))
}

impl PgSink {
    /// A sink for chain `replica` (not connected yet).
    pub(crate) fn new(connector: Connector, replica: String) -> Result<Self, AuditError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AuditError::Database(PgError::Other(e.to_string())))?;
        Ok(Self {
            rt,
            connector: connector.named("consentgate-audit"),
            replica,
            client: None,
        })
    }

    /// Connects, applies the audit migrations, takes the chain's lock and reads its head.
    /// Blocks (call it from the writer thread, or a blocking thread at start).
    pub(crate) fn connect(&mut self) -> Result<Connected, AuditError> {
        self.client = None;
        let connector = self.connector.clone();
        let replica = self.replica.clone();
        let (client, connected) = self.rt.block_on(async move {
            let (mut client, connection) =
                connector.connect().await.map_err(AuditError::Database)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "audit log: database connection closed");
                }
            });
            pg::migrate::apply(&mut client, COMPONENT, MIGRATIONS)
                .await
                .map_err(AuditError::Database)?;
            let key = replica.as_str();
            let locked: bool = client
                .query_one(TRY_LOCK, &[&key])
                .await
                .map_err(|e| db(&e))?
                .get(0);
            if !locked {
                return Err(AuditError::ReplicaInUse(replica.clone()));
            }
            let connected = read_head(&client, &replica).await?;
            Ok::<_, AuditError>((client, connected))
        })?;
        self.client = Some(client);
        Ok(connected)
    }
}

/// The head of `replica`'s chain, and whether its last record verifies on its own.
async fn read_head(client: &Client, replica: &str) -> Result<Connected, AuditError> {
    let row = client
        .query_opt(HEAD, &[&replica])
        .await
        .map_err(|e| db(&e))?;
    let latest = client
        .query_opt(
            "SELECT line FROM audit_checkpoints WHERE replica = $1 ORDER BY seq DESC LIMIT 1",
            &[&replica],
        )
        .await
        .map_err(|e| db(&e))?
        .and_then(|r| serde_json::from_slice::<Checkpoint>(&r.get::<_, Vec<u8>>(0)).ok());
    let Some(row) = row else {
        return Ok(Connected {
            head: Head::genesis(),
            latest,
            problem: None,
        });
    };
    let seq: i64 = row.get(0);
    let line: Vec<u8> = row.get(1);
    let (hash, problem) = match check_line(&line) {
        LineCheck::Good(r) if r.seq == seq as u64 => (r.hash, None),
        LineCheck::Good(r) | LineCheck::HashMismatch(r) | LineCheck::NotCanonical(r) => (
            r.hash,
            Some(format!(
                "the last record of chain {replica} (seq {seq}) does not verify; run `audit verify --url`"
            )),
        ),
        LineCheck::Malformed(_) => {
            return Err(AuditError::Database(PgError::Other(format!(
                "the last record of chain {replica} (seq {seq}) is not a record: the chain head is unknown"
            ))));
        }
    };
    Ok(Connected {
        head: Head {
            next_seq: u64::try_from(seq).unwrap_or(0) + 1,
            prev: hash,
        },
        latest,
        problem,
    })
}

impl Sink for PgSink {
    fn replica(&self) -> Option<&str> {
        Some(&self.replica)
    }

    fn forget_head(&mut self) {
        // Reconnecting re-reads the head.
        self.client = None;
    }

    fn ready(&mut self, head: &mut Head) -> Result<(), AuditError> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        let connected = self.connect()?;
        if connected.head != *head {
            tracing::warn!(
                replica = %self.replica,
                next_seq = connected.head.next_seq,
                expected_next_seq = head.next_seq,
                "audit log: chain head in the database differs from memory after reconnecting; following the database"
            );
        }
        if let Some(problem) = &connected.problem {
            tracing::error!(problem, "audit log: chain head does not verify");
        }
        *head = connected.head;
        Ok(())
    }

    fn write(
        &mut self,
        batch: &Sealed,
        metrics: &Metrics,
        written: &mut dyn FnMut(),
    ) -> Result<(), AuditError> {
        let Some(client) = self.client.as_ref() else {
            return Err(AuditError::WriteFailed("no database connection".to_owned()));
        };
        let n = batch.records.len();
        let (mut seqs, mut lines, mut hashes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut subjects, mut callers, mut purposes, mut decisions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for record in &batch.records {
            let line = batch.line(record);
            let indexed: Indexed = serde_json::from_slice(line).map_err(|_| {
                AuditError::WriteFailed("a sealed record does not parse back".to_owned())
            })?;
            seqs.push(i64::try_from(record.seq).unwrap_or(i64::MAX));
            lines.push(line);
            hashes.push(indexed.hash);
            subjects.push(indexed.subject);
            callers.push(indexed.caller);
            purposes.push(indexed.purpose);
            decisions.push(indexed.decision);
        }
        let ts = batch.ts.as_str();
        let replica = self.replica.as_str();
        let started = Instant::now();
        let result = self.rt.block_on(client.execute(
            INSERT_RECORDS,
            &[
                &replica,
                &ts,
                &seqs,
                &subjects,
                &callers,
                &purposes,
                &decisions,
                &lines,
                &hashes,
                &COMMIT_WINDOW_SECS,
            ],
        ));
        match result {
            Ok(inserted) if inserted != n as u64 => Err(AuditError::WriteFailed(format!(
                "the batch reached the database more than {COMMIT_WINDOW_SECS} s after it was sealed (or this replica's clock is behind the database's): refused, so that listings never miss it"
            ))),
            Ok(_) => {
                metrics.fsync(started.elapsed().as_secs_f64());
                written();
                Ok(())
            }
            Err(e) => {
                self.client = None;
                Err(AuditError::WriteFailed(classify(&e).to_string()))
            }
        }
    }

    fn probe(&mut self, head: &mut Head) -> Option<bool> {
        if let Some(client) = self.client.as_ref() {
            let alive = self
                .rt
                .block_on(async {
                    tokio::time::timeout(pg::CONNECT_TIMEOUT, client.simple_query("SELECT 1")).await
                })
                .is_ok_and(|r| r.is_ok());
            if alive {
                return Some(true);
            }
            self.client = None;
        }
        match self.ready(head) {
            Ok(()) => Some(true),
            Err(e) => {
                tracing::debug!(error = %e, "audit log: database still unavailable");
                Some(false)
            }
        }
    }

    fn store_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), AuditError> {
        let Some(client) = self.client.as_ref() else {
            return Err(AuditError::WriteFailed("no database connection".to_owned()));
        };
        let line = serde_json::to_vec(cp).map_err(|e| AuditError::BadCheckpoint(e.to_string()))?;
        let seq = i64::try_from(cp.seq).unwrap_or(i64::MAX);
        let replica = self.replica.as_str();
        self.rt
            .block_on(client.execute(INSERT_CHECKPOINT, &[&replica, &seq, &line]))
            .map_err(|e| db(&e))?;
        Ok(())
    }

    fn retention_pass(
        &mut self,
        keep: Duration,
        signer: &Signer,
        covered: u64,
    ) -> Result<Vec<(u64, u64)>, AuditError> {
        let Some(client) = self.client.as_ref() else {
            return Ok(Vec::new());
        };
        let now = OffsetDateTime::now_utc();
        let cutoff = format_ts(now - keep);
        let replica = self.replica.as_str();
        let covered = i64::try_from(covered).unwrap_or(i64::MAX);
        self.rt.block_on(async {
            // The newest record old enough and covered by a checkpoint; never the head, so
            // the chain always has a record to continue from.
            let last = client
                .query_opt(
                    "SELECT seq, hash FROM audit_records
                     WHERE replica = $1 AND seq <= $2 AND ts < $3::text::timestamptz
                       AND seq < (SELECT max(seq) FROM audit_records WHERE replica = $1)
                     ORDER BY seq DESC LIMIT 1",
                    &[&replica, &covered, &cutoff],
                )
                .await
                .map_err(|e| db(&e))?;
            let Some(last) = last else {
                return Ok(Vec::new());
            };
            let (seq, hash): (i64, String) = (last.get(0), last.get(1));
            let first: i64 = client
                .query_one(
                    "SELECT coalesce(min(seq), 0) FROM audit_records WHERE replica = $1",
                    &[&replica],
                )
                .await
                .map_err(|e| db(&e))?
                .get(0);
            let anchored = client
                .query_opt(
                    "SELECT 1 FROM audit_checkpoints WHERE replica = $1 AND seq = $2",
                    &[&replica, &seq],
                )
                .await
                .map_err(|e| db(&e))?
                .is_some();
            if !anchored {
                let cp = signer.checkpoint(
                    u64::try_from(seq).unwrap_or(0),
                    &hash,
                    &format_ts(now),
                    Some(replica.to_owned()),
                )?;
                let line = serde_json::to_vec(&cp)
                    .map_err(|e| AuditError::BadCheckpoint(e.to_string()))?;
                client
                    .execute(INSERT_CHECKPOINT, &[&replica, &seq, &line])
                    .await
                    .map_err(|e| db(&e))?;
            }
            let deleted = client
                .execute(
                    "DELETE FROM audit_records WHERE replica = $1 AND seq <= $2",
                    &[&replica, &seq],
                )
                .await
                .map_err(|e| db(&e))?;
            Ok(if deleted == 0 {
                Vec::new()
            } else {
                vec![(
                    u64::try_from(first).unwrap_or(0),
                    u64::try_from(seq).unwrap_or(0),
                )]
            })
        })
    }
}
