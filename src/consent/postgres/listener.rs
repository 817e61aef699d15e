//! The change feed: one dedicated connection that `LISTEN`s on the store's channel, applies
//! every notification to the cache, and proves the cache fresh with heartbeats.
//!
//! Payloads: `s:<subject>` (a write about that subject), `*` (a write too large to name its
//! subjects), `h:<nonce>:<n>` (a replica's heartbeat). Anything else clears the cache.
//!
//! Every `max_staleness / 4` the listener sends `pg_notify(channel, 'h:<nonce>:<n>')` on
//! its own connection, noting the moment `T0` just before sending. When that notification
//! comes back, every transaction that committed before the heartbeat's has been delivered
//! first (PostgreSQL delivers notifications in commit order) and applied, so the cache is
//! proven to hold every write acknowledged before `T0` ([`Cache::proven_fresh_at`]).
//!
//! When the connection breaks, or a heartbeat does not come back within `max_staleness`,
//! the proof is withdrawn at once ([`Cache::unproven`]): lookups go to the database until a
//! new connection is listening, the cache has been cleared (notifications may have been
//! missed) and a new heartbeat has come back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::cache::Cache;
use super::schema::CHANNEL;
use crate::pg::Connector;

/// What the connection driver hands to the listener loop.
enum Event {
    Payload(String),
    Closed(String),
}

/// State shared with the store.
#[derive(Debug, Default)]
pub(super) struct FeedStatus {
    /// True while a connection is listening.
    pub(super) up: AtomicBool,
}

/// Runs forever: connect, listen, heartbeat; reconnect with backoff on any failure.
pub(super) async fn run(
    connector: Connector,
    cache: Arc<Cache>,
    status: Arc<FeedStatus>,
    max_staleness: Duration,
) {
    let nonce = nonce();
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match listen_once(&connector, &cache, &status, max_staleness, &nonce).await {
            Ok(()) => {}
            Err(reason) => {
                tracing::warn!(%reason, "consent change feed down; deciding from the database until it is back")
            }
        }
        status.up.store(false, Ordering::Release);
        cache.unproven();
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A per-process token so a replica recognises its own heartbeats.
fn nonce() -> String {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Fall back to the pid and time: uniqueness only has to hold among live replicas.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{}-{t}", std::process::id());
    }
    crate::hex::encode(&bytes)
}

async fn listen_once(
    connector: &Connector,
    cache: &Cache,
    status: &FeedStatus,
    max_staleness: Duration,
    nonce: &str,
) -> Result<(), String> {
    let (client, mut connection) = connector.connect().await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(Event::Payload(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Event::Closed(e.to_string()));
                    return;
                }
                None => {
                    let _ = tx.send(Event::Closed("connection closed".into()));
                    return;
                }
            }
        }
    });
    let result = feed(&client, &mut rx, cache, status, max_staleness, nonce).await;
    driver.abort();
    result
}

async fn feed(
    client: &tokio_postgres::Client,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    cache: &Cache,
    status: &FeedStatus,
    max_staleness: Duration,
    nonce: &str,
) -> Result<(), String> {
    tokio::time::timeout(
        max_staleness,
        client.batch_execute(&format!("LISTEN {CHANNEL}")),
    )
    .await
    .map_err(|_| "LISTEN timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    // Anything cached before this point may have missed notifications.
    cache.clear();
    status.up.store(true, Ordering::Release);
    tracing::info!("consent change feed listening");

    let every = (max_staleness / 4).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prefix = format!("h:{nonce}:");
    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(&(_, oldest)) = sent.front()
                    && oldest.elapsed() > max_staleness
                {
                    return Err("a heartbeat did not come back in time".into());
                }
                n += 1;
                let at = Instant::now();
                sent.push_back((n, at));
                let payload = format!("{prefix}{n}");
                tokio::time::timeout(
                    max_staleness,
                    client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]),
                )
                .await
                .map_err(|_| "heartbeat timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            }
            event = rx.recv() => match event {
                Some(Event::Payload(payload)) => {
                    if let Some(rest) = payload.strip_prefix(&prefix) {
                        let Ok(k) = rest.parse::<u64>() else { continue };
                        while let Some(&(m, at)) = sent.front() {
                            if m > k {
                                break;
                            }
                            sent.pop_front();
                            if m == k {
                                cache.proven_fresh_at(at);
                            }
                        }
                    } else if payload.starts_with("h:") {
                        // Another replica's heartbeat.
                    } else if let Some(subject) = payload.strip_prefix("s:") {
                        cache.invalidate(subject);
                    } else {
                        cache.clear();
                    }
                }
                Some(Event::Closed(reason)) => return Err(reason),
                None => return Err("connection driver ended".into()),
            },
        }
    }
}
