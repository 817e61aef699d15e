//! Readers of the chains in PostgreSQL: the merged, filtered listing (ordered by `ts`, then
//! `replica`, then `seq`, keyset-paged with opaque cursors), streaming scans, per-chain
//! verification over the stored bytes, and each chain's latest checkpoint.

use std::ops::ControlFlow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::types::ToSql;

use super::schema::LISTING_LAG_SECS;
use crate::audit::checkpoint::Checkpoint;
use crate::audit::error::AuditError;
use crate::audit::export::{Exporter, Format};
use crate::audit::query::{DEFAULT_LIMIT, Filter, MAX_LIMIT, Page};
use crate::audit::record::{AuditRecord, GENESIS_PREV, format_ts};
use crate::audit::verify::{ChainCheck, CheckpointCheck, signature};
use crate::pg::{PgError, classify, pool_error};

/// Rows read per round trip by scans and verification.
const SCAN_PAGE: i64 = 2000;

/// What `verify` found for one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The chain's name.
    pub replica: String,
    /// True when the chain verified (and the checkpoint anchoring it, after retention).
    pub ok: bool,
    /// Records that verified, before the first break if any.
    pub records: u64,
    /// The seq expected where the chain first breaks.
    pub first_bad_seq: Option<u64>,
    /// Why it breaks there (no record contents).
    pub reason: Option<String>,
    /// The first seq verified: 1, or the first retained seq after retention.
    pub first_seq: u64,
    /// The checkpoint the retained chain starts from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_checkpoint: Option<CheckpointCheck>,
}

/// What `verify` found over every chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainsReport {
    /// True when every chain verified.
    pub ok: bool,
    /// Records that verified, over every chain.
    pub records: u64,
    /// Per chain, by name.
    pub chains: Vec<ChainReport>,
}

/// Reads every replica's chain from PostgreSQL.
#[derive(Clone)]
pub struct PgAudit {
    pool: Pool,
}

impl std::fmt::Debug for PgAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAudit").finish_non_exhaustive()
    }
}

fn db(e: &tokio_postgres::Error) -> AuditError {
    AuditError::Database(classify(e))
}

const CURSOR_PREFIX: &str = "p1:";

/// A position in the merged order: the record's `ts` (as written), replica and seq.
fn encode_cursor(ts: &str, replica: &str, seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{seq}:{ts}:{replica}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String, i64), AuditError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| AuditError::BadCursor)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| AuditError::BadCursor)?;
    let rest = text
        .strip_prefix(CURSOR_PREFIX)
        .ok_or(AuditError::BadCursor)?;
    let (seq, rest) = rest.split_once(':').ok_or(AuditError::BadCursor)?;
    // `ts` is `YYYY-MM-DDTHH:MM:SS.mmmZ`: it holds colons, the replica name does not.
    let (ts, replica) = rest.rsplit_once(':').ok_or(AuditError::BadCursor)?;
    let seq: u64 = seq.parse().map_err(|_| AuditError::BadCursor)?;
    let seq = i64::try_from(seq).map_err(|_| AuditError::BadCursor)?;
    let parsed = crate::audit::parse_rfc3339(ts).map_err(|_| AuditError::BadCursor)?;
    if seq < 1
        || !crate::config::valid_replica_name(replica)
        || format_ts(parsed) != ts
        || encode_cursor(ts, replica, seq as u64) != cursor
    {
        return Err(AuditError::BadCursor);
    }
    Ok((ts.to_owned(), replica.to_owned(), seq))
}

/// The SQL condition and parameters of `filter`, numbered from `$first`.
fn conditions(filter: &Filter) -> (Vec<String>, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |column: &str, op: &str, value: Box<dyn ToSql + Sync + Send>, cast: &str| {
        params.push(value);
        sql.push(format!("{column} {op} ${}{cast}", params.len()));
    };
    if let Some(s) = &filter.subject {
        add("subject", "=", Box::new(s.clone()), "");
    }
    if let Some(c) = &filter.caller {
        add("caller", "=", Box::new(c.clone()), "");
    }
    if let Some(p) = &filter.purpose {
        add("purpose", "=", Box::new(p.clone()), "");
    }
    if let Some(d) = filter.decision {
        add("decision", "=", Box::new(d.as_str().to_owned()), "");
    }
    if let Some(from) = filter.from {
        add("ts", ">=", Box::new(format_ts(from)), "::text::timestamptz");
    }
    if let Some(to) = filter.to {
        add("ts", "<", Box::new(format_ts(to)), "::text::timestamptz");
    }
    (sql, params)
}

