//! Attack family: upstream response bodies that try to slip personal data past minimisation,
//! or to break the gateway: compression, ranges, `HEAD`, lying `Content-Type`s, truncated,
//! deeply nested, huge, invalid-UTF-8 and duplicate-key JSON, and oversized bodies. An answer
//! is either exactly the policy's redacted view or a `502` that releases nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use consentgate::http::{Body, full};
use http::{Response, StatusCode};
use serde_json::{Value, json};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An upstream answer: status, headers, body.
fn answer(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    resp
}

/// A marker document nested `depth` levels deep under `preferences` (objects).
fn nested_prefs(depth: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    let mut doc = marker_doc();
    doc["preferences"] = v;
    doc
}

/// The body served under `/api/customers/<id>/<variant>`.
fn variant(name: &str, seen: &Seen) -> Response<Body> {
    let doc = marker_bytes();
    let json_ct = [("content-type", "application/json")];
    match name {
        "plain" => answer(200, &json_ct, doc),
        "gzip" => answer(
            200,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            gzip(&doc),
        ),
        "x-gzip-upper" => answer(
            200,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "X-GZIP"),
            ],
            gzip(&doc),
        ),
        "deflate" => answer(
            200,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "deflate"),
            ],
            zlib(&doc),
        ),
        "raw-deflate" => answer(
            200,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "deflate"),
            ],
            raw_deflate(&doc),
        ),
        "gzip-then-deflate" => answer(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-encoding", "gzip, deflate"),
            ],
            zlib(&gzip(&doc)),
        ),
        "gzip-two-headers" => {
            let mut r = answer(200, &json_ct, zlib(&gzip(&doc)));
            r.headers_mut()
                .append("content-encoding", "gzip".parse().unwrap());
            r.headers_mut()
                .append("content-encoding", "deflate".parse().unwrap());
            r
        }
        "gzip-undeclared" => answer(200, &json_ct, gzip(&doc)),
        "gzip-unlabelled" => answer(200, &[("content-encoding", "gzip")], gzip(&doc)),
        "zstd" => answer(
            200,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "zstd"),
            ],
            doc,
        ),
        "range" => {
            // Honours a Range if one gets through: a 206 of the first 40 bytes.
            if seen.headers.contains_key("range") {
                answer(
                    206,
                    &[
                        ("content-type", "application/json"),
                        ("content-range", "bytes 0-39/900"),
                    ],
                    doc.slice(0..40),
                )
            } else {
                answer(
                    200,
                    &[
                        ("content-type", "application/json"),
                        ("accept-ranges", "bytes"),
                    ],
                    doc,
                )
            }
        }
        "always-206-partial" => answer(
            206,
            &[
                ("content-type", "application/json"),
                ("content-range", "bytes 0-39/900"),
            ],
            doc.slice(0..40),
        ),
        "always-206-full" => {
            let range = format!("bytes 0-{}/{}", doc.len() - 1, doc.len());
            answer(
                206,
                &[
                    ("content-type", "application/json"),
                    ("content-range", &range),
                ],
                doc,
            )
        }
        "text-plain" => answer(200, &[("content-type", "text/plain")], doc),
        "text-html" => answer(200, &[("content-type", "text/html; charset=utf-8")], doc),
        "no-type" => answer(200, &[], doc),
        "octet" => answer(200, &[("content-type", "application/octet-stream")], doc),
        "html-as-json" => answer(
            200,
            &json_ct,
            format!("<html><body><p>{M_EMAIL}</p><p>{CANARY}</p></body></html>"),
        ),
        "html-as-html" => answer(
            200,
            &[("content-type", "text/html")],
            format!("<html><body><p>{M_EMAIL}</p><p>{CANARY}</p></body></html>"),
        ),
        "csv-as-csv" => answer(
            200,
            &[("content-type", "text/csv")],
            format!("id,email,card\nc-1001,{M_EMAIL},{M_CARD}\n"),
        ),
        "truncated" => answer(200, &json_ct, doc.slice(0..doc.len() / 2)),
        "truncated-text" => answer(
            200,
            &[("content-type", "text/plain")],
            doc.slice(0..doc.len() / 2),
        ),
        "trailing-garbage" => {
            let mut v = doc.to_vec();
            v.extend_from_slice(format!(" {{\"email\":\"{M_EMAIL}\"}}").as_bytes());
            answer(200, &json_ct, v)
        }
        "two-documents" => {
            let mut v = doc.to_vec();
            v.extend_from_slice(b"\n");
            v.extend_from_slice(&doc);
            answer(200, &json_ct, v)
        }
        "bom" => {
            let mut v = b"\xef\xbb\xbf".to_vec();
            v.extend_from_slice(&doc);
            answer(200, &json_ct, v)
        }
        "deep-array" => {
            let mut v = "[".repeat(30_000);
            v.push_str(&format!("\"{M_EMAIL}\""));
            v.push_str(&"]".repeat(30_000));
            answer(200, &json_ct, v)
        }
        "deep-in-allowed" => {
            let mut text = serde_json::to_string(&marker_doc()).unwrap();
            let deep = format!(
                "{}\"{CANARY}\"{}",
                "{\"a\":".repeat(10_000),
                "}".repeat(10_000)
            );
            text = text.replacen(
                "\"preferences\":{",
                &format!("\"preferences\":{{\"x\":{deep},"),
                1,
            );
            answer(200, &json_ct, text)
        }
        "nested-100" => answer(
            200,
            &json_ct,
            serde_json::to_vec(&nested_prefs(
                100,
                json!({"email": M_EMAIL, "note": format!("call {M_PHONE}, card {M_CARD}")}),
            ))
            .unwrap(),
        ),
        "huge-string" => {
            let chunk = format!("{M_EMAIL} {M_CARD} {M_PHONE} ");
            let mut note = String::new();
            while note.len() + chunk.len() < 60_000 {
                note.push_str(&chunk);
            }
            let mut d = marker_doc();
            d["preferences"]["note"] = json!(note);
            let body = serde_json::to_vec(&d).unwrap();
            assert!(body.len() < 65_536, "{}", body.len());
            answer(200, &json_ct, body)
        }
        "invalid-utf8" | "invalid-utf8-text" => {
            let mut v = b"{\"id\":\"c-1001\",\"first_name\":\"Anna\xff\xfe\",\"email\":\"".to_vec();
            v.extend_from_slice(M_EMAIL.as_bytes());
            v.extend_from_slice(b"\"}");
            let ct = if name == "invalid-utf8" {
                "application/json"
            } else {
                "text/plain"
            };
            answer(200, &[("content-type", ct)], v)
        }
        "lone-surrogate" => answer(
            200,
            &json_ct,
            format!(
                r#"{{"id":"c-1001","first_name":"Anna\ud800","email":"{M_EMAIL}","last_name":"{M_LAST_NAME}"}}"#
            ),
        ),
        "duplicate-keys" => answer(
            200,
            &json_ct,
            format!(
                r#"{{"id":"c-1001","first_name":"Anna","email":"x@example.org","email":"{M_EMAIL}","preferences":{{"language":"de"}},"preferences":"call {M_PHONE} or {M_EMAIL}, card {M_CARD}","internal_canary":"no","internal_canary":"{CANARY}","last_name":"{M_LAST_NAME}"}}"#
            ),
        ),
        "escaped" => answer(
            200,
            &json_ct,
            // The markers spelled with JSON escapes, so the raw bytes do not contain them.
            r#"{"id":"c-1001","first_name":"Anna","email":"\u0061nna.schmidt\u0040example.eu","last_name":"Schm\u0069dt","preferences":{"note":"\u0034111 1111 1111 1111 and +49 30 1234567"},"internal_canary":"CANARY-7f3a-\u0070ersonal"}"#,
        ),
        "phone-then-card" => {
            let mut d = marker_doc();
            d["preferences"]["note"] = json!("call +49 30 1234567 5555 5555 5555 4444 thanks");
            answer(200, &json_ct, serde_json::to_vec(&d).unwrap())
        }
        other => answer(404, &json_ct, format!("{{\"unknown\":\"{other}\"}}")),
    }
}

