//! The bytes that buffered upstream answers may hold at once (`gateway.max_buffered_bytes`).
//!
//! `gateway.max_in_flight` bounds requests; this bounds their memory: a personal-data answer
//! is buffered whole (up to `gateway.max_body_bytes`) to be minimised, so a thousand large
//! answers at once would otherwise hold a thousand times that. Each buffered answer reserves
//! its bytes as they arrive (its declared `Content-Length` at once); one that does not fit
//! fails `503 overloaded`, and its reservation returns to the budget when the exchange ends.
//! A compressed answer's reservation grows to its decoded size once decoded (the compressed
//! bytes are dropped then), so a small compressed answer cannot hold more than it reserved.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit: the budget counts KiB, so a `u32` of permits covers any body.
const UNIT: u64 = 1024;

/// The shared budget (clones share it).
#[derive(Debug, Clone)]
pub(crate) struct BufferBudget {
    sem: Arc<Semaphore>,
    units: usize,
}

impl BufferBudget {
    /// A budget of `bytes` (rounded down to whole KiB).
    pub(crate) fn new(bytes: u64) -> Self {
        let units = usize::try_from(bytes / UNIT)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            sem: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Bytes reserved now (in whole KiB), for the metrics.
    pub(crate) fn held_bytes(&self) -> u64 {
        let held = self.units.saturating_sub(self.sem.available_permits());
        u64::try_from(held).unwrap_or(u64::MAX).saturating_mul(UNIT)
    }

    /// An empty reservation against this budget.
    pub(crate) fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.sem.clone(),
            held: None,
            units: 0,
        }
    }
}

/// Bytes one buffered answer holds; returned to the budget on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    units: u32,
}

impl Reservation {
    /// Grows the reservation to cover `bytes`; `false` if the budget has not that much left.
    pub(crate) fn cover(&mut self, bytes: u64) -> bool {
        let Ok(needed) = u32::try_from(bytes.div_ceil(UNIT)) else {
            return false;
        };
        let Some(more) = needed.checked_sub(self.units).filter(|&n| n > 0) else {
            return true;
        };
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(more) else {
            return false;
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.units = needed;
        true
    }

    /// [`Reservation::cover`] for bytes already read: `503 overloaded` if they do not fit.
    pub(crate) fn hold(&mut self, bytes: usize) -> Result<(), crate::error::GatewayError> {
        if self.cover(bytes as u64) {
            Ok(())
        } else {
            Err(crate::error::GatewayError::Overloaded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_grow_within_the_budget_and_return_on_drop() {
        let budget = BufferBudget::new(10 * UNIT);
        let mut a = budget.reserve();
        assert!(a.cover(1));
        assert!(a.cover(UNIT), "still one unit");
        assert!(a.cover(6 * UNIT));
        let mut b = budget.reserve();
        assert!(b.cover(4 * UNIT));
        assert!(!b.cover(4 * UNIT + 1), "one byte past the budget");
        assert!(a.cover(5 * UNIT), "covering less is a no-op");
        drop(a);
        assert!(b.cover(10 * UNIT), "a's six units came back");
        assert!(!budget.reserve().cover(1));
        assert_eq!(budget.held_bytes(), 10 * UNIT);
        drop(b);
        assert_eq!(budget.held_bytes(), 0);
        assert!(budget.reserve().cover(10 * UNIT));
        assert!(!budget.reserve().cover(u64::MAX));
    }
}
