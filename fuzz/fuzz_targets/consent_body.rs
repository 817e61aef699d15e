//! `consent::parse_consent_body` and `parse_region_body` (the admin PUT bodies) on arbitrary
//! bytes: never panic; an accepted body is one JSON object with distinct, allowed keys, and
//! its change passes the shared validators (shape and time rules, as for an import line);
//! refusal messages stay short and never quote the body's values.
#![no_main]

use consentgate::consent::{
    PUT_CONSENT_KEYS, PUT_REGION_KEYS, check_times, parse_consent_body, parse_region_body,
    validate_region,
};
use libfuzzer_sys::fuzz_target;

/// The keys of `data` when it is a JSON object (read by serde_json's lax parser).
fn keys(data: &[u8]) -> Option<Vec<String>> {
    match serde_json::from_slice::<serde_json::Value>(data).ok()? {
        serde_json::Value::Object(map) => Some(map.keys().cloned().collect()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::now_utc();
    match parse_consent_body(data, "c-1", "marketing", "fuzz-admin", now) {
        Ok(change) => {
            let keys = keys(data).expect("an accepted body is a JSON object");
            assert!(keys.iter().all(|k| PUT_CONSENT_KEYS.contains(&k.as_str())));
            assert!(change.validate().is_ok());
            assert!(check_times(change.expires_at, change.recorded_at, now).is_ok());
            assert_eq!(change.recorded_by, "fuzz-admin");
            assert_eq!(change.collection_method.as_deref(), Some("api"));
        }
        Err(reason) => {
            assert!(!reason.is_empty());
            assert!(reason.len() < 512, "reason of {} bytes", reason.len());
            if let Some(serde_json::Value::Object(o)) = serde_json::from_slice(data).ok()
                && let Some(serde_json::Value::String(v)) = o.get("source")
                && v.len() >= 16
            {
                assert!(!reason.contains(v.as_str()), "reason quotes a value");
            }
        }
    }
    if let Ok(region) = parse_region_body(data) {
        let keys = keys(data).expect("an accepted body is a JSON object");
        assert!(keys.iter().all(|k| PUT_REGION_KEYS.contains(&k.as_str())));
        assert!(validate_region(&region).is_ok());
    }
});
