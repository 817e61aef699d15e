//! Receipt retention: consent history keeps a receipt while it sets the current state of its
//! purpose, and for the policy's `receipt_retention` after a later receipt superseded it;
//! then it is deleted (GDPR art. 5(1)(e), storage limitation). Pure: the store deletes what
//! [`expired`] names.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::model::Receipt;

/// Ids of the receipts in `history` (oldest first) whose retention has run out at `now`:
/// superseded by a later receipt of the same purpose at least `retention(purpose)` ago.
/// The latest receipt of every purpose is never among them. A later receipt with an older
/// `recorded_at` (an import) counts as superseding at the older receipt's own time.
pub fn expired(
    history: &[Receipt],
    now: OffsetDateTime,
    retention: &dyn Fn(&str) -> Duration,
) -> Vec<String> {
    let mut by_purpose: BTreeMap<&str, Vec<&Receipt>> = BTreeMap::new();
    for r in history {
        by_purpose.entry(&r.purpose).or_default().push(r);
    }
    let mut out = Vec::new();
    for (purpose, receipts) in by_purpose {
        let keep = retention(purpose);
        for pair in receipts.windows(2) {
            let [old, next] = pair else { continue };
            let superseded = next.recorded_at.max(old.recorded_at);
            let until = time::Duration::try_from(keep)
                .ok()
                .and_then(|k| superseded.checked_add(k));
            if until.is_some_and(|until| until <= now) {
                out.push(old.id.clone());
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::consent::model::{ConsentStatus, receipt_id};
    use proptest::prelude::*;
    use time::macros::datetime;

    fn receipt(n: u64, purpose: &str, at: OffsetDateTime) -> Receipt {
        Receipt {
            id: receipt_id(n),
            subject: "c-1".into(),
            purpose: purpose.into(),
            status: ConsentStatus::Granted,
            recorded_at: at,
            expires_at: None,
            source: None,
            collection_method: None,
            prev_status: None,
            recorded_by: None,
            sha256: String::new(),
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn superseded_receipts_go_when_the_clock_passes_their_retention() {
        let t0 = datetime!(2025-01-01 00:00 UTC);
        let history = vec![
            receipt(1, "marketing", t0),
            receipt(2, "marketing", t0 + time::Duration::days(10)),
            receipt(3, "analytics", t0),
            receipt(4, "marketing", t0 + time::Duration::days(20)),
        ];
        let keep = |_: &str| 30 * DAY;
        let at = |days| t0 + time::Duration::days(days);
        assert!(expired(&history, at(39), &keep).is_empty());
        assert_eq!(expired(&history, at(40), &keep), [receipt_id(1)]);
        assert_eq!(
            expired(&history, at(50), &keep),
            [receipt_id(1), receipt_id(2)]
        );
        // The current receipt of each purpose stays, however old.
        assert_eq!(expired(&history, at(10_000), &keep).len(), 2);
        // Per-purpose retention.
        let long_for_marketing = |p: &str| if p == "marketing" { 1000 * DAY } else { DAY };
        assert!(expired(&history, at(50), &long_for_marketing).is_empty());
    }

    #[test]
    fn an_import_with_an_older_time_supersedes_at_the_older_receipts_time() {
        let t0 = datetime!(2025-01-01 00:00 UTC);
        let history = vec![
            receipt(1, "marketing", t0 + time::Duration::days(100)),
            receipt(2, "marketing", t0),
        ];
        let keep = |_: &str| 30 * DAY;
        assert!(expired(&history, t0 + time::Duration::days(129), &keep).is_empty());
        assert_eq!(
            expired(&history, t0 + time::Duration::days(130), &keep),
            [receipt_id(1)]
        );
    }

    proptest! {
        /// Oracle: a receipt expires iff a later one of its purpose exists and the later's
        /// time (or its own, if later) plus the retention is not after now.
        #[test]
        fn matches_the_oracle(
            events in prop::collection::vec((0u8..3, 0i64..100), 0..30),
            keep_days in 0u64..50,
            now_day in 0i64..200,
        ) {
            let t0 = datetime!(2025-01-01 00:00 UTC);
            let history: Vec<Receipt> = events
                .iter()
                .enumerate()
                .map(|(i, (p, d))| receipt(i as u64, ["a", "b", "c"][*p as usize], t0 + time::Duration::days(*d)))
                .collect();
            let now = t0 + time::Duration::days(now_day);
            let keep = Duration::from_secs(keep_days * 86_400);
            let got = expired(&history, now, &|_| keep);
            let mut want = Vec::new();
            for (i, r) in history.iter().enumerate() {
                if let Some(next) = history[i + 1..].iter().find(|n| n.purpose == r.purpose) {
                    let superseded = next.recorded_at.max(r.recorded_at);
                    if superseded + time::Duration::try_from(keep).unwrap() <= now {
                        want.push(r.id.clone());
                    }
                }
            }
            let mut got_sorted = got.clone();
            got_sorted.sort();
            want.sort();
            prop_assert_eq!(got_sorted, want);
        }
    }
}
