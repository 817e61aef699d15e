//! The decision API (OpenID AuthZEN Authorization API 1.0) through real sockets: the
//! standard's request and response shapes, default values and evaluation semantics, the
//! caller-identity rules, GPC and report mode, one audit record per evaluation, and decisions
//! equal to the proxy's for the same subject, purpose, consent and policies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

async fn post(gw: &TestGateway, path: &str, token: Option<&str>, body: &Value) -> Reply {
    post_raw(gw, path, token, body.to_string().as_bytes(), &[]).await
}

async fn post_raw(
    gw: &TestGateway,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Reply {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(gw.url(path))
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::copy_from_slice(body))).unwrap()).await
}

fn eval(caller: &str, purpose: &str, subject: &str) -> Value {
    json!({
        "subject": {"type": "service", "id": caller},
        "action": {"name": purpose},
        "resource": {"type": "data_subject", "id": subject},
    })
}

fn records(gw: &TestGateway) -> Vec<Value> {
    audit_records(&gw.dir.path().join("data/audit"))
}

async fn setup() -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    set_subject_region(&gw, "c-1001", "eu").await;
    put_consent_status(&gw, "c-1001", "marketing", "granted").await;
    set_subject_region(&gw, "c-2002", "eu").await;
    put_consent_status(&gw, "c-2002", "marketing", "denied").await;
    set_subject_region(&gw, "c-3003", "us-ca").await;
    set_subject_region(&gw, "c-4004", "br").await;
    (up, gw)
}

