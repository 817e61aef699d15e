//! Attack family: a hostile or broken upstream on a personal-data route. A raw TCP upstream
//! resets mid-body, stops mid-chunk, sends headers or body too slowly, hangs, or speaks
//! garbage. Each request gets `502`/`504` with its exact code, nothing of the upstream body is
//! released, and exactly one audit record holds the status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads a request head; returns the request target.
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split(' ').nth(1).unwrap_or("").to_string()
}

fn head(extra: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}\r\n")
}

/// Aborts the connection with a TCP reset.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

/// One misbehaviour per last path segment of the request.
async fn misbehave(mut s: TcpStream) {
    let doc = marker_bytes();
    let part = &doc[..300];
    // `hang-no-read` never even reads the request.
    let mut peek = [0u8; 512];
    let n = s.peek(&mut peek).await.unwrap_or(0);
    if String::from_utf8_lossy(&peek[..n]).contains("/hang-no-read ") {
        tokio::time::sleep(Duration::from_secs(4)).await;
        return;
    }
    let target = read_head(&mut s).await;
    let behaviour = target.rsplit('/').next().unwrap_or("").to_string();
    match behaviour.as_str() {
        "ok" => {
            let _ = s
                .write_all(head(&format!("Content-Length: {}\r\n", doc.len())).as_bytes())
                .await;
            let _ = s.write_all(&doc).await;
        }
        "reset-mid-body" => {
            let _ = s
                .write_all(head("Content-Length: 2000\r\n").as_bytes())
                .await;
            let _ = s.write_all(part).await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(s);
        }
        "eof-mid-body" => {
            let _ = s
                .write_all(head("Content-Length: 2000\r\n").as_bytes())
                .await;
            let _ = s.write_all(part).await;
            let _ = s.shutdown().await;
        }
        "reset-mid-chunk" => {
            let _ = s
                .write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
                .await;
            let _ = s.write_all(format!("{:x}\r\n", doc.len()).as_bytes()).await;
            let _ = s.write_all(part).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(s);
        }
        "eof-before-last-chunk" => {
            let _ = s
                .write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
                .await;
            let _ = s.write_all(format!("{:x}\r\n", doc.len()).as_bytes()).await;
            let _ = s.write_all(&doc).await;
            let _ = s.write_all(b"\r\n").await;
            let _ = s.shutdown().await;
        }
        "reset-before-head" => reset(s),
        "close-before-head" => drop(s),
        "garbage" => {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            let _ = s.write_all(&doc).await;
        }
        "head-only-garbage" => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 900\r\n\r\n")
                .await;
            let _ = s.write_all(&doc).await;
        }
        "slow-head" => {
            tokio::time::sleep(Duration::from_millis(1600)).await;
            let _ = s
                .write_all(head(&format!("Content-Length: {}\r\n", doc.len())).as_bytes())
                .await;
            let _ = s.write_all(&doc).await;
        }
        "slow-body" => {
            let _ = s
                .write_all(head(&format!("Content-Length: {}\r\n", doc.len())).as_bytes())
                .await;
            for c in doc.chunks(20) {
                if s.write_all(c).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        "slow-chunks" => {
            let _ = s
                .write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
                .await;
            for c in doc.chunks(20) {
                let frame = format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c));
                if s.write_all(frame.as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
        "stall-mid-body" => {
            let _ = s
                .write_all(head("Content-Length: 2000\r\n").as_bytes())
                .await;
            let _ = s.write_all(part).await;
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        // "hang" and anything else: read the request, never answer.
        _ => tokio::time::sleep(Duration::from_secs(4)).await,
    }
}

async fn raw_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(misbehave(s));
        }
    });
    addr
}

