//! The PostgreSQL backend: regions, consents and receipts shared by every replica, with a
//! per-replica cache whose freshness is proven (see `cache` and `listener`).
//!
//! - Reads for the data plane ([`PgStore::lookup`], [`PgStore::lookup_many`]) answer from
//!   the cache while it is proven fresh within `max_staleness`; otherwise, and on a miss,
//!   from the database (one query for all the misses of a batch). If the database cannot
//!   answer, the call fails with [`StoreError::Unavailable`] (503 `store_unavailable`).
//! - Admin reads (`region`, `current`, `history`) always read the database.
//! - Writes run the shared receipt logic in one transaction: the subjects' rows are locked
//!   (in a fixed order), their current state read, receipt ids taken from the sequence, the
//!   rows written, every subject notified on the channel, then the commit, with
//!   `synchronous_commit = on` so an acknowledged write is on disk. After the commit the
//!   replica drops its own cache entries at once, before the write is acknowledged.

mod cache;
mod listener;
pub(crate) mod schema;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use time::OffsetDateTime;

use self::cache::{Cache, SubjectEntry};
use self::listener::FeedStatus;
use self::schema::{CHANNEL, COMPONENT, KIND_CONSENT, KIND_REGION, MIGRATIONS};
use super::change::{self, ChangeTx, Write, Written};
use super::model::{ConsentRecord, ConsentStatus, History, Receipt, RegionReceipt};
use super::store::{Health, Lookup, StoreError};
use super::tally::Row;
use crate::config::PostgresStoreSettings;
use crate::pg::{self, PgError};

/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// Longest wait for a pooled connection and for a read.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a write transaction (its outcome is unknown past this: 503).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the tally rebuild's two full reads.
const TALLY_TIMEOUT: Duration = Duration::from_secs(120);
/// A write about more subjects than this notifies `*` (clear every cache) instead.
const MAX_NAMED_NOTIFY: usize = 256;
/// `application_name` of the change feed's connection.
pub(crate) const FEED_APPLICATION_NAME: &str = "consentgate-feed";
/// Pause between start-up attempts while the server is unreachable.
const INIT_RETRY: Duration = Duration::from_secs(1);

/// A consent store in PostgreSQL.
pub(crate) struct PgStore {
    pool: Pool,
    cache: Arc<Cache>,
    feed: Arc<FeedStatus>,
    /// True once the schema is known to be migrated.
    ready: Arc<AtomicBool>,
    /// Why the schema is not ready yet (start-up against an unreachable server).
    not_ready: Arc<Mutex<Option<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A driver error as a store error: outages are `Unavailable`, the rest `Backend`.
pub(crate) fn pg_error(e: PgError) -> StoreError {
    match e {
        PgError::Unreachable(reason) => StoreError::Unavailable(reason),
        other => StoreError::Backend(Box::new(other)),
    }
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    pg_error(pg::classify(&e))
}

async fn timed<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| StoreError::Unavailable(format!("{what} took longer than {limit:?}")))?
}

/// Connects and applies the migrations.
async fn init(pool: &Pool) -> Result<(), PgError> {
    let mut client = pool.get().await.map_err(pg::pool_error)?;
    pg::migrate::apply(&mut client, COMPONENT, MIGRATIONS).await?;
    Ok(())
}

