//! `receipt_retention`: consent history deletes a receipt once a later receipt of its purpose
//! superseded it longer ago than the policy's retention; the receipt that sets the current
//! state stays, however old. Through the admin API (imported history with old times plays
//! the moved clock) and against a real sled store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use consentgate::consent::{ConsentChange, ConsentStatus, ConsentStore};
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn policies_with_retention(retention: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_name().unwrap() == "default.yaml" {
                text = text.replacen(
                    "\nmode:",
                    &format!("\nreceipt_retention: {retention}\nmode:"),
                    1,
                );
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    dir
}

fn ids(v: &Value, key: &str) -> Vec<(String, String)> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["purpose"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn superseded_receipts_past_the_policy_retention_are_deleted() {
    let policies = policies_with_retention("30d");
    let up = Upstream::json(json!({})).await;
    let config = config_text(up.addr, "").replace(
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        &policies.path().display().to_string(),
    );
    let gw = TestGateway::start(&config).await;
    let lines = [
        json!({"subject": "ret-1", "purpose": "marketing", "status": "granted", "recorded_at": "2020-01-01T00:00:00Z", "source": "cmp"}),
        json!({"subject": "ret-1", "purpose": "marketing", "status": "denied", "recorded_at": "2020-01-02T00:00:00Z", "source": "cmp"}),
        json!({"subject": "ret-1", "purpose": "analytics", "status": "granted", "recorded_at": "2020-01-01T00:00:00Z", "source": "cmp"}),
    ];
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = admin_call(
        &gw,
        Method::POST,
        "/v1/consents/import",
        Some(&consent_admin_token()),
        Some(&ndjson),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Superseded just now: well within 30 days.
    put_consent_status(&gw, "ret-1", "personalisation", "granted").await;
    put_consent_status(&gw, "ret-1", "personalisation", "denied").await;

    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/ret-1/consents/history",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let kept = ids(&r.json(), "receipts");
    assert_eq!(
        kept,
        [
            ("marketing".into(), "denied".into()),
            ("analytics".into(), "granted".into()),
            ("personalisation".into(), "granted".into()),
            ("personalisation".into(), "denied".into()),
        ],
        "the 2020 grant was superseded over 30 days ago; current receipts stay however old"
    );

    // Deleted from the store, not only hidden: the access report reads the store directly.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/ret-1/report",
        Some(&auditor_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(ids(&r.json(), "consent_history").len(), 4);
    // Current state is untouched.
    let current = current_consents(&gw, "ret-1").await;
    assert_eq!(current["consents"].as_array().unwrap().len(), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_default_retention_keeps_years_old_receipts() {
    let up = Upstream::json(json!({})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let lines = [
        json!({"subject": "ret-2", "purpose": "marketing", "status": "granted", "recorded_at": "2024-01-01T00:00:00Z"}),
        json!({"subject": "ret-2", "purpose": "marketing", "status": "denied", "recorded_at": "2024-01-02T00:00:00Z"}),
    ];
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = admin_call(
        &gw,
        Method::POST,
        "/v1/consents/import",
        Some(&consent_admin_token()),
        Some(&ndjson),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/ret-2/consents/history",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(
        ids(&r.json(), "receipts").len(),
        2,
        "six years have not passed"
    );
    gw.shutdown().await;
}

/// Asked to delete everything, including the current receipt and another subject's, a store
/// deletes only the superseded receipt of the subject named.
async fn deletes_only_superseded_receipts(store: &ConsentStore) {
    let first = store
        .record(ConsentChange::new(
            "ret-3",
            "marketing",
            ConsentStatus::Granted,
            "ops",
        ))
        .await
        .unwrap();
    let second = store
        .record(ConsentChange::new(
            "ret-3",
            "marketing",
            ConsentStatus::Denied,
            "ops",
        ))
        .await
        .unwrap();
    let other = store
        .record(ConsentChange::new(
            "ret-4",
            "marketing",
            ConsentStatus::Granted,
            "ops",
        ))
        .await
        .unwrap();
    let n = store
        .prune_receipts(
            "ret-3",
            &[first.id.clone(), second.id.clone(), other.id.clone()],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(store.history("ret-3").await.unwrap().receipts, [second]);
    assert_eq!(store.history("ret-4").await.unwrap().receipts, [other]);
    assert_eq!(store.prune_receipts("ret-3", &[first.id]).await.unwrap(), 0);
}

#[tokio::test]
async fn the_sled_store_never_deletes_a_current_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConsentStore::open_sled(dir.path().join("consent")).unwrap();
    deletes_only_superseded_receipts(&store).await;
    drop(store);
    // Durable: a reopened store agrees.
    let store = ConsentStore::open_sled(dir.path().join("consent")).unwrap();
    assert_eq!(store.history("ret-3").await.unwrap().receipts.len(), 1);
}

#[tokio::test]
async fn the_postgres_store_never_deletes_a_current_receipt() {
    let Some(env) = common::pg::pg_env() else {
        return;
    };
    let url = common::pg::fresh_database(&env).await;
    let text = common::pg::pg_config_text(
        "127.0.0.1:9".parse().unwrap(),
        &url,
        &env.password_file,
        "1s",
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = consentgate::config::Settings::from_toml(&text, dir.path()).unwrap();
    let store = ConsentStore::open(&settings.store).await.unwrap();
    deletes_only_superseded_receipts(&store).await;
    let again = ConsentStore::open(&settings.store).await.unwrap();
    assert_eq!(again.history("ret-3").await.unwrap().receipts.len(), 1);
}