#[tokio::test]
async fn metadata_names_the_endpoints() {
    let (_up, gw) = setup().await;
    let r = get(&gw.url("/.well-known/authzen-configuration"), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let m = r.json();
    let base = format!("http://{}", gw.addr);
    assert_eq!(m["policy_decision_point"], base);
    assert_eq!(
        m["access_evaluation_endpoint"],
        format!("{base}/access/v1/evaluation")
    );
    assert_eq!(
        m["access_evaluations_endpoint"],
        format!("{base}/access/v1/evaluations")
    );
    let r = post(&gw, "/.well-known/authzen-configuration", None, &json!({})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    gw.shutdown().await;
}

#[tokio::test]
async fn one_evaluation_answers_the_decision_with_its_basis_and_field_rules() {
    let (up, gw) = setup().await;
    let t = token("crm-svc", &["marketing", "support"], "");
    // The SPEC's example shape.
    let mut body = eval("crm-svc", "marketing", "c-1001");
    body["context"] = json!({"gpc": false});
    let r = post_raw(
        &gw,
        "/access/v1/evaluation",
        Some(&t),
        body.to_string().as_bytes(),
        &[("x-request-id", "az-1")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["x-request-id"], "az-1");
    assert_eq!(r.headers["cache-control"], "no-store");
    let v = r.json();
    assert_eq!(v["decision"], true);
    let c = &v["context"];
    assert_eq!(c["reason"], "opt_in_consent_granted");
    assert_eq!(c["region"], "eu");
    assert!(c["policy"].as_str().unwrap().starts_with("eu@"));
    assert_eq!(c["consent"], "granted");
    assert!(
        c["fields"]["allow"]
            .as_array()
            .unwrap()
            .contains(&json!("email"))
    );
    assert!(c["fields"]["redact"].is_array());
    // Denied consent: still 200, decision false with the reason.
    let r = post(
        &gw,
        "/access/v1/evaluation",
        Some(&t),
        &eval("crm-svc", "marketing", "c-2002"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["decision"], false);
    assert_eq!(r.json()["context"]["reason"], "consent_denied");
    // No upstream is involved, and every evaluation has its record.
    assert_eq!(up.count(), 0);
    let recs = records(&gw);
    let az: Vec<&Value> = recs.iter().filter(|r| r["route"] == "authzen").collect();
    assert_eq!(az.len(), 2, "{az:?}");
    assert_eq!(az[0]["request_id"], "az-1");
    assert_eq!(az[0]["method"], "POST");
    assert_eq!(az[0]["path"], "/access/v1/evaluation");
    assert_eq!(az[0]["subject"], "c-1001");
    assert_eq!(az[0]["caller"], "crm-svc");
    assert_eq!(az[0]["purpose"], "marketing");
    assert_eq!(az[0]["decision"], "allow");
    assert_eq!(az[0]["consent"], "granted");
    assert_eq!(az[1]["decision"], "deny");
    assert_eq!(az[1]["reason"], "consent_denied");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_caller_decides_only_for_itself_and_only_its_purposes() {
    let (_up, gw) = setup().await;
    let t = token("crm-svc", &["marketing"], "");
    let cases = [
        (
            eval("other-svc", "marketing", "c-1001"),
            403,
            "forbidden_purpose",
        ),
        (
            eval("crm-svc", "support", "c-1001"),
            403,
            "forbidden_purpose",
        ),
        (
            eval("crm-svc", "Marketing", "c-1001"),
            400,
            "unknown_purpose",
        ),
        (eval("crm-svc", "marketing", "bad id!"), 400, "bad_request"),
        (
            json!({"subject": {"type": "user", "id": "crm-svc"}, "action": {"name": "marketing"},
                   "resource": {"type": "data_subject", "id": "c-1001"}}),
            400,
            "bad_request",
        ),
        (
            json!({"subject": {"type": "service", "id": "crm-svc"},
                   "resource": {"type": "data_subject", "id": "c-1001"}}),
            400,
            "bad_request",
        ),
        (
            json!({"subject": {"type": "service", "id": "crm-svc"}, "action": {"name": "marketing"},
                   "resource": {"type": "data_subject", "id": "c-1001"}, "context": {"gpc": "1"}}),
            400,
            "bad_request",
        ),
    ];
    for (body, status, code) in &cases {
        let r = post(&gw, "/access/v1/evaluation", Some(&t), body).await;
        assert_eq!(r.status.as_u16(), *status, "{body}: {}", r.text());
        assert_eq!(r.code(), *code, "{body}");
    }
    // A purpose the caller may declare but no loaded policy defines.
    let t2 = token("crm-svc", &["telepathy"], "");
    let r = post(
        &gw,
        "/access/v1/evaluation",
        Some(&t2),
        &eval("crm-svc", "telepathy", "c-1001"),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "unknown_purpose".into())
    );
    // No token, a malformed body, duplicate keys.
    let r = post(
        &gw,
        "/access/v1/evaluation",
        None,
        &eval("crm-svc", "marketing", "c-1001"),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "unauthenticated".into())
    );
    for raw in [
        &b"not json"[..],
        br#"{"subject":{"type":"service","id":"crm-svc"},"subject":{"type":"service","id":"x"},"action":{"name":"marketing"},"resource":{"type":"data_subject","id":"c-1001"}}"#,
    ] {
        let r = post_raw(&gw, "/access/v1/evaluation", Some(&t), raw, &[]).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "bad_request".into()));
    }
    let r = get(&gw.url("/access/v1/evaluation"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // Every refusal is audited, the unauthenticated one without a subject.
    let recs = records(&gw);
    let az: Vec<&Value> = recs.iter().filter(|r| r["route"] == "authzen").collect();
    assert_eq!(az.len(), cases.len() + 4, "{az:?}");
    assert!(az.iter().all(|r| r["decision"] == "deny"));
    let unauth = az
        .iter()
        .find(|r| r["reason"] == "unauthenticated")
        .unwrap();
    assert_eq!(unauth["subject"], Value::Null);
    assert_eq!(unauth["caller"], Value::Null);
    gw.shutdown().await;
}

#[tokio::test]
async fn batches_take_defaults_and_follow_the_evaluation_semantics() {
    let (_up, gw) = setup().await;
    let t = token("crm-svc", &["marketing", "support"], "");
    let subjects = ["c-1001", "c-2002", "c-1001"];
    let batch = |semantic: Option<&str>| {
        let mut b = json!({
            "subject": {"type": "service", "id": "crm-svc"},
            "action": {"name": "marketing"},
            "evaluations": subjects.iter().map(|s| json!({"resource": {"type": "data_subject", "id": s}})).collect::<Vec<_>>(),
        });
        if let Some(s) = semantic {
            b["options"] = json!({"evaluations_semantic": s});
        }
        b
    };
    let decisions = |r: &Reply| -> Vec<bool> {
        r.json()["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["decision"].as_bool().unwrap())
            .collect()
    };
    let before = records(&gw).len();
    let r = post(&gw, "/access/v1/evaluations", Some(&t), &batch(None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json().get("decision").is_none());
    assert_eq!(decisions(&r), [true, false, true]);
    let r = post(
        &gw,
        "/access/v1/evaluations",
        Some(&t),
        &batch(Some("execute_all")),
    )
    .await;
    assert_eq!(decisions(&r), [true, false, true]);
    let r = post(
        &gw,
        "/access/v1/evaluations",
        Some(&t),
        &batch(Some("deny_on_first_deny")),
    )
    .await;
    assert_eq!(decisions(&r), [true, false]);
    let r = post(
        &gw,
        "/access/v1/evaluations",
        Some(&t),
        &batch(Some("permit_on_first_permit")),
    )
    .await;
    assert_eq!(decisions(&r), [true]);
    // Only what was evaluated is recorded: 3 + 3 + 2 + 1.
    assert_eq!(records(&gw).len() - before, 9);
    // An entry's own value wins over the default; a refused entry is decision false with the
    // error in its context, and the others still run.
    let mixed = json!({
        "subject": {"type": "service", "id": "crm-svc"},
        "action": {"name": "marketing"},
        "evaluations": [
            {"resource": {"type": "data_subject", "id": "c-1001"}},
            {"action": {"name": "support"}, "resource": {"type": "data_subject", "id": "c-2002"}},
            {"action": {"name": "analytics"}, "resource": {"type": "data_subject", "id": "c-1001"}},
            {"subject": {"type": "service", "id": "someone-else"}, "resource": {"type": "data_subject", "id": "c-1001"}},
        ],
    });
    let r = post(&gw, "/access/v1/evaluations", Some(&t), &mixed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json()["evaluations"].clone();
    assert_eq!(e[0]["decision"], true);
    assert_eq!(e[1]["decision"], true);
    assert_eq!(e[1]["context"]["reason"], "basis_legitimate_interest");
    assert_eq!(e[2]["decision"], false);
    assert_eq!(e[2]["context"]["error"]["status"], 403);
    assert_eq!(e[2]["context"]["error"]["code"], "forbidden_purpose");
    assert_eq!(e[3]["context"]["error"]["code"], "forbidden_purpose");
    // Limits and options.
    let too_many = json!({
        "subject": {"type": "service", "id": "crm-svc"}, "action": {"name": "marketing"},
        "evaluations": vec![json!({"resource": {"type": "data_subject", "id": "c-1001"}}); 1001],
    });
    let r = post(&gw, "/access/v1/evaluations", Some(&t), &too_many).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "bad_request".into()));
    let r = post(&gw, "/access/v1/evaluations", Some(&t), &batch(Some("any"))).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "bad_request".into()));
    // Without `evaluations` (absent or empty) the batch endpoint answers as the single one
    // (AuthZEN 1.0 §7.1): one decision, refusals as HTTP errors.
    for list in [None, Some(json!([]))] {
        let mut one = json!({
            "subject": {"type": "service", "id": "crm-svc"}, "action": {"name": "marketing"},
            "resource": {"type": "data_subject", "id": "c-2002"},
        });
        if let Some(list) = &list {
            one["evaluations"] = list.clone();
        }
        let r = post(&gw, "/access/v1/evaluations", Some(&t), &one).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["decision"], false);
        assert!(r.json().get("evaluations").is_none());
        one["action"]["name"] = json!("analytics");
        let r = post(&gw, "/access/v1/evaluations", Some(&t), &one).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "forbidden_purpose".into())
        );
    }
    // A batch of 1000 is answered, every evaluation recorded.
    let before = records(&gw).len();
    let thousand = json!({
        "subject": {"type": "service", "id": "crm-svc"}, "action": {"name": "marketing"},
        "evaluations": (0..1000).map(|i| json!({"resource": {"type": "data_subject", "id": format!("c-{}", 1001 + (i % 2) * 1001)}})).collect::<Vec<_>>(),
    });
    let r = post(&gw, "/access/v1/evaluations", Some(&t), &thousand).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["evaluations"].as_array().unwrap().len(), 1000);
    let recs = records(&gw);
    assert_eq!(recs.len() - before, 1000);
    assert!(
        recs[before..]
            .iter()
            .all(|r| r["request_id"] == recs[before]["request_id"])
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn gpc_and_report_mode_decide_as_the_proxy_does() {
    let (_up, gw) = setup().await;
    let t = token("ads-svc", &["sale", "personalisation"], "");
    // us-ca `sale` is opt-out and honours GPC: context.gpc or the request's Sec-GPC.
    let plain = eval("ads-svc", "sale", "c-3003");
    let r = post(&gw, "/access/v1/evaluation", Some(&t), &plain).await;
    assert_eq!(r.json()["decision"], true, "{}", r.text());
    let mut with_context = plain.clone();
    with_context["context"] = json!({"gpc": true});
    let r = post(&gw, "/access/v1/evaluation", Some(&t), &with_context).await;
    assert_eq!(r.json()["decision"], false);
    assert_eq!(r.json()["context"]["reason"], "gpc_opt_out");
    let r = post_raw(
        &gw,
        "/access/v1/evaluation",
        Some(&t),
        plain.to_string().as_bytes(),
        &[("sec-gpc", "1")],
    )
    .await;
    assert_eq!(r.json()["decision"], false);
    // br `personalisation` is in report mode: the proxy releases, so the decision is true,
    // recorded as report_deny.
    let r = post(
        &gw,
        "/access/v1/evaluation",
        Some(&t),
        &eval("ads-svc", "personalisation", "c-4004"),
    )
    .await;
    assert_eq!(r.json()["decision"], true, "{}", r.text());
    assert_eq!(r.json()["context"]["verdict"], "report_deny");
    let last = records(&gw).pop().unwrap();
    assert_eq!(last["decision"], "report_deny");
    gw.shutdown().await;
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A generated policy `gen` with purposes of every basis and mode.
fn generated_policy(rng: &mut Rng) -> String {
    let mut y = format!(
        "region: gen\nname: Generated\nmode: {}\nhonor_gpc: {}\nnon_json: block\npurposes:\n",
        ["enforce", "report"][rng.below(2)],
        rng.below(2) == 0
    );
    for (i, purpose) in ["marketing", "analytics", "support", "sale"]
        .iter()
        .enumerate()
    {
        y.push_str(&format!("  {purpose}:\n"));
        match (i + rng.below(3)) % 3 {
            0 => y.push_str("    basis: consent\n    consent: opt_in\n"),
            1 => y.push_str(&format!(
                "    basis: consent\n    consent: opt_out\n    gpc_opt_out: {}\n",
                rng.below(2) == 0
            )),
            _ => y.push_str("    basis: contract\n"),
        }
        y.push_str("    fields:\n      allow: [id]\n");
    }
    y
}

/// For generated subjects, consents, GPC signals and policies, the decision API's answer is
/// the proxy's: allow or report-deny ⇔ true, 403 consent_required ⇔ false, 400
/// unknown_purpose on both.
#[tokio::test]
async fn decisions_equal_the_proxys_for_generated_inputs() {
    for seed in [11u64, 23, 47] {
        let mut rng = Rng(seed);
        let policies = tempfile::tempdir().unwrap();
        let shipped = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
        for e in std::fs::read_dir(shipped).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), policies.path().join(e.file_name())).unwrap();
            }
        }
        std::fs::write(policies.path().join("gen.yaml"), generated_policy(&mut rng)).unwrap();
        let up = Upstream::json(json!({"id": "x"})).await;
        let config = config_text(up.addr, "")
            .replace(shipped.to_str().unwrap(), policies.path().to_str().unwrap());
        let gw = TestGateway::start(&config).await;
        let purposes = [
            "marketing",
            "analytics",
            "support",
            "sale",
            "personalisation",
        ];
        let regions = [None, Some("eu"), Some("us-ca"), Some("br"), Some("gen")];
        let mut subjects = Vec::new();
        for i in 0..10 {
            let id = format!("g-{seed}-{i}");
            if let Some(region) = regions[rng.below(regions.len())] {
                set_subject_region(&gw, &id, region).await;
            }
            for p in purposes {
                match rng.below(5) {
                    0 => {
                        put_consent_status(&gw, &id, p, "granted").await;
                    }
                    1 => {
                        put_consent_status(&gw, &id, p, "denied").await;
                    }
                    2 => {
                        put_consent_status(&gw, &id, p, "granted").await;
                        withdraw_consent(&gw, &id, p).await;
                    }
                    _ => {}
                }
            }
            subjects.push(id);
        }
        let t = token("svc", &purposes, "");
        for case in 0..40 {
            let subject = &subjects[rng.below(subjects.len())];
            let purpose = purposes[rng.below(purposes.len())];
            let gpc = rng.below(3) == 0;
            let extra: Vec<(&str, &str)> = if gpc { vec![("sec-gpc", "1")] } else { vec![] };
            let proxy = get_personal(
                &gw,
                &format!("/api/customers/{subject}/profile"),
                Some(&t),
                Some(purpose),
                &extra,
            )
            .await;
            let mut body = eval("svc", purpose, subject);
            body["context"] = json!({"gpc": gpc});
            let az = post(&gw, "/access/v1/evaluation", Some(&t), &body).await;
            let label = format!("seed {seed} case {case}: {subject} {purpose} gpc={gpc}");
            match proxy.status.as_u16() {
                200 => {
                    assert_eq!(az.status, StatusCode::OK, "{label}: {}", az.text());
                    assert_eq!(az.json()["decision"], true, "{label}");
                    let verdict = proxy.headers["x-consentgate-decision"].to_str().unwrap();
                    let expect = if verdict == "report-deny" {
                        "report_deny"
                    } else {
                        "allow"
                    };
                    assert_eq!(az.json()["context"]["verdict"], expect, "{label}");
                }
                403 => {
                    assert_eq!(proxy.code(), "consent_required", "{label}");
                    assert_eq!(az.status, StatusCode::OK, "{label}");
                    assert_eq!(az.json()["decision"], false, "{label}");
                }
                other => {
                    assert_eq!(az.status.as_u16(), other, "{label}: {}", az.text());
                    assert_eq!(az.code(), proxy.code(), "{label}");
                }
            }
        }
        gw.shutdown().await;
    }
}
