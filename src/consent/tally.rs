//! Subjects per consent state, per region × purpose, kept current on every write so that a
//! scrape or a stats call never scans the store.
//!
//! The tally is rebuilt from the store once at open (one pass over the current records and
//! regions), then every receipt this process writes moves one subject from its old state to
//! its new one. A grant's expiry is a time event, not a write: grants with an `expires_at`
//! are also kept in an index by expiry, and a [`Tally::snapshot`] first moves every grant
//! whose expiry has passed to `expired`, so the work per snapshot is the number of regions
//! × purposes plus the grants that expired since the last one.
//!
//! Names (regions, purposes) are interned, so a subject costs its id and a few bytes per
//! purpose. Receipts carry the store's counter: an older receipt arriving after a newer one
//! (two writers racing on one subject) is ignored.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

use super::model::{ConsentRecord, ConsentStatus, Receipt, RegionReceipt, receipt_counter};

/// A consent state as counted: the recorded status, with an expired grant apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountedState {
    /// Granted and not expired.
    Granted,
    /// Denied.
    Denied,
    /// Withdrawn.
    Withdrawn,
    /// Granted, but its `expires_at` has passed.
    Expired,
}

impl CountedState {
    /// Every state, in the order of [`StateCounts`].
    pub const ALL: [CountedState; 4] = [
        CountedState::Granted,
        CountedState::Denied,
        CountedState::Withdrawn,
        CountedState::Expired,
    ];

    /// The lowercase name (`granted`, `denied`, `withdrawn`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Granted => 0,
            Self::Denied => 1,
            Self::Withdrawn => 2,
            Self::Expired => 3,
        }
    }
}

/// Subjects per state: `[granted, denied, withdrawn, expired]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts(pub [u64; 4]);

impl StateCounts {
    /// Subjects in `state`.
    pub fn get(&self, state: CountedState) -> u64 {
        self.0[state.index()]
    }

    /// Subjects with a recorded decision (every state).
    pub fn decided(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Granted ÷ subjects with a recorded decision; `None` when nobody decided.
    pub fn consent_rate(&self) -> Option<f64> {
        let decided = self.decided();
        (decided > 0).then(|| self.get(CountedState::Granted) as f64 / decided as f64)
    }
}

/// One cell of a snapshot: the subject's stored region (`None`: no region stored, so the
/// gateway's default region applies), the purpose, and its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyCell {
    /// The stored region, `None` when the subject has none.
    pub region: Option<String>,
    /// The purpose.
    pub purpose: String,
    /// Subjects per state.
    pub counts: StateCounts,
}

/// One row of the store, for rebuilding.
#[derive(Debug)]
pub(crate) enum Row {
    /// The subject's region.
    Region(String),
    /// One current consent record.
    Consent(ConsentRecord),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    purpose: u32,
    state: CountedState,
    expires: Option<OffsetDateTime>,
    counter: u64,
}

#[derive(Debug, Default)]
struct Subject {
    region: Option<u32>,
    region_counter: u64,
    entries: Vec<Entry>,
}

#[derive(Debug, Default)]
struct Inner {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    subjects: HashMap<Box<str>, Subject>,
    counts: HashMap<(Option<u32>, u32), StateCounts>,
    /// Grants with an expiry not yet counted as expired: (expiry, subject, purpose id).
    expiries: BTreeSet<(OffsetDateTime, Box<str>, u32)>,
}

/// The live tally (see the module doc).
#[derive(Debug, Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

