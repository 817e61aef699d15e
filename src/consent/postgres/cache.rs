//! The replica's cache of subjects (region and every current consent record), and the
//! proof of how fresh it is.
//!
//! Freshness: `fresh_as_of` is a moment `T0` (this process's monotonic clock) such that
//! every write acknowledged anywhere before `T0` has already been applied to the cache (its
//! entry dropped). The listener sets it when its own heartbeat notification, sent at `T0`,
//! comes back: PostgreSQL delivers notifications in commit order, so every write that
//! committed before the heartbeat — in particular every write acknowledged before `T0` — was
//! delivered and applied first. The cache may answer only while `now - T0 <= max_staleness`;
//! otherwise the caller reads the database (and refuses when it cannot).
//!
//! Races between a database read and a concurrent invalidation: every invalidation bumps a
//! sequence number and is remembered in a ring of the last [`RING`] subjects. A read notes
//! the sequence before it starts ([`Cache::begin_read`]); its result is cached only if no
//! invalidation since then named the same subject (or cleared everything) and the ring still
//! covers that span. Otherwise the result is used for that one answer and not kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::consent::model::ConsentRecord;

/// Invalidations remembered to check reads that raced with them.
pub(super) const RING: usize = 4096;

/// Cached subjects at most; past that an arbitrary entry is dropped per insert.
pub(super) const MAX_ENTRIES: usize = 200_000;

/// What the store knows about one subject: enough to answer a lookup for any purpose.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct SubjectEntry {
    /// The stored region.
    pub(super) region: Option<String>,
    /// Every current consent record of the subject.
    pub(super) consents: Vec<ConsentRecord>,
}

