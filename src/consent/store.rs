//! The consent store the gateway uses, whatever the backend, and its error type.
//!
//! [`ConsentStore`] is one cheap-to-clone handle over an enum of backends (sled embedded,
//! PostgreSQL shared). An enum rather than a trait object: the set of backends is closed
//! and known at compile time, the data plane awaits a lookup on every request (an enum
//! dispatches without boxing a future per call), and the shared parts — input
//! validation, receipt logic ([`super::change`]), attribution — live in this one type
//! instead of being repeated per implementation. Backends only offer reads and the small
//! transactional interface [`super::change::ChangeTx`].
//!
//! Every write is durable before its method returns: sled flushes (fsync), PostgreSQL
//! commits with `synchronous_commit = on`. A change updates the current state and the
//! history together or not at all.

use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use super::change::{Write, Written};
use super::import::ImportLine;
use super::model::{ConsentChange, ConsentRecord, History, Receipt, RegionChange, RegionReceipt};
use super::postgres::PgStore;
use super::sled_store::SledStore;
use super::tally::Tally;
use super::validate::{ValidationError, validate_purpose, validate_subject};
use crate::config::StoreSettings;

/// Why a consent store operation failed. Callers must treat every error as
/// "no decision possible" (fail closed), never as "no consent".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage backend failed (I/O, corruption it detected, ...).
    #[error("consent store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store cannot be reached now (database down, pool exhausted, timeout, or the
    /// replica cannot prove its cache fresh and the database does not answer). Retry later.
    #[error("consent store unavailable: {0}")]
    Unavailable(String),
    /// An input value was refused; the message says which and why.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A stored value starts with a format byte this build does not know
    /// (written by a newer version, or damaged).
    #[error("consent store value in `{tree}` has unknown format byte {byte:#04x}")]
    UnknownFormat {
        /// Which collection held the value.
        tree: &'static str,
        /// The format byte found.
        byte: u8,
    },
    /// A stored value could not be decoded.
    #[error("consent store value in `{tree}` is corrupt")]
    Corrupt {
        /// Which collection held the value.
        tree: &'static str,
    },
    /// A value could not be encoded for storage.
    #[error("consent store could not encode a value: {0}")]
    Encode(#[source] serde_json::Error),
    /// The store could not be opened: its configuration is wrong (password file, refused
    /// credentials, unknown database, TLS). Retrying will not help.
    #[error("{0}")]
    Start(String),
    /// An import had more lines than one import may carry.
    #[error("import has more than {max} lines; split it into smaller imports")]
    ImportTooLarge {
        /// The most non-blank lines one import may carry.
        max: usize,
    },
}

/// What the data plane needs for one subject and purpose.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// The subject's stored region, if one was set.
    pub region: Option<String>,
    /// The current consent record for the purpose, if any.
    pub consent: Option<ConsentRecord>,
}

/// The PostgreSQL backend's cache, for `/readyz` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheState {
    /// True while the change feed (`LISTEN`) connection is up.
    pub feed_up: bool,
    /// Age of the freshness proof (the last heartbeat that came back), if any.
    pub proof_age: Option<std::time::Duration>,
    /// Subjects cached.
    pub entries: usize,
}

/// The store's answer to a readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// True when reads and writes can be served now.
    pub ok: bool,
    /// Which backend answered (`sled`, `postgres`).
    pub backend: &'static str,
    /// Why not, in plain words, when `ok` is false (no secrets, no personal data).
    pub problem: Option<String>,
}

#[derive(Debug)]
enum Backend {
    Sled(SledStore),
    Postgres(PgStore),
}

/// Where consent state lives: regions, current consents, and receipts.
#[derive(Debug, Clone)]
pub struct ConsentStore {
    backend: Arc<Backend>,
    tally: Arc<Tally>,
}

