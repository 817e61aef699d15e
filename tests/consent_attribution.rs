//! Attribution and one validator, through real sockets: every receipt names the token that
//! recorded it (PUT, DELETE, import) and its hash covers that name; region changes are kept
//! in the subject's history as region receipts; a PUT body and an import line are refused
//! for the same reasons (duplicate keys, past `expires_at`, future `recorded_at`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn gateway() -> (Upstream, TestGateway) {
    let up = Upstream::json(json!({})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    (up, gw)
}

/// An admin call made by a token whose `sub` is `sub`.
async fn call_as(
    gw: &TestGateway,
    sub: &str,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> Reply {
    let t = token(sub, &[], "consent:write consent:read");
    admin_call(gw, method, path, Some(&t), body).await
}

async fn history(gw: &TestGateway, subject: &str) -> Value {
    let r = call_as(
        gw,
        "reader",
        Method::GET,
        &format!("/v1/subjects/{subject}/consents/history"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// SHA-256 over the receipt's JSON without `sha256`, keys sorted, no whitespace: the SPEC's
/// receipt hash, computed here independently of the gateway's own code.
fn rehash(receipt: &Value) -> String {
    let map = receipt.as_object().unwrap();
    let mut keys: Vec<&String> = map.keys().filter(|k| *k != "sha256").collect();
    keys.sort();
    let mut text = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(k).unwrap());
        text.push(':');
        text.push_str(&serde_json::to_string(&map[k.as_str()]).unwrap());
    }
    text.push('}');
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_hash_ok(receipt: &Value) {
    assert_eq!(
        receipt["sha256"].as_str().unwrap(),
        rehash(receipt),
        "receipt hash: {receipt}"
    );
    let mut forged = receipt.clone();
    forged["recorded_by"] = json!("someone-else");
    assert_ne!(
        receipt["sha256"].as_str().unwrap(),
        rehash(&forged),
        "the hash covers recorded_by"
    );
}

async fn import_as(gw: &TestGateway, sub: &str, ndjson: &str) -> Reply {
    call_as(gw, sub, Method::POST, "/v1/consents/import", Some(ndjson)).await
}

#[tokio::test]
async fn every_receipt_names_who_recorded_it() {
    let (_up, gw) = gateway().await;
    let r = call_as(
        &gw,
        "crm-admin",
        Method::PUT,
        "/v1/subjects/att-1/consents/marketing",
        Some(r#"{"status":"granted","source":"web form"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let granted = r.json();
    assert_eq!(granted["recorded_by"], "crm-admin");
    assert_hash_ok(&granted);

    let r = call_as(
        &gw,
        "dpo-office",
        Method::DELETE,
        "/v1/subjects/att-1/consents/marketing",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let withdrawn = r.json();
    assert_eq!(withdrawn["recorded_by"], "dpo-office");
    assert_eq!(withdrawn["prev_status"], "granted");
    assert_hash_ok(&withdrawn);

    let line = json!({"subject": "att-1", "purpose": "analytics", "status": "denied"});
    let r = import_as(&gw, "cmp-sync", &format!("{line}\n")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let h = history(&gw, "att-1").await;
    let receipts = h["receipts"].as_array().unwrap();
    let by: Vec<&str> = receipts
        .iter()
        .map(|r| r["recorded_by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["crm-admin", "dpo-office", "cmp-sync"]);
    assert_eq!(
        receipts[0], granted,
        "history holds the acknowledged receipt"
    );
    assert_eq!(receipts[1], withdrawn);
    for r in receipts {
        assert_hash_ok(r);
    }
    assert_eq!(receipts[2]["collection_method"], "import");
    gw.shutdown().await;
}

#[tokio::test]
async fn region_changes_are_kept_in_history_with_receipts() {
    let (_up, gw) = gateway().await;
    for (sub, region) in [("ops-a", "eu"), ("ops-b", "us-ca"), ("ops-b", "us-ca")] {
        let r = call_as(
            &gw,
            sub,
            Method::PUT,
            "/v1/subjects/att-2",
            Some(&json!({ "region": region }).to_string()),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json(), json!({"subject": "att-2", "region": region}));
    }
    // A refused region write leaves no history.
    let r = call_as(
        &gw,
        "ops-a",
        Method::PUT,
        "/v1/subjects/att-2",
        Some(r#"{"region":"mars"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let h = history(&gw, "att-2").await;
    assert_eq!(h["receipts"], json!([]), "no consent receipts: {h}");
    let regions = h["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 3, "{h}");
    let summary: Vec<(Value, Value, Value)> = regions
        .iter()
        .map(|r| {
            (
                r["region"].clone(),
                r["prev_region"].clone(),
                r["recorded_by"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!("eu"), Value::Null, json!("ops-a")),
            (json!("us-ca"), json!("eu"), json!("ops-b")),
            (json!("us-ca"), json!("us-ca"), json!("ops-b")),
        ]
    );
    for r in regions {
        assert_eq!(r["kind"], "region");
        assert_eq!(r["subject"], "att-2");
        assert_eq!(r["collection_method"], "api");
        assert!(r["id"].as_str().unwrap().starts_with("rcpt_"));
        assert_hash_ok(r);
    }
    let ids: Vec<&str> = regions.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // An import line's region leaves a receipt when it changes the region, not when it
    // repeats it.
    let lines = [
        json!({"subject": "att-2", "purpose": "marketing", "status": "granted", "region": "us-ca"}),
        json!({"subject": "att-2", "purpose": "analytics", "status": "granted", "region": "eu"}),
        json!({"subject": "att-2", "purpose": "support", "status": "granted", "region": "eu"}),
    ];
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = import_as(&gw, "cmp-sync", &ndjson).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let h = history(&gw, "att-2").await;
    let regions = h["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 4, "{h}");
    let last = &regions[3];
    assert_eq!(last["region"], "eu");
    assert_eq!(last["prev_region"], "us-ca");
    assert_eq!(last["recorded_by"], "cmp-sync");
    assert_eq!(last["collection_method"], "import");
    assert_hash_ok(last);
    let receipts = h["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3);
    assert!(
        receipts[0]["id"].as_str() < last["id"].as_str()
            && last["id"].as_str() < receipts[1]["id"].as_str(),
        "ids give the order of all changes: {h}"
    );
    gw.shutdown().await;
}

async fn assert_nothing_stored(gw: &TestGateway, subject: &str) {
    let h = history(gw, subject).await;
    assert_eq!(h["receipts"], json!([]), "{subject}: {h}");
    assert_eq!(h["regions"], json!([]), "{subject}: {h}");
}

fn reason_of(r: &Reply) -> String {
    let v = r.json();
    if let Some(errors) = v["errors"].as_array() {
        errors[0]["reason"].as_str().unwrap().to_owned()
    } else {
        v["error"]["message"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn put_and_import_refuse_the_same_things() {
    let (_up, gw) = gateway().await;
    let admin = consent_admin_token();
    let put = |subject: &'static str, body: String| {
        let admin = admin.clone();
        let gw = &gw;
        async move {
            admin_call(
                gw,
                Method::PUT,
                &format!("/v1/subjects/{subject}/consents/marketing"),
                Some(&admin),
                Some(&body),
            )
            .await
        }
    };
    let past = rfc3339_in(-3600);
    let future = rfc3339_in(3600);
    // (PUT body, the same fields as an import line, what the reason starts with)
    let cases: Vec<(String, String, &str)> = vec![
        (
            r#"{"status":"denied","status":"granted"}"#.into(),
            r#"{"subject":"v-1","purpose":"marketing","status":"denied","status":"granted"}"#
                .into(),
            "key \"status\" is given twice",
        ),
        (
            r#"{"status":"granted","st\u0061tus":"denied"}"#.into(),
            r#"{"subject":"v-1","purpose":"marketing","status":"granted","st\u0061tus":"denied"}"#
                .into(),
            "key \"status\" is given twice",
        ),
        (
            json!({"status": "granted", "expires_at": past}).to_string(),
            json!({"subject": "v-1", "purpose": "marketing", "status": "granted", "expires_at": past})
                .to_string(),
            "expires_at is in the past",
        ),
    ];
    for (body, line, want) in &cases {
        let r = put("v-1", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "PUT {body}: {}",
            r.text()
        );
        assert_eq!(r.code(), "bad_request");
        let put_reason = reason_of(&r);
        assert!(put_reason.starts_with(want), "PUT {body}: {put_reason}");

        let r = import_as(&gw, "cmp", &format!("{line}\n")).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "import {line}: {}",
            r.text()
        );
        assert_eq!(r.json()["imported"], 0);
        let import_reason = reason_of(&r);
        assert_eq!(
            import_reason, put_reason,
            "one validator: the same reason for {line}"
        );
    }
    // recorded_at: an import may carry one from the past, never from the future (a PUT has no
    // such key: it is always now).
    let line = json!({"subject": "v-1", "purpose": "marketing", "status": "granted", "recorded_at": future});
    let r = import_as(&gw, "cmp", &format!("{line}\n")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(reason_of(&r).starts_with("recorded_at is in the future"));
    let r = put(
        "v-1",
        json!({"status": "granted", "recorded_at": rfc3339_in(-60)}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // A region body with a repeated key.
    let r = admin_call(
        &gw,
        Method::PUT,
        "/v1/subjects/v-1",
        Some(&admin),
        Some(r#"{"region":"eu","region":"us-ca"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(reason_of(&r).contains("given twice"));
    assert_nothing_stored(&gw, "v-1").await;

    // A bad line among good ones: nothing is applied, the bad line is named.
    let good = json!({"subject": "v-2", "purpose": "marketing", "status": "granted",
                      "recorded_at": rfc3339_in(-86_400), "expires_at": future});
    let bad = r#"{"subject":"v-3","purpose":"marketing","status":"denied","status":"granted"}"#;
    let r = import_as(&gw, "cmp", &format!("{good}\n{bad}\n{good}\n")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let v = r.json();
    assert_eq!(v["rejected"], 1, "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert_nothing_stored(&gw, "v-2").await;
    assert_nothing_stored(&gw, "v-3").await;

    // The good line alone passes: past recorded_at, future expires_at.
    let r = import_as(&gw, "cmp", &format!("{good}\n")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let h = history(&gw, "v-2").await;
    assert_eq!(h["receipts"][0]["recorded_by"], "cmp");
    gw.shutdown().await;
}
