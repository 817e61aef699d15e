//! Receipts to the standard, through real sockets: every Kantara Consent Receipt v1.1 the
//! gateway writes validates against the vendored schema (`tests/data/kantara-cr-v1.1.schema.json`)
//! and carries real values (collection method from `source`, categories and lawful basis from
//! the policy, the controller from `[controller]`); the native and ISO/IEC TS 27560 formats
//! name who recorded each change, the schema version, notice, retention and withdrawal method.

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
language = "de"
[controller.address]
street = "Hauptstr. 1"
locality = "Berlin"
postal_code = "10115"
country = "DE"
"#;

fn schema() -> (boon::Schemas, boon::SchemaIndex) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kantara-cr-v1.1.schema.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    compiler.add_resource("urn:kantara-cr-v1.1", doc).unwrap();
    let index = compiler
        .compile("urn:kantara-cr-v1.1", &mut schemas)
        .unwrap();
    (schemas, index)
}

fn assert_valid(receipt: &Value) {
    let (schemas, index) = schema();
    if let Err(e) = schemas.validate(receipt, index) {
        panic!("receipt fails the Kantara CR v1.1 schema: {e:#}\n{receipt:#}");
    }
}

async fn gateway_with(
    config_extra: &str,
    policies: Option<&std::path::Path>,
) -> (Upstream, TestGateway) {
    let up = Upstream::json(json!({})).await;
    let mut config = format!("{}{config_extra}", config_text(up.addr, ""));
    if let Some(dir) = policies {
        config = config.replace(
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            &dir.display().to_string(),
        );
    }
    let gw = TestGateway::start(&config).await;
    (up, gw)
}

async fn history(gw: &TestGateway, subject: &str, format: &str) -> Reply {
    admin_call(
        gw,
        Method::GET,
        &format!("/v1/subjects/{subject}/consents/history?format={format}"),
        Some(&consent_admin_token()),
        None,
    )
    .await
}

async fn kantara(gw: &TestGateway, subject: &str) -> Value {
    let r = history(gw, subject, "kantara").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_valid(&v);
    v
}

