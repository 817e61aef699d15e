//! Load shedding: over `gateway.max_in_flight` requests in flight, requests are refused at once
//! with `503 overloaded` and `Retry-After`, instead of queueing behind the slow ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

#[tokio::test]
async fn requests_over_the_in_flight_bound_get_a_fast_503() {
    // The upstream holds both slow requests until released, so they are surely in flight while
    // the others arrive, however loaded the machine.
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let up = Upstream::start(std::sync::Arc::new(move |_seen| {
        let mut release = release_rx.clone();
        Box::pin(async move {
            let _ = release.wait_for(|go| *go).await;
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
    let started = Instant::now();
    while up.count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "slow requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for path in [
        "/api/products/2",
        "/api/customers/c-1001/profile",
        "/status",
    ] {
        // Shed at once: a request that queued for a slot would wait for the release.
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            get(&gw.url(path), Some(&t), &[("x-purpose", "support")]),
        )
        .await
        .unwrap_or_else(|_| panic!("{path}: not shed at once"));
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.code(), "overloaded");
        assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    }
    release_tx.send(true).unwrap();
    for s in slow {
        assert_eq!(s.await.unwrap().status, StatusCode::OK);
    }
    // Capacity comes back once the slow requests are done.
    let r = get(&gw.url("/api/products/3"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
}

/// A streamed (NDJSON) response holds its place under `max_in_flight` until the stream ends,
/// not only until its head is sent: a long export counts as the request in flight it is.
#[tokio::test]
async fn a_stream_counts_in_flight_until_it_ends() {
    let (finish_tx, finish_rx) = tokio::sync::watch::channel(false);
    let up = Upstream::start(std::sync::Arc::new(move |_seen| {
        let mut finish = finish_rx.clone();
        Box::pin(async move {
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                let _ = tx
                    .send(bytes::Bytes::from_static(
                        b"{\"id\":\"c-1001\",\"name\":\"A\"}\n",
                    ))
                    .await;
                let _ = finish.wait_for(|done| *done).await;
                let _ = tx
                    .send(bytes::Bytes::from_static(
                        b"{\"id\":\"c-1002\",\"name\":\"B\"}\n",
                    ))
                    .await;
            });
            let mut resp = http::Response::new(body.boxed());
            resp.headers_mut()
                .insert("content-type", "application/x-ndjson".parse().unwrap());
            resp
        })
    }))
    .await;
    let config = format!(
        "{}\n[[route]]\nname = \"export\"\nmatch = \"/api/export\"\nupstream = \"http://{}\"\npersonal_data = true\ncollection = {{ format = \"ndjson\", subject = \"id\" }}\n",
        config_text(up.addr, "max_in_flight = 1"),
        up.addr
    );
    let gw = TestGateway::start(&config).await;
    let t = token("crm", &["support"], "");
    let mut req = build_request(http::Method::GET, &gw.url("/api/export"), Some(&t), None);
    req.headers_mut()
        .insert("x-purpose", "support".parse().unwrap());
    let stream = client().request(req).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The stream's head is out and its exchange is over, but the stream is not.
    let r = get(&gw.url("/api/products/1"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "overloaded");
    finish_tx.send(true).unwrap();
    // The stream runs to its end.
    http_body_util::BodyExt::collect(stream.into_body())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(&gw.url("/api/products/2"), Some(&t), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "capacity is back once the stream ended"
    );
    gw.shutdown().await;
}
