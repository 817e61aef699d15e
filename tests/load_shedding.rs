//! Load shedding: over `gateway.max_in_flight` requests in flight, requests are refused at once
//! with `503 overloaded` and `Retry-After`, instead of queueing behind the slow ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

#[tokio::test]
async fn requests_over_the_in_flight_bound_get_a_fast_503() {
    let up = Upstream::start(std::sync::Arc::new(|_seen| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            json_response(StatusCode::OK, bytes::Bytes::from_static(br#"{"ok":true}"#))
        })
    }))
    .await;
    let gw = TestGateway::start(&config_text(up.addr, "max_in_flight = 2")).await;
    let t = token("crm", &["support"], "");
    let slow: Vec<_> = (0..2)
        .map(|i| {
            let url = if i == 0 {
                gw.url("/api/products/1")
            } else {
                gw.url("/api/customers/c-1001/profile")
            };
            let t = t.clone();
            tokio::spawn(async move { get(&url, Some(&t), &[("x-purpose", "support")]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    for path in [
        "/api/products/2",
        "/api/customers/c-1001/profile",
        "/status",
    ] {
        let started = Instant::now();
        let r = get(&gw.url(path), Some(&t), &[("x-purpose", "support")]).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.code(), "overloaded");
        assert_eq!(r.headers.get("retry-after").unwrap(), "1");
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{path}: not shed at once"
        );
    }
    for s in slow {
        assert_eq!(s.await.unwrap().status, StatusCode::OK);
    }
    // Capacity comes back once the slow requests are done.
    let r = get(&gw.url("/api/products/3"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
}
