//! Versioned schema migrations, per component (`consent`, `audit`, ...), applied at start.
//!
//! The table `consentgate_migrations (component, version, name, applied_at)` records what
//! was applied. All of a start's migrations run in one transaction that first takes a
//! transaction-scoped advisory lock, so replicas starting together apply each migration
//! exactly once and never see a half-applied schema. A database whose schema is newer
//! than the build is refused ([`PgError::NewerSchema`]).

use super::{PgError, classify};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, ... in order, never reused.
    pub version: i32,
    /// What it does, for the operator.
    pub name: &'static str,
    /// The SQL (several statements allowed).
    pub sql: &'static str,
}

/// Advisory lock key serialising migrations of every component ("cgmigr" as an integer).
const LOCK_KEY: i64 = 0x0000_6367_6d69_6772;

/// Applies the migrations of `component` that the database lacks; returns their versions.
pub async fn apply(
    client: &mut tokio_postgres::Client,
    component: &str,
    migrations: &[Migration],
) -> Result<Vec<i32>, PgError> {
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    let tx = client.transaction().await.map_err(|e| classify(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| classify(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS consentgate_migrations (
             component text NOT NULL,
             version integer NOT NULL,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (component, version)
         )",
    )
    .await
    .map_err(|e| classify(&e))?;
    let rows = tx
        .query(
            "SELECT version FROM consentgate_migrations WHERE component = $1",
            &[&component],
        )
        .await
        .map_err(|e| classify(&e))?;
    let applied: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    if let Some(&found) = applied.iter().max()
        && found > known
    {
        return Err(PgError::NewerSchema {
            component: component.to_owned(),
            found,
            known,
        });
    }
    let mut done = Vec::new();
    for m in migrations {
        if applied.contains(&m.version) {
            continue;
        }
        tx.batch_execute(m.sql).await.map_err(|e| classify(&e))?;
        tx.execute(
            "INSERT INTO consentgate_migrations (component, version, name) VALUES ($1, $2, $3)",
            &[&component, &m.version, &m.name],
        )
        .await
        .map_err(|e| classify(&e))?;
        done.push(m.version);
    }
    tx.commit().await.map_err(|e| classify(&e))?;
    if !done.is_empty() {
        tracing::info!(component, versions = ?done, "database migrations applied");
    }
    Ok(done)
}
