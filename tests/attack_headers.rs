//! Attack family: request headers. Purpose header tricks, request smuggling over raw TCP
//! (the upstream must never see more requests than the gateway parsed), oversized header
//! blocks, region hints that try to downgrade a subject's policy, and `Sec-GPC` spellings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Sends `request`, then reads until EOF, 5 s, or 600 ms without new bytes once some arrived.
async fn raw_idle(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        let wait = if out.is_empty() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(600)
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw GET of the subject's profile with `lines` as extra header lines.
fn profile_get(subject: &str, token: &str, lines: &str, rid: &str) -> String {
    format!(
        "GET /api/customers/{subject}/profile HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nX-Request-Id: {rid}\r\n{lines}Connection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn purpose_header_tricks_are_refused_with_exact_codes() {
    let (up, gw) = marker_gateway("").await;
    let t = adv_token();
    let control = get_personal(&gw, ADV_PROFILE, Some(&t), Some("marketing"), &[]).await;
    assert_eq!(control.status.as_u16(), 200);
    let redacted = control.json();
    let long = format!("X-Purpose: {}\r\n", "m".repeat(65));
    let refused: Vec<(&str, u16, &str)> = vec![
        (
            "X-Purpose: marketing\r\nX-Purpose: marketing\r\n",
            400,
            "missing_purpose",
        ),
        (
            "X-Purpose: order_fulfilment\r\nX-Purpose: marketing\r\n",
            400,
            "missing_purpose",
        ),
        (
            "X-Purpose: marketing\r\nx-purpose: support\r\n",
            400,
            "missing_purpose",
        ),
        (
            "X-Purpose: marketing\r\nX-Purpose:\r\n",
            400,
            "missing_purpose",
        ),
        ("X-Purpose: marketing,support\r\n", 400, "unknown_purpose"),
        ("X-Purpose: marketing, support\r\n", 400, "unknown_purpose"),
        ("X-Purpose: support,marketing\r\n", 400, "unknown_purpose"),
        ("X-Purpose: marketing;q=1\r\n", 400, "unknown_purpose"),
        ("X-Purpose: marketing support\r\n", 400, "unknown_purpose"),
        ("X-Purpose: marketing\tsupport\r\n", 400, "unknown_purpose"),
        ("X-Purpose: MARKETING\r\n", 400, "unknown_purpose"),
        ("X-Purpose: Marketing\r\n", 400, "unknown_purpose"),
        ("X-Purpose: \"marketing\"\r\n", 400, "unknown_purpose"),
        ("X-Purpose: marketing\u{a0}\r\n", 400, "unknown_purpose"),
        ("X-Purpose: market\u{456}ng\r\n", 400, "unknown_purpose"),
        ("X-Purpose: *\r\n", 400, "unknown_purpose"),
        ("X-Purpose:\r\n", 400, "unknown_purpose"),
        (&long, 400, "unknown_purpose"),
        ("X-Purposes: marketing\r\n", 400, "missing_purpose"),
        ("X_Purpose: marketing\r\n", 400, "missing_purpose"),
        ("Purpose: marketing\r\n", 400, "missing_purpose"),
        // A purpose the policy does not define, one that only another region defines.
        ("X-Purpose: sale\r\n", 400, "unknown_purpose"),
        ("X-Purpose: admin\r\n", 403, "forbidden_purpose"),
    ];
    for (i, (lines, status, code)) in refused.iter().enumerate() {
        let rid = format!("purpose-{i}");
        let text = raw_idle(
            gw.addr,
            profile_get(ADV_SUBJECT, &t, lines, &rid).as_bytes(),
        )
        .await;
        let r = assert_raw(lines, &text, *status, code);
        assert_eq!(
            r.header("x-consentgate-decision").as_deref(),
            Some("deny"),
            "{lines}"
        );
        assert_eq!(up.count(), 1, "{lines}: upstream contacted");
        assert_one_audit(&gw, &rid, "deny", *status);
    }
    // Header names are case-insensitive and optional whitespace around a value is not part of
    // it (RFC 9110 §5.5): these are one plain `marketing`, and get exactly its answer.
    for lines in [
        "x-purpose: marketing\r\n",
        "X-PURPOSE: marketing\r\n",
        "X-Purpose:marketing\r\n",
        "X-Purpose:   marketing   \r\n",
        "X-Purpose:\tmarketing\t\r\n",
    ] {
        let text = raw_idle(
            gw.addr,
            profile_get(ADV_SUBJECT, &t, lines, "ok").as_bytes(),
        )
        .await;
        let r = assert_raw(lines, &text, 200, "");
        assert_eq!(
            serde_json::from_str::<Value>(&r.body).unwrap(),
            redacted,
            "{lines}"
        );
    }
    // Malformed header syntax never reaches the pipeline.
    for lines in [
        "X-Purpose : marketing\r\n",
        "X-Purpose: support\r\n marketing\r\n",
        "X-Purpose: support\r\n\tmarketing\r\n",
        " X-Purpose: marketing\r\n",
    ] {
        let before = up.count();
        let text = raw_idle(
            gw.addr,
            profile_get(ADV_SUBJECT, &t, lines, "bad").as_bytes(),
        )
        .await;
        assert_raw(lines, &text, 400, "");
        assert_eq!(up.count(), before, "{lines}");
    }
    gw.shutdown().await;
}

/// The smuggled request: a personal-data read without a token. If anything ever treated it
/// as a request, the gateway would refuse it (401) and the upstream would never see it.
const SMUGGLED: &str = "GET /api/customers/c-1001/profile HTTP/1.1\r\nHost: gw\r\nX-Purpose: marketing\r\nConnection: close\r\n\r\n";

/// A POST to the catalog with the given framing header lines and body bytes.
fn post(token: &str, framing: &str, body: &str) -> String {
    format!(
        "POST /api/products/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n{framing}\r\n{body}"
    )
}

/// Framing errors inside a chunked body (the head is fine), found only while streaming it.
const BODY_FRAMING_ERRORS: &[&str] = &[
    "chunk size overflow",
    "chunk size with junk",
    "bare LF chunk",
];

#[tokio::test]
async fn request_smuggling_is_refused_or_seen_as_exactly_one_request() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    let chunked_smuggle = format!("0\r\n\r\n{SMUGGLED}");
    let cl_body = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let n = chunked_smuggle.len();
    // (name, framing lines, body): each must be refused outright, or parsed as one request
    // whose forwarded body is well-framed; the smuggled request never reaches the upstream.
    let cases: Vec<(&str, String, String)> = vec![
        (
            "CL then TE",
            format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "TE then CL",
            format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "CL 4 then TE",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n".into(),
            chunked_smuggle.clone(),
        ),
        (
            "TE chunked, identity",
            format!("Transfer-Encoding: chunked, identity\r\nContent-Length: {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "TE identity, chunked + CL",
            "Transfer-Encoding: identity, chunked\r\nContent-Length: 3\r\n".to_string(),
            cl_body.clone(),
        ),
        (
            "TE chunked twice",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n".into(),
            chunked_smuggle.clone(),
        ),
        (
            "TE xchunked",
            format!("Transfer-Encoding: xchunked\r\nContent-Length: {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "TE with space before colon",
            format!("Transfer-Encoding : chunked\r\nContent-Length: {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "TE obs-fold",
            format!("Transfer-Encoding: identity\r\n chunked\r\nContent-Length: {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "TE vertical tab",
            "Transfer-Encoding:\u{b}chunked\r\n".into(),
            chunked_smuggle.clone(),
        ),
        (
            "two differing CLs",
            format!("Content-Length: 0\r\nContent-Length: {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "differing CL list",
            format!("Content-Length: 0, {n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "CL plus sign",
            format!("Content-Length: +{n}\r\n"),
            chunked_smuggle.clone(),
        ),
        (
            "CL negative",
            "Content-Length: -1\r\n".into(),
            chunked_smuggle.clone(),
        ),
        (
            "CL hex",
            "Content-Length: 0x10\r\n".into(),
            chunked_smuggle.clone(),
        ),
        (
            "CL with space",
            "Content-Length: 1 0\r\n".into(),
            chunked_smuggle.clone(),
        ),
        (
            "chunk size overflow",
            "Transfer-Encoding: chunked\r\n".into(),
            format!("ffffffffffffffffff1\r\nx\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "chunk size with junk",
            "Transfer-Encoding: chunked\r\n".into(),
            format!("5 x\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "bare LF chunk",
            "Transfer-Encoding: chunked\r\n".into(),
            format!("5\nhello\n0\n\n{SMUGGLED}"),
        ),
        (
            "CL shorter than body",
            "Content-Length: 5\r\n".into(),
            format!("hello{SMUGGLED}"),
        ),
    ];
    for (i, (name, framing, body)) in cases.iter().enumerate() {
        let before = up.count();
        let text = raw_idle(gw.addr, post(&t, framing, body).as_bytes()).await;
        let answered = count_responses(&text);
        let seen: Vec<Seen> = up.seen.lock().unwrap()[before..].to_vec();
        assert!(answered >= 1 || text.is_empty(), "{name}: {text}");
        assert_no_markers(name, &text, PII_MARKERS);
        // Never more upstream requests than the one the attacker's framing claims to be.
        assert!(
            seen.len() <= 1,
            "{name} (case {i}): upstream saw {} requests: {seen:?}",
            seen.len()
        );
        for s in &seen {
            assert_eq!(s.method, http::Method::POST, "{name}");
            assert_eq!(s.uri, "/api/products/x", "{name}");
        }
        let first = RawReply::parse(&text);
        if seen.is_empty() && BODY_FRAMING_ERRORS.contains(name) {
            // A broken chunked body is only found while streaming it to the upstream; the
            // exchange is abandoned (see the ignored test below for the status it should have).
            assert!(
                first.status == 400
                    || (first.status == 502 && first.code() == "upstream_unavailable"),
                "{name}: {text}"
            );
        } else if seen.is_empty() {
            // Refused by the parser: a plain 400 (or the connection closed).
            assert!(
                first.status == 400 || text.is_empty(),
                "{name}: not forwarded, so it must be refused: {text}"
            );
        } else {
            assert_eq!(first.status, 200, "{name}: {text}");
        }
        // A second response, if any, is the gateway refusing the smuggled request itself.
        if answered > 1 {
            let second = &split_responses(&text)[1];
            assert_raw(name, second, 401, "unauthenticated");
        }
        eprintln!(
            "{name}: {} answer(s), first {}, upstream saw {}",
            answered,
            first.status,
            seen.len()
        );
    }
    // The clean case for contrast: the smuggled text as a chunked body is one request whose
    // body is exactly those bytes.
    let before = up.count();
    let text = raw_idle(
        gw.addr,
        post(
            &t,
            "Transfer-Encoding: chunked\r\nConnection: close\r\n",
            &cl_body,
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(RawReply::parse(&text).status, 200, "{text}");
    assert_eq!(up.count(), before + 1);
    assert_eq!(up.last().body, SMUGGLED.as_bytes());
    gw.shutdown().await;
}

#[tokio::test]
async fn smuggling_on_the_personal_route_never_reaches_the_upstream_twice() {
    let (up, gw) = marker_gateway("").await;
    let t = adv_token();
    let chunked_smuggle = format!("0\r\n\r\n{SMUGGLED}");
    let n = chunked_smuggle.len();
    for (name, framing) in [
        (
            "CL then TE",
            format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
        ),
        (
            "TE then CL",
            format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n"),
        ),
        (
            "two CLs",
            format!("Content-Length: 0\r\nContent-Length: {n}\r\n"),
        ),
        (
            "TE chunked, identity",
            "Transfer-Encoding: chunked, identity\r\n".to_string(),
        ),
    ] {
        let req = format!(
            "GET {ADV_PROFILE} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Purpose: marketing\r\n{framing}\r\n{chunked_smuggle}"
        );
        let before = up.count();
        let text = raw_idle(gw.addr, req.as_bytes()).await;
        assert_no_markers(name, &text, PII_MARKERS);
        let seen: Vec<Seen> = up.seen.lock().unwrap()[before..].to_vec();
        assert!(seen.len() <= 1, "{name}: {seen:?}");
        let first = RawReply::parse(&text);
        assert!(
            (first.status == 400 && seen.is_empty()) || (first.status == 200 && seen.len() == 1),
            "{name}: {text}"
        );
        if count_responses(&text) > 1 {
            let second = &split_responses(&text)[1];
            assert_raw(name, second, 401, "unauthenticated");
        }
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_header_blocks_are_431_or_closed_and_the_gateway_lives_on() {
    let (up, gw) = marker_gateway("").await;
    let t = adv_token();
    let big = "a".repeat(70 * 1024);
    let many: String = (0..200).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let wide: String = (0..80)
        .map(|i| format!("X-Wide-{i}: {}\r\n", "b".repeat(1000)))
        .collect();
    let cases = [
        ("one 70 KiB header", format!("X-Big: {big}\r\n")),
        (
            "a 70 KiB Authorization",
            format!("Authorization: Bearer {big}\r\n"),
        ),
        ("a 70 KiB X-Purpose", format!("X-Purpose: {big}\r\n")),
        ("200 headers", many),
        ("80 KiB over 80 headers", wide),
    ];
    for (name, lines) in cases {
        let req = format!(
            "GET {ADV_PROFILE} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Purpose: marketing\r\n{lines}Connection: close\r\n\r\n"
        );
        let before = up.count();
        let text = raw_exchange(gw.addr, req.as_bytes(), Duration::from_secs(5)).await;
        let status = RawReply::parse(&text).status;
        assert!(status == 431 || text.is_empty(), "{name}: {status} {text}");
        assert_no_markers(name, &text, PII_MARKERS);
        assert_eq!(up.count(), before, "{name}");
        // Still alive and serving.
        let r = get(&gw.url("/api/products/x"), Some(&t), &[]).await;
        assert_eq!(r.status.as_u16(), 200, "{name}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn region_hints_cannot_downgrade_the_subjects_region() {
    let (up, gw) = marker_gateway("").await;
    let t = adv_token();
    // An eu subject without marketing consent: refused in eu (opt-in), allowed in us-ca
    // (opt-out). A downgrade would flip the answer to 200.
    prepare_subject(gw.admin, "eu-9", "eu", &[]).await;
    let tricks = [
        "X-Region: us-ca\r\n",
        "X-Consentgate-Region: us-ca\r\n",
        "X-Subject-Region: us-ca\r\n",
        "X-Forwarded-Region: us-ca\r\n",
        "Region: us-ca\r\n",
        "Forwarded: for=203.0.113.7;region=us-ca\r\n",
        "Forwarded: region=\"us-ca\";proto=https\r\n",
        "X-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n",
        "CF-IPCountry: US\r\nCloudFront-Viewer-Country-Region: CA\r\n",
        "Accept-Language: en-US\r\n",
        "Cookie: region=us-ca; consentgate_region=us-ca\r\n",
        "X-Consentgate-Region: us-ca\r\nX-Consentgate-Region: default\r\n",
        "X-Consentgate-Decision: allow\r\n",
    ];
    for (i, lines) in tricks.iter().enumerate() {
        let rid = format!("region-{i}");
        let req = format!(
            "GET /api/customers/eu-9/profile?region=us-ca HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Request-Id: {rid}\r\nX-Purpose: marketing\r\n{lines}Connection: close\r\n\r\n"
        );
        let text = raw_idle(gw.addr, req.as_bytes()).await;
        let r = assert_raw(lines, &text, 403, "consent_required");
        assert_eq!(
            r.header("x-consentgate-region").as_deref(),
            Some("eu"),
            "{lines}"
        );
        assert_eq!(r.head.matches("x-consentgate-region").count(), 1, "{lines}");
        assert_eq!(up.count(), 0, "{lines}");
        let rec = assert_one_audit(&gw, &rid, "deny", 403);
        assert_eq!(rec["region"], "eu", "{lines}");
        assert!(rec["policy"].as_str().unwrap().starts_with("eu@"), "{rec}");
    }
    // Allowed purposes keep the eu view whatever the hints say.
    let url = "/api/customers/eu-9/profile";
    let plain = get_personal(&gw, url, Some(&t), Some("tax_reporting"), &[]).await;
    assert_eq!(plain.status.as_u16(), 200);
    assert_reply_clean("tax_reporting", &plain, TAX_MARKERS);
    for lines in tricks {
        let text = raw_idle(
            gw.addr,
            profile_get(
                "eu-9",
                &t,
                &format!("X-Purpose: tax_reporting\r\n{lines}"),
                "r",
            )
            .as_bytes(),
        )
        .await;
        let r = RawReply::parse(&text);
        assert_eq!(r.status, 200, "{lines}: {text}");
        assert_no_markers(lines, &text, TAX_MARKERS);
        assert_eq!(r.header("x-consentgate-region").as_deref(), Some("eu"));
        assert_eq!(
            serde_json::from_str::<Value>(&r.body).unwrap(),
            plain.json(),
            "{lines}"
        );
    }
    gw.shutdown().await;
}

/// Markers eu `tax_reporting` must not release (it keeps the name and the address).
const TAX_MARKERS: &[&str] = &[CANARY, M_EMAIL, M_PHONE, M_CARD, M_IBAN, M_DOB];

/// Markers us-ca `sale` must not release (it keeps the e-mail address).
const SALE_MARKERS: &[&str] = &[
    CANARY,
    M_LAST_NAME,
    M_PHONE,
    M_CARD,
    M_IBAN,
    M_DOB,
    M_STREET,
];

#[tokio::test]
async fn gpc_counts_only_as_an_exact_one_and_any_one_among_repeats() {
    let (up, gw) = marker_gateway("").await;
    let t = adv_token();
    prepare_subject(gw.admin, "ca-1", "us-ca", &[]).await;
    let control = get_personal(
        &gw,
        "/api/customers/ca-1/profile",
        Some(&t),
        Some("sale"),
        &[],
    )
    .await;
    assert_eq!(control.status.as_u16(), 200, "{}", control.text());
    assert_reply_clean("sale control", &control, SALE_MARKERS);
    let released = control.json();
    // Not the exact value `1`: ignored, the opt-out purpose stays allowed.
    let ignored = [
        "Sec-GPC: 0\r\n",
        "Sec-GPC: true\r\n",
        "Sec-GPC: yes\r\n",
        "Sec-GPC: 1.0\r\n",
        "Sec-GPC: 01\r\n",
        "Sec-GPC: +1\r\n",
        "Sec-GPC: 0x1\r\n",
        "Sec-GPC: \"1\"\r\n",
        "Sec-GPC: 1;q=1\r\n",
        "Sec-GPC: 1 1\r\n",
        "Sec-GPC: \u{ff11}\r\n",
        "Sec-GPC:\r\n",
        "Sec-GPC: 0\r\nSec-GPC: true\r\n",
        "Sec_GPC: 1\r\n",
        "GPC: 1\r\n",
        "X-Sec-GPC: 1\r\n",
        "DNT: 1\r\n",
    ];
    for (i, lines) in ignored.iter().enumerate() {
        let rid = format!("gpc-ignored-{i}");
        let text = raw_idle(
            gw.addr,
            profile_get("ca-1", &t, &format!("X-Purpose: sale\r\n{lines}"), &rid).as_bytes(),
        )
        .await;
        let r = RawReply::parse(&text);
        assert_eq!(r.status, 200, "{lines}: {text}");
        assert_no_markers(lines, &text, SALE_MARKERS);
        assert_eq!(
            serde_json::from_str::<Value>(&r.body).unwrap(),
            released,
            "{lines}"
        );
        assert_one_audit(&gw, &rid, "allow", 200);
    }
    // An exact `1` (header names are case-insensitive, surrounding whitespace is not part of
    // the value), alone or among repeats: the sale stops.
    let honoured = [
        "Sec-GPC: 1\r\n",
        "sec-gpc: 1\r\n",
        "SEC-GPC: 1\r\n",
        "Sec-GPC:1\r\n",
        "Sec-GPC: \t1\t \r\n",
        "Sec-GPC: 0\r\nSec-GPC: 1\r\n",
        "Sec-GPC: 1\r\nSec-GPC: 0\r\n",
        "Sec-GPC: yes\r\nSec-GPC: 1\r\nSec-GPC: true\r\n",
        "Sec-GPC: 1\r\nSec-GPC: 1\r\n",
    ];
    let before = up.count();
    for (i, lines) in honoured.iter().enumerate() {
        let rid = format!("gpc-honoured-{i}");
        let text = raw_idle(
            gw.addr,
            profile_get("ca-1", &t, &format!("X-Purpose: sale\r\n{lines}"), &rid).as_bytes(),
        )
        .await;
        assert_raw(lines, &text, 403, "consent_required");
        let rec = assert_one_audit(&gw, &rid, "deny", 403);
        assert_eq!(rec["region"], "us-ca");
    }
    assert_eq!(
        up.count(),
        before,
        "a stopped sale never reaches the upstream"
    );
    gw.shutdown().await;
}

/// A request whose chunked body is malformed is the client's error: it should be a `400`, not
/// a `502 upstream_unavailable` that blames (and counts against) the upstream.
#[tokio::test]
async fn a_malformed_chunked_request_body_is_the_clients_error() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = adv_token();
    for body in [
        "ffffffffffffffffff1\r\nx\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
    ] {
        let text = raw_idle(
            gw.addr,
            post(
                &t,
                "Transfer-Encoding: chunked\r\nConnection: close\r\n",
                body,
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(RawReply::parse(&text).status, 400, "{body:?}: {text}");
        assert_eq!(up.count(), 0);
    }
    gw.shutdown().await;
}

/// RFC 9110 §5.3: repeated field lines and one comma-joined line mean the same. A proxy in
/// front of the gateway may join `Sec-GPC: 0` and `Sec-GPC: 1` into `Sec-GPC: 0, 1`; the
/// SPEC says any `1` among repeated headers counts, so the joined form should too.
#[tokio::test]
async fn gpc_in_a_comma_joined_list_counts_like_repeated_lines() {
    let (_up, gw) = marker_gateway("").await;
    let t = adv_token();
    prepare_subject(gw.admin, "ca-2", "us-ca", &[]).await;
    for lines in ["Sec-GPC: 0, 1\r\n", "Sec-GPC: 1, 1\r\n", "Sec-GPC: 1,0\r\n"] {
        let text = raw_idle(
            gw.addr,
            profile_get("ca-2", &t, &format!("X-Purpose: sale\r\n{lines}"), "j").as_bytes(),
        )
        .await;
        assert_raw(lines, &text, 403, "consent_required");
    }
    gw.shutdown().await;
}

/// The real binary at debug level: after the header attacks and served requests, the JSON log
/// holds no personal value and no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_attacks_leave_no_personal_data_in_the_logs() {
    let up = marker_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "");
    let bin = start_logged_binary(work.path(), &config, gw_port, admin_port).await;
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    prepare_subject(bin.admin, "ca-1", "us-ca", &[]).await;
    let t = adv_token();
    let big = "a".repeat(70 * 1024);
    let chunked_smuggle = format!("0\r\n\r\n{SMUGGLED}");
    let requests = [
        profile_get(ADV_SUBJECT, &t, "X-Purpose: marketing\r\n", "l1"),
        profile_get(
            ADV_SUBJECT,
            &t,
            "X-Purpose: marketing\r\nX-Purpose: support\r\n",
            "l2",
        ),
        profile_get(ADV_SUBJECT, &t, "X-Purpose: marketing, support\r\n", "l3"),
        profile_get(
            ADV_SUBJECT,
            &t,
            "X-Purpose: marketing\r\nX-Region: us-ca\r\n",
            "l4",
        ),
        profile_get(
            "ca-1",
            &t,
            "X-Purpose: sale\r\nSec-GPC: 0\r\nSec-GPC: 1\r\n",
            "l5",
        ),
        profile_get("ca-1", &t, "X-Purpose: sale\r\nSec-GPC: true\r\n", "l6"),
        profile_get(ADV_SUBJECT, &t, &format!("X-Big: {big}\r\n"), "l7"),
        post(
            &t,
            &format!("Content-Length: 4\r\nTransfer-Encoding: chunked\r\nX-Note: {M_EMAIL}\r\n"),
            &chunked_smuggle,
        ),
        post(
            &t,
            "Content-Length: 0\r\nContent-Length: 9\r\n",
            &chunked_smuggle,
        ),
    ];
    for req in &requests {
        let text = raw_idle(bin.gw, req.as_bytes()).await;
        assert_no_markers("answer", &text, SALE_MARKERS);
    }
    // The e-mail address was sent by the attacker in a header: it must not be logged either.
    let mut forbidden: Vec<&str> = PII_MARKERS.to_vec();
    forbidden.push(&t);
    assert_log_clean(bin, work.path(), &forbidden);
}
