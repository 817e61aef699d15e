//! Minimisation and redaction of personal-data responses through real sockets: the released
//! body is exactly what the region policy yields, whatever the upstream's encoding, framing,
//! labelling or status; anything the gateway cannot inspect is refused with `502`; report mode
//! skips only the denial: its answer is minimised and redacted exactly like an allowed one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use consentgate::http::{Body, full};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// The subject of the eu policy test document.
const SUBJECT: &str = "c-1001";
const PROFILE: &str = "/api/customers/c-1001/profile";

/// Removed values that must never appear in a marketing or support answer.
const CARD: &str = "4111 1111 1111 1111";
const IBAN: &str = "DE89 3704 0044 0532 0130 00";
const PHONE: &str = "+49 30 1234567";
const DOB: &str = "1987-04-12";
const NATIONAL_ID: &str = "T22000129";

/// The `input` of the eu policy tests (the same document for every case).
fn eu_doc() -> Value {
    policy_case(
        "eu",
        "marketing is released with granted consent, minimised",
    )
    .0
}

fn expected(name: &str) -> Value {
    let body = policy_case("eu", name).1;
    assert!(!body.is_null(), "case {name:?} has no expected body");
    body
}

/// An upstream answer with a status, optional content type and encoding.
fn answer(
    status: StatusCode,
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert("content-type", ct.parse().unwrap());
    }
    if let Some(enc) = encoding {
        resp.headers_mut()
            .insert("content-encoding", enc.parse().unwrap());
    }
    resp
}

/// An upstream that answers every request with `f(seen)`.
async fn upstream(f: impl Fn(&Seen) -> Response<Body> + Send + Sync + 'static) -> Upstream {
    let f = Arc::new(f);
    Upstream::start(Arc::new(move |seen: Seen| {
        let f = f.clone();
        Box::pin(async move { f(&seen) })
    }))
    .await
}

/// A gateway in front of `up` with the subject stored in the `eu` region.
async fn eu_gateway(up: &Upstream) -> TestGateway {
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    set_subject_region(&gw, SUBJECT, "eu").await;
    gw
}

fn caller() -> String {
    token("crm", PIPELINE_PURPOSES, "")
}

/// Asserts the answer's `Content-Length` is its body's length.
fn assert_length(r: &Reply) {
    let declared: usize = r.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(declared, r.body.len(), "Content-Length matches the body");
}

fn assert_absent(r: &Reply, values: &[&str]) {
    let text = r.text();
    for v in values {
        assert!(!text.contains(v), "{v:?} leaked into {text}");
    }
}

fn assert_error(r: &Reply, status: StatusCode, code: &str, leaks: &[&str]) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.code(), code, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    assert_absent(r, leaks);
}

/// A brotli stream holding `data` in one uncompressed meta-block (RFC 7932 §9.2): no
/// brotli encoder is among the dependencies, and this is a valid stream any decoder reads.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    assert!(!data.is_empty() && data.len() <= 1 << 16);
    let mlen_minus_1 = u32::try_from(data.len() - 1).unwrap();
    // Bits, LSB first: WBITS=16 (1 bit 0), ISLAST=0, MNIBBLES=4 (2 bits 00), MLEN-1 (16 bits),
    // ISUNCOMPRESSED=1; then padding to the byte boundary (21 bits -> 3 bytes).
    let bits: u32 = (mlen_minus_1 << 4) | (1 << 20);
    let mut out = vec![
        (bits & 0xff) as u8,
        ((bits >> 8) & 0xff) as u8,
        ((bits >> 16) & 0xff) as u8,
    ];
    out.extend_from_slice(data);
    // Last, empty meta-block: ISLAST=1, ISLASTEMPTY=1.
    out.push(0b11);
    out
}

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

