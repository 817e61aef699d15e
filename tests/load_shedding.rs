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
    let (up, release_tx) = Upstream::held(br#"{"ok":true}"#).await;
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
    up.wait_for(2).await;
    assert_eq!(series_value(&gw, "consentgate_requests_in_flight").await, 2);
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

/// Buffered personal-data answers share `gateway.max_buffered_bytes`: one that does not fit
/// beside those being read is not released but answered `503 overloaded` (and audited as
/// such); the bytes come back when the exchange ends.
#[tokio::test]
async fn answers_over_the_buffer_budget_get_a_503_and_the_budget_comes_back() {
    let doc =
        serde_json::json!({"id": "c-1001", "first_name": "Anna", "notes": "x".repeat(60_000)});
    let bytes = bytes::Bytes::from(doc.to_string());
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (doc_bytes, seen_calls) = (bytes.clone(), calls.clone());
    let up = Upstream::start(std::sync::Arc::new(move |seen| {
        let (doc, mut release) = (doc_bytes.clone(), release_rx.clone());
        let first = seen_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        Box::pin(async move {
            if seen.uri.ends_with("/gzip") {
                // ~200 bytes on the wire, 60 KB once decoded.
                use std::io::Write;
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                z.write_all(&doc).unwrap();
                let mut resp = json_response(StatusCode::OK, z.finish().unwrap().into());
                resp.headers_mut()
                    .insert("content-encoding", "gzip".parse().unwrap());
                return resp;
            }
            if !first {
                // Declared length: reserved before a byte is read.
                return json_response(StatusCode::OK, doc);
            }
            // The first answer sends 50 KB, then holds the rest until released.
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                let _ = tx.send(doc.slice(..50_000)).await;
                let _ = release.wait_for(|go| *go).await;
                let _ = tx.send(doc.slice(50_000..)).await;
            });
            let mut resp = http::Response::new(body.boxed());
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            resp
        })
    }))
    .await;
    // (max_body_bytes is 65536 in the test configuration.)
    let limits = "max_buffered_bytes = 100000";
    let gw = TestGateway::start(&config_text(up.addr, limits)).await;
    let t = token("crm", &["support"], "");
    let url = gw.url("/api/customers/c-1001/profile");
    let held = {
        let (url, t) = (url.clone(), t.clone());
        tokio::spawn(async move { get(&url, Some(&t), &[("x-purpose", "support")]).await })
    };
    up.wait_for(1).await;
    let started = Instant::now();
    // 60 KB more do not fit in ~97 KiB beside those 50 KB (until the gateway has read them, a
    // second answer still fits: asked again then).
    let r = loop {
        let r = get(&url, Some(&t), &[("x-purpose", "support")]).await;
        if r.status != StatusCode::OK || started.elapsed() > Duration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.code(), "overloaded");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    assert!(
        !r.text().contains("xxxx"),
        "nothing of the answer is released"
    );
    let refused_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    // A small compressed answer is held at its decoded size: 60 KB do not fit either.
    let gzip = gw.url("/api/customers/c-1001/gzip");
    let z = get(&gzip, Some(&t), &[("x-purpose", "support")]).await;
    assert_eq!(z.status, StatusCode::SERVICE_UNAVAILABLE, "{}", z.code());
    assert_eq!(z.code(), "overloaded");
    // The gauge shows the held answer's bytes (whole KiB).
    assert!(series_value(&gw, "consentgate_buffered_bytes").await >= 50_000);
    // The held answer completes; then the budget has room again.
    release_tx.send(true).unwrap();
    let first = held.await.unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.code());
    for u in [&url, &gzip] {
        let again = get(u, Some(&t), &[("x-purpose", "support")]).await;
        assert_eq!(again.status, StatusCode::OK, "{u}: {}", again.code());
    }
    // The refused exchange was decided and forwarded: it has its record, as a failure.
    let records = audit_records(&gw.dir.path().join("data/audit"));
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r["request_id"] == refused_id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{records:?}");
    assert_eq!(refused[0]["status"], 503);
    assert_eq!(refused[0]["reason"], "overloaded");
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 5);
    assert_eq!(series_value(&gw, "consentgate_buffered_bytes").await, 0);
    assert_eq!(series_value(&gw, "consentgate_requests_in_flight").await, 0);
    gw.shutdown().await;
}