async fn variant_upstream() -> Upstream {
    Upstream::start(Arc::new(|seen: Seen| {
        Box::pin(async move {
            let name = seen
                .uri
                .split('?')
                .next()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            variant(&name, &seen)
        })
    }))
    .await
}

/// The request id the gateway answered with.
fn rid(r: &Reply) -> &str {
    r.headers["x-request-id"].to_str().unwrap()
}

struct Bodies {
    n: std::sync::atomic::AtomicUsize,
    up: Upstream,
    gw: TestGateway,
    token: String,
    redacted: Value,
}

impl Bodies {
    async fn start(extra: &str) -> Bodies {
        let up = variant_upstream().await;
        let gw = TestGateway::start(&config_text(up.addr, extra)).await;
        prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
        let token = adv_token();
        let mut b = Bodies {
            n: std::sync::atomic::AtomicUsize::new(0),
            up,
            gw,
            token,
            redacted: Value::Null,
        };
        let control = b.fetch("plain", &[]).await;
        assert_eq!(control.status.as_u16(), 200, "{}", control.text());
        assert_reply_clean("control", &control, PII_MARKERS);
        b.redacted = control.json();
        b
    }

    async fn fetch(&self, v: &str, extra: &[(&str, &str)]) -> Reply {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rid = format!("{v}-{n}");
        let mut headers = vec![("x-purpose", "marketing"), ("x-request-id", rid.as_str())];
        headers.extend_from_slice(extra);
        get(
            &self.gw.url(&format!("/api/customers/{ADV_SUBJECT}/{v}")),
            Some(&self.token),
            &headers,
        )
        .await
    }