/// How often a PostgreSQL replica rebuilds its tally from the database, which brings in
/// what other replicas wrote (its own writes are counted as they happen).
const PG_TALLY_REBUILD: std::time::Duration = std::time::Duration::from_secs(300);
/// How soon a failed PostgreSQL rebuild (database unreachable) is tried again.
const PG_TALLY_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl ConsentStore {
    /// Opens the configured backend. For PostgreSQL, a configuration error fails
    /// ([`StoreError::Start`]) while an unreachable server does not: the store starts not
    /// ready ([`ConsentStore::health`]), refuses with [`StoreError::Unavailable`], and keeps
    /// trying.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        match settings {
            StoreSettings::Sled { path } => Self::open_sled(path),
            StoreSettings::Postgres(pg) => {
                let store = Self {
                    backend: Arc::new(Backend::Postgres(PgStore::open(pg).await?)),
                    tally: Arc::default(),
                };
                tokio::spawn(rebuild_pg_tally(
                    Arc::downgrade(&store.backend),
                    store.tally.clone(),
                ));
                Ok(store)
            }
        }
    }

    /// Opens (or creates) an embedded sled store in directory `path`, and counts its
    /// subjects per state (see [`ConsentStore::tally`]).
    pub fn open_sled(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::from_sled(SledStore::open(path)?)
    }

    /// Wraps an open sled backend and rebuilds the tally from it.
    pub(crate) fn from_sled(sled: SledStore) -> Result<Self, StoreError> {
        let tally = Tally::default();
        tally.rebuild(sled.tally_rows()?);
        Ok(Self {
            backend: Arc::new(Backend::Sled(sled)),
            tally: Arc::new(tally),
        })
    }

    /// Subjects per consent state, per stored region × purpose, kept current on every write
    /// (rebuilt at open; on PostgreSQL also every five minutes, for other replicas' writes).
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Rebuilds the tally now, from one pass over the store's current records.
    pub async fn rebuild_tally(&self) -> Result<(), StoreError> {
        let rows = match &*self.backend {
            Backend::Sled(s) => s.tally_rows()?,
            Backend::Postgres(p) => p.tally_rows().await?,
        };
        self.tally.rebuild(rows);
        Ok(())
    }

    /// The subject's stored region, if one was set.
    pub async fn region(&self, subject: &str) -> Result<Option<String>, StoreError> {
        validate_subject(subject)?;
        match &*self.backend {
            Backend::Sled(s) => s.region(subject),
            Backend::Postgres(p) => p.region(subject).await,
        }
    }

    /// Region and consent for one request: what the data plane calls per request.
    pub async fn lookup(&self, subject: &str, purpose: &str) -> Result<Lookup, StoreError> {
        validate_subject(subject)?;
        validate_purpose(purpose)?;
        match &*self.backend {
            Backend::Sled(s) => s.lookup(subject, purpose),
            Backend::Postgres(p) => p.lookup(subject, purpose).await,
        }
    }

    /// Region and consent for many subjects and one purpose (a collection response), in the
    /// order of `subjects` (repeats allowed). Every subject must be a valid id: one invalid
    /// id fails the whole call, so validate (and withhold) before calling. sled answers from
    /// point reads; PostgreSQL from its cache and one query for all the misses.
    pub async fn lookup_many(
        &self,
        subjects: &[&str],
        purpose: &str,
    ) -> Result<Vec<Lookup>, StoreError> {
        validate_purpose(purpose)?;
        for subject in subjects {
            validate_subject(subject)?;
        }
        match &*self.backend {
            Backend::Sled(s) => subjects.iter().map(|s2| s.lookup(s2, purpose)).collect(),
            Backend::Postgres(p) => p.lookup_many(subjects, purpose).await,
        }
    }

    /// Sets (or replaces) the subject's region; the change is kept in the subject's history
    /// as a region receipt, which is returned.
    pub async fn set_region(&self, change: RegionChange) -> Result<RegionReceipt, StoreError> {
        let written = self.apply(vec![Write::Region(change)]).await?;
        match written.into_iter().next() {
            Some(Written::Region(receipt)) => {
                tracing::debug!(receipt = %receipt.id, "subject region set");
                Ok(receipt)
            }
            _ => Err(unexpected()),
        }
    }

    /// Records a grant, denial or withdrawal and returns its receipt.
    pub async fn record(&self, change: ConsentChange) -> Result<Receipt, StoreError> {
        let written = self.apply(vec![Write::Consent(change)]).await?;
        match written.into_iter().next() {
            Some(Written::Consent(receipt)) => {
                tracing::debug!(
                    purpose = %receipt.purpose,
                    status = receipt.status.as_str(),
                    receipt = %receipt.id,
                    "consent recorded"
                );
                Ok(receipt)
            }
            _ => Err(unexpected()),
        }
    }

    /// Applies validated import lines, all or nothing, in order: each line's region (a
    /// region receipt when it changes the subject's region), then its consent change.
    /// Returns the number of lines applied.
    pub async fn import(&self, lines: Vec<ImportLine>) -> Result<usize, StoreError> {
        let count = lines.len();
        let mut writes = Vec::with_capacity(count);
        for line in lines {
            if let Some(region) = line.region {
                writes.push(Write::RegionIfChanged(RegionChange {
                    subject: line.change.subject.clone(),
                    region,
                    collection_method: line.change.collection_method.clone(),
                    recorded_at: line.change.recorded_at,
                    recorded_by: line.change.recorded_by.clone(),
                }));
            }
            writes.push(Write::Consent(line.change));
        }
        self.apply(writes).await?;
        tracing::info!(lines = count, "consent import applied");
        Ok(count)
    }

    /// The subject's current record for every purpose, sorted by purpose.
    pub async fn current(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        validate_subject(subject)?;
        match &*self.backend {
            Backend::Sled(s) => s.current(subject),
            Backend::Postgres(p) => p.current(subject).await,
        }
    }

    /// The subject's consent and region receipts, each oldest (first recorded) first.
    pub async fn history(&self, subject: &str) -> Result<History, StoreError> {
        validate_subject(subject)?;
        match &*self.backend {
            Backend::Sled(s) => s.history(subject),
            Backend::Postgres(p) => p.history(subject).await,
        }
    }

    /// Deletes the subject's consent receipts with these ids (retention: see
    /// [`super::expired_receipts`]); a receipt that sets a current state is never deleted,
    /// whatever the ids say. Answers how many were deleted; durable before it returns.
    pub async fn prune_receipts(&self, subject: &str, ids: &[String]) -> Result<usize, StoreError> {
        validate_subject(subject)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let counters: Vec<u64> = ids
            .iter()
            .filter_map(|id| super::model::receipt_counter(id))
            .collect();
        match &*self.backend {
            Backend::Sled(s) => {
                let (s, subject) = (s.clone(), subject.to_owned());
                tokio::task::spawn_blocking(move || s.prune_receipts(&subject, &counters))
                    .await
                    .map_err(|_| StoreError::Unavailable("the blocking pool is gone".into()))?
            }
            Backend::Postgres(p) => p.prune_receipts(subject, &counters).await,
        }
    }

    /// Whether the store can serve now (for `/readyz`).
    pub async fn health(&self) -> Health {
        match &*self.backend {
            Backend::Sled(s) => match s.region("readiness-probe") {
                Ok(_) => Health {
                    ok: true,
                    backend: "sled",
                    problem: None,
                },
                Err(e) => Health {
                    ok: false,
                    backend: "sled",
                    problem: Some(e.to_string()),
                },
            },
            Backend::Postgres(p) => p.health().await,
        }
    }

    /// For the PostgreSQL backend: whether the change feed listens, how old the cache's
    /// freshness proof is, and how many subjects are cached (`None` for sled).
    pub fn cache_state(&self) -> Option<CacheState> {
        match &*self.backend {
            Backend::Sled(_) => None,
            Backend::Postgres(p) => {
                let (feed_up, proof_age, entries) = p.feed_state();
                Some(CacheState {
                    feed_up,
                    proof_age,
                    entries,
                })
            }
        }
    }

    /// Validates and applies writes in one durable transaction.
    async fn apply(&self, writes: Vec<Write>) -> Result<Vec<Written>, StoreError> {
        for write in &writes {
            write.validate()?;
        }
        let now = OffsetDateTime::now_utc();
        match &*self.backend {
            Backend::Sled(_) => {
                let backend = self.backend.clone();
                tokio::task::spawn_blocking(move || match &*backend {
                    Backend::Sled(s) => s.apply(&writes, now),
                    Backend::Postgres(_) => Err(unexpected()),
                })
                .await
                .map_err(|e| StoreError::Backend(Box::new(e)))?
            }
            Backend::Postgres(p) => p.apply(&writes, now).await,
        }
        .inspect(|written| {
            for w in written {
                match w {
                    Written::Consent(r) => self.tally.consent_written(r),
                    Written::Region(r) => self.tally.region_written(r),
                    Written::Unchanged => {}
                }
            }
        })
    }
}

/// Rebuilds a PostgreSQL store's tally at start (retrying while the database is
/// unreachable) and then periodically, until the store is dropped.
async fn rebuild_pg_tally(backend: std::sync::Weak<Backend>, tally: Arc<Tally>) {
    loop {
        let Some(strong) = backend.upgrade() else {
            return;
        };
        let result = match &*strong {
            Backend::Postgres(p) => p.tally_rows().await,
            Backend::Sled(_) => return,
        };
        drop(strong);
        let wait = match result {
            Ok(rows) => {
                tally.rebuild(rows);
                PG_TALLY_REBUILD
            }
            Err(e) => {
                tracing::debug!(error = %e, "consent tally not rebuilt yet; retrying");
                PG_TALLY_RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn unexpected() -> StoreError {
    StoreError::Backend("the store returned no receipt for a write".into())
}
