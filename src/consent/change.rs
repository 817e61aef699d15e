//! Receipt logic shared by every backend: a write reads the previous state, takes a receipt
//! id from the backend's counter, builds and hashes the receipt, and hands it back to the
//! backend to store with the new current state, all inside the backend's transaction.
//!
//! A backend implements [`ChangeTx`] over its own transaction (sled: a multi-tree
//! transaction; PostgreSQL: rows locked and read ahead, writes buffered and sent before the
//! commit), and calls [`apply`]. So what a receipt says — previous status or region, id,
//! `recorded_by`, hash — is decided in one place for all backends.

use time::OffsetDateTime;

use super::model::{
    ConsentChange, ConsentStatus, Receipt, RegionChange, RegionKind, RegionReceipt, receipt_id,
};
use super::store::StoreError;

/// A write to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// Grant, deny or withdraw.
    Consent(ConsentChange),
    /// Set the subject's region (always leaves a receipt).
    Region(RegionChange),
    /// Set the subject's region only if it differs from the current one (imports).
    RegionIfChanged(RegionChange),
}

impl Write {
    /// Checks the write's fields.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        match self {
            Self::Consent(c) => c.validate()?,
            Self::Region(r) | Self::RegionIfChanged(r) => r.validate()?,
        }
        Ok(())
    }
}

/// What a write left: the receipt it produced (none for an unchanged region on import).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    /// A consent receipt.
    Consent(Receipt),
    /// A region receipt.
    Region(RegionReceipt),
    /// Nothing changed.
    Unchanged,
}

/// The small transactional interface a backend offers the shared receipt logic. Reads see
/// the transaction's own earlier writes.
pub(crate) trait ChangeTx {
    /// The backend's error; a [`StoreError`] converts into it (sled keeps its conflict
    /// retries apart from aborts this way).
    type Error: From<StoreError>;

    /// The subject's current status for `purpose`, if any.
    fn status(
        &mut self,
        subject: &str,
        purpose: &str,
    ) -> Result<Option<ConsentStatus>, Self::Error>;
    /// The subject's current region, if set.
    fn region(&mut self, subject: &str) -> Result<Option<String>, Self::Error>;
    /// The next value of the receipt counter: unique and increasing.
    fn next_counter(&mut self) -> Result<u64, Self::Error>;
    /// Stores a consent receipt and the current state it sets.
    fn put_consent(&mut self, counter: u64, receipt: &Receipt) -> Result<(), Self::Error>;
    /// Stores a region receipt and sets the subject's region.
    fn put_region(&mut self, counter: u64, receipt: &RegionReceipt) -> Result<(), Self::Error>;
}

/// Applies validated `writes` in order inside `tx`. `now` is the time of writes that do not
/// carry their own `recorded_at`.
pub(crate) fn apply<T: ChangeTx>(
    tx: &mut T,
    writes: &[Write],
    now: OffsetDateTime,
) -> Result<Vec<Written>, T::Error> {
    let mut out = Vec::with_capacity(writes.len());
    for write in writes {
        out.push(match write {
            Write::Consent(change) => Written::Consent(apply_consent(tx, change, now)?),
            Write::Region(change) => Written::Region(apply_region(tx, change, now, None)?),
            Write::RegionIfChanged(change) => {
                let prev = tx.region(&change.subject)?;
                if prev.as_deref() == Some(change.region.as_str()) {
                    Written::Unchanged
                } else {
                    Written::Region(apply_region(tx, change, now, Some(prev))?)
                }
            }
        });
    }
    Ok(out)
}

fn apply_consent<T: ChangeTx>(
    tx: &mut T,
    change: &ConsentChange,
    now: OffsetDateTime,
) -> Result<Receipt, T::Error> {
    let prev_status = tx.status(&change.subject, &change.purpose)?;
    let counter = tx.next_counter()?;
    let mut receipt = Receipt {
        id: receipt_id(counter),
        subject: change.subject.clone(),
        purpose: change.purpose.clone(),
        status: change.status,
        recorded_at: change.recorded_at.unwrap_or(now),
        expires_at: change.expires_at,
        source: change.source.clone(),
        collection_method: change.collection_method.clone(),
        prev_status,
        recorded_by: Some(change.recorded_by.clone()),
        sha256: String::new(),
    };
    receipt.sha256 = receipt.compute_sha256().map_err(StoreError::Encode)?;
    tx.put_consent(counter, &receipt)?;
    Ok(receipt)
}