    /// Asserts the exact redacted marketing view, correctly framed, and its audit record.
    async fn expect_redacted(&self, v: &str, extra: &[(&str, &str)]) -> Reply {
        let r = self.fetch(v, extra).await;
        assert_eq!(r.status.as_u16(), 200, "{v}: {}", r.text());
        assert_reply_clean(v, &r, PII_MARKERS);
        assert_eq!(r.json(), self.redacted, "{v}");
        assert_eq!(r.headers["content-type"], "application/json", "{v}");
        assert_eq!(
            r.headers["content-length"],
            r.body.len().to_string().as_str(),
            "{v}"
        );
        for h in ["content-encoding", "content-range", "accept-ranges", "etag"] {
            assert!(r.headers.get(h).is_none(), "{v}: {h} released");
        }
        assert_one_audit(&self.gw, rid(&r), "allow", 200);
        r
    }

    /// Asserts a `502` with `code` that releases nothing, and its audit record.
    async fn expect_blocked(&self, v: &str, code: &str) {
        let r = self.fetch(v, &[]).await;
        assert_error_reply(v, &r, 502, code);
        let rec = assert_one_audit(&self.gw, rid(&r), "allow", 502);
        assert_eq!(rec["reason"], code, "{v}");
    }
}

#[tokio::test]
async fn compressed_bodies_are_decoded_then_redacted() {
    let b = Bodies::start("").await;
    for v in [
        "gzip",
        "x-gzip-upper",
        "deflate",
        "raw-deflate",
        "gzip-then-deflate",
        "gzip-two-headers",
        "gzip-unlabelled",
    ] {
        b.expect_redacted(v, &[("accept-encoding", "gzip, br")])
            .await;
        let seen = b.up.last();
        assert_eq!(seen.headers["accept-encoding"], "identity", "{v}");
    }
    // Compressed bytes the gateway was not told about cannot be parsed; an encoding it cannot
    // decode is not passed through.
    b.expect_blocked("gzip-undeclared", "unprocessable_upstream_body")
        .await;
    b.expect_blocked("zstd", "unprocessable_upstream_body")
        .await;
    b.gw.shutdown().await;
}

#[tokio::test]
async fn range_requests_never_get_a_partial_personal_answer() {
    let b = Bodies::start("").await;
    for range in ["bytes=0-39", "bytes=-10", "bytes=0-0,5-9", "items=0-1"] {
        let r = b
            .expect_redacted("range", &[("range", range), ("if-range", "\"x\"")])
            .await;
        assert_eq!(r.status.as_u16(), 200, "{range}");
        let seen = b.up.last();
        assert!(
            seen.headers.get("range").is_none(),
            "{range}: Range forwarded"
        );
        assert!(
            seen.headers.get("if-range").is_none(),
            "{range}: If-Range forwarded"
        );
    }
    // An upstream that answers a partial body anyway: cut JSON, refused.
    b.expect_blocked("always-206-partial", "unprocessable_upstream_body")
        .await;
    b.gw.shutdown().await;
}

