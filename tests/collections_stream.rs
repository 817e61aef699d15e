//! An NDJSON export far larger than memory through the real binary: every line decided and
//! audited, the gateway's peak RSS (from /proc) bounded whatever the stream's length.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

const LINES: usize = 200_000;
const SUBJECTS: usize = 50;
/// Most the gateway's RSS may grow while the stream passes: far below the ~120 MB it carries
/// (a debug build starts near 60 MiB, sled's page cache and the allocator included).
const MAX_GROWTH_KIB: u64 = 32 * 1024;

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_export_of_200k_lines_in_bounded_memory() {
    let up = Upstream::start(Arc::new(|_seen| {
        Box::pin(async move {
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                let mut chunk = String::new();
                for i in 0..LINES {
                    let mut doc = sample_customer("x");
                    doc["id"] = json!(format!("c-{}", i % SUBJECTS));
                    doc["seq"] = json!(i);
                    chunk.push_str(&doc.to_string());
                    chunk.push('\n');
                    if chunk.len() > 60_000
                        && tx
                            .send(Bytes::from(std::mem::take(&mut chunk)))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                let _ = tx.send(Bytes::from(chunk)).await;
            });
            let mut resp = http::Response::new(body.boxed());
            resp.headers_mut()
                .insert("content-type", "application/x-ndjson".parse().unwrap());
            resp
        })
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = format!(
        r#"{}
[[route]]
name = "export"
match = "/api/export"
upstream = "http://{}"
personal_data = true
collection = {{ format = "ndjson", subject = "id" }}
"#,
        binary_config(up.addr, gw_port, admin_port, ""),
        up.addr
    );
    let mut bin = Binary::start(dir.path(), &config, gw_port, admin_port, "gw.log").await;
    let pid = bin.child.id();
    // Even subjects granted marketing (default region, opt-in): half the lines are released.
    for s in (0..SUBJECTS).step_by(2) {
        let url = bin.admin_url(&format!("/v1/subjects/c-{s}/consents/marketing"));
        let r = send(build_request(
            Method::PUT,
            &url,
            Some(&consent_admin_token()),
            Some(r#"{"status":"granted"}"#),
        ))
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let rss_before = proc_status_kib(pid, "VmRSS:");

    let mut req = build_request(
        Method::GET,
        &format!("http://{}/api/export", bin.gw),
        Some(&token("crm-svc", &["marketing"], "")),
        None,
    );
    req.headers_mut()
        .insert("x-purpose", "marketing".parse().unwrap());
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let (mut released, mut peak_sampled) = (0usize, 0u64);
    let started = std::time::Instant::now();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .expect("a chunk at least every 30 s")
    {
        if let Ok(data) = frame.unwrap().into_data() {
            released += data.iter().filter(|b| **b == b'\n').count();
            assert!(!data.windows(7).any(|w| w == b"Schmidt"), "minimised");
            peak_sampled = peak_sampled.max(proc_status_kib(pid, "VmRSS:"));
        }
    }
    let elapsed = started.elapsed();
    let hwm = proc_status_kib(pid, "VmHWM:");
    eprintln!(
        "{LINES} lines in {elapsed:?}; gateway RSS before {rss_before} KiB, sampled peak {peak_sampled} KiB, VmHWM {hwm} KiB"
    );
    assert_eq!(released, LINES / 2);
    assert!(
        hwm.saturating_sub(rss_before) < MAX_GROWTH_KIB,
        "RSS grew from {rss_before} KiB to a peak of {hwm} KiB"
    );

    // Every line has its record, in order, before the stream's end was released.
    let _ = bin.child.kill();
    let _ = bin.child.wait();
    let lines = audit_raw_lines(&dir.path().join("data/audit"));
    let export: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"route\":\"export\""))
        .collect();
    assert_eq!(export.len(), LINES);
    let last: serde_json::Value = serde_json::from_str(export[LINES - 1]).unwrap();
    assert_eq!(
        last["collection"],
        json!({"index": LINES - 1, "count": null})
    );
}