#[tokio::test]
async fn eu_marketing_with_consent_is_exactly_the_policy_test_body() {
    let doc = eu_doc();
    let up = Upstream::json(doc).await;
    let gw = eu_gateway(&up).await;
    put_consent_status(&gw, SUBJECT, "marketing", "granted").await;
    let r = get_personal(&gw, PROFILE, Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        expected("marketing is released with granted consent, minimised")
    );
    assert_length(&r);
    assert_eq!(r.headers["x-consentgate-decision"], "allow");
    assert_eq!(r.headers["x-consentgate-region"], "eu");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_absent(
        &r,
        &[
            CARD,
            IBAN,
            PHONE,
            DOB,
            NATIONAL_ID,
            "anna.schmidt@example.eu",
            "Schmidt",
            "Hauptstr",
        ],
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn eu_support_and_order_fulfilment_are_exactly_the_policy_test_bodies() {
    let up = Upstream::json(eu_doc()).await;
    let gw = eu_gateway(&up).await;
    let t = caller();

    let r = get_personal(&gw, PROFILE, Some(&t), Some("support"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        expected("support needs no consent and is minimised")
    );
    assert_length(&r);
    assert_eq!(r.headers["x-consentgate-decision"], "allow");
    assert_absent(&r, &[CARD, IBAN, PHONE, DOB, NATIONAL_ID, "DE89"]);

    let r = get_personal(&gw, PROFILE, Some(&t), Some("order_fulfilment"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        expected("order_fulfilment needs no consent and is minimised")
    );
    assert_length(&r);
    // The phone is needed for delivery; the card and account numbers are masked.
    assert_absent(&r, &[CARD, IBAN, DOB, NATIONAL_ID, "4111"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn gzip_deflate_and_br_bodies_are_decoded_then_redacted() {
    let plain = serde_json::to_vec(&eu_doc()).unwrap();
    let br = brotli_stored(&plain);
    // The hand-made brotli stream really is brotli.
    let mut check = Vec::new();
    std::io::Read::read_to_end(
        &mut brotli_decompressor::Decompressor::new(&br[..], 4096),
        &mut check,
    )
    .unwrap();
    assert_eq!(check, plain);
    let bodies = Arc::new(vec![
        ("gzip", gzip(&plain)),
        ("deflate", zlib(&plain)),
        ("br", br),
    ]);
    let served = bodies.clone();
    // A misbehaving upstream: it compresses whatever the request's Accept-Encoding says.
    let up = upstream(move |seen| {
        let (enc, body) = served
            .iter()
            .find(|(enc, _)| seen.uri.ends_with(&format!("/{enc}")))
            .unwrap();
        answer(
            StatusCode::OK,
            Some("application/json"),
            Some(enc),
            body.clone(),
        )
    })
    .await;
    let gw = eu_gateway(&up).await;
    let want = expected("support needs no consent and is minimised");
    for (enc, _) in bodies.iter() {
        let r = get_personal(
            &gw,
            &format!("/api/customers/{SUBJECT}/{enc}"),
            Some(&caller()),
            Some("support"),
            &[("accept-encoding", "gzip, deflate, br")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{enc}: {}", r.text());
        assert!(
            r.headers.get("content-encoding").is_none(),
            "{enc}: the released body is not encoded"
        );
        assert_eq!(r.json(), want, "{enc}");
        assert_length(&r);
        assert_absent(&r, &[CARD, IBAN, PHONE, DOB]);
        assert_eq!(up.last().headers["accept-encoding"], "identity", "{enc}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn range_is_not_forwarded_and_the_upstream_is_asked_for_identity() {
    let up = Upstream::json(eu_doc()).await;
    let gw = eu_gateway(&up).await;
    let r = get_personal(
        &gw,
        PROFILE,
        Some(&caller()),
        Some("support"),
        &[
            ("range", "bytes=0-10"),
            ("if-range", "\"v1\""),
            ("accept-encoding", "gzip, br"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "a whole redacted body, not a 206");
    assert_eq!(
        r.json(),
        expected("support needs no consent and is minimised")
    );
    let seen = up.last();
    assert!(seen.headers.get("range").is_none(), "Range is removed");
    assert!(
        seen.headers.get("if-range").is_none(),
        "If-Range is removed"
    );
    assert_eq!(seen.headers["accept-encoding"], "identity");
    gw.shutdown().await;
}

#[tokio::test]
async fn head_answers_the_redacted_bodys_headers_without_a_body() {
    let up = Upstream::json(eu_doc()).await;
    let gw = eu_gateway(&up).await;
    let t = caller();
    let full_get = get_personal(&gw, PROFILE, Some(&t), Some("support"), &[]).await;
    assert_eq!(full_get.status, StatusCode::OK);
    let req = Request::builder()
        .method(Method::HEAD)
        .uri(gw.url(PROFILE))
        .header("authorization", format!("Bearer {t}"))
        .header("x-purpose", "support")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty(), "HEAD has no body");
    assert_eq!(
        r.headers["content-length"],
        full_get.body.len().to_string().as_str(),
        "the length of the redacted body, not the upstream's"
    );
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-consentgate-decision"], "allow");
    assert_eq!(
        up.last().method,
        Method::GET,
        "the upstream is asked for the body to redact"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn non_json_body_is_blocked_on_a_non_json_block_policy() {
    let up = upstream(|_| {
        answer(
            StatusCode::OK,
            Some("text/html"),
            None,
            format!("<html><p>Anna Schmidt, card {CARD}, phone {PHONE}</p></html>").into_bytes(),
        )
    })
    .await;
    let gw = eu_gateway(&up).await;
    let r = get_personal(&gw, PROFILE, Some(&caller()), Some("support"), &[]).await;
    assert_error(
        &r,
        StatusCode::BAD_GATEWAY,
        "unprocessable_upstream_body",
        &[CARD, PHONE, "Schmidt", "<html>"],
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn json_labelled_text_plain_is_still_redacted() {
    let body = serde_json::to_vec(&eu_doc()).unwrap();
    let up = upstream(move |_| {
        answer(
            StatusCode::OK,
            Some("text/plain; charset=utf-8"),
            None,
            body.clone(),
        )
    })
    .await;
    let gw = eu_gateway(&up).await;
    let r = get_personal(&gw, PROFILE, Some(&caller()), Some("support"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        expected("support needs no consent and is minimised")
    );
    assert_length(&r);
    assert_absent(&r, &[CARD, IBAN, PHONE, DOB]);
    gw.shutdown().await;
}

#[tokio::test]
async fn unparseable_json_bodies_are_502_and_release_nothing() {
    let doc = serde_json::to_string(&eu_doc()).unwrap();
    let truncated = doc[..doc.find(CARD).unwrap() + CARD.len()].to_string();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut invalid_utf8 = br#"{"email":"anna.schmidt@example.eu","notes":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let bodies: Arc<Vec<(&str, Vec<u8>)>> = Arc::new(vec![
        ("truncated", truncated.into_bytes()),
        ("deep", deep.into_bytes()),
        ("utf8", invalid_utf8),
        ("ok", doc.into_bytes()),
    ]);
    let served = bodies.clone();
    let up = upstream(move |seen| {
        let (_, body) = served
            .iter()
            .find(|(k, _)| seen.uri.ends_with(&format!("/{k}")))
            .unwrap();
        answer(StatusCode::OK, Some("application/json"), None, body.clone())
    })
    .await;
    let gw = eu_gateway(&up).await;
    let t = caller();
    for kind in ["truncated", "deep", "utf8"] {
        let r = get_personal(
            &gw,
            &format!("/api/customers/{SUBJECT}/{kind}"),
            Some(&t),
            Some("support"),
            &[],
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_GATEWAY,
            "unprocessable_upstream_body",
            &[CARD, "anna.schmidt", "[[[["],
        );
    }
    // The gateway is still alive and serving after the deep document.
    let r = get_personal(
        &gw,
        &format!("/api/customers/{SUBJECT}/ok"),
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
}

/// A JSON document of about `size` bytes with the subject's data and padding.
fn padded_doc(size: usize) -> Vec<u8> {
    let mut doc = eu_doc();
    doc["padding"] = Value::String("x".repeat(size.saturating_sub(1200)));
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert!(bytes.len().abs_diff(size) < 1200);
    bytes
}

#[tokio::test]
async fn upstream_bodies_over_max_body_bytes_are_502_payload_too_large() {
    let big = Arc::new(padded_doc(70_000));
    let fits = Arc::new(padded_doc(60_000));
    let (big2, fits2) = (big.clone(), fits.clone());
    let up = Upstream::start(Arc::new(move |seen: Seen| {
        let (big, fits) = (big2.clone(), fits2.clone());
        Box::pin(async move {
            if seen.uri.ends_with("/fits") {
                return answer(
                    StatusCode::OK,
                    Some("application/json"),
                    None,
                    fits.to_vec(),
                );
            }
            if seen.uri.ends_with("/length") {
                // Content-Length framing.
                return answer(StatusCode::OK, Some("application/json"), None, big.to_vec());
            }
            // Chunked framing: no Content-Length, the size is only known by reading.
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                for chunk in big.chunks(8192) {
                    if tx.send(Bytes::copy_from_slice(chunk)).await.is_err() {
                        break;
                    }
                }
            });
            let mut resp = Response::new(body.boxed());
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            resp
        })
    }))
    .await;
    let gw = eu_gateway(&up).await;
    let t = caller();
    for kind in ["length", "chunked"] {
        let r = get_personal(
            &gw,
            &format!("/api/customers/{SUBJECT}/{kind}"),
            Some(&t),
            Some("support"),
            &[],
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_GATEWAY,
            "payload_too_large",
            &[CARD, "xxxxxxxx"],
        );
    }
    let r = get_personal(
        &gw,
        &format!("/api/customers/{SUBJECT}/fits"),
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "a body under the limit is served");
    assert_absent(&r, &[CARD, IBAN]);
    gw.shutdown().await;
}

/// A key named twice means whatever the reader keeps (serde_json the last, others the first):
/// such a response is refused whole, wherever the duplicate is, even in a part the purpose drops.
#[tokio::test]
async fn duplicate_keys_refuse_the_response() {
    let up = upstream(|seen| {
        let body: &[u8] = if seen.uri.ends_with("/nested") {
            br#"{"id":"c-1001","orders":[{"sku":"a","sku":"b"}],"email":"a@x.com"}"#
        } else {
            br#"{"id":"c-1001","email":"a@x.com","first_name":"Anna","\u0065mail":"b@y.com","phone":"+49 30 1234567"}"#
        };
        answer(StatusCode::OK, Some("application/json"), None, body.to_vec())
    })
    .await;
    let gw = eu_gateway(&up).await;
    put_consent_status(&gw, SUBJECT, "marketing", "granted").await;
    for path in [
        PROFILE.to_owned(),
        format!("/api/customers/{SUBJECT}/nested"),
    ] {
        let r = get_personal(&gw, &path, Some(&caller()), Some("marketing"), &[]).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "unprocessable_upstream_body");
        assert_absent(&r, &["a@x.com", "b@y.com", PHONE]);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_error_status_with_a_json_body_is_still_redacted() {
    let up = upstream(|_| {
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("application/json"),
            None,
            serde_json::to_vec(&json!({
                "id": "c-1001",
                "error": "lookup failed for anna.schmidt@example.eu (+49 30 1234567)",
                "email": "anna.schmidt@example.eu"
            }))
            .unwrap(),
        )
    })
    .await;
    let gw = eu_gateway(&up).await;
    put_consent_status(&gw, SUBJECT, "marketing", "granted").await;
    let r = get_personal(&gw, PROFILE, Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.json(),
        json!({"id": "c-1001", "email": "a***@example.eu"})
    );
    assert_absent(&r, &["anna.schmidt@example.eu", PHONE]);
    assert_length(&r);
    gw.shutdown().await;
}

#[tokio::test]
async fn report_mode_minimises_like_allow_and_audits_report_deny() {
    // br.yaml: personalisation runs with `mode: report`.
    let policy =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/br.yaml")).unwrap();
    let section = &policy[policy.find("  personalisation:").unwrap()..];
    assert!(
        section[..section.find("fields:").unwrap()].contains("mode: report"),
        "br personalisation is in report mode"
    );
    let doc = demo_doc("c-3001");
    let up = Upstream::json(doc.clone()).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    set_subject_region(&gw, "c-3001", "br").await;
    let r = get_personal(
        &gw,
        "/api/customers/c-3001/profile",
        Some(&caller()),
        Some("personalisation"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["x-consentgate-decision"], "report-deny");
    assert_eq!(r.headers["x-consentgate-region"], "br");
    // Only the 403 is skipped: the body is what a granted consent releases.
    put_consent_status(&gw, "c-3001", "personalisation", "granted").await;
    let granted = get_personal(
        &gw,
        "/api/customers/c-3001/profile",
        Some(&caller()),
        Some("personalisation"),
        &[],
    )
    .await;
    assert_eq!(granted.headers["x-consentgate-decision"], "allow");
    assert_eq!(r.json(), granted.json(), "minimised like an allowed answer");
    assert_ne!(r.json(), doc);
    for leaf in ["last_name", "email", "phone", "payment", "address"] {
        assert!(
            r.json().get(leaf).is_none(),
            "{leaf} released in report mode"
        );
    }
    assert_length(&r);

    let records = audit_records(&gw.dir.path().join("data/audit"));
    assert_eq!(records.len(), 2);
    let rec = &records[0];
    assert_eq!(rec["decision"], "report_deny");
    assert_eq!(rec["reason"], "consent_missing");
    assert_eq!(rec["consent"], "none");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["purpose"], "personalisation");
    assert_eq!(rec["region"], "br");
    let removed: Vec<&str> = rec["fields_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // allow: [id, first_name, preferences, orders.sku]: everything else would be removed.
    for field in [
        "last_name",
        "email",
        "phone",
        "cpf",
        "payment",
        "address",
        "date_of_birth",
        "support_notes",
    ] {
        assert!(
            removed.contains(&field),
            "{field} in fields_removed {removed:?}"
        );
    }
    assert!(!removed.contains(&"id") && !removed.contains(&"first_name"));
    gw.shutdown().await;
}

#[tokio::test]
async fn undecodable_and_bomb_compressed_bodies_are_502() {
    let plain = serde_json::to_vec(&eu_doc()).unwrap();
    // 1 MiB of JSON from a few KiB of gzip: decoded past max_body_bytes (65536).
    let mut bomb_json = br#"{"id":"c-1001","pad":""#.to_vec();
    bomb_json.extend(std::iter::repeat_n(b'a', 1 << 20));
    bomb_json.extend_from_slice(br#""}"#);
    let bomb = gzip(&bomb_json);
    assert!(bomb.len() < 65536);
    let cases: Arc<Vec<(&str, &str, Vec<u8>)>> = Arc::new(vec![
        ("bomb", "gzip", bomb),
        ("zstd", "zstd", plain.clone()),
        ("corrupt", "gzip", plain),
    ]);
    let served = cases.clone();
    let up = upstream(move |seen| {
        let (_, enc, body) = served
            .iter()
            .find(|(k, _, _)| seen.uri.ends_with(&format!("/{k}")))
            .unwrap();
        answer(
            StatusCode::OK,
            Some("application/json"),
            Some(enc),
            body.clone(),
        )
    })
    .await;
    let gw = eu_gateway(&up).await;
    for (kind, code) in [
        ("bomb", "payload_too_large"),
        ("zstd", "unprocessable_upstream_body"),
        ("corrupt", "unprocessable_upstream_body"),
    ] {
        let r = get_personal(
            &gw,
            &format!("/api/customers/{SUBJECT}/{kind}"),
            Some(&caller()),
            Some("support"),
            &[],
        )
        .await;
        assert_error(&r, StatusCode::BAD_GATEWAY, code, &[CARD, "aaaaaaaa"]);
        assert!(r.headers.get("content-encoding").is_none());
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn redacted_responses_are_not_cacheable_and_carry_no_upstream_extras() {
    let body = serde_json::to_vec(&eu_doc()).unwrap();
    let up = upstream(move |_| {
        let mut r = answer(StatusCode::OK, Some("application/json"), None, body.clone());
        r.headers_mut()
            .insert("cache-control", "public, max-age=600".parse().unwrap());
        r.headers_mut().insert(
            "x-customer-email",
            "anna.schmidt@example.eu".parse().unwrap(),
        );
        r.headers_mut()
            .insert("set-cookie", "sid=anna".parse().unwrap());
        r
    })
    .await;
    let gw = eu_gateway(&up).await;
    let r = get_personal(&gw, PROFILE, Some(&caller()), Some("support"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let cc = r
        .headers
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        cc.contains("no-store") || cc.contains("private"),
        "the purpose-specific body is marked cacheable by shared caches: {cc:?}"
    );
    assert_eq!(cc, "no-store, private");
    assert!(r.headers.get("x-customer-email").is_none());
    assert!(r.headers.get("set-cookie").is_none());
    gw.shutdown().await;
}

#[tokio::test]
async fn numbers_the_policy_keeps_are_released_exactly_as_sent() {
    // Beyond 64-bit integers and floats with 17 significant digits: re-serialisation must not
    // change a digit of data it was not asked to redact.
    let body = br#"{"id":"c-1001","first_name":"Anna","orders":[{"id":"o-1","total":12345678901234567890123.45,"sku":"SKU-1","qty":98765432109876543210,"weight":4.4444444444544444e120}]}"#;
    let up = upstream(move |_| {
        answer(
            StatusCode::OK,
            Some("application/json"),
            None,
            body.to_vec(),
        )
    })
    .await;
    let gw = eu_gateway(&up).await;
    let r = get_personal(&gw, PROFILE, Some(&caller()), Some("order_fulfilment"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    // (serde_json writes the exponent as `e+120`: the same number, every digit kept.)
    for n in [
        "12345678901234567890123.45",
        "98765432109876543210",
        "4.4444444444544444e",
    ] {
        assert!(text.contains(n), "{n} changed: {text}");
    }
    gw.shutdown().await;
}
