//! The decision API end to end: one `POST /access/v1/evaluations` with 1000 evaluations
//! (1000 distinct subjects, mixed eu / us-ca regions, granted, denied and unrecorded consents)
//! through a real socket to an in-process gateway on a sled store, including the JWT check,
//! the batched store lookups, the decisions and the 1000 audit records in one group commit
//! (fdatasync included). Target: ≤ 5 ms per batch.
//!
//! Run: `cargo bench --bench authzen`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::{TestGateway, admin_call, consent_admin_token, token};
use criterion::Criterion;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

const SUBJECTS: usize = 1000;

fn subject(n: usize) -> String {
    format!("c-{n:05}")
}

/// Regions and consents through the import API: one call, like a consent platform's sync.
async fn seed(gw: &TestGateway) {
    let mut ndjson = String::new();
    for n in 0..SUBJECTS {
        let region = if n % 3 == 0 { "us-ca" } else { "eu" };
        let status = match n % 4 {
            0 | 1 => Some("granted"),
            2 => Some("denied"),
            _ => None,
        };
        if let Some(status) = status {
            let line = json!({"subject": subject(n), "purpose": "marketing", "status": status, "region": region});
            ndjson.push_str(&line.to_string());
            ndjson.push('\n');
        }
    }
    let r = admin_call(
        gw,
        Method::POST,
        "/v1/consents/import",
        Some(&consent_admin_token()),
        Some(&ndjson),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "import: {}", r.text());
}

fn batch() -> Bytes {
    let evaluations: Vec<Value> = (0..SUBJECTS)
        .map(|n| json!({"resource": {"type": "data_subject", "id": subject(n)}}))
        .collect();
    Bytes::from(
        json!({
            "subject": {"type": "service", "id": "crm-svc"},
            "action": {"name": "marketing"},
            "evaluations": evaluations,
        })
        .to_string(),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let gw = rt.block_on(async {
        let gw = TestGateway::start(&common::config_text(unused, "")).await;
        seed(&gw).await;
        gw
    });
    let url = gw.url("/access/v1/evaluations");
    let auth = format!("Bearer {}", token("crm-svc", &["marketing"], ""));
    let body = batch();
    let client = common::client();
    let send = || async {
        let req = Request::post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.unwrap().to_bytes()
    };
    let first: Value = serde_json::from_slice(&rt.block_on(send())).unwrap();
    assert_eq!(
        first["evaluations"].as_array().map(Vec::len),
        Some(SUBJECTS)
    );

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("authzen_batch_1000_sled", |b| {
        b.iter(|| rt.block_on(send()));
    });
    c.final_summary();
    rt.block_on(gw.shutdown());
}
