//! Fail-closed invariants on the response side (issue 10), through real sockets: report mode
//! is minimised like an allowed answer; hop-by-hop names never change decoding, labels or the
//! GPC signal; JSON is JSON by its content; object keys are inspected like values; relayed
//! header values must parse as what they claim; audit paths never copy a body's data keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use consentgate::http::{Body, full};
use http::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KIM: &str = "kim.lee@example.com";
const BOB: &str = "bob.ray@example.com";
const OTHER_PHONE: &str = "+49 30 7654321";

/// A copy of the shipped policies with `(file, from, to)` edits (each `from` must be present).
fn policies_with(edits: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let mut text = std::fs::read_to_string(&path).unwrap();
            for (file, from, to) in edits {
                if *file == name {
                    assert!(text.contains(from), "{name} has no {from:?}");
                    text = text.replacen(from, to, 1);
                }
            }
            std::fs::write(dir.path().join(&name), text).unwrap();
        }
    }
    dir
}

/// The test config in front of `up`, on the policies in `policies`.
fn config_on(up: SocketAddr, policies: &std::path::Path) -> String {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    config_text(up, "").replace(
        &format!("dir = \"{shipped}\""),
        &format!("dir = \"{}\"", policies.display()),
    )
}

/// eu with `non_json: pass` (the careless operator's setting).
fn eu_pass() -> tempfile::TempDir {
    policies_with(&[("eu.yaml", "non_json: block", "non_json: pass")])
}

/// An upstream answering each request with `f(last path segment)`.
async fn upstream_by_segment(
    f: impl Fn(&str) -> Response<Body> + Send + Sync + 'static,
) -> Upstream {
    let f = Arc::new(f);
    Upstream::start(Arc::new(move |seen: Seen| {
        let f = f.clone();
        Box::pin(async move {
            let path = seen.uri.split('?').next().unwrap_or("").to_owned();
            f(path.rsplit('/').next().unwrap_or(""))
        })
    }))
    .await
}

fn answer(headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body.into()));
    for (k, v) in headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    resp
}

