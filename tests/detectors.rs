//! The built-in detectors through real sockets, with the shipped policies: free-text notes
//! full of personal data come back with every value hidden whole, whatever the order of the
//! purpose's detector list, digits of other scripts included, and the audit record counts the
//! redactions per detector without holding a value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

const SUBJECT: &str = "c-1001";
const PROFILE: &str = "/api/customers/c-1001/profile";

/// Personal values in the notes, each of which must be gone from the answer.
const VALUES: &[&str] = &[
    "4111 1111 1111 1111",
    "４１１１",
    "PL61 1090 1014 0000 0712 1981 2874",
    "2874",
    "DE89370400440532013000",
    "078-05-1123",
    "078 05 1123",
    "1123",
    "::ffff:192.0.2.1",
    "ffff",
    "2001:db8::/32",
    "db8",
    "fe80::1%eth0",
    "eth0",
    "10.0.0.0/8",
    "529.982.247-25",
];

fn notes() -> serde_json::Value {
    json!({
        "id": SUBJECT,
        "support_notes": "card 4111 1111 1111 1111 and ４１１１ １１１１ １１１１ １１１１; IBAN PL61 1090 1014 0000 0712 1981 2874, old one DE89370400440532013000 BIC COBADEFF",
        "tickets": [
            {"text": "SSN 078-05-1123 (also written 078 05 1123)"},
            {"text": "seen from ::ffff:192.0.2.1, 2001:db8::/32, fe80::1%eth0 and 10.0.0.0/8"},
            {"text": "CPF 529.982.247-25"}
        ]
    })
}

#[tokio::test]
async fn default_support_hides_every_value_whole() {
    let up = Upstream::json(notes()).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    set_subject_region(&gw, SUBJECT, "default").await;
    let caller = token("crm", PIPELINE_PURPOSES, "");
    let r = get_personal(&gw, PROFILE, Some(&caller), Some("support"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    for v in VALUES {
        assert!(!text.contains(v), "{v:?} leaked into {text}");
    }
    let body = r.json();
    assert_eq!(
        body["support_notes"],
        "card [CARD] and [CARD]; IBAN [IBAN], old one [IBAN] BIC COBADEFF"
    );
    assert_eq!(
        body["tickets"][1]["text"],
        "seen from [IP], [IP], [IP] and [IP]"
    );
    assert_eq!(body["tickets"][2]["text"], "CPF [CPF]");
    // The audit record counts per detector and holds no value.
    let audit = get(
        &admin_url(&gw, &format!("/v1/audit?subject={SUBJECT}")),
        Some(&auditor_token()),
        &[],
    )
    .await;
    let line = audit.text();
    let record: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(record["redactions"]["card_number"], 2, "{record}");
    assert_eq!(record["redactions"]["iban"], 2, "{record}");
    assert_eq!(record["redactions"]["us_ssn"], 2, "{record}");
    assert_no_markers("the audit record", &line, VALUES);
    gw.shutdown().await;
}
