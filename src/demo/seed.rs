//! Demo consents: regions for the sample customers and a mix of decisions, so the printed
//! curl commands show allow and deny side by side. Seeds only subjects with no region yet,
//! so restarting the demo does not grow their history.

use time::{Duration, OffsetDateTime};

use crate::consent::{ConsentChange, ConsentStatus, ConsentStore, RegionChange, StoreError};

/// `recorded_by` and `collection_method` of the seeded receipts.
const SEEDER: &str = "demo";

fn change(subject: &str, purpose: &str, status: ConsentStatus) -> ConsentChange {
    let mut c = ConsentChange::new(subject, purpose, status, SEEDER);
    c.source = Some("demo seed".into());
    c.collection_method = Some(SEEDER.into());
    c
}

/// Seeds the sample customers' regions and consents. Returns how many subjects were seeded.
pub async fn seed(store: &ConsentStore) -> Result<usize, StoreError> {
    let mut seeded = 0;
    for customer in super::data::customers() {
        if store.region(customer.id).await?.is_some() {
            continue;
        }
        let mut region = RegionChange::new(customer.id, customer.region, SEEDER);
        region.collection_method = Some(SEEDER.into());
        store.set_region(region).await?;
        seeded += 1;
    }
    if seeded == 0 {
        return Ok(0);
    }
    let now = OffsetDateTime::now_utc();
    // Anna (eu): marketing granted; analytics granted then withdrawn; personalisation expired.
    store
        .record(change("c-1001", "marketing", ConsentStatus::Granted))
        .await?;
    store
        .record(change("c-1001", "analytics", ConsentStatus::Granted))
        .await?;
    store
        .record(change("c-1001", "analytics", ConsentStatus::Withdrawn))
        .await?;
    let mut expired = change("c-1001", "personalisation", ConsentStatus::Granted);
    expired.recorded_at = Some(now - Duration::days(400));
    expired.expires_at = Some(now - Duration::days(35));
    store.record(expired).await?;
    // Luc (eu): denied marketing.
    store
        .record(change("c-1002", "marketing", ConsentStatus::Denied))
        .await?;
    // James (us-ca): opted out of sale. Maria (us-ca) has no record: opt-out purposes allowed,
    // unless her browser sends Sec-GPC: 1.
    store
        .record(change("c-2002", "sale", ConsentStatus::Denied))
        .await?;
    // João (br): marketing granted for a year.
    let mut year = change("c-3001", "marketing", ConsentStatus::Granted);
    year.expires_at = Some(now + Duration::days(365));
    store.record(year).await?;
    Ok(seeded)
}
