//! Crash safety of the audit log with the real binary: `consentgate serve` is SIGKILLed under
//! concurrent personal-data load; after a restart on the same folders the chain verifies and
//! every response a client received has exactly one audit record (audit before release).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;

const CLIENTS: usize = 16;
const SUBJECT: &str = "c-1001";

async fn admin_put(bin: &Binary, path: &str, body: serde_json::Value) {
    let r = send(build_request(
        Method::PUT,
        &bin.admin_url(path),
        Some(&consent_admin_token()),
        Some(&body.to_string()),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
}

/// One client: personal-data requests on one connection pool until the gateway dies or
/// `stop` is set; returns the request ids of the 200s it received whole.
async fn load(url: String, token: String, stop: Arc<AtomicBool>) -> (Vec<String>, usize) {
    let client = client();
    let mut ok = Vec::new();
    let mut failed = 0;
    while !stop.load(Ordering::Relaxed) {
        let req = Request::get(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("x-purpose", "marketing")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let Ok(resp) = client.request(req).await else {
            failed += 1;
            sleep_ms(5).await;
            continue;
        };
        let (parts, body) = resp.into_parts();
        // Only a response received whole counts as released.
        let Ok(body) = body.collect().await else {
            failed += 1;
            continue;
        };
        if parts.status == StatusCode::OK {
            let v: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
            assert_eq!(v["email"], "a***@example.eu", "released redacted");
            ok.push(parts.headers["x-request-id"].to_str().unwrap().to_string());
        } else {
            failed += 1;
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_released_record() {
    let up = Upstream::json(demo_doc(SUBJECT)).await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "");
    let bin = Binary::start(work.path(), &config, gw_port, admin_port, "serve-1.log").await;
    admin_put(
        &bin,
        &format!("/v1/subjects/{SUBJECT}"),
        json!({"region": "eu"}),
    )
    .await;
    admin_put(
        &bin,
        &format!("/v1/subjects/{SUBJECT}/consents/marketing"),
        json!({"status": "granted"}),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let url = bin.url(&format!("/api/customers/{SUBJECT}/profile"));
    let t = token("crm", &["marketing"], "");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(load(url.clone(), t.clone(), stop.clone())))
        .collect();
    // Kill once the load has run a while and the upstream has answered enough requests that at
    // least 50 were released (at most CLIENTS are in flight), however slow the machine.
    sleep_ms(1500).await;
    let started = std::time::Instant::now();
    while up.count() < 50 + CLIENTS && started.elapsed() < Duration::from_secs(30) {
        sleep_ms(20).await;
    }
    let mut bin = bin;
    bin.child.kill().unwrap(); // SIGKILL
    bin.child.wait().unwrap();
    // Let in-flight requests fail, then stop the clients.
    sleep_ms(200).await;
    stop.store(true, Ordering::Relaxed);
    let mut released = Vec::new();
    for task in tasks {
        let (ok, _failed) = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        released.extend(ok);
    }
    drop(bin);
    assert!(
        released.len() >= 50,
        "only {} requests were served before the kill",
        released.len()
    );

    // Restart on the same folders: the torn tail (if any) is recovered and the chain goes on.
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "");
    let bin = Binary::start(work.path(), &config, gw_port, admin_port, "serve-2.log").await;
    let after = get(
        &bin.url(&format!("/api/customers/{SUBJECT}/profile")),
        Some(&t),
        &[("x-purpose", "marketing")],
    )
    .await;
    assert_eq!(after.status, StatusCode::OK, "consent survived the crash");
    let ready = send(build_request(
        Method::GET,
        &bin.admin_url("/readyz"),
        None,
        None,
    ))
    .await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert!(bin.stop(), "the restarted binary exits 0 on SIGTERM");

    let audit_dir = work.path().join("data/audit");
    let (code, out) = cli(&["audit", "verify", "--dir", audit_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"ok\":true"), "{out}");

    let records = audit_records(&audit_dir);
    let mut by_id: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &records {
        by_id
            .entry(r["request_id"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
    }
    for id in &released {
        let recs = by_id.get(id).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(recs.len(), 1, "request {id}: {} records", recs.len());
        assert_eq!(recs[0]["status"], 200, "request {id}");
        assert_eq!(recs[0]["decision"], "allow", "request {id}");
    }
    // Records of requests whose answer never arrived may exist (audited, then killed), but
    // no record is duplicated.
    assert!(by_id.values().all(|v| v.len() == 1));
    assert!(records.len() > released.len());
    eprintln!(
        "released {} responses, {} records after restart",
        released.len(),
        records.len()
    );
}