fn purposes(k: &Value) -> Vec<Value> {
    k["services"][0]["purposes"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_kantara_receipt_validates_and_carries_real_values() {
    let (_up, gw) = gateway_with(CONTROLLER, None).await;

    // A grant collected by a web form, with an expiry.
    let body = json!({"status": "granted", "source": "checkout web form v3",
                      "expires_at": rfc3339_in(86_400)})
    .to_string();
    let grant = put_consent_body(&gw, "kr-1", "marketing", &body).await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.text());
    let k = kantara(&gw, "kr-1").await;
    assert_eq!(k["collectionMethod"], "checkout web form v3");
    assert_eq!(k["consentReceiptID"], grant.json()["id"]);
    assert_eq!(k["language"], "de");
    assert_eq!(
        k["piiControllers"][0]["address"],
        json!({"streetAddress": "Hauptstr. 1", "addressLocality": "Berlin",
               "postalCode": "10115", "addressCountry": "DE"})
    );
    let p = &purposes(&k)[0];
    assert_eq!(p["purpose"], "marketing");
    assert_eq!(p["purposeCategory"], json!(["6 - Marketing"]));
    assert_eq!(p["piiCategory"], json!(["1 - Biographical", "2 - Contact"]));
    assert_eq!(p["consentType"], "EXPLICIT");
    assert!(
        p["termination"]
            .as_str()
            .unwrap()
            .starts_with("expires at "),
        "{p}"
    );
    assert_eq!(p["thirdPartyDisclosure"], false);
    assert_eq!(k["sensitive"], false);

    // Denied and withdrawn purposes stay valid receipts: the consent type is what the
    // controller relies on, the termination says how it ended.
    put_consent_status(&gw, "kr-1", "analytics", "denied").await;
    put_consent_status(&gw, "kr-1", "personalisation", "granted").await;
    let last = withdraw_consent(&gw, "kr-1", "personalisation").await;
    let k = kantara(&gw, "kr-1").await;
    assert_eq!(k["consentReceiptID"], last["id"]);
    assert_eq!(
        k["collectionMethod"], "api",
        "a withdrawal without source: the API"
    );
    let ps = purposes(&k);
    let names: Vec<&str> = ps.iter().map(|p| p["purpose"].as_str().unwrap()).collect();
    assert_eq!(names, ["analytics", "marketing", "personalisation"]);
    for p in &ps {
        assert!(
            ["EXPLICIT", "IMPLICIT"].contains(&p["consentType"].as_str().unwrap()),
            "{p}"
        );
    }
    assert!(
        ps[0]["termination"]
            .as_str()
            .unwrap()
            .starts_with("refused"),
        "{}",
        ps[0]
    );
    assert!(
        ps[2]["termination"]
            .as_str()
            .unwrap()
            .starts_with("withdrawn"),
        "{}",
        ps[2]
    );
    assert_eq!(
        ps[0]["purposeCategory"],
        json!(["16 - Improve Performance"])
    );

    // A subject in us-ca: the categories come from the subject's region's policy.
    set_subject_region(&gw, "kr-2", "us-ca").await;
    put_consent_status(&gw, "kr-2", "sale", "granted").await;
    let k = kantara(&gw, "kr-2").await;
    assert_eq!(
        purposes(&k)[0]["purposeCategory"],
        json!(["9 - Sharing for Marketing"])
    );

    // An imported line keeps its source as the collection method.
    let line = json!({"subject": "kr-3", "purpose": "marketing", "status": "granted",
                      "region": "eu", "source": "cmp-export-2026-11"});
    let r = admin_call(
        &gw,
        Method::POST,
        "/v1/consents/import",
        Some(&consent_admin_token()),
        Some(&format!("{line}\n")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let k = kantara(&gw, "kr-3").await;
    assert_eq!(k["collectionMethod"], "cmp-export-2026-11");
    gw.shutdown().await;
}

#[test]
fn the_schema_refuses_what_the_old_receipts_had() {
    // The validator is not vacuous: the shapes issue 14 measured fail it.
    let good = json!({
        "version": "KI-CR-v1.1.0", "jurisdiction": "EU", "consentTimestamp": 1_700_000_000,
        "collectionMethod": "web form", "consentReceiptID": "rcpt_00000000000000000001",
        "language": "en", "piiPrincipalId": "c-1",
        "piiControllers": [{"piiController": "X", "contact": "DPO",
            "address": {"streetAddress": "1 Main St", "addressCountry": "IE"},
            "email": "dpo@example.com", "phone": "+353 1 555 0100"}],
        "policyUrl": "https://example.com/privacy",
        "services": [{"service": "Shop", "purposes": [{"purpose": "marketing",
            "purposeCategory": ["6 - Marketing"], "consentType": "EXPLICIT",
            "piiCategory": ["2 - Contact"], "termination": "when withdrawn",
            "thirdPartyDisclosure": false}]}],
        "sensitive": false
    });
    assert_valid(&good);
    let (schemas, index) = schema();
    let mut string_address = good.clone();
    string_address["piiControllers"][0]["address"] = json!("1 Main St, Dublin");
    let mut denied = good.clone();
    denied["services"][0]["purposes"][0]["consentType"] = json!("DENIED");
    let mut no_name = good.clone();
    no_name["services"][0]["purposes"][0]["thirdPartyDisclosure"] = json!(true);
    let mut no_purposes = good.clone();
    no_purposes["services"][0]["purposes"] = json!([]);
    let mut bad_email = good;
    bad_email["piiControllers"][0]["email"] = json!("not an address");
    for bad in [string_address, denied, no_name, no_purposes, bad_email] {
        assert!(schemas.validate(&bad, index).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn purposes_without_declared_categories_get_no_kantara_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = if path.file_name().unwrap() == "eu.yaml" {
                text.replace("    purpose_category: ['6 - Marketing']", "")
            } else {
                text
            };
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    let (_up, gw) = gateway_with(CONTROLLER, Some(dir.path())).await;
    set_subject_region(&gw, "kr-9", "eu").await;
    put_consent_status(&gw, "kr-9", "marketing", "granted").await;
    let r = history(&gw, "kr-9", "kantara").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.code(), "bad_request");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("purpose_category"), "{message}");
    assert!(
        !message.contains("kr-9"),
        "no subject id in errors: {message}"
    );
    // The other formats do not need categories.
    assert_eq!(history(&gw, "kr-9", "native").await.status, StatusCode::OK);
    assert_eq!(
        history(&gw, "kr-9", "iso27560").await.status,
        StatusCode::OK
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn native_and_iso27560_records_name_recorder_notice_retention_and_withdrawal() {
    let (_up, gw) = gateway_with(CONTROLLER, None).await;
    let body = json!({"status": "granted", "source": "app onboarding"}).to_string();
    assert_eq!(
        put_consent_body(&gw, "kr-5", "marketing", &body)
            .await
            .status,
        StatusCode::OK
    );
    withdraw_consent(&gw, "kr-5", "marketing").await;
    put_consent_status(&gw, "kr-5", "order_fulfilment", "granted").await;

    let r = history(&gw, "kr-5", "native").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let n = r.json();
    assert_eq!(n["schema_version"], "consentgate-receipt-v1");
    assert_eq!(n["privacy_notice"], "https://shop.example/privacy");
    let receipts = n["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3);
    for r in receipts {
        assert_eq!(r["recorded_by"], "consent-admin", "{r}");
        assert!(r["policy"].as_str().unwrap().starts_with("default@"), "{r}");
        assert_eq!(r["retention"]["period"], "P6Y", "{r}");
        assert!(
            r["withdrawal_method"]
                .as_str()
                .unwrap()
                .contains("DELETE /v1/subjects/kr-5/consents/"),
            "{r}"
        );
        assert!(
            r["sha256"].is_string(),
            "the stored receipt is kept whole: {r}"
        );
    }
    assert_eq!(receipts[0]["lawful_basis"], "consent");
    assert_eq!(receipts[2]["lawful_basis"], "contract");

    let r = history(&gw, "kr-5", "iso27560").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let iso = r.json();
    let records = iso["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "one record per purpose: {iso}");
    let m = &records[0];
    assert_eq!(m["schema_version"], "consentgate-iso27560-v1");
    assert_eq!(m["pii_principal_id"], "kr-5");
    assert_eq!(m["consent_state"], "dpv:ConsentWithdrawn");
    assert_eq!(m["recorded_by"], "consent-admin");
    assert_eq!(m["notice"]["notice_url"], "https://shop.example/privacy");
    assert_eq!(m["pii_controllers"][0]["party_name"], "Example Shop GmbH");
    assert_eq!(
        m["pii_controllers"][0]["party_address"]["addressCountry"],
        "DE"
    );
    let p = &m["purposes"][0];
    assert_eq!(p["purpose"], "marketing");
    assert_eq!(p["lawful_basis"], "eu-gdpr:A6-1-a");
    assert_eq!(p["retention_period"], "P6Y");
    assert!(
        p["withdrawal_method"]
            .as_str()
            .unwrap()
            .contains("privacy@shop.example"),
        "{p}"
    );
    let events = m["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_state"], "dpv:ConsentGiven");
    assert_eq!(events[0]["collection_method"], "app onboarding");
    assert_eq!(events[1]["event_state"], "dpv:ConsentWithdrawn");
    assert_eq!(records[1]["purposes"][0]["lawful_basis"], "eu-gdpr:A6-1-b");

    let r = history(&gw, "kr-5", "xml").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = history(&gw, "nobody", "iso27560").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    gw.shutdown().await;
}
