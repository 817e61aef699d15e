//! Demo consents: regions for the sample customers and a mix of decisions, so the printed
//! curl commands show allow and deny side by side. Seeds only subjects with no region yet,
//! so restarting the demo does not grow their history.

use time::{Duration, OffsetDateTime};

use crate::consent::{ConsentChange, ConsentStatus, ConsentStore, StoreError};

fn change(subject: &str, purpose: &str, status: ConsentStatus) -> ConsentChange {
    let mut c = ConsentChange::new(subject, purpose, status);
    c.source = Some("demo seed".into());
    c.collection_method = Some("demo".into());
    c
}

/// Seeds the sample customers' regions and consents. Returns how many subjects were seeded.
pub fn seed(store: &dyn ConsentStore) -> Result<usize, StoreError> {
    let mut seeded = 0;
    for customer in super::data::customers() {
        if store.region(customer.id)?.is_some() {
            continue;
        }
        store.set_region(customer.id, customer.region)?;
        seeded += 1;
    }
    if seeded == 0 {
        return Ok(0);
    }
    let now = OffsetDateTime::now_utc();
    // Anna (eu): marketing granted; analytics granted then withdrawn; personalisation expired.
    store.record(change("c-1001", "marketing", ConsentStatus::Granted))?;
    store.record(change("c-1001", "analytics", ConsentStatus::Granted))?;
    store.record(change("c-1001", "analytics", ConsentStatus::Withdrawn))?;
    let mut expired = change("c-1001", "personalisation", ConsentStatus::Granted);
    expired.recorded_at = Some(now - Duration::days(400));
    expired.expires_at = Some(now - Duration::days(35));
    store.record(expired)?;
    // Luc (eu): denied marketing.
    store.record(change("c-1002", "marketing", ConsentStatus::Denied))?;
    // James (us-ca): opted out of sale. Maria (us-ca) has no record: opt-out purposes allowed,
    // unless her browser sends Sec-GPC: 1.
    store.record(change("c-2002", "sale", ConsentStatus::Denied))?;
    // João (br): marketing granted for a year.
    let mut year = change("c-3001", "marketing", ConsentStatus::Granted);
    year.expires_at = Some(now + Duration::days(365));
    store.record(year)?;
    Ok(seeded)
}