impl PgStore {
    /// Opens the store. Configuration errors (bad password file, refused credentials,
    /// unknown database, TLS) fail; an unreachable server does not: the store starts not
    /// ready, answers `Unavailable`, and keeps trying in the background.
    pub(crate) async fn open(settings: &PostgresStoreSettings) -> Result<Self, StoreError> {
        let connector = settings
            .target
            .connector()
            .map_err(|e| StoreError::Start(e.to_string()))?;
        let pool = connector
            .pool(POOL_SIZE, READ_TIMEOUT)
            .map_err(|e| StoreError::Start(e.to_string()))?;
        let ready = Arc::new(AtomicBool::new(false));
        let not_ready = Arc::new(Mutex::new(None));
        let mut tasks = Vec::new();
        match init(&pool).await {
            Ok(()) => ready.store(true, Ordering::Release),
            Err(e) if e.is_fatal() => return Err(StoreError::Start(e.to_string())),
            Err(e) => {
                tracing::warn!(
                    database = %settings.target.describe(),
                    reason = %e,
                    "PostgreSQL unreachable at start; starting not ready and retrying"
                );
                set_reason(&not_ready, Some(e.to_string()));
                tasks.push(tokio::spawn(retry_init(
                    pool.clone(),
                    ready.clone(),
                    not_ready.clone(),
                )));
            }
        }
        let cache = Arc::new(Cache::new(settings.max_staleness));
        let feed = Arc::new(FeedStatus::default());
        tasks.push(tokio::spawn(listener::run(
            connector.named(FEED_APPLICATION_NAME),
            cache.clone(),
            feed.clone(),
            settings.max_staleness,
        )));
        Ok(Self {
            pool,
            cache,
            feed,
            ready,
            not_ready,
            tasks,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "the database has not been reached since start".into(),
            ));
        }
        self.pool
            .get()
            .await
            .map_err(|e| pg_error(pg::pool_error(e)))
    }

    /// Region and consent for one purpose: from the cache when it is proven fresh.
    pub(crate) async fn lookup(&self, subject: &str, purpose: &str) -> Result<Lookup, StoreError> {
        if let Some(entry) = self.cache.get(subject) {
            return Ok(answer(&entry, purpose));
        }
        let ticket = self.cache.begin_read();
        let mut found = self.read_entries(&[subject]).await?;
        let entry = found.remove(subject).unwrap_or_default();
        let out = answer(&entry, purpose);
        self.cache.insert(ticket, subject, entry);
        Ok(out)
    }

    /// The same for many subjects: cache hits, then one query for the distinct misses.
    pub(crate) async fn lookup_many(
        &self,
        subjects: &[&str],
        purpose: &str,
    ) -> Result<Vec<Lookup>, StoreError> {
        let mut hits: HashMap<&str, SubjectEntry> = HashMap::new();
        let mut misses: Vec<&str> = Vec::new();
        for &s in subjects {
            if hits.contains_key(s) || misses.contains(&s) {
                continue;
            }
            match self.cache.get(s) {
                Some(e) => {
                    hits.insert(s, e);
                }
                None => misses.push(s),
            }
        }
        if !misses.is_empty() {
            let ticket = self.cache.begin_read();
            let mut found = self.read_entries(&misses).await?;
            for s in misses {
                let entry = found.remove(s).unwrap_or_default();
                self.cache.insert(ticket, s, entry.clone());
                hits.insert(s, entry);
            }
        }
        Ok(subjects
            .iter()
            .map(|s| hits.get(s).map(|e| answer(e, purpose)).unwrap_or_default())
            .collect())
    }

    /// Reads whole subject entries from the database.
    async fn read_entries(
        &self,
        subjects: &[&str],
    ) -> Result<HashMap<String, SubjectEntry>, StoreError> {
        timed(READ_TIMEOUT, "a consent lookup", async {
            let client = self.client().await?;
            // Two index lookups sent together (tokio-postgres pipelines them on the one
            // connection): one round trip, and no join plan that scans a table.
            let (regions_stmt, records_stmt) = tokio::try_join!(
                client.prepare_cached(
                    "SELECT subject, region FROM consent_subjects WHERE subject = ANY($1)"
                ),
                client.prepare_cached(
                    "SELECT subject, record FROM consent_current WHERE subject = ANY($1)"
                ),
            )
            .map_err(db_error)?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&subjects];
            let (regions, records) = tokio::try_join!(
                client.query(&regions_stmt, &params),
                client.query(&records_stmt, &params),
            )
            .map_err(db_error)?;
            let mut out: HashMap<String, SubjectEntry> = HashMap::new();
            for row in regions {
                let subject: String = row.try_get(0).map_err(db_error)?;
                let region: Option<String> = row.try_get(1).map_err(db_error)?;
                out.entry(subject).or_default().region = region;
            }
            for row in records {
                let subject: String = row.try_get(0).map_err(db_error)?;
                let record: String = row.try_get(1).map_err(db_error)?;
                out.entry(subject)
                    .or_default()
                    .consents
                    .push(decode_record(&record)?);
            }
            Ok(out)
        })
        .await
    }

    /// The subject's stored region (from the database).
    pub(crate) async fn region(&self, subject: &str) -> Result<Option<String>, StoreError> {
        timed(READ_TIMEOUT, "a region read", async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT region FROM consent_subjects WHERE subject = $1",
                    &[&subject],
                )
                .await
                .map_err(db_error)?;
            match row {
                Some(row) => row.try_get::<_, Option<String>>(0).map_err(db_error),
                None => Ok(None),
            }
        })
        .await
    }

    /// The subject's current records, sorted by purpose (byte order, as sled).
    pub(crate) async fn current(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        timed(READ_TIMEOUT, "a consent read", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT record FROM consent_current WHERE subject = $1 ORDER BY purpose COLLATE \"C\"",
                    &[&subject],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| decode_record(&row.try_get::<_, String>(0).map_err(db_error)?))
                .collect()
        })
        .await
    }

    /// Every region and current record (one pass, for the tally).
    pub(crate) async fn tally_rows(&self) -> Result<Vec<(String, Row)>, StoreError> {
        timed(TALLY_TIMEOUT, "the tally rebuild", async {
            let client = self.client().await?;
            let regions = client
                .query(
                    "SELECT subject, region FROM consent_subjects WHERE region IS NOT NULL",
                    &[],
                )
                .await
                .map_err(db_error)?;
            let current = client
                .query("SELECT subject, record FROM consent_current", &[])
                .await
                .map_err(db_error)?;
            let mut rows = Vec::with_capacity(regions.len() + current.len());
            for row in &regions {
                rows.push((
                    row.try_get::<_, String>(0).map_err(db_error)?,
                    Row::Region(row.try_get::<_, String>(1).map_err(db_error)?),
                ));
            }
            for row in &current {
                let record = decode_record(&row.try_get::<_, String>(1).map_err(db_error)?)?;
                rows.push((
                    row.try_get::<_, String>(0).map_err(db_error)?,
                    Row::Consent(record),
                ));
            }
            Ok(rows)
        })
        .await
    }

    /// The subject's receipts in counter order.
    /// Deletes consent receipts by seq, except those a current record points at.
    pub(crate) async fn prune_receipts(
        &self,
        subject: &str,
        counters: &[u64],
    ) -> Result<usize, StoreError> {
        let seqs: Vec<i64> = counters
            .iter()
            .filter_map(|c| i64::try_from(*c).ok())
            .collect();
        timed(WRITE_TIMEOUT, "a receipt deletion", async {
            let client = self.client().await?;
            let n = client
                .execute(
                    "DELETE FROM consent_receipts
                     WHERE subject = $1 AND kind = $2 AND seq = ANY($3)
                       AND seq NOT IN (SELECT receipt_seq FROM consent_current WHERE subject = $1)",
                    &[&subject, &KIND_CONSENT, &seqs],
                )
                .await
                .map_err(db_error)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }

    pub(crate) async fn history(&self, subject: &str) -> Result<History, StoreError> {
        timed(READ_TIMEOUT, "a history read", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT kind, body FROM consent_receipts WHERE subject = $1 ORDER BY seq",
                    &[&subject],
                )
                .await
                .map_err(db_error)?;
            let mut history = History::default();
            for row in rows {
                let kind: i16 = row.try_get(0).map_err(db_error)?;
                let body: String = row.try_get(1).map_err(db_error)?;
                let corrupt = |_| StoreError::Corrupt { tree: "history" };
                match kind {
                    KIND_CONSENT => {
                        let r: Receipt = serde_json::from_str(&body).map_err(corrupt)?;
                        if r.subject != subject {
                            return Err(StoreError::Corrupt { tree: "history" });
                        }
                        history.receipts.push(r);
                    }
                    KIND_REGION => {
                        let r: RegionReceipt = serde_json::from_str(&body).map_err(corrupt)?;
                        if r.subject != subject {
                            return Err(StoreError::Corrupt { tree: "history" });
                        }
                        history.regions.push(r);
                    }
                    _ => return Err(StoreError::Corrupt { tree: "history" }),
                }
            }
            Ok(history)
        })
        .await
    }

    /// Applies validated writes in one committed transaction, then drops this replica's
    /// cache entries for the subjects written.
    pub(crate) async fn apply(
        &self,
        writes: &[Write],
        now: OffsetDateTime,
    ) -> Result<Vec<Written>, StoreError> {
        let mut subjects: Vec<&str> = writes.iter().map(write_subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let written = timed(WRITE_TIMEOUT, "a consent write", async {
            let mut client = self.client().await?;
            write_tx(&mut client, writes, &subjects, now).await
        })
        .await?;
        if subjects.len() > MAX_NAMED_NOTIFY {
            self.cache.clear();
        } else {
            for s in &subjects {
                self.cache.invalidate(s);
            }
        }
        Ok(written)
    }

    /// Readiness: the schema is migrated and the database answers now.
    pub(crate) async fn health(&self) -> Health {
        let problem = if !self.ready.load(Ordering::Acquire) {
            Some(
                reason(&self.not_ready)
                    .unwrap_or_else(|| "the database has not been reached since start".into()),
            )
        } else {
            let probe = timed(Duration::from_secs(1), "the readiness probe", async {
                let client = self.client().await?;
                client.simple_query("SELECT 1").await.map_err(db_error)?;
                Ok(())
            })
            .await;
            probe.err().map(|e| e.to_string())
        };
        Health {
            ok: problem.is_none(),
            backend: "postgres",
            problem,
        }
    }

    /// Whether the change feed is listening, and how old the cache's freshness proof is.
    pub(crate) fn feed_state(&self) -> (bool, Option<Duration>, usize) {
        (
            self.feed.up.load(Ordering::Acquire),
            self.cache.staleness(std::time::Instant::now()),
            self.cache.len(),
        )
    }
}

