//! Collection routes through real sockets: per-record decisions (mixed regions, consent, GPC,
//! report mode), withheld records (missing and invalid subjects), duplicates, envelopes,
//! limits, and one audit record per record, durable before release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const PURPOSES: &[&str] = &["marketing", "personalisation", "support", "sale", "ghost"];

fn caller() -> String {
    token("crm-svc", PURPOSES, "")
}

/// [`config_text`] plus the collection routes.
fn config(upstream: SocketAddr) -> String {
    format!(
        r#"{}
[[route]]
name = "search"
match = "/api/search"
upstream = "http://{upstream}"
personal_data = true
collection = {{ path = "data.items", subject = "id", envelope = ["next_cursor", "total", "meta"], max_elements = 50 }}
[[route]]
name = "list"
match = "/api/list"
upstream = "http://{upstream}"
personal_data = true
subject_case = "lower"
collection = {{ path = "", subject = "customer.id" }}
[[route]]
name = "export"
match = "/api/export"
upstream = "http://{upstream}"
personal_data = true
collection = {{ format = "ndjson", subject = "id", max_elements = 5 }}
"#,
        config_text(upstream, "")
    )
}

fn customer(id: &str) -> Value {
    let mut doc = sample_customer(id);
    doc["id"] = json!(id);
    doc
}

async fn start(body: Value) -> (Upstream, TestGateway) {
    let up = Upstream::json(body).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    (up, gw)
}

fn audit(gw: &TestGateway) -> Vec<Value> {
    audit_records(&gw.dir.path().join("data/audit"))
}