impl SubjectEntry {
    /// The record for `purpose`, if any.
    pub(super) fn consent(&self, purpose: &str) -> Option<&ConsentRecord> {
        self.consents.iter().find(|r| r.purpose == purpose)
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, SubjectEntry>,
    /// Number of invalidations so far (each subject or each clear counts one).
    seq: u64,
    /// The last invalidations: (seq, subject); `None` is a clear.
    ring: VecDeque<(u64, Option<String>)>,
}

/// A ticket from [`Cache::begin_read`].
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadTicket(u64);

/// The cache and its freshness.
#[derive(Debug)]
pub(super) struct Cache {
    inner: Mutex<Inner>,
    base: Instant,
    /// Nanoseconds since `base` of the proven-fresh moment, plus one; 0 = not proven.
    fresh_as_of: AtomicU64,
    max_staleness: Duration,
}

impl Cache {
    pub(super) fn new(max_staleness: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            // An hour back (when the clock allows), so proofs slightly older than the cache
            // are still representable; older ones are ignored, never moved forward.
            base: Instant::now()
                .checked_sub(Duration::from_secs(3600))
                .unwrap_or_else(Instant::now),
            fresh_as_of: AtomicU64::new(0),
            max_staleness,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters more than losing it: clear on poison.
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            g.map.clear();
            g.seq += 1;
            let seq = g.seq;
            g.ring.push_back((seq, None));
            g
        })
    }

    /// Records that every write acknowledged before `at` has been applied.
    pub(super) fn proven_fresh_at(&self, at: Instant) {
        let Some(since) = at.checked_duration_since(self.base) else {
            return;
        };
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.fresh_as_of.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Withdraws the proof (the change feed is down): the cache is not used until a new
    /// heartbeat comes back.
    pub(super) fn unproven(&self) {
        self.fresh_as_of.store(0, Ordering::Release);
    }

    /// How old the proof is at `now`, if there is one.
    pub(super) fn staleness(&self, now: Instant) -> Option<Duration> {
        let v = self.fresh_as_of.load(Ordering::Acquire);
        if v == 0 {
            return None;
        }
        let at = self.base + Duration::from_nanos(v - 1);
        Some(now.saturating_duration_since(at))
    }

    /// True when the cache may answer at `now`.
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        self.staleness(now).is_some_and(|s| s <= self.max_staleness)
    }

    /// The cached entry, if the cache may answer now and holds the subject.
    pub(super) fn get(&self, subject: &str) -> Option<SubjectEntry> {
        if !self.is_fresh(Instant::now()) {
            return None;
        }
        self.lock().map.get(subject).cloned()
    }

    /// Notes the invalidation sequence before a database read.
    pub(super) fn begin_read(&self) -> ReadTicket {
        ReadTicket(self.lock().seq)
    }

    /// Keeps a database read's result unless an invalidation since `ticket` may have made it
    /// stale.
    pub(super) fn insert(&self, ticket: ReadTicket, subject: &str, entry: SubjectEntry) {
        let mut g = self.lock();
        if g.seq != ticket.0 {
            let covered = g.ring.front().is_some_and(|(s, _)| *s <= ticket.0 + 1);
            if !covered {
                return;
            }
            let raced = g
                .ring
                .iter()
                .rev()
                .take_while(|(s, _)| *s > ticket.0)
                .any(|(_, who)| who.as_deref().is_none_or(|w| w == subject));
            if raced {
                return;
            }
        }
        if g.map.len() >= MAX_ENTRIES
            && !g.map.contains_key(subject)
            && let Some(victim) = g.map.keys().next().cloned()
        {
            g.map.remove(&victim);
        }
        g.map.insert(subject.to_owned(), entry);
    }

    /// Drops one subject (a write here or a notification from another replica).
    pub(super) fn invalidate(&self, subject: &str) {
        let mut g = self.lock();
        g.map.remove(subject);
        g.seq += 1;
        let seq = g.seq;
        g.ring.push_back((seq, Some(subject.to_owned())));
        if g.ring.len() > RING {
            g.ring.pop_front();
        }
    }

    /// Drops everything (listener reconnected: notifications may have been missed; or a
    /// write too large to name its subjects).
    pub(super) fn clear(&self) {
        let mut g = self.lock();
        g.map.clear();
        g.seq += 1;
        let seq = g.seq;
        g.ring.push_back((seq, None));
        if g.ring.len() > RING {
            g.ring.pop_front();
        }
    }

    /// Number of cached subjects.
    pub(super) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(region: &str) -> SubjectEntry {
        SubjectEntry {
            region: Some(region.into()),
            consents: vec![],
        }
    }

    #[test]
    fn unproven_cache_never_answers() {
        let c = Cache::new(Duration::from_secs(1));
        let t = c.begin_read();
        c.insert(t, "a", entry("eu"));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("a"), None, "no proof yet");
        c.proven_fresh_at(Instant::now());
        assert_eq!(c.get("a"), Some(entry("eu")));
        c.unproven();
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn an_old_proof_expires() {
        let c = Cache::new(Duration::from_millis(100));
        c.proven_fresh_at(Instant::now() - Duration::from_millis(150));
        assert!(!c.is_fresh(Instant::now()));
        c.proven_fresh_at(Instant::now());
        assert!(c.is_fresh(Instant::now()));
        // An older proof never moves the moment back.
        c.proven_fresh_at(Instant::now() - Duration::from_secs(5));
        assert!(c.is_fresh(Instant::now()));
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let c = Cache::new(Duration::from_secs(1));
        c.proven_fresh_at(Instant::now());
        let t = c.begin_read();
        c.invalidate("a");
        c.insert(t, "a", entry("old"));
        assert_eq!(c.get("a"), None);
        // Another subject's invalidation does not matter.
        let t = c.begin_read();
        c.invalidate("b");
        c.insert(t, "a", entry("eu"));
        assert_eq!(c.get("a"), Some(entry("eu")));
        // A clear in between drops every read started before it.
        let t = c.begin_read();
        c.clear();
        c.insert(t, "c", entry("eu"));
        assert_eq!(c.get("c"), None);
    }

    #[test]
    fn a_ring_that_no_longer_covers_the_read_refuses_it() {
        let c = Cache::new(Duration::from_secs(1));
        c.proven_fresh_at(Instant::now());
        let t = c.begin_read();
        for i in 0..=RING {
            c.invalidate(&format!("x{i}"));
        }
        c.insert(t, "a", entry("eu"));
        assert_eq!(c.get("a"), None);
    }

    proptest! {
        /// Model: after any interleaving of reads (begin, insert) and invalidations, a cached
        /// entry is never older than the last invalidation of its subject.
        #[test]
        fn cached_entries_are_never_older_than_their_last_invalidation(
            ops in proptest::collection::vec((0u8..4, 0u8..3), 1..60)
        ) {
            let c = Cache::new(Duration::from_secs(60));
            c.proven_fresh_at(Instant::now());
            let subjects = ["a", "b", "c"];
            // The "database": a version per subject, bumped by each write.
            let mut version = [0u32; 3];
            let mut pending: Vec<(ReadTicket, usize, u32)> = Vec::new();
            for (op, s) in ops {
                let s = usize::from(s);
                match op {
                    0 => pending.push((c.begin_read(), s, version[s])),
                    1 => if let Some((t, who, v)) = pending.pop() {
                        c.insert(t, subjects[who], entry(&v.to_string()));
                    },
                    2 => { version[s] += 1; c.invalidate(subjects[s]); }
                    _ => { version[s] += 1; c.clear(); }
                }
                for (i, name) in subjects.iter().enumerate() {
                    if let Some(e) = c.get(name) {
                        prop_assert_eq!(e.region, Some(version[i].to_string()));
                    }
                }
            }
        }
    }
}
