//! The reverse proxy through real sockets: forwarding, headers, streaming, limits, failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;

#[tokio::test]
async fn get_is_forwarded_with_request_id_and_forwarding_headers() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    let r = get(
        &gw.url("/api/products/1?x=1"),
        Some(&t),
        &[("host", "shop.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let rid = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 32);
    let seen = up.last();
    assert_eq!(seen.uri, "/api/products/1?x=1");
    assert_eq!(seen.headers["x-request-id"], rid.as_str());
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "shop.example");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["forwarded"],
        "for=127.0.0.1;proto=http;host=\"shop.example\""
    );
    assert_eq!(
        seen.headers["host"],
        up.addr.to_string().as_str(),
        "upstream sees its own authority"
    );
    assert_eq!(seen.headers["x-consentgate-caller"], "crm");
    assert!(
        seen.headers.get("authorization").is_none(),
        "the caller's token is not forwarded"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn valid_request_id_is_kept_invalid_is_replaced() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    let r = get(
        &gw.url("/api/products/1"),
        Some(&t),
        &[("x-request-id", "trace-42.a_b")],
    )
    .await;
    assert_eq!(r.headers["x-request-id"], "trace-42.a_b");
    assert_eq!(up.last().headers["x-request-id"], "trace-42.a_b");
    let r = get(
        &gw.url("/api/products/1"),
        Some(&t),
        &[("x-request-id", "bad id with spaces")],
    )
    .await;
    assert_ne!(r.headers["x-request-id"], "bad id with spaces");
    assert_eq!(r.headers["x-request-id"].len(), 32);
    gw.shutdown().await;
}

#[tokio::test]
async fn post_body_is_forwarded() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let req = Request::post(gw.url("/api/products/new"))
        .header("authorization", format!("Bearer {}", token("crm", &[], "")))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"sku":"SKU-1"}"#)))
        .unwrap();
    let r = send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.json()["body"], r#"{"sku":"SKU-1"}"#);
    gw.shutdown().await;
}

#[tokio::test]
async fn streaming_request_and_response_bodies_are_not_buffered() {
    // The upstream sends its first chunk, then waits for a signal before the second: the
    // client must see the first chunk while the upstream is still waiting.
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let up = Upstream::start(Arc::new(move |_seen| {
        let mut go = go_rx.clone();
        Box::pin(async move {
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first;")).await;
                let _ = go.wait_for(|v| *v).await;
                let _ = tx.send(Bytes::from_static(b"second")).await;
            });
            http::Response::new(body.boxed())
        })
    }))
    .await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let req = Request::get(gw.url("/api/products/stream"))
        .header("authorization", format!("Bearer {}", token("crm", &[], "")))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    go_tx.send(true).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");

    // A chunked request body arrives whole at the upstream.
    let (tx, body) = ChannelBody::new();
    tokio::spawn(async move {
        for c in [b'a', b'b', b'c'] {
            let _ = tx.send(Bytes::from(vec![c; 10])).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let req = Request::post(gw.url("/api/products/upload"))
        .header("authorization", format!("Bearer {}", token("crm", &[], "")))
        .body(body)
        .unwrap();
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        up.last().body,
        format!("{}{}{}", "a".repeat(10), "b".repeat(10), "c".repeat(10))
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let up = Upstream::start(Arc::new(|_seen| {
        Box::pin(async {
            let mut r = json_response(StatusCode::OK, Bytes::from_static(b"{}"));
            r.headers_mut()
                .insert("connection", "x-up-private".parse().unwrap());
            r.headers_mut().insert("x-up-private", "1".parse().unwrap());
            r.headers_mut()
                .insert("proxy-authenticate", "Basic".parse().unwrap());
            r.headers_mut()
                .insert("x-consentgate-decision", "allow".parse().unwrap());
            r.headers_mut().insert("x-up-public", "1".parse().unwrap());
            r
        })
    }))
    .await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    let r = get(
        &gw.url("/api/products/1"),
        Some(&t),
        &[
            ("connection", "x-client-private"),
            ("x-client-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-consentgate-caller", "forged"),
            ("x-client-public", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = up.last();
    for h in [
        "x-client-private",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(seen.headers.get(h).is_none(), "{h} reached the upstream");
    }
    assert_eq!(
        seen.headers["x-consentgate-caller"], "crm",
        "a forged caller header is replaced"
    );
    assert_eq!(seen.headers["x-client-public"], "1");
    for h in [
        "x-up-private",
        "proxy-authenticate",
        "x-consentgate-decision",
    ] {
        assert!(r.headers.get(h).is_none(), "{h} reached the client");
    }
    assert_eq!(r.headers["x-up-public"], "1");
    gw.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_is_a_504_and_a_dead_one_a_502() {
    let up = Upstream::start(Arc::new(|_seen| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json_response(StatusCode::OK, Bytes::from_static(b"{}"))
        })
    }))
    .await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    let start = std::time::Instant::now();
    let r = get(&gw.url("/api/products/1"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.code(), "upstream_timeout");
    assert!(
        start.elapsed() < Duration::from_millis(4000),
        "timeout is the configured 1s"
    );
    gw.shutdown().await;

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = TestGateway::start(&config_text(closed, "")).await;
    let r = get(&gw.url("/api/products/1"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.code(), "upstream_unavailable");
    let metrics = get(&format!("http://{}/metrics", gw.admin), None, &[])
        .await
        .text();
    assert!(
        metrics.contains("consentgate_upstream_errors_total{route=\"catalog\",kind=\"connect\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_request_bodies_are_413() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let auth = format!("Bearer {}", token("crm", &[], ""));
    // Declared too large: refused before the upstream is contacted.
    let req = Request::post(gw.url("/api/products/x"))
        .header("authorization", &auth)
        .body(Full::new(Bytes::from(vec![b'x'; 65537])))
        .unwrap();
    let r = send(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    assert_eq!(up.count(), 0);
    // Chunked, discovered while streaming.
    let (tx, body) = ChannelBody::new();
    tokio::spawn(async move {
        for _ in 0..20 {
            if tx.send(Bytes::from(vec![b'y'; 8192])).await.is_err() {
                break;
            }
        }
    });
    let req = Request::post(gw.url("/api/products/x"))
        .header("authorization", &auth)
        .body(body)
        .unwrap();
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await;
    // The client may still be sending when the answer comes; hyper then reports the answer.
    let resp = resp.expect("the gateway answers before closing");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        up.seen
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.body.len() <= 65536)
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn unmatched_paths_are_404_and_public_routes_need_no_token() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let r = get(&gw.url("/nowhere"), Some(&token("crm", &[], "")), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "no_route");
    assert_eq!(
        r.json()["error"]["request_id"],
        r.headers["x-request-id"].to_str().unwrap()
    );
    let r = get(&gw.url("/status"), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&gw.url("/api/products/1"), None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    let up = Upstream::start(Arc::new(|_seen| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            json_response(StatusCode::OK, Bytes::from_static(br#"{"slow":true}"#))
        })
    }))
    .await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let url = gw.url("/api/products/slow");
    let t = token("crm", &[], "");
    let in_flight = tokio::spawn(async move { get(&url, Some(&t), &[]).await });
    // Shut down once the request is surely in flight (the upstream has it, for 600 ms).
    up.wait_for(1).await;
    let addr = gw.addr;
    let started = std::time::Instant::now();
    gw.shutdown().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["slow"], true);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The listener is closed after shutdown.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
