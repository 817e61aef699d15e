//! Attack family: hostile clients. Slowloris connections that trickle header bytes are closed
//! by `header_read_timeout`; a client that never reads a large streamed answer cannot grow the
//! gateway's memory (back-pressure reaches the upstream); connections beyond
//! `max_connections` are closed at accept while existing ones keep being served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response (framed by `Content-Length`) from a keep-alive connection; `None` when
/// the connection closed or failed first, or nothing came within `wait`.
async fn read_response(s: &mut TcpStream, wait: Duration) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf).into_owned();
            let r = RawReply::parse(&text[..end + 4]);
            let len: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some((
                    r.status,
                    String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned(),
                ));
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&b[..n]),
            _ => return None,
        }
    }
}

fn catalog_get(token: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\r\n")
}

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One slowloris connection: a request line, then one header byte every 200 ms. Returns how
/// long the gateway kept it open (`None`: still open after 5 s).
async fn slowloris(addr: SocketAddr) -> Option<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/products/x HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
        .await
        .unwrap();
    let (mut rd, mut wr) = s.split();
    let mut b = [0u8; 1024];
    let closed = async {
        loop {
            match rd.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // e.g. a 408 before the close
            }
        }
    };
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b"a").await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = closed => Some(start.elapsed()),
        _ = trickle => Some(start.elapsed()),
        _ = tokio::time::sleep(Duration::from_secs(5)) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_header_timeout() {
    let up = marker_upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, "header_read_timeout = \"1s\"")).await;
    let t = adv_token();
    let tasks: Vec<_> = (0..50).map(|_| tokio::spawn(slowloris(gw.addr))).collect();
    // Meanwhile, a normal request is served promptly.
    sleep_ms(300).await;
    let start = Instant::now();
    let r = get(&gw.url("/api/products/x"), Some(&t), &[]).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    for task in tasks {
        let open = task
            .await
            .unwrap()
            .expect("a slowloris connection stayed open for 5 s");
        assert!(
            open >= Duration::from_millis(900) && open <= Duration::from_millis(2500),
            "closed after {open:?}"
        );
    }
    assert_eq!(up.count(), 1, "no slowloris request reached the upstream");
    gw.shutdown().await;
}