/// A raw TCP upstream: reads a request head, writes `f(request target)` and closes.
async fn raw_upstream(f: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let f = Arc::new(f);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let f = f.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let target = text.split(' ').nth(1).unwrap_or("").to_owned();
                let _ = s.write_all(&f(&target)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn marker_json() -> Vec<u8> {
    marker_bytes().to_vec()
}

/// The answer eu `marketing` gives for the marker document: fetched once, plainly.
async fn reference(gw: &TestGateway, path: &str) -> Value {
    let r = get_personal(gw, path, Some(&adv_token()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn report_mode_is_minimised_and_redacted_like_allow() {
    // A whole region in report mode, and a purpose in report mode (br personalisation).
    let policies = policies_with(&[("eu.yaml", "mode: enforce", "mode: report")]);
    let up = marker_upstream().await;
    let gw = TestGateway::start(&config_on(up.addr, policies.path())).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &[]).await;
    prepare_subject(gw.admin, "c-3001", "br", &[]).await;
    for (subject, purpose) in [(ADV_SUBJECT, "marketing"), ("c-3001", "personalisation")] {
        let path = format!("/api/customers/{subject}/profile");
        let denied = get_personal(&gw, &path, Some(&adv_token()), Some(purpose), &[]).await;
        assert_eq!(denied.status, StatusCode::OK, "{}", denied.text());
        assert_eq!(denied.headers["x-consentgate-decision"], "report-deny");
        assert_reply_clean(purpose, &denied, PII_MARKERS);
        admin_put_at(
            gw.admin,
            &format!("/v1/subjects/{subject}/consents/{purpose}"),
            json!({"status": "granted"}),
        )
        .await;
        let allowed = get_personal(&gw, &path, Some(&adv_token()), Some(purpose), &[]).await;
        assert_eq!(allowed.headers["x-consentgate-decision"], "allow");
        assert_eq!(denied.json(), allowed.json(), "{purpose}: report = allow");
        assert_eq!(
            denied.body.len().to_string(),
            denied.headers["content-length"]
        );
    }
    // marketing masks the e-mail even in report mode.
    let r = get_personal(&gw, ADV_PROFILE, Some(&adv_token()), Some("marketing"), &[]).await;
    assert_eq!(r.json()["email"], "a***@example.eu");
    let records = gw_audit(&gw);
    assert_eq!(records.len(), 5);
    assert_eq!(records[0]["decision"], "report_deny");
    assert!(!records[0]["fields_removed"].as_array().unwrap().is_empty());
    assert_eq!(records[0]["redactions"]["mask_email"], 1);
    gw.shutdown().await;
}

/// Upstream answers whose `Connection` header names the headers that say how to read the body.
fn hop_by_hop_answer(target: &str) -> Vec<u8> {
    let json = marker_json();
    let gz = gzip(&json);
    let variant = target.rsplit('/').next().unwrap_or("");
    let (head, body) = match variant {
        "encoding" => (
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\nConnection: close, content-encoding".to_owned(),
            gz,
        ),
        "all-named" => (
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\nConnection: close, keep-alive, Content-Encoding, Content-Type, Content-Length".to_owned(),
            gz,
        ),
        "type-named" => (
            "Content-Type: application/json\r\nConnection: close, content-type".to_owned(),
            json,
        ),
        "chunked" => {
            let mut chunked = format!("{:x}\r\n", gz.len()).into_bytes();
            chunked.extend_from_slice(&gz);
            chunked.extend_from_slice(b"\r\n0\r\n\r\n");
            return [
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nConnection: close, Content-Encoding\r\n\r\n".to_vec(),
                chunked,
            ]
            .concat();
        }
        _ => ("Content-Type: application/json\r\nConnection: close".to_owned(), json),
    };
    [
        format!(
            "HTTP/1.1 200 OK\r\n{head}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body,
    ]
    .concat()
}

#[tokio::test]
async fn upstream_connection_names_never_change_decoding() {
    let up = raw_upstream(hop_by_hop_answer).await;
    for policies in [policies_with(&[]), eu_pass()] {
        let gw = TestGateway::start(&config_on(up, policies.path())).await;
        prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
        let expected = reference(&gw, "/api/customers/c-1001/plain").await;
        for variant in ["encoding", "all-named", "type-named", "chunked"] {
            let path = format!("/api/customers/c-1001/{variant}");
            let r = get_personal(&gw, &path, Some(&adv_token()), Some("marketing"), &[]).await;
            assert_eq!(r.status, StatusCode::OK, "{variant}: {}", r.text());
            assert_reply_clean(variant, &r, PII_MARKERS);
            assert_eq!(r.json(), expected, "{variant}");
            assert_eq!(r.headers["content-type"], "application/json", "{variant}");
            assert!(r.headers.get("content-encoding").is_none(), "{variant}");
        }
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn client_connection_names_never_strip_gpc_or_content_headers() {
    let up = marker_upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    // Personal and non-personal routes forward `Sec-GPC` and the `Content-*` labels whatever
    // `Connection` names; what it names otherwise is removed.
    for path in [ADV_PROFILE, "/api/products/1"] {
        let body = "{\"q\":1}";
        let gz = gzip(body.as_bytes());
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {t}\r\nX-Purpose: marketing\r\n\
             Sec-GPC: 1\r\nX-Junk: 1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n\
             Content-Length: {}\r\nConnection: close, Sec-GPC, X-Junk, Content-Type, Content-Encoding, Content-Length\r\n\r\n",
            gz.len()
        );
        let (status, text) = raw(gw.addr, &[head.into_bytes(), gz.clone()].concat()).await;
        assert_eq!(status, 200, "{path}: {text}");
        let seen = up.last();
        assert_eq!(seen.headers["sec-gpc"], "1", "{path}");
        assert_eq!(seen.headers["content-type"], "application/json", "{path}");
        assert_eq!(seen.headers["content-encoding"], "gzip", "{path}");
        assert_eq!(seen.body, gz, "{path}");
        assert!(seen.headers.get("x-junk").is_none(), "{path}");
    }
    // The GPC decision is taken on the headers as received: us-ca `sale` is opt-out with
    // `gpc_opt_out`, so `Sec-GPC: 1` denies even when `Connection` names it.
    prepare_subject(gw.admin, "c-2001", "us-ca", &[]).await;
    let (status, text) = raw_get(
        gw.addr,
        "/api/customers/c-2001/profile",
        &t,
        "X-Purpose: sale\r\nSec-GPC: 1\r\nConnection: Sec-GPC\r\n",
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("consent_required"), "{text}");
    let (status, text) = raw_get(
        gw.addr,
        "/api/customers/c-2001/profile",
        &t,
        "X-Purpose: sale\r\nConnection: Sec-GPC\r\n",
    )
    .await;
    assert_eq!(
        status, 200,
        "without GPC the opt-out purpose is allowed: {text}"
    );
    gw.shutdown().await;
}

/// Bodies that are JSON by content whatever their labels, and their siblings.
fn disguised(variant: &str) -> Response<Body> {
    let json = marker_json();
    let bom = b"\xef\xbb\xbf".to_vec();
    let text = String::from_utf8(json.clone()).unwrap();
    match variant {
        "plain" => answer(&[("content-type", "application/json")], json),
        "bom" => answer(&[("content-type", "text/plain")], [bom, json].concat()),
        "boms" => answer(
            &[("content-type", "application/octet-stream")],
            [bom.clone(), bom.clone(), b" \r\n".to_vec(), bom, json].concat(),
        ),
        "invisible" => answer(
            &[],
            [" \u{a0}\u{200b}\u{feff}\n".as_bytes().to_vec(), json].concat(),
        ),
        "text-label" => answer(&[("content-type", "text/plain; charset=utf-8")], json),
        "leading-space" => answer(
            &[("content-type", "application/octet-stream")],
            [b" \r\n\t".to_vec(), json].concat(),
        ),
        "no-label" => answer(&[], json),
        "ndjson" => answer(
            &[("content-type", "application/x-ndjson")],
            format!("{text}\n{text}\n"),
        ),
        "gzip-unlabelled" => answer(&[("content-type", "text/plain")], gzip(&json)),
        "gzip-bom" => answer(
            &[("content-type", "text/plain"), ("content-encoding", "gzip")],
            gzip(&[bom.clone(), json.clone()].concat()),
        ),
        "gzip-twice" => answer(
            &[("content-type", "text/plain"), ("content-encoding", "gzip")],
            gzip(&gzip(&[bom, json].concat())),
        ),
        "utf16le" => answer(
            &[("content-type", "text/plain")],
            [vec![0xff, 0xfe], utf16le(&text)].concat(),
        ),
        "utf16be" => answer(
            &[("content-type", "text/plain")],
            [
                vec![0xfe, 0xff],
                text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            ]
            .concat(),
        ),
        "utf16-no-bom" => answer(&[("content-type", "text/plain")], utf16le(&text)),
        "broken" => answer(
            &[("content-type", "text/plain")],
            [bom, json[..json.len() / 2].to_vec()].concat(),
        ),
        "trailing" => answer(
            &[("content-type", "text/plain")],
            format!("{text} and more"),
        ),
        "zstd" => answer(
            &[("content-type", "application/octet-stream")],
            [vec![0x28, 0xb5, 0x2f, 0xfd], json].concat(),
        ),
        _ => answer(&[("content-type", "text/plain")], "just words"),
    }
}

#[tokio::test]
async fn json_is_decided_by_content_whatever_the_label() {
    let up = upstream_by_segment(disguised).await;
    let policies = eu_pass();
    let gw = TestGateway::start(&config_on(up.addr, policies.path())).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    let expected = reference(&gw, "/api/customers/c-1001/plain").await;
    let fetch = |variant: &'static str| {
        let gw = &gw;
        let t = &t;
        async move {
            get_personal(
                gw,
                &format!("/api/customers/c-1001/{variant}"),
                Some(t),
                Some("marketing"),
                &[("x-request-id", variant)],
            )
            .await
        }
    };
    for variant in ["text-label", "no-label", "leading-space"] {
        let r = fetch(variant).await;
        assert_eq!(r.status, StatusCode::OK, "{variant}: {}", r.text());
        assert_reply_clean(variant, &r, PII_MARKERS);
        assert_eq!(r.json(), expected, "{variant}");
        assert_eq!(r.headers["content-type"], "application/json", "{variant}");
        assert_one_audit(&gw, variant, "allow", 200);
    }
    // What cannot be inspected is refused, never released raw under `non_json: pass`: JSON
    // behind a byte order mark or invisible characters, several documents, undeclared
    // compression, wide text, broken JSON.
    for variant in [
        "bom",
        "boms",
        "invisible",
        "gzip-bom",
        "ndjson",
        "gzip-unlabelled",
        "gzip-twice",
        "utf16le",
        "utf16be",
        "utf16-no-bom",
        "broken",
        "trailing",
        "zstd",
    ] {
        let r = fetch(variant).await;
        assert_error_reply(variant, &r, 502, "unprocessable_upstream_body");
        assert_one_audit(&gw, variant, "allow", 502);
    }
    // Text that is not JSON still passes under `non_json: pass`.
    let r = fetch("words").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "just words");
    gw.shutdown().await;
}

#[tokio::test]
async fn object_keys_are_inspected_like_values() {
    let mut doc = marker_doc();
    doc["preferences"] = json!({
        "newsletter": true,
        KIM: "weekly",
        BOB: "daily",
        OTHER_PHONE: "sms",
        "[EMAIL]": "already a placeholder",
    });
    doc["contacts"] = json!({ KIM: {"payment": {"iban": M_IBAN}, "note": "hi"} });
    let up = Upstream::json(doc).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let r = get_personal(
        &gw,
        ADV_PROFILE,
        Some(&adv_token()),
        Some("marketing"),
        &[("x-request-id", "keys")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_reply_clean("keys", &r, &[KIM, BOB, OTHER_PHONE, M_EMAIL]);
    let prefs = r.json()["preferences"].as_object().unwrap().clone();
    // No two keys merged: every value is still there, under a distinct key.
    assert_eq!(prefs.len(), 5, "{prefs:?}");
    let mut values: Vec<String> = prefs.values().map(Value::to_string).collect();
    values.sort();
    assert_eq!(
        values,
        [
            "\"already a placeholder\"",
            "\"daily\"",
            "\"sms\"",
            "\"weekly\"",
            "true"
        ]
    );
    assert_eq!(prefs["[EMAIL]"], "already a placeholder");
    let rec = assert_one_audit(&gw, "keys", "allow", 200);
    assert_no_markers("audit", &rec.to_string(), &[KIM, BOB, OTHER_PHONE]);
    assert!(rec["redactions"]["email"].as_u64().unwrap() >= 2, "{rec}");
    assert!(rec["redactions"]["phone"].as_u64().unwrap() >= 1, "{rec}");
    // support has no e-mail detector: the key stays, but the record names it `*`.
    let r = get_personal(
        &gw,
        ADV_PROFILE,
        Some(&adv_token()),
        Some("support"),
        &[("x-request-id", "keys-support")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!r.text().contains(M_IBAN));
    let rec = assert_one_audit(&gw, "keys-support", "allow", 200);
    assert_no_markers("audit", &rec.to_string(), &[KIM, BOB, OTHER_PHONE]);
    let removed: Vec<&str> = rec["fields_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(removed.contains(&"contacts.*.payment"), "{removed:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn audit_paths_name_rule_paths_never_data_keys() {
    let policies = policies_with(&[(
        "eu.yaml",
        "purposes:\n",
        "purposes:\n  contact_book:\n    basis: legitimate_interest\n    fields:\n      allow: [id, contacts.*.name]\n",
    )]);
    let doc = json!({
        "id": ADV_SUBJECT,
        "last_name": M_LAST_NAME,
        "contacts": {
            KIM: {"name": "Kim", "secret": CANARY},
            OTHER_PHONE: {"name": "Bo", "phone": OTHER_PHONE},
            "C-99817": {"name": "Cy", "secret": CANARY}
        },
        "history": {"2024-05-01 kim": {"seen": true}}
    });
    let up = Upstream::json(doc).await;
    let gw = TestGateway::start(&config_on(up.addr, policies.path())).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &[]).await;
    let t = token("crm", &["contact_book"], "");
    let r = get_personal(
        &gw,
        ADV_PROFILE,
        Some(&t),
        Some("contact_book"),
        &[("x-request-id", "paths")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!r.text().contains(CANARY));
    let rec = assert_one_audit(&gw, "paths", "allow", 200);
    assert_eq!(
        rec["fields_removed"],
        json!([
            "contacts.*.phone",
            "contacts.*.secret",
            "history",
            "last_name"
        ])
    );
    for line in audit_raw_lines(&gw.dir.path().join("data/audit")) {
        assert_no_markers(
            "audit",
            &line,
            &[KIM, OTHER_PHONE, "C-99817", "kim", CANARY],
        );
    }
    gw.shutdown().await;
}

/// Allow-listed response headers with values that are not what they claim.
fn lying_headers(variant: &str) -> Response<Body> {
    let json = marker_json();
    match variant {
        "valid" => answer(
            &[
                ("content-type", "application/json"),
                ("retry-after", "120"),
                ("content-language", "de-DE, en"),
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            json,
        ),
        "text" => answer(
            &[
                (
                    "content-type",
                    format!("text/plain; name=\"{KIM}\"").as_str(),
                ),
                ("content-language", "en-x-kimlee"),
            ],
            "just words",
        ),
        _ => answer(
            &[
                (
                    "content-type",
                    format!("application/json; who={KIM}").as_str(),
                ),
                ("retry-after", KIM),
                ("content-language", KIM),
                ("date", KIM),
                ("x-customer", KIM),
            ],
            json,
        ),
    }
}

#[tokio::test]
async fn relayed_header_values_must_parse_as_what_they_claim() {
    let up = upstream_by_segment(lying_headers).await;
    let policies = eu_pass();
    let gw = TestGateway::start(&config_on(up.addr, policies.path())).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    let markers = [KIM, "kimlee", "kim.lee"];
    let r = get_personal(
        &gw,
        "/api/customers/c-1001/lying",
        Some(&t),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_reply_clean("lying", &r, &markers);
    assert!(r.headers.get("retry-after").is_none());
    assert!(r.headers.get("content-language").is_none());
    assert_eq!(r.headers["content-type"], "application/json");
    let r = get_personal(
        &gw,
        "/api/customers/c-1001/valid",
        Some(&t),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.headers["retry-after"], "120");
    assert_eq!(r.headers["content-language"], "de-DE, en");
    assert_eq!(r.headers["date"], "Sun, 06 Nov 1994 08:49:37 GMT");
    let r = get_personal(
        &gw,
        "/api/customers/c-1001/text",
        Some(&t),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_reply_clean("text", &r, &markers);
    assert_eq!(r.headers["content-type"], "text/plain");
    gw.shutdown().await;
}
