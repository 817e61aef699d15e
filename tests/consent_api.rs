//! The consent admin API through real sockets: subject regions, consent decisions and their
//! receipts, withdrawal, current state, history (plain and Kantara), NDJSON import, scopes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const CONTROLLER: &str = r#"
[controller]
name = "Example Shop GmbH"
contact = "Data Protection Officer"
email = "privacy@shop.example"
phone = "+49 30 0000000"
jurisdiction = "EU"
policy_url = "https://shop.example/privacy"
service = "Example Shop"
[controller.address]
street = "Hauptstr. 1"
locality = "Berlin"
postal_code = "10115"
country = "DE"
"#;

async fn gateway() -> (Upstream, TestGateway) {
    let up = Upstream::json(json!({})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    (up, gw)
}

async fn gateway_with_controller() -> (Upstream, TestGateway) {
    let up = Upstream::json(json!({})).await;
    let config = format!("{}{CONTROLLER}", config_text(up.addr, ""));
    let gw = TestGateway::start(&config).await;
    (up, gw)
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.code(), code, "{}", r.text());
    let v = r.json();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["request_id"].is_string(), "{v}");
    assert_eq!(r.headers["content-type"], "application/json");
}

async fn history(gw: &TestGateway, subject: &str) -> Vec<Value> {
    let r = admin_call(
        gw,
        Method::GET,
        &format!("/v1/subjects/{subject}/consents/history"),
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["receipts"].as_array().unwrap().clone()
}

async fn import(gw: &TestGateway, ndjson: &str) -> Reply {
    admin_call(
        gw,
        Method::POST,
        "/v1/consents/import",
        Some(&consent_admin_token()),
        Some(ndjson),
    )
    .await
}

fn consent_of<'a>(current: &'a Value, purpose: &str) -> Option<&'a Value> {
    current["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
}

/// Canonical JSON (keys sorted, no whitespace), computed independently of the gateway.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