/// Fetches `behaviour` for the subject; asserts the status, code, timing and the single audit
/// record.
async fn expect(gw: &TestGateway, behaviour: &str, status: u16, code: &str) {
    let t = adv_token();
    let url = gw.url(&format!("/api/customers/{ADV_SUBJECT}/{behaviour}"));
    let start = Instant::now();
    let r = get(
        &url,
        Some(&t),
        &[("x-purpose", "marketing"), ("x-request-id", behaviour)],
    )
    .await;
    let took = start.elapsed();
    assert_error_reply(behaviour, &r, status, code);
    // Nothing of the upstream body: the answer is the error document alone.
    assert!(r.body.len() < 300, "{behaviour}: {}", r.text());
    assert!(
        !r.text().contains("first_name"),
        "{behaviour}: {}",
        r.text()
    );
    if status == 504 {
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(4000),
            "{behaviour}: answered after {took:?}, the upstream timeout is 1 s"
        );
    }
    let rec = assert_one_audit(gw, behaviour, "allow", status);
    assert_eq!(rec["reason"], code, "{behaviour}");
    assert!(
        rec["fields_removed"].as_array().unwrap().is_empty(),
        "{behaviour}: {rec}"
    );
}

async fn start() -> TestGateway {
    let up = raw_upstream().await;
    let gw = TestGateway::start(&config_text(up, "")).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    // Control: a well-behaved answer is released, redacted.
    let t = adv_token();
    let r = get(
        &gw.url(&format!("/api/customers/{ADV_SUBJECT}/ok")),
        Some(&t),
        &[("x-purpose", "marketing")],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_reply_clean("control", &r, PII_MARKERS);
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_connections_are_502_and_release_nothing() {
    let gw = start().await;
    for behaviour in [
        "reset-mid-body",
        "eof-mid-body",
        "reset-mid-chunk",
        "eof-before-last-chunk",
        "reset-before-head",
        "close-before-head",
        "garbage",
        "head-only-garbage",
    ] {
        expect(&gw, behaviour, 502, "upstream_unavailable").await;
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_hanging_upstreams_are_504_and_release_nothing() {
    let gw = std::sync::Arc::new(start().await);
    let tasks: Vec<_> = [
        "slow-head",
        "slow-body",
        "slow-chunks",
        "stall-mid-body",
        "hang",
        "hang-no-read",
    ]
    .into_iter()
    .map(|b| {
        let gw = gw.clone();
        tokio::spawn(async move { expect(&gw, b, 504, "upstream_timeout").await })
    })
    .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Still serving after all that.
    let t = adv_token();
    let r = get(
        &gw.url(&format!("/api/customers/{ADV_SUBJECT}/ok")),
        Some(&t),
        &[("x-purpose", "marketing")],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
    let gw = std::sync::Arc::into_inner(gw).unwrap();
    gw.shutdown().await;
}

/// The real binary at debug level: after the upstream attacks, the JSON log holds no
/// personal value (a broken body must not be logged as "what we got").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_attacks_leave_no_personal_data_in_the_logs() {
    let up = raw_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up, gw_port, admin_port, "");
    let bin = start_logged_binary(work.path(), &config, gw_port, admin_port).await;
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    let tasks: Vec<_> = [
        "ok",
        "reset-mid-body",
        "eof-mid-body",
        "reset-mid-chunk",
        "garbage",
        "head-only-garbage",
        "slow-head",
        "slow-body",
        "stall-mid-body",
        "hang",
    ]
    .into_iter()
    .map(|b| {
        let url = bin.url(&format!("/api/customers/{ADV_SUBJECT}/{b}"));
        let t = t.clone();
        tokio::spawn(async move {
            let r = get(&url, Some(&t), &[("x-purpose", "marketing")]).await;
            assert_reply_clean(b, &r, PII_MARKERS);
            r.status.as_u16()
        })
    })
    .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses[0], 200);
    assert!(
        statuses[1..].iter().all(|s| matches!(s, 502 | 504)),
        "{statuses:?}"
    );
    let mut forbidden: Vec<&str> = PII_MARKERS.to_vec();
    forbidden.push(&t);
    assert_log_clean(bin, work.path(), &forbidden);
}