/// One row of the merged listing: its place in the order and its stored line.
struct Row {
    /// `ts` as the record writes it (UTC, milliseconds).
    ts: String,
    replica: String,
    seq: i64,
    line: Vec<u8>,
}

impl PgAudit {
    /// A reader over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, AuditError> {
        self.pool
            .get()
            .await
            .map_err(|e| AuditError::Database(pool_error(e)))
    }

    /// Up to `limit` matching records at or after `from` in the merged order: their
    /// (replica, seq, line).
    async fn page(
        &self,
        filter: &Filter,
        from: Option<&(String, String, i64)>,
        before: Option<&String>,
        limit: i64,
    ) -> Result<Vec<Row>, AuditError> {
        let (mut sql, mut params) = conditions(filter);
        if let Some(before) = before {
            params.push(Box::new(before.clone()));
            sql.push(format!("ts < ${}::text::timestamptz", params.len()));
        }
        if let Some((ts, replica, seq)) = from {
            let n = params.len();
            sql.push(format!(
                "(ts, replica, seq) >= (${}::text::timestamptz, ${}, ${})",
                n + 1,
                n + 2,
                n + 3
            ));
            params.push(Box::new(ts.clone()));
            params.push(Box::new(replica.clone()));
            params.push(Box::new(*seq));
        }
        params.push(Box::new(limit));
        let query = format!(
            "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), replica, seq, line
             FROM audit_records {} ORDER BY ts, replica, seq LIMIT ${}",
            if sql.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", sql.join(" AND "))
            },
            params.len()
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let rows = client.query(&query, &refs).await.map_err(|e| db(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| Row {
                ts: r.get(0),
                replica: r.get(1),
                seq: r.get(2),
                line: r.get(3),
            })
            .collect())
    }

    /// The listing watermark: the database's time [`LISTING_LAG_SECS`] ago. Every record
    /// older than it that will ever be visible is visible now (a batch is inserted within
    /// [`super::schema::COMMIT_WINDOW_SECS`] of its `ts` or not at all).
    async fn watermark(&self) -> Result<String, AuditError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT to_char((statement_timestamp() - make_interval(secs => $1::int)) AT TIME ZONE 'UTC',
                                'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                &[&LISTING_LAG_SECS],
            )
            .await
            .map_err(|e| db(&e))?;
        Ok(row.get(0))
    }

    /// One page of matching records of every chain, merged (see the module), starting at
    /// `cursor` (a previous page's `next_cursor`) or at the beginning.
    ///
    /// Replicas seal records (and so set `ts`) before they commit them, so a record may
    /// become visible after a later one of another chain. The listing therefore shows only
    /// records older than the listing watermark (the database's time
    /// [`LISTING_LAG_SECS`] ago), behind which no record can appear any more: every record is
    /// listed exactly once, in order, however the chains are being written, and a reader that
    /// polls from the last `ts` it saw misses nothing. The price: the newest records show
    /// here [`LISTING_LAG_SECS`] late (the subject report and exports read at once).
    pub async fn query(&self, filter: &Filter, cursor: Option<&str>) -> Result<Page, AuditError> {
        let from = cursor.map(decode_cursor).transpose()?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        // The watermark first: the page's snapshot must be younger than it.
        let watermark = self.watermark().await?;
        let mut rows = self
            .page(filter, from.as_ref(), Some(&watermark), fetch)
            .await?;
        let next = if rows.len() > limit {
            rows.pop()
                .map(|r| encode_cursor(&r.ts, &r.replica, u64::try_from(r.seq).unwrap_or(1)))
        } else {
            None
        };
        let lines = rows
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.line).into_owned())
            .collect();
        Ok(Page {
            lines,
            next_cursor: next,
        })
    }

    /// Calls `f` with the line and record of every matching record of every chain, in the
    /// merged order, reading a page at a time. Returns how many matched.
    pub async fn scan(
        &self,
        filter: &Filter,
        mut f: impl FnMut(&str, &AuditRecord) -> Result<ControlFlow<()>, AuditError>,
    ) -> Result<u64, AuditError> {
        let mut from: Option<(String, String, i64)> = None;
        let mut n = 0;
        loop {
            let rows = self
                .page(filter, from.as_ref(), None, SCAN_PAGE + 1)
                .await?;
            let more = rows.len() as i64 > SCAN_PAGE;
            for (i, row) in rows.into_iter().enumerate() {
                if more && i as i64 == SCAN_PAGE {
                    from = Some((row.ts, row.replica, row.seq));
                    break;
                }
                let text = String::from_utf8_lossy(&row.line);
                let Ok(record) = serde_json::from_str::<AuditRecord>(&text) else {
                    continue;
                };
                n += 1;
                if f(&text, &record)?.is_break() {
                    return Ok(n);
                }
            }
            if !more {
                return Ok(n);
            }
        }
    }

    /// Writes every matching record of every chain to `out`, in the merged order, as
    /// [`crate::audit::export`] does for the files. Returns the number written.
    pub async fn export(
        &self,
        filter: &Filter,
        format: Format,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, AuditError> {
        let mut exporter = Exporter::new(format, filter, out)?;
        self.scan(filter, |line, record| exporter.write(line, record))
            .await?;
        exporter.finish()
    }

    /// The chains' names, from records and checkpoints.
    async fn chains(&self) -> Result<Vec<String>, AuditError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT replica FROM audit_records
                 UNION SELECT DISTINCT replica FROM audit_checkpoints ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| db(&e))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn checkpoints_of(&self, replica: &str) -> Result<Vec<Checkpoint>, AuditError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT line FROM audit_checkpoints WHERE replica = $1 ORDER BY seq",
                &[&replica],
            )
            .await
            .map_err(|e| db(&e))?;
        rows.into_iter()
            .map(|r| {
                let line: Vec<u8> = r.get(0);
                serde_json::from_slice(&line)
                    .map_err(|e| AuditError::BadCheckpoint(format!("chain {replica}: {e}")))
            })
            .collect()
    }

    /// The latest checkpoint of every chain that has one, by chain name.
    pub async fn latest_checkpoints(&self) -> Result<Vec<Checkpoint>, AuditError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT ON (replica) line FROM audit_checkpoints ORDER BY replica, seq DESC",
                &[],
            )
            .await
            .map_err(|e| db(&e))?;
        rows.into_iter()
            .map(|r| {
                let line: Vec<u8> = r.get(0);
                serde_json::from_slice(&line).map_err(|e| AuditError::BadCheckpoint(e.to_string()))
            })
            .collect()
    }

    /// Verifies every chain (see [`crate::audit::verify_with`] for what is checked; here per
    /// chain, from the stored bytes in the table). Checkpoints that anchor a chain shortened
    /// by retention are trusted only with `public_key`.
    pub async fn verify(&self, public_key: Option<&[u8]>) -> Result<ChainsReport, AuditError> {
        let mut chains = Vec::new();
        for replica in self.chains().await? {
            chains.push(self.verify_chain(&replica, public_key).await?);
        }
        Ok(ChainsReport {
            ok: chains.iter().all(|c| c.ok),
            records: chains.iter().map(|c| c.records).sum(),
            chains,
        })
    }

    async fn verify_chain(
        &self,
        replica: &str,
        public_key: Option<&[u8]>,
    ) -> Result<ChainReport, AuditError> {
        let checkpoints = self.checkpoints_of(replica).await?;
        let client = self.client().await?;
        let first: Option<i64> = client
            .query_one(
                "SELECT min(seq) FROM audit_records WHERE replica = $1",
                &[&replica],
            )
            .await
            .map_err(|e| db(&e))?
            .get(0);
        let first_seq = first.map_or(1, |s| u64::try_from(s).unwrap_or(1).max(1));
        let mut problem = None;
        let mut prev = GENESIS_PREV.to_owned();
        let mut from_checkpoint = None;
        if first_seq > 1 {
            match checkpoints.iter().find(|cp| cp.seq == first_seq - 1) {
                Some(anchor) if anchor.replica.as_deref().is_none_or(|r| r == replica) => {
                    prev = anchor.hash.clone();
                    from_checkpoint = Some(CheckpointCheck {
                        seq: anchor.seq,
                        signature: signature(anchor, public_key),
                    });
                }
                _ => {
                    problem = Some((
                        1,
                        format!(
                            "the chain starts at seq {first_seq} and no checkpoint of seq {} anchors it: records were deleted",
                            first_seq - 1
                        ),
                    ));
                }
            }
        }
        let mut chain = ChainCheck::new(first_seq, prev, &checkpoints, None, Some(replica));
        let mut after = 0i64;
        while problem.is_none() {
            let rows = client
                .query(
                    "SELECT seq, line, subject, caller, purpose, decision, hash,
                            to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                     FROM audit_records WHERE replica = $1 AND seq > $2
                     ORDER BY seq LIMIT $3",
                    &[&replica, &after, &SCAN_PAGE],
                )
                .await
                .map_err(|e| db(&e))?;
            let done = (rows.len() as i64) < SCAN_PAGE;
            for row in rows {
                let (seq, line): (i64, Vec<u8>) = (row.get(0), row.get(1));
                let columns = Columns {
                    subject: row.get(2),
                    caller: row.get(3),
                    purpose: row.get(4),
                    decision: row.get(5),
                    hash: row.get(6),
                    ts: row.get(7),
                };
                after = seq;
                let stored_at = u64::try_from(seq).unwrap_or(0);
                let outcome = chain.feed(&line, |record| {
                    if record.seq != stored_at {
                        return Some(format!(
                            "the row of seq {stored_at} holds record {}",
                            record.seq
                        ));
                    }
                    // Listings, filters and reports read the columns: they must say what
                    // the record says.
                    (!columns.agree_with(record)).then(|| {
                        "the row's index columns (subject, caller, purpose, decision, ts, hash) disagree with its record: it was edited".to_owned()
                    })
                });
                if let Err(broken) = outcome {
                    problem = Some(broken);
                    break;
                }
            }
            if done {
                break;
            }
        }
        let records = chain.expected - first_seq;
        let unsigned = from_checkpoint
            .as_ref()
            .filter(|c| c.signature != crate::audit::Signature::Verified)
            .map(|c| {
                format!(
                    "checkpoint {} anchoring the chain was not verified against a trusted public key",
                    c.seq
                )
            });
        let (ok, first_bad_seq, reason) = match (problem, unsigned) {
            (Some((seq, reason)), _) => (false, Some(seq), Some(reason)),
            (None, Some(reason)) => (false, None, Some(reason)),
            (None, None) => (true, None, None),
        };
        Ok(ChainReport {
            replica: replica.to_owned(),
            ok,
            records,
            first_bad_seq,
            reason,
            first_seq,
            from_checkpoint,
        })
    }

    /// The oldest record's time over every chain (none for an empty log).
    pub async fn retained_since(&self) -> Result<Option<String>, AuditError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM audit_records",
                &[],
            )
            .await
            .map_err(|e| db(&e))?;
        Ok(row.and_then(|r| r.get(0)))
    }
}

