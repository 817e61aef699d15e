//! The audit tables: every replica's chain in one table, keyed by (replica, seq).

use crate::pg::migrate::Migration;

/// The migration component of the audit log.
pub(crate) const COMPONENT: &str = "audit";

/// The audit schema's versions.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "audit log: per-replica hash chains and their checkpoints",
    sql: "
        CREATE TABLE audit_records (
            replica text NOT NULL,
            seq bigint NOT NULL CHECK (seq >= 1),
            ts timestamptz NOT NULL,
            subject text,
            caller text,
            purpose text,
            decision text NOT NULL,
            line bytea NOT NULL,
            hash text NOT NULL,
            PRIMARY KEY (replica, seq)
        );
        CREATE INDEX audit_records_by_time ON audit_records (ts, replica, seq);
        CREATE INDEX audit_records_by_subject ON audit_records (subject, ts, replica, seq)
            WHERE subject IS NOT NULL;
        CREATE TABLE audit_checkpoints (
            replica text NOT NULL,
            seq bigint NOT NULL,
            line bytea NOT NULL,
            PRIMARY KEY (replica, seq)
        );
    ",
}];

/// How late after its `ts` (by the database's clock) a batch may still be inserted. A batch
/// sealed longer ago, or by a replica whose clock is that far behind the database's, is
/// refused (its requests get 503): so a record with time `ts` is either visible by
/// `ts + COMMIT_WINDOW + commit time`, or never.
pub(crate) const COMMIT_WINDOW_SECS: i32 = 1;

/// How far behind the database's clock `GET /v1/audit` lists: [`COMMIT_WINDOW_SECS`] plus a
/// second for the commit itself. Past it, no record can appear any more (see
/// `read::PgAudit::query`).
pub(crate) const LISTING_LAG_SECS: i32 = 2;

/// Appends one batch of a chain: `$1` replica, `$2` ts (the batch's), then one array per
/// column, `$10` the commit window in seconds; inserts nothing when the window has passed.
pub(crate) const INSERT_RECORDS: &str = "
    INSERT INTO audit_records (replica, seq, ts, subject, caller, purpose, decision, line, hash)
    SELECT $1, u.seq, $2::text::timestamptz, u.subject, u.caller, u.purpose, u.decision, u.line, u.hash
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[])
        AS u(seq, subject, caller, purpose, decision, line, hash)
    WHERE statement_timestamp() < $2::text::timestamptz + make_interval(secs => $10::int)";

/// The chain head of `$1`.
pub(crate) const HEAD: &str =
    "SELECT seq, line FROM audit_records WHERE replica = $1 ORDER BY seq DESC LIMIT 1";

/// Takes the chain's session lock (released when the connection closes): one live writer per
/// replica name.
pub(crate) const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('consentgate-audit:' || $1, 0))";

/// Stores a checkpoint (`$3`: its JSON) of chain `$1` at seq `$2`, once.
pub(crate) const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints (replica, seq, line)
    VALUES ($1, $2, $3) ON CONFLICT (replica, seq) DO NOTHING";