fn set_reason(slot: &Mutex<Option<String>>, value: Option<String>) {
    if let Ok(mut g) = slot.lock() {
        *g = value;
    }
}

fn reason(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().ok().and_then(|g| g.clone())
}

async fn retry_init(pool: Pool, ready: Arc<AtomicBool>, not_ready: Arc<Mutex<Option<String>>>) {
    loop {
        tokio::time::sleep(INIT_RETRY).await;
        match init(&pool).await {
            Ok(()) => {
                ready.store(true, Ordering::Release);
                set_reason(&not_ready, None);
                tracing::info!("PostgreSQL reached; consent store ready");
                return;
            }
            Err(e) => {
                if e.is_fatal() {
                    tracing::error!(reason = %e, "PostgreSQL refuses this configuration; still not ready");
                }
                set_reason(&not_ready, Some(e.to_string()));
            }
        }
    }
}

fn write_subject(write: &Write) -> &str {
    match write {
        Write::Consent(c) => &c.subject,
        Write::Region(r) | Write::RegionIfChanged(r) => &r.subject,
    }
}

fn answer(entry: &SubjectEntry, purpose: &str) -> Lookup {
    Lookup {
        region: entry.region.clone(),
        consent: entry.consent(purpose).cloned(),
    }
}

fn decode_record(text: &str) -> Result<ConsentRecord, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt { tree: "consents" })
}