/// A row's index columns, which must agree with its stored record.
struct Columns {
    subject: Option<String>,
    caller: Option<String>,
    purpose: Option<String>,
    decision: String,
    hash: String,
    ts: String,
}

impl Columns {
    fn agree_with(&self, r: &AuditRecord) -> bool {
        self.subject == r.subject
            && self.caller == r.caller
            && self.purpose == r.purpose
            && self.decision == r.decision.as_str()
            && self.hash == r.hash
            && crate::audit::parse_rfc3339(&r.ts).is_ok_and(|t| format_ts(t) == self.ts)
    }
}

/// Whether an audit read failed because the database is away (an outage, not a bug).
pub(crate) fn is_outage(e: &AuditError) -> bool {
    matches!(e, AuditError::Database(PgError::Unreachable(_)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let c = encode_cursor("2026-11-23T21:55:44.123Z", "gw-1", 42);
        assert_eq!(
            decode_cursor(&c).unwrap(),
            ("2026-11-23T21:55:44.123Z".into(), "gw-1".into(), 42)
        );
        for bad in [
            String::new(),
            "!!".into(),
            URL_SAFE_NO_PAD.encode("p1:0:2026-11-23T21:55:44.123Z:gw-1"),
            URL_SAFE_NO_PAD.encode("p1:3:2026-11-23T21:55:44Z:gw-1"),
            URL_SAFE_NO_PAD.encode("p1:3:2026-11-23T21:55:44.123Z:gw 1"),
            URL_SAFE_NO_PAD.encode("p1:3:yesterday:gw-1"),
            URL_SAFE_NO_PAD.encode("c1:3"),
            format!("{c}="),
        ] {
            assert!(
                matches!(decode_cursor(&bad), Err(AuditError::BadCursor)),
                "{bad}"
            );
        }
    }
}
