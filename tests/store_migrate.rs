//! `consentgate store migrate --from sled:DIR --to URL` against a real PostgreSQL (needs
//! `CONSENTGATE_TEST_PG_URL`; fails in CI without it): what a sled gateway recorded is
//! served identically (receipts byte for byte, ids, nanosecond timestamps, hashes) by a
//! gateway on PostgreSQL; a second run changes nothing; conflicting subjects are refused
//! and then nothing is copied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::*;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SUBJECTS: [&str; 4] = ["mig-1", "mig-2", "mig-3", "mig-4"];

async fn snapshot(gw: &TestGateway, subject: &str) -> (Value, Value) {
    let t = consent_admin_token();
    let h = admin_call(
        gw,
        Method::GET,
        &format!("/v1/subjects/{subject}/consents/history"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text());
    let mut current = current_consents(gw, subject).await;
    // `effective` depends on the moment of the call, not on the store.
    for c in current["consents"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("effective");
    }
    (h.json(), current)
}

/// A sled gateway whose relative paths resolve in `base` (so `base/data/consent` outlives
/// it) records a mix of changes; returns each subject's snapshot.
async fn record_on_sled(up: &Upstream, base: &std::path::Path) -> Vec<(Value, Value)> {
    let settings =
        consentgate::config::Settings::from_toml(&config_text(up.addr, ""), base).unwrap();
    let gw = TestGateway::start_with(settings, tempfile::tempdir().unwrap()).await;
    set_subject_region(&gw, "mig-1", "eu").await;
    set_subject_region(&gw, "mig-1", "us-ca").await;
    put_consent_status(&gw, "mig-1", "marketing", "granted").await;
    withdraw_consent(&gw, "mig-1", "marketing").await;
    put_consent_status(&gw, "mig-2", "analytics", "denied").await;
    let lines = [
        json!({"subject": "mig-3", "purpose": "marketing", "status": "granted", "region": "eu",
               "recorded_at": "2023-02-03T04:05:06.123456789Z", "expires_at": "2099-01-01T00:00:00.5Z",
               "source": "cmp export"}),
        json!({"subject": "mig-4", "purpose": "sale", "status": "denied", "region": "us-ca"}),
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
    let mut snaps = Vec::new();
    for s in SUBJECTS {
        snaps.push(snapshot(&gw, s).await);
    }
    gw.shutdown().await;
    snaps
}

fn migrate(from: &std::path::Path, url: &str, pw: &std::path::Path) -> (i32, String) {
    cli(&[
        "store",
        "migrate",
        "--from",
        &format!("sled:{}", from.display()),
        "--to",
        url,
        "--password-file",
        pw.to_str().unwrap(),
    ])
}

fn report(out: &str) -> Value {
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{out}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test]
async fn migrated_state_is_served_identically_and_a_second_run_changes_nothing() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("mig-1")).await;
    let keep = tempfile::tempdir().unwrap();
    let store_dir = keep.path().join("data/consent");
    let before = record_on_sled(&up, keep.path()).await;

    let (code, out) = migrate(&store_dir, &url, &env.password_file);
    assert_eq!(code, 0, "{out}");
    let first = report(&out);
    assert_eq!(first["subjects"], 4, "{first}");
    assert_eq!(first["copied"], 4, "{first}");
    assert_eq!(first["unchanged"], 0);
    assert_eq!(
        first["receipts_copied"], 9,
        "4 region + 5 consent receipts: {first}"
    );
    assert_eq!(first["receipts_verified"], 9);

    let (code, out) = migrate(&store_dir, &url, &env.password_file);
    assert_eq!(code, 0, "{out}");
    let second = report(&out);
    assert_eq!(second["copied"], 0, "{second}");
    assert_eq!(second["unchanged"], 4);
    assert_eq!(second["receipts_copied"], 0);

    let gw = TestGateway::start(&pg_config_text(up.addr, &url, &env.password_file, "1s")).await;
    for (s, want) in SUBJECTS.iter().zip(&before) {
        assert_eq!(&snapshot(&gw, s).await, want, "{s} differs after migration");
    }
    let h3 = &before[2].0["receipts"][0];
    assert_eq!(h3["recorded_at"], "2023-02-03T04:05:06.123456789Z");
    assert_eq!(h3["expires_at"], "2099-01-01T00:00:00.5Z");
    // Enforcement uses the migrated region (us-ca for mig-1) and state; new ids continue.
    let max_id = before
        .iter()
        .flat_map(|(h, _)| {
            let mut ids: Vec<String> = Vec::new();
            for list in ["receipts", "regions"] {
                for r in h[list].as_array().unwrap() {
                    ids.push(r["id"].as_str().unwrap().to_owned());
                }
            }
            ids
        })
        .max()
        .unwrap();
    let next = put_consent_status(&gw, "mig-2", "analytics", "granted").await;
    assert!(
        next["id"].as_str().unwrap() > max_id.as_str(),
        "{next} vs {max_id}"
    );
    let crm = token("crm", &["analytics"], "");
    let r = get_personal(
        &gw,
        "/api/customers/mig-2/profile",
        Some(&crm),
        Some("analytics"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;

    // After the target moved on, the same source conflicts for mig-2 only... and nothing
    // is copied at all.
    let (code, out) = migrate(&store_dir, &url, &env.password_file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("conflict") && out.contains("mig-2"), "{out}");
}

#[tokio::test]
async fn conflicting_subjects_are_refused_and_nothing_is_copied() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(json!({})).await;
    // The target already knows mig-1 with another region.
    let gw = TestGateway::start(&pg_config_text(up.addr, &url, &env.password_file, "1s")).await;
    set_subject_region(&gw, "mig-1", "br").await;
    gw.shutdown().await;

    let keep = tempfile::tempdir().unwrap();
    let store_dir = keep.path().join("data/consent");
    record_on_sled(&up, keep.path()).await;
    let (code, out) = migrate(&store_dir, &url, &env.password_file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("conflict"), "{out}");
    let client = pg_client(&url, &env.password_file).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM consent_subjects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "nothing was copied");

    // Bad arguments are usage errors.
    let (code, out) = cli(&["store", "migrate", "--from", "rocks:x", "--to", &url]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = migrate(&store_dir, "mysql://x@y/z", &env.password_file);
    assert_eq!(code, 2, "{out}");
    let (code, out) = migrate(&keep.path().join("nowhere"), &url, &env.password_file);
    assert_eq!(code, 2, "{out}");
}