#[tokio::test]
async fn put_region_accepts_known_regions_and_refuses_bad_input() {
    let (_up, gw) = gateway().await;
    let t = consent_admin_token();
    let put = |subject: &'static str, body: &'static str| {
        let t = t.clone();
        let gw = &gw;
        async move {
            admin_call(
                gw,
                Method::PUT,
                &format!("/v1/subjects/{subject}"),
                Some(&t),
                Some(body),
            )
            .await
        }
    };

    let r = put("cust-1", r#"{"region":"eu"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"subject": "cust-1", "region": "eu"}));
    let current = current_consents(&gw, "cust-1").await;
    assert_eq!(current["region"], "eu");
    assert_eq!(current["default_region"], "default");

    // Changing the region again is allowed and takes the last value.
    let r = put("cust-1", r#"{"region":"us-ca"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(current_consents(&gw, "cust-1").await["region"], "us-ca");

    // A well-formed region without a policy, a malformed one, unknown keys, not JSON.
    for body in [
        r#"{"region":"mars"}"#,
        r#"{"region":"EU"}"#,
        r#"{"region":""}"#,
        r#"{"region":"eu","extra":1}"#,
        r#"{"region":5}"#,
        r#"{}"#,
        "region=eu",
    ] {
        let r = put("cust-1", body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(
        current_consents(&gw, "cust-1").await["region"],
        "us-ca",
        "refused writes change nothing"
    );

    // Subject ids with characters outside [A-Za-z0-9._:@-].
    for subject in ["a%20b", "a%2Fb", "%C3%A9", "a%00b", "a%3Cscript%3E"] {
        let r = put(subject, r#"{"region":"eu"}"#).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    // Other allowed characters work.
    let r = put("user@example.com", r#"{"region":"eu"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn put_consent_answers_a_complete_receipt() {
    let (_up, gw) = gateway().await;
    let expires = rfc3339_in(86_400);
    let body = json!({"status": "granted", "expires_at": expires, "source": "signup-form v2"});
    let r = put_consent_body(&gw, "cust-2", "marketing", &body.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let receipt = r.json();
    let id = receipt["id"].as_str().unwrap();
    assert!(id.starts_with("rcpt_"), "{receipt}");
    assert_eq!(receipt["subject"], "cust-2");
    assert_eq!(receipt["purpose"], "marketing");
    assert_eq!(receipt["status"], "granted");
    assert_eq!(receipt["source"], "signup-form v2");
    assert!(is_rfc3339(&receipt["recorded_at"]), "{receipt}");
    assert!(is_rfc3339(&receipt["expires_at"]), "{receipt}");
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(parse(&receipt["expires_at"]), parse(&json!(expires)));
    let age = time::OffsetDateTime::now_utc() - parse(&receipt["recorded_at"]);
    assert!(age.whole_seconds().abs() < 60, "recorded_at is now");

    // sha256: 64 lowercase hex digits over the canonical JSON of the rest of the receipt.
    let sha = receipt["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert!(
        sha.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let mut rest = receipt.clone();
    rest.as_object_mut().unwrap().remove("sha256");
    assert_eq!(sha, sha256_hex(canonical(&rest).as_bytes()));

    // A denial: its own receipt, a new id, the previous status recorded.
    let r = put_consent_body(&gw, "cust-2", "marketing", r#"{"status":"denied"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let denial = r.json();
    assert_eq!(denial["status"], "denied");
    assert_eq!(denial["subject"], "cust-2");
    assert_ne!(denial["id"], receipt["id"]);
    assert!(denial["id"].as_str().unwrap() > id, "ids increase");
    assert!(denial.get("expires_at").is_none(), "{denial}");
    assert_eq!(denial["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(denial["prev_status"], "granted");
    gw.shutdown().await;
}

#[tokio::test]
async fn put_consent_refuses_bad_bodies_and_changes_nothing() {
    let (_up, gw) = gateway().await;
    let past = rfc3339_in(-60);
    let bad_bodies = [
        json!({"status": "granted", "expires_at": past}).to_string(),
        json!({"status": "granted", "expires_at": "tomorrow"}).to_string(),
        json!({"status": "granted", "expires_at": "2030-01-01"}).to_string(),
        json!({"status": "maybe"}).to_string(),
        json!({"status": "Granted"}).to_string(),
        // Withdrawal is DELETE, not a PUT status.
        json!({"status": "withdrawn"}).to_string(),
        json!({"status": "granted", "note": "unknown field"}).to_string(),
        json!({"status": "granted", "source": ""}).to_string(),
        json!({"status": "granted", "source": "line\nbreak"}).to_string(),
        json!({"status": true}).to_string(),
        json!({}).to_string(),
        "not json".to_string(),
        String::new(),
    ];
    for body in &bad_bodies {
        let r = put_consent_body(&gw, "cust-3", "marketing", body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }

    // A purpose no loaded policy defines, and a malformed purpose name.
    for purpose in ["astrology", "Marketing", "market%20ing"] {
        let r = put_consent_body(&gw, "cust-3", purpose, r#"{"status":"granted"}"#).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "unknown_purpose");
    }
    // A purpose defined only by one region's policy (us-ca `sale`) is known.
    let r = put_consent_body(&gw, "cust-3", "sale", r#"{"status":"denied"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let current = current_consents(&gw, "cust-3").await;
    let consents = current["consents"].as_array().unwrap();
    assert_eq!(
        consents.len(),
        1,
        "only the good write is stored: {current}"
    );
    assert_eq!(consents[0]["purpose"], "sale");
    assert_eq!(history(&gw, "cust-3").await.len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_withdraws_with_a_receipt() {
    let (_up, gw) = gateway().await;
    let grant = put_consent_status(&gw, "cust-4", "analytics", "granted").await;
    let w = withdraw_consent(&gw, "cust-4", "analytics").await;
    assert_eq!(w["status"], "withdrawn");
    assert_eq!(w["subject"], "cust-4");
    assert_eq!(w["purpose"], "analytics");
    assert_eq!(w["prev_status"], "granted");
    assert!(w["id"].as_str().unwrap() > grant["id"].as_str().unwrap());
    assert_eq!(w["sha256"].as_str().unwrap().len(), 64);
    assert!(is_rfc3339(&w["recorded_at"]));

    let current = current_consents(&gw, "cust-4").await;
    let c = consent_of(&current, "analytics").unwrap();
    assert_eq!(c["status"], "withdrawn");
    assert_eq!(c["effective"], "withdrawn");
    assert_eq!(c["receipt_id"], w["id"]);

    // A grant after a withdrawal counts again.
    put_consent_status(&gw, "cust-4", "analytics", "granted").await;
    let current = current_consents(&gw, "cust-4").await;
    assert_eq!(
        consent_of(&current, "analytics").unwrap()["effective"],
        "granted"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn current_state_shows_the_effective_consent_per_purpose() {
    let (_up, gw) = gateway().await;
    set_subject_region(&gw, "cust-5", "eu").await;
    put_consent_status(&gw, "cust-5", "marketing", "denied").await;
    let last_marketing = put_consent_status(&gw, "cust-5", "marketing", "granted").await;
    put_consent_status(&gw, "cust-5", "analytics", "denied").await;
    let body = json!({"status": "granted", "expires_at": rfc3339_in(2)}).to_string();
    let r = put_consent_body(&gw, "cust-5", "personalisation", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let long = json!({"status": "granted", "expires_at": rfc3339_in(3600)}).to_string();
    let r = put_consent_body(&gw, "cust-5", "sale", &long).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    withdraw_consent(&gw, "cust-5", "cross_context_advertising").await;

    sleep_ms(2500).await;
    let current = current_consents(&gw, "cust-5").await;
    assert_eq!(current["subject"], "cust-5");
    assert_eq!(current["region"], "eu");
    assert_eq!(
        current["consents"].as_array().unwrap().len(),
        5,
        "{current}"
    );
    let effective = |p: &str| consent_of(&current, p).unwrap()["effective"].clone();
    assert_eq!(effective("marketing"), "granted");
    assert_eq!(effective("analytics"), "denied");
    assert_eq!(effective("personalisation"), "expired");
    assert_eq!(effective("sale"), "granted");
    assert_eq!(effective("cross_context_advertising"), "withdrawn");
    let m = consent_of(&current, "marketing").unwrap();
    assert_eq!(m["status"], "granted");
    assert_eq!(m["receipt_id"], last_marketing["id"]);
    let p = consent_of(&current, "personalisation").unwrap();
    assert_eq!(p["status"], "granted", "the stored status stays granted");

    // A subject nobody wrote about: no region, no consents.
    let empty = current_consents(&gw, "nobody").await;
    assert_eq!(empty["region"], Value::Null);
    assert_eq!(empty["consents"], json!([]));
    gw.shutdown().await;
}

#[tokio::test]
async fn history_lists_every_change_oldest_first() {
    let (_up, gw) = gateway().await;
    let mut acked = Vec::new();
    acked.push(put_consent_status(&gw, "cust-6", "marketing", "granted").await);
    acked.push(put_consent_status(&gw, "cust-6", "analytics", "denied").await);
    acked.push(withdraw_consent(&gw, "cust-6", "marketing").await);
    acked.push(put_consent_status(&gw, "cust-6", "marketing", "granted").await);
    acked.push(put_consent_status(&gw, "cust-6", "marketing", "granted").await);
    acked.push(put_consent_status(&gw, "cust-6", "analytics", "granted").await);
    // Another subject's changes do not show up.
    put_consent_status(&gw, "cust-6b", "marketing", "granted").await;

    let receipts = history(&gw, "cust-6").await;
    assert_eq!(
        receipts, acked,
        "history is exactly the acknowledged receipts, in order"
    );
    let ids: Vec<&str> = receipts.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "ids strictly increase");
    let statuses: Vec<&str> = receipts
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "granted",
            "denied",
            "withdrawn",
            "granted",
            "granted",
            "granted"
        ]
    );
    assert!(history(&gw, "nobody").await.is_empty());

    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/cust-6/consents/history?format=xml",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    gw.shutdown().await;
}

#[tokio::test]
async fn kantara_needs_a_controller_table() {
    let (_up, gw) = gateway().await;
    put_consent_status(&gw, "cust-7", "marketing", "granted").await;
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/cust-7/consents/history?format=kantara",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    gw.shutdown().await;
}

#[tokio::test]
async fn kantara_receipt_has_the_consent_receipt_fields() {
    let (_up, gw) = gateway_with_controller().await;
    put_consent_status(&gw, "cust-8", "marketing", "granted").await;
    let body = json!({"status": "granted", "expires_at": rfc3339_in(86_400)}).to_string();
    let r = put_consent_body(&gw, "cust-8", "analytics", &body).await;
    assert_eq!(r.status, StatusCode::OK);
    put_consent_status(&gw, "cust-8", "personalisation", "denied").await;
    let last = withdraw_consent(&gw, "cust-8", "marketing").await;

    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/cust-8/consents/history?format=kantara",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let k = r.json();
    assert_eq!(k["version"], "KI-CR-v1.1.0");
    assert_eq!(k["jurisdiction"], "EU");
    assert!(
        k["consentTimestamp"].as_i64().unwrap() > 1_600_000_000,
        "{k}"
    );
    assert!(
        k["collectionMethod"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(k["consentReceiptID"], last["id"]);
    assert_eq!(k["piiPrincipalId"], "cust-8");
    let controllers = k["piiControllers"].as_array().unwrap();
    assert_eq!(controllers.len(), 1);
    assert_eq!(controllers[0]["piiController"], "Example Shop GmbH");
    assert_eq!(controllers[0]["contact"], "Data Protection Officer");
    assert_eq!(controllers[0]["email"], "privacy@shop.example");
    assert_eq!(controllers[0]["phone"], "+49 30 0000000");
    assert_eq!(
        controllers[0]["address"],
        json!({"streetAddress": "Hauptstr. 1", "addressLocality": "Berlin",
               "postalCode": "10115", "addressCountry": "DE"})
    );
    assert_eq!(k["policyUrl"], "https://shop.example/privacy");
    let services = k["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["service"], "Example Shop");
    let purposes = services[0]["purposes"].as_array().unwrap();
    let names: Vec<&str> = purposes
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["analytics", "marketing", "personalisation"]);
    for p in purposes {
        assert!(p["consentType"].is_string(), "{p}");
        assert!(p["purposeCategory"].is_array(), "{p}");
        assert!(p["piiCategory"].is_array(), "{p}");
        assert!(p["termination"].is_string(), "{p}");
    }
    // The consent type is the kind of consent relied on; how it ended is the termination.
    assert_eq!(purposes[0]["consentType"], "EXPLICIT");
    assert!(
        purposes[1]["termination"]
            .as_str()
            .unwrap()
            .starts_with("withdrawn")
    );
    assert!(
        purposes[2]["termination"]
            .as_str()
            .unwrap()
            .starts_with("refused")
    );
    assert_eq!(k["sensitive"], false);

    // No history: nothing to put on a receipt.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/nobody/consents/history?format=kantara",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn import_applies_all_good_lines() {
    let (_up, gw) = gateway().await;
    let ndjson = [
        json!({"subject": "imp-1", "purpose": "marketing", "status": "granted", "region": "eu",
               "source": "cmp-export", "expires_at": "2099-01-01T00:00:00Z"}),
        json!({"subject": "imp-1", "purpose": "analytics", "status": "denied"}),
        json!({"subject": "imp-2", "purpose": "sale", "status": "withdrawn", "region": "us-ca",
               "recorded_at": "2024-05-01T10:00:00Z"}),
        json!({"subject": "imp-1", "purpose": "marketing", "status": "denied"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
        + "\n";
    let r = import(&gw, &ndjson).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["imported"], 4, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");

    let c1 = current_consents(&gw, "imp-1").await;
    assert_eq!(c1["region"], "eu");
    assert_eq!(
        consent_of(&c1, "marketing").unwrap()["status"],
        "denied",
        "later lines win"
    );
    assert_eq!(consent_of(&c1, "analytics").unwrap()["status"], "denied");
    let c2 = current_consents(&gw, "imp-2").await;
    assert_eq!(c2["region"], "us-ca");
    assert_eq!(consent_of(&c2, "sale").unwrap()["effective"], "withdrawn");

    let h1 = history(&gw, "imp-1").await;
    assert_eq!(h1.len(), 3);
    assert_eq!(h1[0]["source"], "cmp-export");
    assert_eq!(h1[0]["status"], "granted");
    assert_eq!(h1[2]["status"], "denied");
    assert!(h1.iter().all(|r| r["collection_method"] == "import"));
    let h2 = history(&gw, "imp-2").await;
    assert_eq!(h2.len(), 1);
    assert!(
        h2[0]["recorded_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-01T10:00:00")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn import_with_one_bad_line_applies_nothing() {
    let (_up, gw) = gateway().await;
    let lines = [
        json!({"subject": "batch-1", "purpose": "marketing", "status": "granted", "region": "eu"})
            .to_string(),
        json!({"subject": "batch-2", "purpose": "analytics", "status": "denied"}).to_string(),
        json!({"subject": "batch-3", "purpose": "marketing", "status": "maybe"}).to_string(),
        json!({"subject": "batch-4", "purpose": "marketing", "status": "granted"}).to_string(),
    ];
    let r = import(&gw, &lines.join("\n")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let v = r.json();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["line"], 3);
    assert!(errors[0]["reason"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["imported"], 0);

    for subject in ["batch-1", "batch-2", "batch-3", "batch-4"] {
        let c = current_consents(&gw, subject).await;
        assert_eq!(c["consents"], json!([]), "{subject}: {c}");
        assert_eq!(c["region"], Value::Null, "{subject}: {c}");
        assert!(history(&gw, subject).await.is_empty());
    }

    // Several bad lines are all reported, with their numbers (blank lines still count).
    let text = format!(
        "{}\n\nnot json\n{}\n{}\n",
        lines[0],
        json!({"subject": "batch-1", "purpose": "marketing", "status": "granted", "extra": 1}),
        json!({"subject": "a b", "purpose": "marketing", "status": "granted"}),
    );
    let r = import(&gw, &text).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let v = r.json();
    let numbers: Vec<u64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 4, 5], "{v}");
    assert!(
        !v.to_string().contains("a b"),
        "errors do not echo values: {v}"
    );
    assert_eq!(
        current_consents(&gw, "batch-1").await["consents"],
        json!([])
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn import_refuses_what_the_single_write_endpoints_refuse() {
    let (_up, gw) = gateway().await;
    let r = import(
        &gw,
        &json!({"subject": "imp-x", "purpose": "marketing", "status": "granted", "region": "mars"})
            .to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = import(
        &gw,
        &json!({"subject": "imp-y", "purpose": "astrology", "status": "granted"}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn every_consent_endpoint_checks_the_token_and_its_scope() {
    let (_up, gw) = gateway().await;
    set_subject_region(&gw, "cust-9", "eu").await;
    put_consent_status(&gw, "cust-9", "marketing", "granted").await;

    let read = token("dashboard", &[], "consent:read");
    let write = token("cmp", &[], "consent:write");
    let other = token(
        "auditor",
        &["marketing"],
        "audit:read policy:read policy:admin",
    );
    let import_line =
        json!({"subject": "cust-9", "purpose": "marketing", "status": "denied"}).to_string();
    let region = r#"{"region":"us-ca"}"#;
    let grant = r#"{"status":"denied"}"#;
    let writes: [(Method, &str, Option<&str>); 4] = [
        (Method::PUT, "/v1/subjects/cust-9", Some(region)),
        (
            Method::PUT,
            "/v1/subjects/cust-9/consents/marketing",
            Some(grant),
        ),
        (
            Method::DELETE,
            "/v1/subjects/cust-9/consents/marketing",
            None,
        ),
        (Method::POST, "/v1/consents/import", Some(&import_line)),
    ];
    let reads: [(Method, &str, Option<&str>); 3] = [
        (Method::GET, "/v1/subjects/cust-9/consents", None),
        (Method::GET, "/v1/subjects/cust-9/consents/history", None),
        (
            Method::GET,
            "/v1/subjects/cust-9/consents/history?format=kantara",
            None,
        ),
    ];
    for (method, path, body) in writes.iter().chain(reads.iter()) {
        for bad in [None, Some("not-a-jwt"), Some("a.b.c")] {
            let r = admin_call(&gw, method.clone(), path, bad, *body).await;
            assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
            assert_eq!(r.headers["www-authenticate"], "Bearer", "{method} {path}");
        }
        let r = admin_call(&gw, method.clone(), path, Some(&other), *body).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden_purpose");
    }
    for (method, path, body) in &writes {
        let r = admin_call(&gw, method.clone(), path, Some(&read), *body).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden_purpose");
    }
    for (method, path, body) in &reads {
        let r = admin_call(&gw, method.clone(), path, Some(&write), *body).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden_purpose");
    }

    // None of the refused writes changed anything.
    let current = current_consents(&gw, "cust-9").await;
    assert_eq!(current["region"], "eu");
    assert_eq!(
        consent_of(&current, "marketing").unwrap()["status"],
        "granted"
    );
    assert_eq!(history(&gw, "cust-9").await.len(), 1);

    // And the right scope works.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/cust-9/consents",
        Some(&read),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = admin_call(
        &gw,
        Method::PUT,
        "/v1/subjects/cust-9/consents/marketing",
        Some(&write),
        Some(grant),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
}