impl Inner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    fn count(&mut self, region: Option<u32>, purpose: u32, state: CountedState, up: bool) {
        let cell = self.counts.entry((region, purpose)).or_default();
        let slot = &mut cell.0[state.index()];
        *slot = if up {
            slot.saturating_add(1)
        } else {
            slot.saturating_sub(1)
        };
    }

    fn set_consent(
        &mut self,
        subject: &str,
        purpose: &str,
        status: ConsentStatus,
        expires: Option<OffsetDateTime>,
        counter: u64,
        now: OffsetDateTime,
    ) {
        let purpose = self.intern(purpose);
        let state = match status {
            ConsentStatus::Granted if expires.is_some_and(|e| e <= now) => CountedState::Expired,
            ConsentStatus::Granted => CountedState::Granted,
            ConsentStatus::Denied => CountedState::Denied,
            ConsentStatus::Withdrawn => CountedState::Withdrawn,
        };
        let entry = Entry {
            purpose,
            state,
            expires,
            counter,
        };
        let key: Box<str> = subject.into();
        let s = self.subjects.entry(key.clone()).or_default();
        let region = s.region;
        let old = match s.entries.iter_mut().find(|e| e.purpose == purpose) {
            Some(e) if e.counter > counter => return,
            Some(e) => Some(std::mem::replace(e, entry)),
            None => {
                s.entries.push(entry);
                None
            }
        };
        if let Some(old) = old {
            self.count(region, purpose, old.state, false);
            if let (CountedState::Granted, Some(at)) = (old.state, old.expires) {
                self.expiries.remove(&(at, key.clone(), purpose));
            }
        }
        self.count(region, purpose, state, true);
        if let (CountedState::Granted, Some(at)) = (state, expires) {
            self.expiries.insert((at, key, purpose));
        }
    }

    fn set_region(&mut self, subject: &str, region: &str, counter: u64) {
        let region = Some(self.intern(region));
        let s = self.subjects.entry(subject.into()).or_default();
        if s.region_counter > counter || s.region == region {
            s.region_counter = s.region_counter.max(counter);
            return;
        }
        let old = std::mem::replace(&mut s.region, region);
        s.region_counter = counter;
        let moves: Vec<(u32, CountedState)> =
            s.entries.iter().map(|e| (e.purpose, e.state)).collect();
        for (purpose, state) in moves {
            self.count(old, purpose, state, false);
            self.count(region, purpose, state, true);
        }
    }

    fn expire(&mut self, now: OffsetDateTime) {
        while let Some(first) = self.expiries.first() {
            if first.0 > now {
                break;
            }
            let Some((_, subject, purpose)) = self.expiries.pop_first() else {
                break;
            };
            let Some(s) = self.subjects.get_mut(&subject) else {
                continue;
            };
            let region = s.region;
            if let Some(e) = s
                .entries
                .iter_mut()
                .find(|e| e.purpose == purpose && e.state == CountedState::Granted)
            {
                e.state = CountedState::Expired;
                self.count(region, purpose, CountedState::Granted, false);
                self.count(region, purpose, CountedState::Expired, true);
            }
        }
    }
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the whole tally with the rows of a full pass over the store.
    pub(crate) fn rebuild(&self, rows: impl IntoIterator<Item = (String, Row)>) {
        let now = OffsetDateTime::now_utc();
        let mut fresh = Inner::default();
        for (subject, row) in rows {
            match row {
                // Regions first would be cheaper, but rows come in key order; a region set
                // after consents moves them, which is the same result.
                Row::Region(region) => fresh.set_region(&subject, &region, 0),
                Row::Consent(r) => {
                    let counter = receipt_counter(&r.receipt_id).unwrap_or(0);
                    fresh.set_consent(&subject, &r.purpose, r.status, r.expires_at, counter, now);
                }
            }
        }
        *self.lock() = fresh;
    }

    /// Counts a consent receipt that was just made durable.
    pub(crate) fn consent_written(&self, receipt: &Receipt) {
        let counter = receipt_counter(&receipt.id).unwrap_or(0);
        self.lock().set_consent(
            &receipt.subject,
            &receipt.purpose,
            receipt.status,
            receipt.expires_at,
            counter,
            OffsetDateTime::now_utc(),
        );
    }

    /// Counts a region receipt that was just made durable.
    pub(crate) fn region_written(&self, receipt: &RegionReceipt) {
        let counter = receipt_counter(&receipt.id).unwrap_or(0);
        self.lock()
            .set_region(&receipt.subject, &receipt.region, counter);
    }

    /// Counts per stored region × purpose at `now` (grants expired by then counted as
    /// expired). Cells that are all zero are left out.
    pub fn snapshot(&self, now: OffsetDateTime) -> Vec<TallyCell> {
        let mut inner = self.lock();
        inner.expire(now);
        let name = |id: u32| inner.names.get(id as usize).cloned().unwrap_or_default();
        let mut cells: Vec<TallyCell> = inner
            .counts
            .iter()
            .filter(|(_, c)| c.decided() > 0)
            .map(|(&(region, purpose), &counts)| TallyCell {
                region: region.map(name),
                purpose: name(purpose),
                counts,
            })
            .collect();
        cells.sort_by(|a, b| (&a.region, &a.purpose).cmp(&(&b.region, &b.purpose)));
        cells
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::Duration;

    fn counts(t: &Tally, now: OffsetDateTime, region: Option<&str>, purpose: &str) -> [u64; 4] {
        t.snapshot(now)
            .into_iter()
            .find(|c| c.region.as_deref() == region && c.purpose == purpose)
            .map_or([0; 4], |c| c.counts.0)
    }

    #[test]
    fn writes_move_subjects_between_states_and_regions() {
        let now = OffsetDateTime::now_utc();
        let mut i = Inner::default();
        i.set_consent("a", "ads", ConsentStatus::Granted, None, 1, now);
        i.set_consent("b", "ads", ConsentStatus::Denied, None, 2, now);
        i.set_consent("a", "ads", ConsentStatus::Withdrawn, None, 3, now);
        // An older receipt arriving late changes nothing.
        i.set_consent("a", "ads", ConsentStatus::Granted, None, 1, now);
        i.set_region("a", "eu", 4);
        let t = Tally {
            inner: Mutex::new(i),
        };
        assert_eq!(counts(&t, now, None, "ads"), [0, 1, 0, 0]);
        assert_eq!(counts(&t, now, Some("eu"), "ads"), [0, 0, 1, 0]);
    }

    #[test]
    fn grants_expire_at_their_time_and_a_new_write_replaces_them() {
        let now = OffsetDateTime::now_utc();
        let t = Tally::default();
        {
            let mut i = t.lock();
            i.set_consent(
                "a",
                "ads",
                ConsentStatus::Granted,
                Some(now + Duration::hours(1)),
                1,
                now,
            );
            i.set_consent(
                "b",
                "ads",
                ConsentStatus::Granted,
                Some(now - Duration::hours(1)),
                2,
                now,
            );
        }
        assert_eq!(counts(&t, now, None, "ads"), [1, 0, 0, 1]);
        let later = now + Duration::hours(2);
        assert_eq!(counts(&t, later, None, "ads"), [0, 0, 0, 2]);
        t.lock()
            .set_consent("a", "ads", ConsentStatus::Denied, None, 3, later);
        assert_eq!(counts(&t, later, None, "ads"), [0, 1, 0, 1]);
        assert_eq!(StateCounts([1, 1, 1, 1]).consent_rate(), Some(0.25));
        assert_eq!(StateCounts::default().consent_rate(), None);
    }

    /// The oracle's subject: its region and, per purpose, the last status and expiry.
    type OracleSubject = (
        Option<String>,
        HashMap<String, (ConsentStatus, Option<OffsetDateTime>)>,
    );

    #[derive(Debug, Clone)]
    enum Op {
        Consent(u8, u8, u8, Option<i64>),
        Region(u8, u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..6, 0u8..3, 0u8..3, proptest::option::of(-5i64..20))
                .prop_map(|(s, p, st, e)| Op::Consent(s, p, st, e)),
            (0u8..6, 0u8..3).prop_map(|(s, r)| Op::Region(s, r)),
        ]
    }

    proptest::proptest! {
        /// The tally kept write by write agrees with counting the final states from scratch,
        /// at every later moment (expiries included), whatever the order of writes.
        #[test]
        fn maintained_counts_equal_a_recount(ops in proptest::collection::vec(op(), 0..60),
                                             later in proptest::collection::vec(0i64..30, 1..4)) {
            let now = OffsetDateTime::now_utc();
            let statuses = [ConsentStatus::Granted, ConsentStatus::Denied, ConsentStatus::Withdrawn];
            let t = Tally::default();
            let mut oracle: HashMap<String, OracleSubject> = HashMap::new();
            for (counter, op) in ops.iter().enumerate() {
                let counter = counter as u64 + 1;
                match *op {
                    Op::Consent(s, p, st, e) => {
                        let (subject, purpose) = (format!("s{s}"), format!("p{p}"));
                        let expires = e.map(|e| now + Duration::seconds(e));
                        let status = statuses[st as usize];
                        t.lock().set_consent(&subject, &purpose, status, expires, counter, now);
                        oracle.entry(subject).or_default().1.insert(purpose, (status, expires));
                    }
                    Op::Region(s, r) => {
                        let subject = format!("s{s}");
                        t.lock().set_region(&subject, &format!("r{r}"), counter);
                        oracle.entry(subject).or_default().0 = Some(format!("r{r}"));
                    }
                }
            }
            let mut offsets = later.clone();
            offsets.sort_unstable();
            for offset in offsets {
                let at = now + Duration::seconds(offset);
                let mut want: HashMap<(Option<String>, String), [u64; 4]> = HashMap::new();
                for (region, purposes) in oracle.values() {
                    for (purpose, (status, expires)) in purposes {
                        let i = match status {
                            ConsentStatus::Granted if expires.is_some_and(|e| e <= at) => 3,
                            ConsentStatus::Granted => 0,
                            ConsentStatus::Denied => 1,
                            ConsentStatus::Withdrawn => 2,
                        };
                        want.entry((region.clone(), purpose.clone())).or_default()[i] += 1;
                    }
                }
                let got: HashMap<(Option<String>, String), [u64; 4]> = t
                    .snapshot(at)
                    .into_iter()
                    .map(|c| ((c.region, c.purpose), c.counts.0))
                    .collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
