//! Every admin act is attributed, through real sockets and the real log: an auditor's read of
//! the audit log and of a subject's access report are audit records themselves (who looked
//! at whose report, when), and so is a policy reload (who reloaded, with what outcome).

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

fn admin_records(gw: &TestGateway) -> Vec<Value> {
    audit_records(&gw.dir.path().join("data/audit"))
        .into_iter()
        .filter(|r| r["route"] == "admin")
        .collect()
}

#[tokio::test]
async fn auditor_reads_are_recorded_with_who_and_whose() {
    let (_up, gw) = gateway().await;
    put_consent_status(&gw, "att-1", "marketing", "granted").await;
    let auditor = token("dpo-office", &[], "audit:read");

    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/att-1/report",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let records = admin_records(&gw);
    assert_eq!(records.len(), 1, "{records:?}");
    let read = &records[0];
    assert_eq!(read["caller"], "dpo-office");
    assert_eq!(read["subject"], "att-1");
    assert_eq!(read["reason"], "admin_report_read");
    assert_eq!(read["path"], "/v1/subjects/{subject}/report");
    assert_eq!(read["method"], "GET");
    assert_eq!(read["status"], 200);
    assert_eq!(read["request_id"], request_id.as_str());
    assert!(read["ts"].is_string());
    assert!(read["purpose"].is_null() && read["region"].is_null());

    // The next report shows the earlier look to the data subject.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/att-1/report",
        Some(&auditor),
        None,
    )
    .await;
    let accesses = r.json()["accesses"].as_array().unwrap().clone();
    assert!(
        accesses
            .iter()
            .any(|a| a["caller"] == "dpo-office" && a["reason"] == "admin_report_read"),
        "{accesses:?}"
    );

    // Reading the log is recorded too, with the subject filter as the subject looked at.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/audit?subject=att-1&limit=5",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = admin_call(&gw, Method::GET, "/v1/audit?limit=5", Some(&auditor), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let records = admin_records(&gw);
    let log_reads: Vec<&Value> = records
        .iter()
        .filter(|r| r["reason"] == "admin_audit_read")
        .collect();
    assert_eq!(log_reads.len(), 2, "{records:?}");
    assert_eq!(log_reads[0]["subject"], "att-1");
    assert!(log_reads[1]["subject"].is_null());
    assert_eq!(log_reads[1]["path"], "/v1/audit");

    // A refused read (bad filter, or no scope) shows nothing and is not a look.
    let before = admin_records(&gw).len();
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/audit?limit=zero",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/att-1/report",
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(admin_records(&gw).len(), before);

    // The chain still verifies with the admin records in it.
    let v = admin_call(&gw, Method::GET, "/v1/audit/verify", Some(&auditor), None)
        .await
        .json();
    assert_eq!(v["ok"], true, "{v}");
    gw.shutdown().await;
}

#[tokio::test]
async fn policy_reloads_name_who_reloaded() {
    let (_up, gw) = gateway().await;
    let admin = token("policy-ops", &[], "policy:admin");
    let r = admin_call(&gw, Method::POST, "/v1/policies/reload", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let records = admin_records(&gw);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["caller"], "policy-ops");
    assert_eq!(records[0]["reason"], "admin_policy_reload");
    assert_eq!(records[0]["path"], "/v1/policies/reload");
    assert_eq!(records[0]["method"], "POST");
    assert!(records[0]["subject"].is_null());
    gw.shutdown().await;
}