/// An upstream that answers `206` with the whole document: the body is redacted, but the
/// status still says "partial content" (without the `Content-Range` that must go with it).
#[tokio::test]
async fn an_upstream_206_is_not_released_as_partial_content() {
    let b = Bodies::start("").await;
    let r = b.fetch("always-206-full", &[("range", "bytes=0-39")]).await;
    assert_reply_clean("206", &r, PII_MARKERS);
    assert_ne!(r.status.as_u16(), 206, "{:?} {}", r.headers, r.text());
    b.gw.shutdown().await;
}

#[tokio::test]
async fn head_is_answered_from_the_redacted_get() {
    let b = Bodies::start("").await;
    let get_len = serde_json::to_vec(&b.redacted).unwrap().len();
    for v in ["plain", "gzip", "text-plain"] {
        let url = b.gw.url(&format!("/api/customers/{ADV_SUBJECT}/{v}"));
        let req = http::Request::head(&url)
            .header("authorization", format!("Bearer {}", b.token))
            .header("x-purpose", "marketing")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let r = send(req).await;
        assert_eq!(r.status.as_u16(), 200, "{v}");
        assert!(r.body.is_empty(), "{v}");
        assert_reply_clean(v, &r, PII_MARKERS);
        assert_eq!(
            r.headers["content-length"],
            get_len.to_string().as_str(),
            "{v}"
        );
        assert_eq!(
            b.up.last().method,
            http::Method::GET,
            "{v}: HEAD sent as GET"
        );
    }
    b.gw.shutdown().await;
}

#[tokio::test]
async fn content_type_lies_are_parsed_as_json_or_blocked() {
    let b = Bodies::start("").await;
    // JSON whatever it claims to be: redacted.
    for v in ["text-plain", "text-html", "no-type", "octet"] {
        b.expect_redacted(v, &[]).await;
    }
    // Not JSON whatever it claims to be: blocked on a `non_json: block` policy.
    for v in ["html-as-json", "html-as-html", "csv-as-csv"] {
        b.expect_blocked(v, "unprocessable_upstream_body").await;
    }
    b.gw.shutdown().await;
}

#[tokio::test]
async fn broken_json_is_blocked_and_releases_nothing() {
    let b = Bodies::start("").await;
    for v in [
        "truncated",
        "truncated-text",
        "trailing-garbage",
        "two-documents",
        "bom",
        "invalid-utf8",
        "invalid-utf8-text",
        "lone-surrogate",
    ] {
        b.expect_blocked(v, "unprocessable_upstream_body").await;
    }
    b.gw.shutdown().await;
}

