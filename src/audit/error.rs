//! The audit module's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the audit log, its readers and checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file or directory operation failed.
    #[error("audit I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A batch could not be written and fsync'd; nothing of it was acknowledged.
    /// The HTTP layer answers `503 audit_unavailable`.
    #[error("audit log write failed: {0}")]
    WriteFailed(String),
    /// The writer thread is gone (the log was shut down or the thread could not start).
    #[error("audit log is closed")]
    Closed,
    /// The log's tail cannot be read as a record, so the chain head is unknown.
    #[error("audit log is corrupt in {path}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// What is wrong (never contains record contents).
        reason: String,
    },
    /// The pagination cursor is not one this module issued (HTTP 400).
    #[error("invalid audit cursor; use the X-Next-Cursor value of the previous page")]
    BadCursor,
    /// A filter value is invalid (HTTP 400), e.g. a time that is not RFC 3339.
    #[error("invalid audit filter: {0}")]
    BadFilter(String),
    /// The checkpoint key or public key cannot be used.
    #[error("audit checkpoint key error: {0}")]
    Key(String),
    /// A checkpoint signature does not verify with the given public key.
    #[error("audit checkpoint signature is invalid: {0}")]
    BadSignature(String),
    /// A checkpoint file or line cannot be parsed.
    #[error("invalid audit checkpoint: {0}")]
    BadCheckpoint(String),
    /// The audit database failed (PostgreSQL backend); [`crate::pg::PgError::is_fatal`] tells
    /// a configuration error from an outage.
    #[error("audit database: {0}")]
    Database(crate::pg::PgError),
    /// Another live replica holds this chain name (PostgreSQL backend): two writers would
    /// fork the chain.
    #[error(
        "another live replica already writes the audit chain \"{0}\"; give each replica its own [audit] replica name"
    )]
    ReplicaInUse(String),
    /// `audit migrate` refused: the source does not verify, or the chain in the database
    /// holds other records. Nothing conflicting was written.
    #[error("audit migration refused: {0}")]
    Migrate(String),
    /// Writing an export failed.
    #[error("audit export failed: {0}")]
    Export(#[source] std::io::Error),
}

impl AuditError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