/// Seeds regions and consents: eu granted / eu none, us-ca none / us-ca denied, default granted.
async fn seed(gw: &TestGateway) {
    for (s, region) in [
        ("c-eu-1", "eu"),
        ("c-eu-2", "eu"),
        ("c-ca-1", "us-ca"),
        ("c-ca-2", "us-ca"),
        ("c-br-1", "br"),
    ] {
        set_subject_region(gw, s, region).await;
    }
    put_consent_status(gw, "c-eu-1", "marketing", "granted").await;
    put_consent_status(gw, "c-ca-2", "marketing", "denied").await;
    put_consent_status(gw, "c-def-1", "marketing", "granted").await;
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test]
async fn mixed_regions_each_record_decided_minimised_and_audited() {
    let mut no_id = customer("x");
    no_id.as_object_mut().unwrap().remove("id");
    let items = vec![
        customer("c-eu-1"),
        customer("c-eu-2"),
        customer("c-ca-1"),
        customer("c-ca-2"),
        customer("c-def-1"),
        no_id,
        customer("bad id!"),
        json!({"id": 42, "email": "n@example.com"}),
        customer("c-eu-1"),
        json!("not an object"),
    ];
    let body = json!({"data": {"items": items, "owner": "ops@example.com"},
                      "next_cursor": "abc", "total": 10, "meta": {"who": "x"}, "debug": "y"});
    let (up, gw) = start(body).await;
    seed(&gw).await;
    let r = get_personal(
        &gw,
        "/api/search?segment=vip",
        Some(&caller()),
        Some("marketing"),
        &[("x-request-id", "req-mixed-1")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(up.last().uri, "/api/search?segment=vip");
    assert_eq!(r.headers["x-consentgate-withheld"], "6");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.headers["content-length"],
        r.body.len().to_string().as_str()
    );
    let out = r.json();
    // Envelope scalars pass; the object `meta`, unlisted `debug` and the array's siblings do not.
    assert_eq!(out["next_cursor"], "abc");
    assert_eq!(out["total"], 10);
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data", "next_cursor", "total"]
    );
    assert_eq!(out["data"].as_object().unwrap().len(), 1);
    let released = &out["data"]["items"];
    assert_eq!(ids(released), ["c-eu-1", "c-ca-1", "c-def-1", "c-eu-1"]);
    // Each record minimised by its own region's rules: eu masks the e-mail, us-ca does not.
    let eu = &released[0];
    assert_eq!(
        eu,
        &json!({"id": "c-eu-1", "first_name": "Anna", "email": "a***@example.eu",
                "preferences": {"newsletter": true, "language": "de"}})
    );
    assert_eq!(released[1]["email"], "anna.schmidt@example.eu");
    assert!(released[1].get("payment").is_none());
    assert_eq!(released[3], released[0], "duplicates decided alike");
    for leaf in [
        "4111 1111 1111 1111",
        "+49 30 1234567",
        "ops@example.com",
        "n@example.com",
    ] {
        assert!(!r.text().contains(leaf), "{leaf} released");
    }

    let records = audit(&gw);
    assert_eq!(records.len(), 10, "one record per record of the collection");
    let lines = audit_raw_lines(&gw.dir.path().join("data/audit")).join("\n");
    assert_no_markers(
        "the audit log",
        &lines,
        &[
            "anna.schmidt@example.eu",
            "Schmidt",
            "4111",
            "bad id!",
            "n@example.com",
        ],
    );
    let expect = [
        (Some("c-eu-1"), "allow", Some("eu"), "granted"),
        (Some("c-eu-2"), "deny", Some("eu"), "none"),
        (Some("c-ca-1"), "allow", Some("us-ca"), "none"),
        (Some("c-ca-2"), "deny", Some("us-ca"), "denied"),
        (Some("c-def-1"), "allow", Some("default"), "granted"),
        (None, "deny", None, "n/a"),
        (None, "deny", None, "n/a"),
        (None, "deny", None, "n/a"),
        (Some("c-eu-1"), "allow", Some("eu"), "granted"),
        (None, "deny", None, "n/a"),
    ];
    for (i, (rec, (subject, decision, region, consent))) in records.iter().zip(expect).enumerate() {
        assert_eq!(rec["request_id"], "req-mixed-1");
        assert_eq!(rec["collection"], json!({"index": i, "count": 10}), "{i}");
        assert_eq!(rec["subject"].as_str(), subject, "{i}");
        assert_eq!(rec["decision"], decision, "{i}");
        assert_eq!(rec["region"].as_str(), region, "{i}");
        assert_eq!(rec["consent"], consent, "{i}");
        assert_eq!(rec["route"], "search");
        assert_eq!(rec["purpose"], "marketing");
        assert_eq!(rec["status"], 200);
        assert_eq!(rec["path"], "/api/search");
    }
    assert_eq!(records[5]["reason"], "invalid_subject");
    assert_eq!(records[1]["reason"], "consent_missing");
    assert_eq!(records[3]["reason"], "consent_denied");
    assert!(
        records[0]["fields_removed"]
            .as_array()
            .unwrap()
            .contains(&json!("payment"))
    );
    assert_eq!(records[0]["redactions"]["mask_email"], 1);
    assert_eq!(records[1]["fields_removed"], json!([]));
    // Consecutive seqs: one group commit.
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // The subject's access report and the audit query show the bulk access.
    let q = admin_call(
        &gw,
        Method::GET,
        "/v1/audit?subject=c-eu-1",
        Some(&auditor_token()),
        None,
    )
    .await;
    assert_eq!(q.status, StatusCode::OK);
    let found: Vec<Value> = q
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[1]["collection"], json!({"index": 8, "count": 10}));
    let report = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/c-eu-1/report",
        Some(&auditor_token()),
        None,
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    assert!(report.text().contains("\"index\":8"), "{}", report.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn gpc_is_decided_per_record() {
    let items = vec![customer("c-eu-1"), customer("c-ca-1"), customer("c-ca-2")];
    let (_up, gw) = start(json!({"data": {"items": items}})).await;
    seed(&gw).await;
    let search = |purpose: &'static str, gpc: bool| {
        let gw = &gw;
        async move {
            let headers: &[(&str, &str)] = if gpc { &[("sec-gpc", "1")] } else { &[] };
            let r = get_personal(gw, "/api/search", Some(&caller()), Some(purpose), headers).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let mut records = audit(gw);
            let tail = records.split_off(records.len() - 3);
            (r, tail)
        }
    };
    // us-ca's first-party marketing is not stopped by GPC, and eu does not honour it.
    let (r, _) = search("marketing", true).await;
    assert_eq!(ids(&r.json()["data"]["items"]), ["c-eu-1", "c-ca-1"]);
    // `sale` (us-ca: opt-out, stopped by GPC; not defined in eu) without and with GPC.
    let (r, tail) = search("sale", false).await;
    assert_eq!(r.headers["x-consentgate-withheld"], "1");
    assert_eq!(r.json()["data"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(tail[0]["reason"], "unknown_purpose");
    assert_eq!(tail[0]["region"], "eu");
    assert_eq!(tail[1]["reason"], "opt_out_not_objected");
    let (r, tail) = search("sale", true).await;
    assert_eq!(r.headers["x-consentgate-withheld"], "3");
    assert_eq!(r.json()["data"]["items"], json!([]));
    assert_eq!(tail[1]["subject"], "c-ca-1");
    assert_eq!(tail[1]["decision"], "deny");
    assert_eq!(tail[1]["reason"], "gpc_opt_out");
    assert_eq!(tail[2]["reason"], "gpc_opt_out");
    gw.shutdown().await;
}

#[tokio::test]
async fn report_mode_releases_minimised_records_and_audits_report_deny() {
    let items = vec![customer("c-br-1"), customer("c-eu-2")];
    let (_up, gw) = start(json!({"data": {"items": items}})).await;
    seed(&gw).await;
    let r = get_personal(
        &gw,
        "/api/search",
        Some(&caller()),
        Some("personalisation"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let released = &r.json()["data"]["items"];
    // br personalisation is in report mode: released, minimised like an allowed record.
    assert_eq!(ids(released), ["c-br-1"]);
    let keys: Vec<&String> = released[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["first_name", "id", "orders", "preferences"]);
    let records = audit(&gw);
    let (br, eu) = (&records[records.len() - 2], &records[records.len() - 1]);
    assert_eq!(br["decision"], "report_deny");
    assert_eq!(br["region"], "br");
    assert!(!br["fields_removed"].as_array().unwrap().is_empty());
    assert_eq!(eu["decision"], "deny");
    gw.shutdown().await;
}

#[tokio::test]
async fn bare_array_nested_subject_and_subject_case() {
    let body = json!([
        {"customer": {"id": "C-EU-1", "email": "anna.schmidt@example.eu"}, "first_name": "Anna"},
        {"customer": {"id": "c-eu-2"}},
        {"id": "c-eu-1"}
    ]);
    let (_up, gw) = start(body).await;
    seed(&gw).await;
    let r = get_personal(&gw, "/api/list", Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // subject_case = "lower": C-EU-1 is c-eu-1 (granted). eu marketing allows `id`,
    // `first_name`, `email`…: `customer` is not in the allow list, so the record is left with
    // its first name only.
    assert_eq!(r.json(), json!([{"first_name": "Anna"}]));
    assert_eq!(r.headers["x-consentgate-withheld"], "2");
    let records = audit(&gw);
    let last = &records[records.len() - 3..];
    assert_eq!(last[0]["subject"], "c-eu-1");
    assert_eq!(last[2]["subject"], Value::Null, "subject at the wrong path");
    gw.shutdown().await;
}

#[tokio::test]
async fn limits_and_shapes_fail_closed_with_one_record() {
    let too_many: Vec<Value> = (0..51).map(|i| customer(&format!("c-{i}"))).collect();
    let cases = [
        (
            json!({"data": {"items": too_many}}),
            StatusCode::BAD_GATEWAY,
            "collection_too_large",
        ),
        (
            json!({"data": {"items": {"id": "c-eu-1"}}}),
            StatusCode::BAD_GATEWAY,
            "unprocessable_upstream_body",
        ),
        (
            json!([customer("c-eu-1")]),
            StatusCode::BAD_GATEWAY,
            "unprocessable_upstream_body",
        ),
    ];
    for (body, status, code) in cases {
        let (_up, gw) = start(body).await;
        let r = get_personal(&gw, "/api/search", Some(&caller()), Some("marketing"), &[]).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{}",
            r.text()
        );
        assert!(!r.text().contains("Anna"));
        let records = audit(&gw);
        assert_eq!(records.len(), 1, "{code}");
        assert_eq!(records[0]["subject"], Value::Null);
        assert_eq!(records[0]["reason"], code);
        assert_eq!(records[0]["status"], 502);
        assert_eq!(records[0]["collection"], Value::Null);
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn empty_list_has_one_record() {
    let (_up, gw) = start(json!({"data": {"items": []}, "total": 0})).await;
    let r = get_personal(&gw, "/api/search", Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"data": {"items": []}, "total": 0}));
    assert_eq!(r.headers["x-consentgate-withheld"], "0");
    let records = audit(&gw);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["subject"], Value::Null);
    assert_eq!(records[0]["reason"], "empty_collection");
    assert_eq!(records[0]["status"], 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn refused_before_the_body_one_record_and_no_upstream_call() {
    let (up, gw) = start(json!({"data": {"items": [customer("c-eu-1")]}})).await;
    let narrow = token("crm-svc", &["support"], "");
    let wide = caller();
    let cases = [
        (
            Some(narrow.as_str()),
            Some("marketing"),
            403,
            "forbidden_purpose",
        ),
        (Some(wide.as_str()), Some("ghost"), 400, "unknown_purpose"),
        (Some(wide.as_str()), None, 400, "missing_purpose"),
        (None, Some("marketing"), 401, "unauthenticated"),
    ];
    for (i, (tok, purpose, status, code)) in cases.into_iter().enumerate() {
        let r = get_personal(&gw, "/api/search", tok, purpose, &[]).await;
        assert_eq!((r.status.as_u16(), r.code().as_str()), (status, code));
        let records = audit(&gw);
        assert_eq!(records.len(), i + 1);
        assert_eq!(records[i]["subject"], Value::Null);
        assert_eq!(records[i]["reason"], code);
    }
    assert_eq!(up.count(), 0, "the upstream was never called");
    gw.shutdown().await;
}

#[tokio::test]
async fn ndjson_lines_are_decided_audited_and_released_as_they_arrive() {
    let slot: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>> = Arc::default();
    let feed = slot.clone();
    let up = Upstream::start(Arc::new(move |_seen| {
        let feed = feed.clone();
        Box::pin(async move {
            let (tx, body) = ChannelBody::new();
            *feed.lock().unwrap() = Some(tx);
            let mut resp = http::Response::new(body.boxed());
            resp.headers_mut()
                .insert("content-type", "application/x-ndjson".parse().unwrap());
            resp
        })
    }))
    .await;
    let gw = TestGateway::start(&config(up.addr)).await;
    seed(&gw).await;
    let req = build_request(Method::GET, &gw.url("/api/export"), Some(&caller()), None);
    let mut req = req;
    req.headers_mut()
        .insert("x-purpose", "marketing".parse().unwrap());
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    assert!(resp.headers().get("x-consentgate-withheld").is_none());
    let mut body = resp.into_body();
    let tx = slot.lock().unwrap().take().unwrap();
    let line = |id: &str| Bytes::from(format!("{}\n", customer(id)));
    // A withheld line, then an allowed one split across frames.
    tx.send(line("c-eu-2")).await.unwrap();
    let first = line("c-eu-1");
    tx.send(first.slice(..20)).await.unwrap();
    tx.send(first.slice(20..)).await.unwrap();
    let chunk = next_chunk(&mut body).await.unwrap();
    let got: Value = serde_json::from_slice(chunk.trim_ascii()).unwrap();
    assert_eq!(got["email"], "a***@example.eu");
    assert_eq!(got.as_object().unwrap().len(), 4, "minimised");
    // Its records were durable before the chunk was released; the stream is still open.
    let records = audit(&gw);
    let tail = &records[records.len() - 2..];
    assert_eq!(tail[0]["collection"], json!({"index": 0, "count": null}));
    assert_eq!(tail[0]["subject"], "c-eu-2");
    assert_eq!(tail[0]["decision"], "deny");
    assert_eq!(tail[1]["subject"], "c-eu-1");
    assert_eq!(tail[1]["decision"], "allow");
    // Lines keep flowing, each wait shorter than upstream_timeout (1 s), for longer than it.
    // (400 ms each: the stall timer also spans the previous chunk's batch window and fsync;
    // three lines, as the export's max_elements is 5.)
    for (i, id) in ["c-ca-1", "c-def-1", "c-ca-1"].into_iter().enumerate() {
        sleep_ms(400).await;
        tx.send(line(id)).await.unwrap();
        let chunk = next_chunk(&mut body)
            .await
            .unwrap_or_else(|e| panic!("line {i}: {e}"));
        let got: Value = serde_json::from_slice(chunk.trim_ascii()).unwrap();
        assert_eq!(got["id"], id);
    }
    // A line over max_body_bytes (64 KiB) ends the stream cut off: no unchecked byte of it.
    let mut long = customer("c-eu-1");
    long["support_notes"] = json!("x".repeat(70_000));
    tx.send(Bytes::from(format!("{long}\n"))).await.unwrap();
    let end = next_chunk(&mut body).await;
    assert!(end.is_err(), "the stream must end in an error, got {end:?}");
    drop(tx);
    sleep_ms(200).await;
    let records = audit(&gw);
    let last = records.last().unwrap();
    assert_eq!(last["subject"], Value::Null);
    assert_eq!(last["reason"], "payload_too_large");
    assert_eq!(last["collection"], json!({"index": 5, "count": null}));
    gw.shutdown().await;
}

#[tokio::test]
async fn ndjson_stream_is_cut_off_when_its_records_cannot_be_written() {
    cut_off_when_records_cannot_be_written(false).await;
}

/// As above, when the batch that cannot be recorded is the stream's last: the upstream ends
/// cleanly, the client still sees a cut-off stream, never a clean end after unrecorded lines.
#[tokio::test]
async fn ndjson_stream_whose_last_batch_cannot_be_written_ends_cut_off() {
    cut_off_when_records_cannot_be_written(true).await;
}

/// Streams a batch that is recorded, then one whose records cannot be written (a directory
/// stands where the next segment goes), more lines after it or (`last`) none.
async fn cut_off_when_records_cannot_be_written(last: bool) {
    let slot: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>> = Arc::default();
    let feed = slot.clone();
    let up = Upstream::start(Arc::new(move |_seen| {
        let feed = feed.clone();
        Box::pin(async move {
            let (tx, body) = ChannelBody::new();
            *feed.lock().unwrap() = Some(tx);
            let mut resp = http::Response::new(body.boxed());
            resp.headers_mut()
                .insert("content-type", "application/x-ndjson".parse().unwrap());
            resp
        })
    }))
    .await;
    let text = format!(
        r#"{}
[[route]]
name = "export-all"
match = "/api/export-all"
upstream = "http://{}"
personal_data = true
collection = {{ format = "ndjson", subject = "id" }}
"#,
        config(up.addr),
        up.addr
    )
    .replace(
        "dir = \"data/audit\"",
        "dir = \"data/audit\"\nsegment_bytes = 4096",
    );
    let gw = TestGateway::start(&text).await;
    seed(&gw).await;
    let dir = gw.dir.path().join("data/audit");
    let mut req = build_request(
        Method::GET,
        &gw.url("/api/export-all"),
        Some(&caller()),
        None,
    );
    req.headers_mut()
        .insert("x-purpose", "marketing".parse().unwrap());
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let tx = slot.lock().unwrap().take().unwrap();
    let lines = |n: usize| {
        Bytes::from(
            (0..n)
                .map(|_| format!("{}\n", customer("c-eu-1")))
                .collect::<String>(),
        )
    };
    // A first batch fills a segment past its size: the next record opens a new one.
    tx.send(lines(8)).await.unwrap();
    let mut released = 0;
    while released < 8 {
        let chunk = next_chunk(&mut body).await.unwrap();
        released += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let written = audit(&gw).len();
    let current = audit_segments(&dir).pop().unwrap();
    assert!(std::fs::metadata(&current).unwrap().len() >= 4096);
    let next = dir.join(format!("{:020}.jsonl", written + 1));
    std::fs::create_dir(&next).unwrap();
    // The next batch cannot be recorded: the stream ends cut off, none of it released.
    tx.send(lines(3)).await.unwrap();
    // The last batch: the upstream's body ends here (the sender is dropped).
    let tx = (!last).then_some(tx);
    let end = next_chunk(&mut body).await;
    assert!(
        end.as_ref().is_err_and(|e| e != "end of stream"),
        "the stream must end in an error, not cleanly: got {end:?}"
    );
    if let Some(tx) = tx {
        tx.send(lines(3)).await.ok();
    }
    sleep_ms(300).await;
    std::fs::remove_dir(&next).unwrap();
    let records = audit(&gw);
    assert_eq!(records.len(), written, "no record past the failure");
    let v = admin_call(
        &gw,
        Method::GET,
        "/v1/audit/verify",
        Some(&auditor_token()),
        None,
    )
    .await
    .json();
    assert_eq!(v["ok"], true, "{v}");
    gw.shutdown().await;
}

/// The next data frame of a streamed body (`Err` when the stream broke or ended).
async fn next_chunk(body: &mut hyper::body::Incoming) -> Result<Bytes, String> {
    use http_body_util::BodyExt;
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .map_err(|_| "no chunk within 5 s".to_owned())?
            .ok_or_else(|| "end of stream".to_owned())?
            .map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            return Ok(data);
        }
    }
}

#[tokio::test]
async fn ndjson_stall_max_elements_and_empty_stream() {
    // A stream that stalls longer than upstream_timeout after one line is cut off.
    let stalled = Upstream::start(Arc::new(|_seen| {
        Box::pin(async move {
            let (tx, body) = ChannelBody::new();
            tokio::spawn(async move {
                tx.send(Bytes::from(format!("{}\n", customer("c-eu-1"))))
                    .await
                    .unwrap();
                sleep_ms(3000).await;
                drop(tx);
            });
            http::Response::new(body.boxed())
        })
    }))
    .await;
    let gw = TestGateway::start(&config(stalled.addr)).await;
    seed(&gw).await;
    let req = {
        let mut r = build_request(Method::GET, &gw.url("/api/export"), Some(&caller()), None);
        r.headers_mut()
            .insert("x-purpose", "marketing".parse().unwrap());
        r
    };
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    assert!(next_chunk(&mut body).await.unwrap().starts_with(b"{"));
    assert!(next_chunk(&mut body).await.is_err());
    sleep_ms(100).await;
    let last = audit(&gw).last().cloned().unwrap();
    assert_eq!(last["reason"], "upstream_timeout");
    gw.shutdown().await;

    // max_elements = 5 on the export: the sixth record is not released.
    let lines: String = (0..8)
        .map(|_| format!("{}\n", customer("c-eu-1")))
        .collect();
    let up = Upstream::start(Arc::new(move |_seen| {
        let lines = lines.clone();
        Box::pin(async move { json_response(StatusCode::OK, Bytes::from(lines)) })
    }))
    .await;
    let gw = TestGateway::start(&config(up.addr)).await;
    seed(&gw).await;
    let req = {
        let mut r = build_request(Method::GET, &gw.url("/api/export"), Some(&caller()), None);
        r.headers_mut()
            .insert("x-purpose", "marketing".parse().unwrap());
        r
    };
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut seen = 0;
    let end = loop {
        match next_chunk(&mut body).await {
            Ok(chunk) => seen += chunk.iter().filter(|b| **b == b'\n').count(),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 5);
    assert_ne!(end, "end of stream", "cut off, not ended cleanly");
    sleep_ms(100).await;
    let records = audit(&gw);
    let last = records.last().unwrap();
    assert_eq!(last["reason"], "collection_too_large");
    assert_eq!(last["collection"]["index"], 5);
    assert_eq!(records.iter().filter(|r| r["route"] == "export").count(), 6);
    gw.shutdown().await;

    // An empty stream: one record, subject null.
    let (_up, gw) = {
        let up = Upstream::start(Arc::new(|_seen| {
            Box::pin(async move { json_response(StatusCode::OK, Bytes::new()) })
        }))
        .await;
        let gw = TestGateway::start(&config(up.addr)).await;
        (up, gw)
    };
    let r = get_personal(&gw, "/api/export", Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    sleep_ms(100).await;
    let records = audit(&gw);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["reason"], "empty_collection");
    gw.shutdown().await;
}

#[tokio::test]
async fn demo_segment_list_is_decided_per_customer() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(consentgate::demo::upstream::serve(listener));
    let text = format!(
        r#"{}
[[route]]
name = "customer-search"
match = "/api/customers"
upstream = "http://{upstream}"
personal_data = true
collection = {{ path = "items", subject = "id", envelope = ["segment", "total", "next_cursor"] }}
"#,
        config_text(upstream, "")
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = consentgate::config::Settings::from_toml(&text, dir.path()).unwrap();
    let gateway = consentgate::Gateway::bind(settings).await.unwrap();
    consentgate::demo::seed::seed(&gateway.state().store)
        .await
        .unwrap();
    let addr = gateway.gateway_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));

    let before = get(
        &format!("http://{upstream}/api/customers?segment=vip"),
        None,
        &[],
    )
    .await;
    assert_eq!(ids(&before.json()["items"]).len(), 5);
    let r = get(
        &format!("http://{addr}/api/customers?segment=vip"),
        Some(&caller()),
        &[("x-purpose", "marketing")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let out = r.json();
    // Luc (eu) denied marketing; everyone else is released by their own region's rules.
    assert_eq!(ids(&out["items"]), ["c-1001", "c-2001", "c-2002", "c-3001"]);
    assert_eq!(r.headers["x-consentgate-withheld"], "1");
    assert_eq!(out["items"][0]["email"], "a***@example.eu");
    assert_eq!(out["segment"], "vip");
    assert!(out.get("generated_by").is_none(), "not in the envelope");
    let _ = stop.send(());
    let _ = task.await;
}

#[tokio::test]
async fn non_json_follows_the_default_region() {
    let up = Upstream::start(Arc::new(|seen: Seen| {
        Box::pin(async move {
            let body: &'static [u8] = if seen.uri.contains("bom") {
                b"\xef\xbb\xbf[{\"id\":\"c-1\",\"email\":\"anna@example.eu\"}]"
            } else if seen.uri.contains("disguised") {
                b" \n[{\"id\":\"c-1\",\"email\":\"anna@example.eu\"}"
            } else {
                b"plain words"
            };
            let mut resp = http::Response::new(consentgate::http::full(body));
            let ct = if seen.uri.contains("labelled") {
                "application/json"
            } else {
                "text/plain"
            };
            resp.headers_mut()
                .insert("content-type", ct.parse().unwrap());
            resp
        })
    }))
    .await;
    // Shipped default.yaml blocks non-JSON bodies.
    let gw = TestGateway::start(&config(up.addr)).await;
    let r = get_personal(&gw, "/api/search", Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_GATEWAY, "unprocessable_upstream_body")
    );
    gw.shutdown().await;
    // A default region with `non_json: pass` releases it as is, with one record.
    let policies = tempfile::tempdir().unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = if path.ends_with("default.yaml") {
                text.replace("non_json: block", "non_json: pass")
            } else {
                text
            };
            std::fs::write(policies.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    let text = config(up.addr).replace(shipped, &policies.path().display().to_string());
    let gw = TestGateway::start(&text).await;
    let r = get_personal(&gw, "/api/search", Some(&caller()), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "plain words");
    let records = audit(&gw);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["reason"], "non_json_pass");
    assert_eq!(records[0]["subject"], Value::Null);
    // JSON in disguise (a byte order mark, or `[` after white space under a text/plain
    // label) is never passed raw, even when it does not parse.
    for q in ["bom", "disguised"] {
        let r = get_personal(
            &gw,
            &format!("/api/search?{q}"),
            Some(&caller()),
            Some("marketing"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{q}: {}", r.text());
        assert!(!r.text().contains("anna@"), "{q}");
    }
    // Labelled JSON that does not parse is never passed.
    let r = get_personal(
        &gw,
        "/api/search?labelled",
        Some(&caller()),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    gw.shutdown().await;
}
