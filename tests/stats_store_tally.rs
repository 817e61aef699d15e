//! The consent figures come from a tally the store keeps on every write and rebuilds at
//! start: after a restart (sled) or on a new replica (PostgreSQL) the same counts appear
//! without anyone writing again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::*;
use common::*;
use consentgate::config::Settings;
use http::StatusCode;
use serde_json::{Value, json};

async fn consent_cell(gw: &TestGateway, region: &str, purpose: &str) -> Value {
    let r = get(&admin_url(gw, "/v1/stats"), Some(&auditor_token()), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["consent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == region && c["purpose"] == purpose)
        .cloned()
        .unwrap()
}

fn counts(c: &Value) -> Value {
    json!([c["granted"], c["denied"], c["withdrawn"], c["expired"]])
}

async fn seed(gw: &TestGateway) {
    for s in ["t-1", "t-2", "t-3"] {
        set_subject_region(gw, s, "eu").await;
    }
    put_consent_status(gw, "t-1", "analytics", "granted").await;
    put_consent_status(gw, "t-2", "analytics", "granted").await;
    put_consent_status(gw, "t-3", "analytics", "denied").await;
    withdraw_consent(gw, "t-2", "analytics").await;
    // Moving a subject moves its counts.
    put_consent_status(gw, "t-4", "analytics", "granted").await;
    set_subject_region(gw, "t-4", "br").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_tally_survives_a_restart() {
    let up = Upstream::json(json!({})).await;
    let base = tempfile::tempdir().unwrap();
    let config = config_text(up.addr, "");
    let start = || async {
        TestGateway::start_with(
            Settings::from_toml(&config, base.path()).unwrap(),
            tempfile::tempdir().unwrap(),
        )
        .await
    };
    let gw = start().await;
    seed(&gw).await;
    let eu = consent_cell(&gw, "eu", "analytics").await;
    assert_eq!(counts(&eu), json!([1, 1, 1, 0]));
    assert_eq!(
        counts(&consent_cell(&gw, "br", "analytics").await),
        json!([1, 0, 0, 0])
    );
    gw.shutdown().await;
    let gw = start().await;
    assert_eq!(consent_cell(&gw, "eu", "analytics").await, eu);
    assert_eq!(
        counts(&consent_cell(&gw, "br", "analytics").await),
        json!([1, 0, 0, 0])
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tally_counts_writes_and_is_rebuilt_by_a_new_replica() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(json!({})).await;
    let config = pg_config_text(up.addr, &url, &env.password_file, "2s");
    let a = TestGateway::start(&config).await;
    seed(&a).await;
    assert_eq!(
        counts(&consent_cell(&a, "eu", "analytics").await),
        json!([1, 1, 1, 0])
    );
    // A replica started now rebuilds from the database (in the background at start).
    let b = TestGateway::start(&config).await;
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = counts(&consent_cell(&b, "eu", "analytics").await);
        if seen == json!([1, 1, 1, 0]) {
            break;
        }
        sleep_ms(100).await;
    }
    assert_eq!(seen, json!([1, 1, 1, 0]));
    assert_eq!(
        counts(&consent_cell(&b, "br", "analytics").await),
        json!([1, 0, 0, 0])
    );
    a.shutdown().await;
    b.shutdown().await;
}