/// The shared receipt logic's view of one PostgreSQL transaction: the locked subjects'
/// state read ahead, receipt ids taken ahead, writes collected and sent before the commit.
#[derive(Default)]
struct PgTx {
    statuses: HashMap<(String, String), ConsentStatus>,
    regions: HashMap<String, Option<String>>,
    counters: VecDeque<i64>,
    receipts: Vec<(i64, String, i16, String)>,
    current: HashMap<(String, String), (i64, String)>,
    new_regions: HashMap<String, String>,
}

impl ChangeTx for PgTx {
    type Error = StoreError;

    fn status(
        &mut self,
        subject: &str,
        purpose: &str,
    ) -> Result<Option<ConsentStatus>, StoreError> {
        Ok(self
            .statuses
            .get(&(subject.to_owned(), purpose.to_owned()))
            .copied())
    }

    fn region(&mut self, subject: &str) -> Result<Option<String>, StoreError> {
        Ok(self.regions.get(subject).cloned().flatten())
    }

    fn next_counter(&mut self) -> Result<u64, StoreError> {
        let next = self
            .counters
            .pop_front()
            .ok_or_else(|| StoreError::Backend("receipt counter values ran out".into()))?;
        u64::try_from(next).map_err(|_| StoreError::Backend("negative receipt counter".into()))
    }

    fn put_consent(&mut self, counter: u64, receipt: &Receipt) -> Result<(), StoreError> {
        let seq = seq_of(counter)?;
        let body = serde_json::to_string(receipt).map_err(StoreError::Encode)?;
        let record = serde_json::to_string(&receipt.to_record()).map_err(StoreError::Encode)?;
        let key = (receipt.subject.clone(), receipt.purpose.clone());
        self.statuses.insert(key.clone(), receipt.status);
        self.current.insert(key, (seq, record));
        self.receipts
            .push((seq, receipt.subject.clone(), KIND_CONSENT, body));
        Ok(())
    }

    fn put_region(&mut self, counter: u64, receipt: &RegionReceipt) -> Result<(), StoreError> {
        let seq = seq_of(counter)?;
        let body = serde_json::to_string(receipt).map_err(StoreError::Encode)?;
        self.regions
            .insert(receipt.subject.clone(), Some(receipt.region.clone()));
        self.new_regions
            .insert(receipt.subject.clone(), receipt.region.clone());
        self.receipts
            .push((seq, receipt.subject.clone(), KIND_REGION, body));
        Ok(())
    }
}