/// An upstream whose `/api/products/big` streams 1 GiB in fresh 64 KiB allocations, counting
/// what it managed to hand over.
async fn streaming_upstream(produced: Arc<AtomicU64>) -> Upstream {
    Upstream::start(Arc::new(move |seen: Seen| {
        let produced = produced.clone();
        Box::pin(async move {
            if !seen.uri.ends_with("/big") {
                return json_response(http::StatusCode::OK, Bytes::from_static(b"{\"ok\":true}"));
            }
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                for _ in 0..(1u64 << 30) / 65536 {
                    if tx.send(Bytes::from(vec![b'x'; 65536])).await.is_err() {
                        return;
                    }
                    produced.fetch_add(65536, Ordering::Relaxed);
                }
            });
            let mut r = http::Response::new(body.boxed());
            r.headers_mut()
                .insert("content-type", "application/octet-stream".parse().unwrap());
            r
        })
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_grow_gateway_memory() {
    let produced = Arc::new(AtomicU64::new(0));
    let up = streaming_upstream(produced.clone()).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = adv_token();
    let before = rss_kib();
    // Eight clients ask for the 1 GiB stream and never read a byte.
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(catalog_get(&t, "/api/products/big").as_bytes())
            .await
            .unwrap();
        idle.push(s);
    }
    // Let the stream run into the back-pressure, sampling memory on the way.
    let mut peak = before;
    for _ in 0..20 {
        sleep_ms(100).await;
        peak = peak.max(rss_kib());
    }
    let pushed = produced.load(Ordering::Relaxed);
    sleep_ms(500).await;
    let stalled = produced.load(Ordering::Relaxed);
    peak = peak.max(rss_kib());
    eprintln!(
        "RSS before {} MiB, peak {} MiB; upstream handed over {} MiB (then {} MiB)",
        before / 1024,
        peak / 1024,
        pushed >> 20,
        stalled >> 20
    );
    assert!(
        peak - before < 100 * 1024,
        "RSS grew by {} MiB",
        (peak - before) / 1024
    );
    // Eight streams of 1 GiB: far less than that left the upstream, and it has stalled.
    assert!(stalled < 512 << 20, "{} MiB handed over", stalled >> 20);
    assert!(
        stalled - pushed < 16 << 20,
        "still streaming: {pushed} -> {stalled}"
    );
    // Meanwhile others are served.
    let r = get(&gw.url("/api/products/x"), Some(&t), &[]).await;
    assert_eq!(r.status.as_u16(), 200);
    // The clients give up: the upstream streams are dropped.
    drop(idle);
    sleep_ms(500).await;
    let after_drop = produced.load(Ordering::Relaxed);
    sleep_ms(300).await;
    assert_eq!(
        produced.load(Ordering::Relaxed),
        after_drop,
        "upstream still streaming"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_and_existing_ones_served() {
    let (up, gw) = marker_gateway("max_connections = 8").await;
    let t = adv_token();
    // Eight keep-alive connections, each served once.
    let mut conns = Vec::new();
    for i in 0..8 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(catalog_get(&t, "/api/products/x").as_bytes())
            .await
            .unwrap();
        let (status, _) = read_response(&mut s, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("connection {i} not served"));
        assert_eq!(status, 200);
        conns.push(s);
    }
    // Four more: accepted by the kernel, closed by the gateway without an answer.
    for i in 0..4 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let _ = s
            .write_all(catalog_get(&t, "/api/products/x").as_bytes())
            .await;
        assert!(
            read_response(&mut s, Duration::from_secs(2))
                .await
                .is_none(),
            "extra connection {i} was served"
        );
        // A personal-data request on an extra connection is not served either.
        let text = raw_exchange(
            gw.addr,
            format!("GET {ADV_PROFILE} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Purpose: marketing\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        assert!(text.is_empty(), "{text}");
    }
    // The eight existing connections are still served, personal data included (redacted).
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(
            format!("GET {ADV_PROFILE} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Purpose: marketing\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let (status, text) = read_response(s, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("existing connection {i} not served"));
        assert_eq!(status, 200, "{text}");
        assert_no_markers("existing", &text, PII_MARKERS);
    }
    assert_eq!(up.count(), 16);
    // Closing one frees a slot.
    drop(conns.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let _ = s
            .write_all(catalog_get(&t, "/api/products/x").as_bytes())
            .await;
        if let Some((status, _)) = read_response(&mut s, Duration::from_millis(500)).await {
            assert_eq!(status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed");
    }
    drop(conns);
    gw.shutdown().await;
}

/// The real binary at debug level with both limits: after slowloris, a non-reading client,
/// connection flooding and personal requests, the JSON log holds no personal value or token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_attacks_leave_no_personal_data_in_the_logs() {
    let up = marker_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(
        up.addr,
        gw_port,
        admin_port,
        "header_read_timeout = \"1s\"\nmax_connections = 8",
    );
    let bin = start_logged_binary(work.path(), &config, gw_port, admin_port).await;
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    let slow: Vec<_> = (0..4).map(|_| tokio::spawn(slowloris(bin.gw))).collect();
    // Personal requests on keep-alive connections that are then left unread.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(bin.gw).await.unwrap();
        s.write_all(
            format!("GET {ADV_PROFILE} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Purpose: marketing\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        held.push(s);
    }
    // Flood past the limit.
    let mut flood = Vec::new();
    for _ in 0..6 {
        flood.push(TcpStream::connect(bin.gw).await.unwrap());
    }
    for s in slow {
        assert!(s.await.unwrap().is_some());
    }
    drop(flood);
    // Read what the held connections were sent: redacted.
    for s in &mut held {
        let (status, text) = read_response(s, Duration::from_secs(3)).await.unwrap();
        assert_eq!(status, 200);
        assert_no_markers("held", &text, PII_MARKERS);
    }
    drop(held);
    let mut forbidden: Vec<&str> = PII_MARKERS.to_vec();
    forbidden.push(&t);
    assert_log_clean(bin, work.path(), &forbidden);
}
