//! Data-plane workers (`gateway.workers`): every worker serves, they share one connection
//! budget, and shutdown waits for the exchanges of every worker to have their records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CUSTOMER: &[u8] = br#"{"id":"c-1001","name":"Anna"}"#;

#[tokio::test]
async fn the_workers_share_one_connection_budget() {
    let (up, release) = Upstream::held(CUSTOMER).await;
    let gw = TestGateway::start(&config_text(up.addr, "workers = 4\nmax_connections = 2")).await;
    let t = token("crm", &[], "");
    let held: Vec<_> = (0..2)
        .map(|i| {
            let url = gw.url(&format!("/api/products/{i}"));
            let t = t.clone();
            tokio::spawn(async move { get(&url, Some(&t), &[]).await })
        })
        .collect();
    up.wait_for(2).await;
    // Both slots are taken, whichever workers hold them: a third connection is closed at
    // accept, on every worker. (Per-worker budgets would have accepted it and held it.)
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let _ = s
            .write_all(b"GET /api/products/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a connection over the shared budget was served: {read:?} {}",
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(
        up.count(),
        2,
        "a connection over the budget reached the upstream"
    );
    release.send(true).unwrap();
    for r in held {
        assert_eq!(r.await.unwrap().status, StatusCode::OK);
    }
    // The slots come back, once the server has seen the two connections end (their clients
    // close them after the answers; until then a new connection is still over the budget).
    let started = Instant::now();
    let r = loop {
        let req = build_request(Method::GET, &gw.url("/api/products/9"), Some(&t), None);
        match try_send(req).await {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(5) => sleep_ms(20).await,
            Err(e) => panic!("the connection slots never came back: {e}"),
        }
    };
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_waits_for_the_exchanges_of_every_worker() {
    for workers in [1, 4] {
        let (up, release) = Upstream::held(CUSTOMER).await;
        let audit = tempfile::tempdir().unwrap();
        let config = config_with_audit(up.addr, &format!("workers = {workers}"), audit.path(), "");
        let gw = TestGateway::start(&config).await;
        let t = token("crm", &["support"], "");
        // Each on a connection of its own, so the workers take them as they are idle. The
        // clients of the even ones hang up once the upstream has every request: their
        // exchanges then run on with no connection left to drain, kept only by their worker.
        let mut answered = Vec::new();
        let mut abandoned = Vec::new();
        for i in 0..12 {
            let id = format!("w{workers}-{i}");
            if i % 2 == 0 {
                let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
                let req = format!(
                    "GET /api/customers/c-1001/profile HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {t}\r\nx-purpose: support\r\nx-request-id: {id}\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.unwrap();
                abandoned.push(s);
            } else {
                let url = gw.url("/api/customers/c-1001/profile");
                let t = t.clone();
                answered.push(tokio::spawn(async move {
                    get(
                        &url,
                        Some(&t),
                        &[("x-purpose", "support"), ("x-request-id", &id)],
                    )
                    .await
                }));
            }
        }
        up.wait_for(12).await;
        drop(abandoned);
        let started = Instant::now();
        let shutdown = tokio::spawn(gw.shutdown());
        sleep_ms(100).await;
        assert!(
            !shutdown.is_finished(),
            "shutdown did not wait for the exchanges"
        );
        release.send(true).unwrap();
        shutdown.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{workers}: drain too slow"
        );
        for r in answered {
            let r = r.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{workers}: {}", r.text());
        }
        let mut ids: Vec<String> = audit_records(audit.path())
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut expected: Vec<String> = (0..12).map(|i| format!("w{workers}-{i}")).collect();
        expected.sort();
        assert_eq!(ids, expected, "{workers} workers: one record per exchange");
    }
}

/// A personal request alone on its worker writes and fsyncs its audit record on that worker
/// (no hand-off to the writer thread and back); one that shares its worker with another request
/// in flight hands the record to the writer thread, so the other is not held up by its
/// fdatasync. Every record is durable before its answer either way.
#[tokio::test]
async fn a_lone_request_writes_its_own_record_and_a_crowded_one_hands_it_off() {
    let (release, held) = tokio::sync::watch::channel(false);
    let (release_gone, held_gone) = tokio::sync::watch::channel(false);
    let up = Upstream::start(std::sync::Arc::new(move |seen| {
        let mut held = held.clone();
        let mut held_gone = held_gone.clone();
        Box::pin(async move {
            if seen.uri.contains("c-slow") {
                let _ = held.wait_for(|go| *go).await;
            }
            if seen.uri.contains("c-gone") {
                let _ = held_gone.wait_for(|go| *go).await;
            }
            json_response(StatusCode::OK, bytes::Bytes::from_static(CUSTOMER))
        })
    }))
    .await;
    let audit = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(&config_with_audit(up.addr, "workers = 1", audit.path(), "")).await;
    let t = token("crm", &["support"], "");
    let in_caller = "consentgate_audit_batches_in_caller_total";
    // A personal GET, answered once the `n`th record is written.
    let customer = |n: usize| {
        let (gw, t, audit) = (&gw, &t, audit.path());
        async move {
            let r = get_personal(
                gw,
                "/api/customers/c-1001/profile",
                Some(t),
                Some("support"),
                &[],
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            assert_eq!(audit_records(audit).len(), n, "written before the answer");
        }
    };
    for n in 1..=3 {
        customer(n).await;
    }
    assert_eq!(
        series_value(&gw, in_caller).await,
        3,
        "alone: written on the worker"
    );

    let slow = {
        let url = gw.url("/api/customers/c-slow/profile");
        let t = t.clone();
        tokio::spawn(async move { get(&url, Some(&t), &[("x-purpose", "support")]).await })
    };
    up.wait_for(4).await;
    customer(4).await;
    assert_eq!(
        series_value(&gw, in_caller).await,
        3,
        "a request beside another in flight on its worker handed its record off"
    );
    release.send(true).unwrap();
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
    assert_eq!(
        series_value(&gw, "consentgate_audit_records_total").await,
        5
    );

    // An exchange whose client hung up still runs to its record, and still counts as in flight.
    let before = series_value(&gw, in_caller).await;
    let mut gone = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let req = format!(
        "GET /api/customers/c-gone/profile HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {t}\r\nx-purpose: support\r\n\r\n"
    );
    gone.write_all(req.as_bytes()).await.unwrap();
    up.wait_for(6).await;
    drop(gone);
    sleep_ms(50).await;
    customer(6).await;
    assert_eq!(
        series_value(&gw, in_caller).await,
        before,
        "a request beside an abandoned exchange on its worker handed its record off"
    );
    release_gone.send(true).unwrap();
    let started = Instant::now();
    while series_value(&gw, "consentgate_audit_records_total").await < 7 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the abandoned exchange has no record"
        );
        sleep_ms(10).await;
    }
    gw.shutdown().await;
}