fn seq_of(counter: u64) -> Result<i64, StoreError> {
    i64::try_from(counter).map_err(|_| StoreError::Backend("receipt counter overflow".into()))
}

/// One write transaction.
async fn write_tx(
    client: &mut deadpool_postgres::Object,
    writes: &[Write],
    subjects: &[&str],
    now: OffsetDateTime,
) -> Result<Vec<Written>, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .await
        .map_err(db_error)?;
    tx.execute(
        "INSERT INTO consent_subjects (subject) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&subjects],
    )
    .await
    .map_err(db_error)?;
    let mut state = PgTx::default();
    for row in tx
        .query(
            "SELECT subject, region FROM consent_subjects WHERE subject = ANY($1) ORDER BY subject FOR UPDATE",
            &[&subjects],
        )
        .await
        .map_err(db_error)?
    {
        state.regions.insert(
            row.try_get(0).map_err(db_error)?,
            row.try_get(1).map_err(db_error)?,
        );
    }
    for row in tx
        .query(
            "SELECT subject, record FROM consent_current WHERE subject = ANY($1)",
            &[&subjects],
        )
        .await
        .map_err(db_error)?
    {
        let subject: String = row.try_get(0).map_err(db_error)?;
        let record = decode_record(&row.try_get::<_, String>(1).map_err(db_error)?)?;
        state
            .statuses
            .insert((subject, record.purpose), record.status);
    }
    let wanted = i64::try_from(writes.len()).unwrap_or(i64::MAX);
    let mut counters: Vec<i64> = tx
        .query(
            "SELECT nextval('consent_receipt_seq') FROM generate_series(1, $1::bigint)",
            &[&wanted],
        )
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db_error)?;
    counters.sort_unstable();
    state.counters = counters.into();
    let written = change::apply(&mut state, writes, now)?;

    if !state.receipts.is_empty() {
        let (mut seqs, mut who, mut kinds, mut bodies) = (vec![], vec![], vec![], vec![]);
        for (seq, subject, kind, body) in &state.receipts {
            seqs.push(*seq);
            who.push(subject.as_str());
            kinds.push(*kind);
            bodies.push(body.as_str());
        }
        tx.execute(
            "INSERT INTO consent_receipts (seq, subject, kind, body)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::int2[], $4::text[])",
            &[&seqs, &who, &kinds, &bodies],
        )
        .await
        .map_err(db_error)?;
    }
    if !state.current.is_empty() {
        let (mut who, mut purposes, mut seqs, mut records) = (vec![], vec![], vec![], vec![]);
        for ((subject, purpose), (seq, record)) in &state.current {
            who.push(subject.as_str());
            purposes.push(purpose.as_str());
            seqs.push(*seq);
            records.push(record.as_str());
        }
        tx.execute(
            "INSERT INTO consent_current (subject, purpose, receipt_seq, record)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
             ON CONFLICT (subject, purpose)
             DO UPDATE SET receipt_seq = EXCLUDED.receipt_seq, record = EXCLUDED.record",
            &[&who, &purposes, &seqs, &records],
        )
        .await
        .map_err(db_error)?;
    }
    if !state.new_regions.is_empty() {
        let (who, regions): (Vec<&str>, Vec<&str>) = state
            .new_regions
            .iter()
            .map(|(s, r)| (s.as_str(), r.as_str()))
            .unzip();
        tx.execute(
            "UPDATE consent_subjects AS s SET region = u.region
             FROM unnest($1::text[], $2::text[]) AS u(subject, region)
             WHERE s.subject = u.subject",
            &[&who, &regions],
        )
        .await
        .map_err(db_error)?;
    }
    notify(&tx, subjects).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(written)
}

/// Queues the change notifications; PostgreSQL sends them at commit, in commit order.
async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    subjects: &[&str],
) -> Result<(), StoreError> {
    if subjects.len() > MAX_NAMED_NOTIFY {
        tx.execute("SELECT pg_notify($1, '*')", &[&CHANNEL])
            .await
            .map_err(db_error)?;
    } else {
        let payloads: Vec<String> = subjects.iter().map(|s| format!("s:{s}")).collect();
        tx.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            &[&CHANNEL, &payloads],
        )
        .await
        .map_err(db_error)?;
    }
    Ok(())
}