fn apply_region<T: ChangeTx>(
    tx: &mut T,
    change: &RegionChange,
    now: OffsetDateTime,
    prev: Option<Option<String>>,
) -> Result<RegionReceipt, T::Error> {
    let prev_region = match prev {
        Some(prev) => prev,
        None => tx.region(&change.subject)?,
    };
    let counter = tx.next_counter()?;
    let mut receipt = RegionReceipt {
        kind: RegionKind::Region,
        id: receipt_id(counter),
        subject: change.subject.clone(),
        region: change.region.clone(),
        prev_region,
        recorded_at: change.recorded_at.unwrap_or(now),
        collection_method: change.collection_method.clone(),
        recorded_by: Some(change.recorded_by.clone()),
        sha256: String::new(),
    };
    receipt.sha256 = receipt.compute_sha256().map_err(StoreError::Encode)?;
    tx.put_region(counter, &receipt)?;
    Ok(receipt)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;
    use time::macros::datetime;

    /// An in-memory [`ChangeTx`]: the reference the backends' own tests compare against.
    #[derive(Default)]
    pub(crate) struct MemTx {
        pub(crate) statuses: HashMap<(String, String), ConsentStatus>,
        pub(crate) regions: HashMap<String, String>,
        pub(crate) counter: u64,
        pub(crate) receipts: Vec<Written>,
    }

    impl ChangeTx for MemTx {
        type Error = StoreError;

        fn status(&mut self, s: &str, p: &str) -> Result<Option<ConsentStatus>, StoreError> {
            Ok(self.statuses.get(&(s.into(), p.into())).copied())
        }
        fn region(&mut self, s: &str) -> Result<Option<String>, StoreError> {
            Ok(self.regions.get(s).cloned())
        }
        fn next_counter(&mut self) -> Result<u64, StoreError> {
            self.counter += 1;
            Ok(self.counter)
        }
        fn put_consent(&mut self, _: u64, r: &Receipt) -> Result<(), StoreError> {
            self.statuses
                .insert((r.subject.clone(), r.purpose.clone()), r.status);
            self.receipts.push(Written::Consent(r.clone()));
            Ok(())
        }
        fn put_region(&mut self, _: u64, r: &RegionReceipt) -> Result<(), StoreError> {
            self.regions.insert(r.subject.clone(), r.region.clone());
            self.receipts.push(Written::Region(r.clone()));
            Ok(())
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    #[test]
    fn receipts_carry_previous_state_ids_author_and_hash() {
        let mut tx = MemTx::default();
        let writes = vec![
            Write::Region(RegionChange::new("c-1", "eu", "ops")),
            Write::Consent(ConsentChange::new(
                "c-1",
                "marketing",
                ConsentStatus::Granted,
                "crm",
            )),
            Write::Consent(ConsentChange::new(
                "c-1",
                "marketing",
                ConsentStatus::Withdrawn,
                "dpo",
            )),
            Write::RegionIfChanged(RegionChange::new("c-1", "eu", "cmp")),
            Write::RegionIfChanged(RegionChange::new("c-1", "us-ca", "cmp")),
            Write::Region(RegionChange::new("c-1", "us-ca", "ops")),
        ];
        let out = apply(&mut tx, &writes, NOW).unwrap();
        let Written::Region(r0) = &out[0] else {
            panic!()
        };
        assert_eq!(r0.prev_region, None);
        assert_eq!(r0.recorded_by.as_deref(), Some("ops"));
        assert_eq!(r0.recorded_at, NOW);
        assert!(r0.verify());
        let Written::Consent(c1) = &out[1] else {
            panic!()
        };
        assert_eq!(c1.prev_status, None);
        assert_eq!(c1.id, receipt_id(2));
        let Written::Consent(c2) = &out[2] else {
            panic!()
        };
        assert_eq!(c2.prev_status, Some(ConsentStatus::Granted));
        assert_eq!(c2.recorded_by.as_deref(), Some("dpo"));
        assert!(c2.verify());
        assert_eq!(out[3], Written::Unchanged);
        let Written::Region(r4) = &out[4] else {
            panic!()
        };
        assert_eq!(r4.prev_region.as_deref(), Some("eu"));
        assert_eq!(r4.id, receipt_id(4));
        let Written::Region(r5) = &out[5] else {
            panic!()
        };
        assert_eq!(
            r5.prev_region.as_deref(),
            Some("us-ca"),
            "an explicit PUT of the same region is still recorded"
        );
    }

    #[test]
    fn given_recorded_at_is_kept() {
        let mut tx = MemTx::default();
        let mut change = ConsentChange::new("c-1", "ads", ConsentStatus::Denied, "cmp");
        change.recorded_at = Some(datetime!(2024-01-01 00:00:00.123456789 UTC));
        let out = apply(&mut tx, &[Write::Consent(change)], NOW).unwrap();
        let Written::Consent(r) = &out[0] else {
            panic!()
        };
        assert_eq!(r.recorded_at, datetime!(2024-01-01 00:00:00.123456789 UTC));
    }
}
