//! Compliance figures against a known seeded history (`tests/stats_seed`): `GET /v1/stats`
//! and the Prometheus series on `/metrics` give the numbers written out here by hand, over
//! real sockets with the real policies, store and audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stats_seed;

use std::collections::BTreeMap;

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn cell<'a>(list: &'a Value, region: &str, purpose: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == region && c["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no cell {region}/{purpose} in {list:#}"))
}

fn stats_url(gw: &TestGateway) -> String {
    let q = format!(
        "from={}&to={}",
        rfc3339_in(-3600).replace('+', "%2B"),
        rfc3339_in(60).replace('+', "%2B")
    );
    admin_url(gw, &format!("/v1/stats?{q}"))
}

/// Every audit record of the gateway, read from its files (the oracle for masked values).
fn audit_records(gw: &TestGateway) -> Vec<Value> {
    let dir = gw.dir.path().join("data/audit");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_metrics_give_the_seeded_figures() {
    let up = stats_seed::upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    stats_seed::seed(&gw).await;

    let r = get(&stats_url(&gw), Some(&auditor_token()), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let s = r.json();

    // Consent states now, from the store's tally.
    let eu = cell(&s["consent"], "eu", "marketing");
    assert_eq!(
        (
            &eu["granted"],
            &eu["denied"],
            &eu["withdrawn"],
            &eu["expired"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{eu}"
    );
    assert_eq!(eu["subjects"], 4);
    assert_eq!(eu["consent_rate"], 0.25);
    let sale = cell(&s["consent"], "us-ca", "sale");
    assert_eq!(
        (&sale["denied"], &sale["consent_rate"]),
        (&json!(1), &json!(0.0))
    );
    let def = cell(&s["consent"], "default", "marketing");
    assert_eq!(
        (&def["granted"], &def["consent_rate"]),
        (&json!(1), &json!(1.0))
    );
    // A purpose nobody decided on: zeros and no rate.
    let none = cell(&s["consent"], "eu", "analytics");
    assert_eq!(
        (&none["subjects"], &none["consent_rate"]),
        (&json!(0), &Value::Null)
    );

    // Accesses over the window, from the audit log.
    assert_eq!(s["records"], 11);
    let a = cell(&s["accesses"], "eu", "marketing");
    assert_eq!(a["accesses"], 7, "{a:#}");
    assert_eq!(a["by_decision"], json!({"allow": 4, "deny": 3}));
    assert_eq!(
        a["by_reason"],
        json!({"opt_in_consent_granted": 3, "unprocessable_upstream_body": 1,
               "consent_denied": 1, "consent_withdrawn": 1, "consent_expired": 1})
    );
    assert_eq!(a["fields_withheld"], 6);
    assert_eq!(a["values_masked"]["mask_email"], 3);
    assert_eq!(a["incidents"], json!({"fail_closed": 1}));
    let ca = cell(&s["accesses"], "us-ca", "sale");
    assert_eq!(ca["by_decision"], json!({"allow": 1, "deny": 1}));
    assert_eq!(ca["gpc_applied"], 1);
    assert_eq!(ca["fields_withheld"], 2);
    let br = cell(&s["accesses"], "br", "personalisation");
    assert_eq!(br["by_decision"], json!({"report_deny": 1}));
    assert_eq!(br["by_reason"], json!({"consent_missing": 1}));
    assert_eq!(br["incidents"], json!({"report_deny": 1}));
    assert_eq!(
        s["incidents"],
        json!({"report_deny": 1, "fail_closed": 1, "audit_failures_since_start": 0,
               "policy_reload_failures_since_start": 0})
    );
    // Values masked per redactor agree with the audit records themselves.
    let mut masked: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for rec in audit_records(&gw) {
        for (name, n) in rec["redactions"].as_object().unwrap() {
            let key = (
                rec["region"].as_str().unwrap_or("-").to_owned(),
                rec["purpose"].as_str().unwrap_or("-").to_owned(),
                name.clone(),
            );
            *masked.entry(key).or_default() += n.as_u64().unwrap();
        }
    }
    for ((region, purpose, name), n) in &masked {
        assert_eq!(
            cell(&s["accesses"], region, purpose)["values_masked"][name],
            *n
        );
    }
    // Timeline: every access counted once, per decision.
    let points = s["timeline"]["points"].as_array().unwrap();
    let total = |k: &str| points.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (total("allow"), total("deny"), total("report_deny")),
        (5, 5, 1)
    );
    // Top callers and subjects with their report links.
    assert_eq!(
        s["top_callers"]["marketing"],
        json!([{"caller": "crm", "accesses": 6}, {"caller": "ads", "accesses": 1}])
    );
    let top = &s["top_subjects"][0];
    assert_eq!(top["subject"], "c-eu-1");
    assert_eq!(top["accesses"], 5);
    assert_eq!(top["report"], "/v1/subjects/c-eu-1/report");
    let report = get(
        &admin_url(&gw, top["report"].as_str().unwrap()),
        Some(&auditor_token()),
        &[],
    )
    .await;
    assert_eq!(report.status, StatusCode::OK);

    // The same figures as Prometheus series, text format 0.0.4 by default.
    let m = get(&admin_url(&gw, "/metrics"), None, &[]).await;
    assert_eq!(
        m.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let t = m.text();
    let expect = [
        (
            "consentgate_consent_subjects{region=\"eu\",purpose=\"marketing\",state=\"granted\"}",
            1.0,
        ),
        (
            "consentgate_consent_subjects{region=\"eu\",purpose=\"marketing\",state=\"expired\"}",
            1.0,
        ),
        (
            "consentgate_consent_subjects{region=\"eu\",purpose=\"analytics\",state=\"granted\"}",
            0.0,
        ),
        (
            "consentgate_consent_rate{region=\"eu\",purpose=\"marketing\"}",
            0.25,
        ),
        (
            "consentgate_consent_rate{region=\"default\",purpose=\"marketing\"}",
            1.0,
        ),
        (
            "consentgate_accesses_total{region=\"eu\",purpose=\"marketing\",decision=\"allow\",reason=\"opt_in_consent_granted\"}",
            3.0,
        ),
        (
            "consentgate_accesses_total{region=\"eu\",purpose=\"marketing\",decision=\"deny\",reason=\"consent_expired\"}",
            1.0,
        ),
        (
            "consentgate_gpc_applied_total{region=\"us-ca\",purpose=\"sale\"}",
            1.0,
        ),
        (
            "consentgate_fields_withheld_total{region=\"eu\",purpose=\"marketing\"}",
            6.0,
        ),
        (
            "consentgate_values_masked_total{region=\"eu\",purpose=\"marketing\",redactor=\"mask_email\"}",
            3.0,
        ),
        (
            "consentgate_incidents_total{region=\"br\",purpose=\"personalisation\",kind=\"report_deny\"}",
            1.0,
        ),
        (
            "consentgate_incidents_total{region=\"eu\",purpose=\"marketing\",kind=\"fail_closed\"}",
            1.0,
        ),
        ("consentgate_policy_reload_failures_total", 0.0),
        // The 11 seeded accesses, and the auditor's read of a subject report above (reads of
        // reports are themselves recorded).
        ("consentgate_audit_records_total", 12.0),
        ("consentgate_audit_healthy", 1.0),
    ];
    for (series, want) in expect {
        assert_eq!(metric(&t, series), Some(want), "{series}\n{t}");
    }
    assert!(
        t.contains("# TYPE consentgate_accesses_total counter\n"),
        "{t}"
    );
    assert!(!t.contains("# EOF"));
    // Label sets hold only names from the policies.
    assert!(!t.contains("nonexistent_purpose"), "{t}");
    assert_eq!(
        metric(
            &t,
            "consentgate_accesses_total{region=\"eu\",purpose=\"-\",decision=\"deny\",reason=\"unknown_purpose\"}"
        ),
        Some(1.0),
        "{t}"
    );

    // OpenMetrics when asked for.
    let om = get(
        &admin_url(&gw, "/metrics"),
        None,
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        )],
    )
    .await;
    assert!(
        om.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let ot = om.text();
    assert!(ot.ends_with("# EOF\n"));
    assert!(ot.contains("# TYPE consentgate_accesses counter\n"), "{ot}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_checks_its_token_and_window() {
    let up = stats_seed::upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let url = admin_url(&gw, "/v1/stats");
    assert_eq!(get(&url, None, &[]).await.code(), "unauthenticated");
    let r = get(&url, Some(&consent_admin_token()), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    for bad in [
        "?from=yesterday",
        "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "?to=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
        "?limit=3",
    ] {
        let r = get(&format!("{url}{bad}"), Some(&auditor_token()), &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert_eq!(r.code(), "bad_request");
    }
    let r = admin_call(&gw, Method::POST, "/v1/stats", Some(&auditor_token()), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // An empty log, a window in the past: zeros, and every policy purpose listed.
    let r = get(
        &format!("{url}?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"),
        Some(&auditor_token()),
        &[],
    )
    .await;
    let s = r.json();
    assert_eq!(s["records"], 0);
    assert_eq!(s["accesses"], json!([]));
    assert_eq!(cell(&s["consent"], "br", "personalisation")["subjects"], 0);
    gw.shutdown().await;
}