#[tokio::test]
async fn deeply_nested_json_is_blocked_without_a_stack_overflow() {
    let b = Bodies::start("").await;
    let start = Instant::now();
    b.expect_blocked("deep-array", "unprocessable_upstream_body")
        .await;
    b.expect_blocked("deep-in-allowed", "unprocessable_upstream_body")
        .await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // Within the nesting limit, deep values under an allowed subtree still go through the
    // text detectors.
    let r = b.fetch("nested-100", &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_reply_clean("nested-100", &r, PII_MARKERS);
    let text = r.text();
    assert!(
        text.contains("[EMAIL]") && text.contains("[PHONE]") && text.contains("[CARD]"),
        "{text}"
    );
    // Alive and serving.
    b.expect_redacted("plain", &[("x-request-id", "after")])
        .await;
    b.gw.shutdown().await;
}

#[tokio::test]
async fn huge_strings_and_escapes_are_redacted_duplicate_keys_refused() {
    let b = Bodies::start("").await;
    let start = Instant::now();
    let r = b.fetch("huge-string", &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_reply_clean("huge-string", &r, PII_MARKERS);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_one_audit(&b.gw, rid(&r), "allow", 200);
    // Duplicate keys: the document means what its reader wants, so it is refused whole.
    let r = b.fetch("duplicate-keys", &[]).await;
    assert_eq!(r.status.as_u16(), 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "unprocessable_upstream_body");
    assert_reply_clean("duplicate-keys", &r, PII_MARKERS);
    // Markers spelled with JSON escapes are found after parsing.
    let r = b.fetch("escaped", &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_reply_clean("escaped", &r, PII_MARKERS);
    assert_eq!(r.json()["email"], "a***@example.eu");
    b.gw.shutdown().await;
}

/// Free text with a phone number right before a card number: eu `marketing` lists its text
/// detectors as `[email, phone, card_number]`, so the phone pattern runs first, swallows the
/// first eight digits of the card, and the rest (too short for the card pattern) is released.
/// `policies/base.yaml` itself says card_number must come before phone.
#[tokio::test]
async fn a_card_number_after_a_phone_number_is_not_partly_released() {
    let b = Bodies::start("").await;
    let r = b.fetch("phone-then-card", &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let note = r.json()["preferences"]["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !note.contains("5555 4444"),
        "card digits released: {note:?}"
    );
    b.gw.shutdown().await;
}

/// A 5 MB document: the marker document plus a large history no purpose keeps.
fn five_mb_doc() -> Bytes {
    let mut doc = marker_doc();
    let line = format!("{CANARY} {M_EMAIL} {M_CARD} ");
    doc["history"] = json!(line.repeat(5 * 1024 * 1024 / line.len()));
    Bytes::from(serde_json::to_vec(&doc).unwrap())
}

async fn big_upstream() -> Upstream {
    let big = five_mb_doc();
    assert!(big.len() > 5_000_000);
    Upstream::start(Arc::new(move |seen: Seen| {
        let big = big.clone();
        Box::pin(async move {
            if seen.uri.ends_with("/chunked") {
                // No Content-Length: streamed in 64 KiB frames.
                let (tx, body) = ChannelBody::new();
                tokio::spawn(async move {
                    for c in big.chunks(64 * 1024) {
                        if tx.send(Bytes::copy_from_slice(c)).await.is_err() {
                            break;
                        }
                    }
                });
                let mut r = Response::new(body.boxed());
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                r
            } else {
                answer(200, &[("content-type", "application/json")], big)
            }
        })
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_answer_is_502_over_the_cap_and_redacted_under_it() {
    let up = big_upstream().await;
    let t = adv_token();
    // The test config's 64 KiB cap.
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    for v in ["sized", "chunked"] {
        let url = gw.url(&format!("/api/customers/{ADV_SUBJECT}/{v}"));
        let r = get(
            &url,
            Some(&t),
            &[("x-purpose", "marketing"), ("x-request-id", v)],
        )
        .await;
        assert_error_reply(v, &r, 502, "payload_too_large");
        assert_one_audit(&gw, v, "allow", 502);
    }
    gw.shutdown().await;
    // Raised to 8 MiB: released, redacted.
    let config =
        config_text(up.addr, "").replace("max_body_bytes = 65536", "max_body_bytes = 8388608");
    assert!(config.contains("max_body_bytes = 8388608"));
    let gw = TestGateway::start(&config).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    for v in ["sized", "chunked"] {
        let url = gw.url(&format!("/api/customers/{ADV_SUBJECT}/{v}"));
        let r = get(
            &url,
            Some(&t),
            &[("x-purpose", "marketing"), ("x-request-id", v)],
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{v}: {}", r.text());
        assert_reply_clean(v, &r, PII_MARKERS);
        assert!(r.body.len() < 1024, "{v}: {}", r.body.len());
        assert_eq!(r.json()["email"], "a***@example.eu");
        let rec = assert_one_audit(&gw, v, "allow", 200);
        assert!(
            rec["fields_removed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "history"),
            "{rec}"
        );
    }
    gw.shutdown().await;
}

/// The real binary at debug level: after the body attacks and served requests, the JSON log
/// holds no personal value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_attacks_leave_no_personal_data_in_the_logs() {
    let up = variant_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "");
    let bin = start_logged_binary(work.path(), &config, gw_port, admin_port).await;
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    for v in [
        "plain",
        "gzip",
        "deflate",
        "zstd",
        "range",
        "always-206-partial",
        "text-plain",
        "html-as-json",
        "csv-as-csv",
        "truncated",
        "deep-array",
        "nested-100",
        "huge-string",
        "invalid-utf8",
        "duplicate-keys",
        "escaped",
        "bom",
    ] {
        let url = bin.url(&format!("/api/customers/{ADV_SUBJECT}/{v}"));
        let r = get(
            &url,
            Some(&t),
            &[("x-purpose", "marketing"), ("range", "bytes=0-9")],
        )
        .await;
        assert!(matches!(r.status.as_u16(), 200 | 502), "{v}: {}", r.text());
        assert_reply_clean(v, &r, PII_MARKERS);
    }
    let mut forbidden: Vec<&str> = PII_MARKERS.to_vec();
    forbidden.push(&t);
    assert_log_clean(bin, work.path(), &forbidden);
}
