//! The audit log on PostgreSQL (`[audit] backend = "postgres"`): every replica appends its
//! own hash chain (`replica`, `seq`) to one table, in group-committed statements, committed
//! before the batch is acknowledged; readers on any replica see every chain.
//!
//! A second live replica with the same name is refused: the writer holds a session advisory
//! lock on its chain name for as long as its connection lives.

mod migrate;
mod read;
mod schema;
mod sink;

pub use migrate::{AuditMigrateReport, migrate_files_to_postgres};
pub(crate) use read::is_outage;
pub use read::{ChainReport, ChainsReport, PgAudit};
pub(crate) use sink::PgSink;
