//! Incidents that leave no audit record of their own (an audit failure, a refused policy
//! reload) counted in `/metrics` and `/v1/stats`, and `/v1/stats` windows over a log of
//! several segments (the smallest segment size, 4 KiB: whole segments from their summaries,
//! cut ones read, missed ones skipped) agreeing with the records themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use http::{Method, StatusCode};
use serde_json::Value;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn stats(gw: &TestGateway, query: &str) -> Value {
    let r = get(
        &admin_url(gw, &format!("/v1/stats?{query}")),
        Some(&auditor_token()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

async fn marketing(gw: &TestGateway) -> StatusCode {
    let t = token("crm", &["marketing"], "");
    get(
        &gw.url("/api/customers/c-eu-1/profile"),
        Some(&t),
        &[("x-purpose", "marketing")],
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_reload_failures_and_windows_over_many_segments() {
    let up = Upstream::json(serde_json::json!({"id": "c", "first_name": "A"})).await;
    let policies = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        policies.path(),
    );
    let config = config_text(up.addr, "")
        .replace(
            "dir = \"data/audit\"",
            "dir = \"data/audit\"\nsegment_bytes = 1",
        )
        .replace(
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            policies.path().to_str().unwrap(),
        );
    let gw = TestGateway::start(&config).await;
    set_subject_region(&gw, "c-eu-1", "eu").await;
    put_consent_status(&gw, "c-eu-1", "marketing", "granted").await;
    let audit = gw.dir.path().join("data/audit");
    let segments = |audit: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(audit)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        v.sort();
        v
    };
    // At least three segments, the last one full (the next record opens a new one).
    loop {
        assert_eq!(marketing(&gw).await, StatusCode::OK);
        sleep_ms(5).await;
        let segs = segments(&audit);
        let last_full = std::fs::metadata(segs.last().unwrap()).unwrap().len() >= 4096;
        if segs.len() >= 3 && last_full {
            break;
        }
    }
    let written = records(&audit);
    let n = written.len();
    // Windows that take whole segments, cut the log between records, or miss it.
    let ts = |i: usize| written[i]["ts"].as_str().unwrap().to_owned();
    let all = stats(&gw, "").await;
    assert_eq!(all["records"], n);
    let cut = stats(&gw, &format!("from={}&to={}", ts(1), ts(n - 2))).await;
    let inside = written
        .iter()
        .filter(|r| {
            r["ts"].as_str().unwrap() >= ts(1).as_str()
                && r["ts"].as_str().unwrap() < ts(n - 2).as_str()
        })
        .count();
    assert_eq!(cut["records"], inside);
    assert_eq!(
        cut["accesses"][0]["accesses"], inside,
        "every record of the window is one eu/marketing access"
    );
    let miss = stats(&gw, &format!("to={}", ts(0))).await;
    assert_eq!(miss["records"], 0);
    // Asking again (summaries cached) gives the same.
    assert_eq!(stats(&gw, "").await["accesses"], all["accesses"]);

    // The next segment cannot be created: the record fails, the access is refused.
    let next = format!("{:020}.jsonl", n + 1);
    std::fs::create_dir(audit.join(&next)).unwrap();
    assert_eq!(marketing(&gw).await, StatusCode::SERVICE_UNAVAILABLE);
    let m = get(&admin_url(&gw, "/metrics"), None, &[]).await.text();
    assert_eq!(
        metric(
            &m,
            "consentgate_incidents_total{region=\"eu\",purpose=\"marketing\",kind=\"audit_failure\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "consentgate_audit_healthy"), Some(0.0));
    std::fs::remove_dir(audit.join(&next)).unwrap();
    let s = stats(&gw, "").await;
    assert_eq!(s["incidents"]["audit_failures_since_start"], 1);

    // A reload of a broken policy folder is refused and counted.
    std::fs::write(policies.path().join("eu.yaml"), "region: eu\npurposes: [").unwrap();
    let r = admin_call(
        &gw,
        Method::POST,
        "/v1/policies/reload",
        Some(&auditor_token()),
        None,
    )
    .await;
    assert!(!r.status.is_success(), "{}", r.text());
    let m = get(&admin_url(&gw, "/metrics"), None, &[]).await.text();
    assert_eq!(
        metric(&m, "consentgate_policy_reload_failures_total"),
        Some(1.0),
        "{m}"
    );
    let s = stats(&gw, "").await;
    assert_eq!(s["incidents"]["policy_reload_failures_since_start"], 1);
    // Every record in the log is counted once by a whole-log window.
    assert_eq!(s["records"].as_u64().unwrap(), records(&audit).len() as u64);
    gw.shutdown().await;
}
