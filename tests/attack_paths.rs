//! Attack family: request targets that try to reach a person's data past the personal-data
//! checks, or to make the gateway and the upstream disagree about the path. Every target is
//! written byte for byte on a raw socket; each case asserts the exact status and error code,
//! what reached the upstream, the audit trail, and that no personal value came back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

/// What a request target must lead to.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Refused before routing: `status`/`code`, no upstream contact, no audit record.
    Refused(u16, &'static str),
    /// Refused by hyper's parser (plain `400`, no JSON body), nothing routed.
    Unparsed,
    /// The personal route, refused with `status`/`code`: audited `deny`, upstream untouched.
    PersonalDenied(u16, &'static str),
    /// The personal route, allowed: the upstream saw exactly this target; audited `allow`.
    PersonalAllowed(&'static str),
    /// The catalog route: the upstream saw exactly this target; nothing audited.
    Catalog(&'static str),
}

struct Case {
    target: String,
    purpose: Option<&'static str>,
    token: bool,
    want: Want,
}

fn case(target: &str, want: Want) -> Case {
    Case {
        target: target.to_string(),
        purpose: Some("marketing"),
        token: true,
        want,
    }
}

async fn run(cases: Vec<Case>) {
    let (up, gw) = marker_gateway("").await;
    let t = adv_token();
    // The answer eu marketing gives for the subject, to compare allowed answers with.
    let control = get_personal(&gw, ADV_PROFILE, Some(&t), Some("marketing"), &[]).await;
    assert_eq!(control.status.as_u16(), 200, "{}", control.text());
    assert_reply_clean("control", &control, PII_MARKERS);
    let redacted: Value = control.json();
    for (i, c) in cases.iter().enumerate() {
        let rid = format!("path-{i}");
        let mut req = format!(
            "GET {} HTTP/1.1\r\nHost: gw\r\nX-Request-Id: {rid}\r\n",
            c.target
        );
        if c.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(p) = c.purpose {
            req.push_str(&format!("X-Purpose: {p}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        let before = up.count();
        let text = raw_exchange(gw.addr, req.as_bytes(), std::time::Duration::from_secs(5)).await;
        let what = format!("{} ({:?})", c.target, c.want);
        let audited: Vec<Value> = gw_audit(&gw)
            .into_iter()
            .filter(|r| r["request_id"] == rid.as_str())
            .collect();
        match c.want {
            Want::Refused(status, code) => {
                let r = assert_raw(&what, &text, status, code);
                assert_eq!(r.header("x-consentgate-decision"), None, "{what}");
                assert_eq!(up.count(), before, "{what}: upstream contacted");
                assert!(audited.is_empty(), "{what}: {audited:?}");
            }
            Want::Unparsed => {
                assert_raw(&what, &text, 400, "");
                assert_eq!(up.count(), before, "{what}: upstream contacted");
                assert!(audited.is_empty(), "{what}: {audited:?}");
            }
            Want::PersonalDenied(status, code) => {
                let r = assert_raw(&what, &text, status, code);
                assert_eq!(r.header("x-consentgate-decision").as_deref(), Some("deny"));
                assert_eq!(up.count(), before, "{what}: upstream contacted");
                let rec = assert_one_audit(&gw, &rid, "deny", status);
                assert_eq!(rec["route"], "customers", "{what}");
            }
            Want::PersonalAllowed(forwarded) => {
                let r = assert_raw(&what, &text, 200, "");
                assert_eq!(r.header("x-consentgate-decision").as_deref(), Some("allow"));
                assert_eq!(up.count(), before + 1, "{what}");
                assert_eq!(up.last().uri, forwarded, "{what}");
                let body: Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(body, redacted, "{what}");
                let rec = assert_one_audit(&gw, &rid, "allow", 200);
                assert_eq!(rec["route"], "customers", "{what}");
            }
            Want::Catalog(forwarded) => {
                let r = assert_raw(&what, &text, 200, "");
                assert_eq!(r.header("x-consentgate-decision"), None, "{what}");
                assert_eq!(up.count(), before + 1, "{what}");
                assert_eq!(up.last().uri, forwarded, "{what}");
                assert!(r.body.contains("SKU-1234"), "{what}: {}", r.body);
                assert!(audited.is_empty(), "{what}: {audited:?}");
            }
        }
        // The refusal messages name the problem but never echo the target's data.
        if let Some(msg) = serde_json::from_str::<Value>(&RawReply::parse(&text).body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            && matches!(c.want, Want::Refused(400, "bad_path"))
        {
            assert!(
                msg.contains("send a plain, normalised path"),
                "{what}: {msg}"
            );
        }
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn encoded_dot_segments_in_every_spelling_are_refused() {
    let bad = Want::Refused(400, "bad_path");
    let mut cases = Vec::new();
    for dots in [
        "%2e%2e", "%2E%2E", "%2e%2E", ".%2e", "%2e.", ".%2E", "%2E.", "%2e", "%2E",
    ] {
        cases.push(case(
            &format!("/api/customers/c-1001/{dots}/c-1002/profile"),
            bad,
        ));
        cases.push(case(
            &format!("/api/products/{dots}/customers/c-1001/profile"),
            bad,
        ));
    }
    // Overlong UTF-8 dots and other invalid byte sequences.
    for dots in [
        "%c0%ae%c0%ae",
        "%C0%AE",
        "%e0%80%ae%e0%80%ae",
        "%f0%80%80%ae",
        "%c0%2e",
        "%ff",
        "%80",
    ] {
        cases.push(case(
            &format!("/api/customers/c-1001/{dots}/c-1002/profile"),
            bad,
        ));
    }
    // Dot-segments hidden behind path parameters (Tomcat-style).
    for seg in ["..;", "..;x", ".;", ".;jsessionid=1", "..;/.."] {
        cases.push(case(
            &format!("/api/products/{seg}/customers/c-1001/profile"),
            bad,
        ));
    }
    // Climbing above the root.
    for target in [
        "/..",
        "/../api/customers/c-1001/profile",
        "/api/../../customers/c-1001",
    ] {
        cases.push(case(target, Want::Refused(400, "bad_path")));
    }
    run(cases).await;
}

#[tokio::test]
async fn double_encoding_stays_encoded_and_is_not_a_dot_segment() {
    let cases = vec![
        // `%25` is kept encoded, so the upstream sees `%252e`: not a dot-segment for it either
        // (it would have to decode twice). The gateway routes what it forwards.
        case(
            "/api/customers/c-1001/%252e%252e/c-1002/profile",
            Want::PersonalAllowed("/api/customers/c-1001/%252e%252e/c-1002/profile"),
        ),
        case(
            "/api/customers/c-1001/%252E%252E/profile",
            Want::PersonalAllowed("/api/customers/c-1001/%252E%252E/profile"),
        ),
        case(
            "/api/products/%252e%252e/customers/c-1001/profile",
            Want::Catalog("/api/products/%252e%252e/customers/c-1001/profile"),
        ),
        case(
            "/api/products/%25%32%65%25%32%65/customers/c-1001/profile",
            Want::Catalog("/api/products/%252e%252e/customers/c-1001/profile"),
        ),
        case(
            "/api/products/x%252f..%252fcustomers/c-1001/profile",
            Want::Catalog("/api/products/x%252f..%252fcustomers/c-1001/profile"),
        ),
        // A full-width dot is valid UTF-8 and just a character.
        case(
            "/api/customers/c-1001/%ef%bc%8e%ef%bc%8e/profile",
            Want::PersonalAllowed("/api/customers/c-1001/%EF%BC%8E%EF%BC%8E/profile"),
        ),
        // Encoded unreserved characters are decoded once: the same subject, the same checks.
        case(
            "/api/customers/%63%2D1001/profile",
            Want::PersonalAllowed("/api/customers/c-1001/profile"),
        ),
        case(
            "/api/%63ustomers/c-1001/profile",
            Want::PersonalAllowed("/api/customers/c-1001/profile"),
        ),
    ];
    run(cases).await;
}

#[tokio::test]
async fn encoded_separators_nul_controls_and_backslashes_are_refused() {
    let bad = Want::Refused(400, "bad_path");
    let mut cases = Vec::new();
    for sep in ["%2F", "%2f", "%5C", "%5c", "%252F%2F"] {
        cases.push(case(
            &format!("/api/products/x{sep}..{sep}..{sep}customers/c-1001/profile"),
            bad,
        ));
        cases.push(case(&format!("/api/customers/c-1001{sep}profile"), bad));
        cases.push(case(
            &format!("/api/customers/c-1002{sep}..{sep}c-1001/profile"),
            bad,
        ));
    }
    for ctl in [
        "%00",
        "%0a",
        "%0D",
        "%09",
        "%7f",
        "%1b",
        "%0d%0aX-Purpose:%20support",
    ] {
        cases.push(case(&format!("/api/customers/c-1001{ctl}/profile"), bad));
        cases.push(case(&format!("/api/products/x{ctl}"), bad));
    }
    for esc in ["%zz", "%4", "%", "%%32%65", "%G0"] {
        cases.push(case(&format!("/api/customers/c-1001/{esc}/profile"), bad));
    }
    // Raw backslashes: refused by the gateway, or by hyper's parser before it.
    for target in [
        "/api/products/x\\..\\..\\customers/c-1001/profile",
        "/api/customers/c-1001\\profile",
        "\\api\\customers\\c-1001\\profile",
    ] {
        cases.push(case(target, Want::Unparsed));
    }
    // Raw NUL and raw control bytes in the request line never reach routing.
    for target in [
        "/api/customers/c-1001\u{0}/profile",
        "/api/customers/c-1001\u{7f}/profile",
    ] {
        cases.push(case(target, Want::Unparsed));
    }
    run(cases).await;
}

#[tokio::test]
async fn a_path_that_changes_route_on_normalisation_gets_the_checks_of_where_it_lands() {
    let mut cases = vec![
        // Personal-looking, lands on the catalog: forwarded as the catalog path only.
        case(
            "/api/customers/c-1001/../../products/x",
            Want::Catalog("/api/products/x"),
        ),
        case(
            "/api/customers/c-1001/profile/../../../products/x",
            Want::Catalog("/api/products/x"),
        ),
        case(
            "//api//customers//c-1001/..//..//products/x",
            Want::Catalog("/api/products/x"),
        ),
        // Catalog-looking (or public), lands on the personal route: every personal check.
        case(
            "/api/products/../customers/c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
        case(
            "/api/products/x/../../customers/c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
        case(
            "/api/products/./../customers/c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
        case(
            "/api/products;/../customers/c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
        case(
            "//api//products/..//customers///c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
    ];
    for target in [
        "/api/products/../customers/c-1001/profile",
        "/status/../api/customers/c-1001/profile",
        "/api/products/x/../../customers/c-1001/profile",
    ] {
        cases.push(Case {
            purpose: None,
            ..case(target, Want::PersonalDenied(400, "missing_purpose"))
        });
        cases.push(Case {
            token: false,
            ..case(target, Want::PersonalDenied(401, "unauthenticated"))
        });
        cases.push(Case {
            purpose: Some("support,marketing"),
            ..case(target, Want::PersonalDenied(400, "unknown_purpose"))
        });
    }
    // Another subject's record, reached by climbing from the allowed one: its own checks.
    cases.push(case(
        "/api/customers/c-1001/../c-1002/profile",
        Want::PersonalDenied(403, "consent_required"),
    ));
    run(cases).await;
}

#[tokio::test]
async fn query_strings_and_fragments_that_imitate_paths_route_nowhere_new() {
    let mut cases = vec![
        case(
            "/api/products/x?/../customers/c-1001/profile",
            Want::Catalog("/api/products/x?/../customers/c-1001/profile"),
        ),
        case(
            "/api/products/x?/../../api/customers/c-1001/profile",
            Want::Catalog("/api/products/x?/../../api/customers/c-1001/profile"),
        ),
        case(
            "/api/products/x?%2F..%2Fcustomers%2Fc-1001",
            Want::Catalog("/api/products/x?%2F..%2Fcustomers%2Fc-1001"),
        ),
        case(
            "/api/products/x?path=/api/customers/c-1001/profile&x-purpose=support",
            Want::Catalog("/api/products/x?path=/api/customers/c-1001/profile&x-purpose=support"),
        ),
        case(
            "/api/customers/c-1001/profile?/../../../products/x",
            Want::PersonalAllowed("/api/customers/c-1001/profile?/../../../products/x"),
        ),
    ];
    cases.push(Case {
        purpose: None,
        ..case(
            "/api/customers/c-1001/profile?/../../../products/x",
            Want::PersonalDenied(400, "missing_purpose"),
        )
    });
    cases.push(Case {
        token: false,
        ..case(
            "/api/customers/c-1001/profile?x-purpose=marketing&access=public",
            Want::PersonalDenied(401, "unauthenticated"),
        )
    });
    // A fragment is not part of a request target: dropped, never routed or forwarded.
    cases.push(case(
        "/api/products/x#/../../customers/c-1001/profile",
        Want::Catalog("/api/products/x"),
    ));
    cases.push(case(
        "/api/customers/c-1001/profile#/../../../products/x",
        Want::PersonalAllowed(ADV_PROFILE),
    ));
    run(cases).await;
}

#[tokio::test]
async fn absolute_form_targets_go_through_the_personal_checks() {
    let mut cases = vec![
        case(
            "http://evil.example/api/customers/c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
        case(
            "https://evil.example:8443/api/products/../customers/c-1001/profile",
            Want::PersonalAllowed(ADV_PROFILE),
        ),
        case(
            "http://evil.example/api/customers/c-1001/../../products/x",
            Want::Catalog("/api/products/x"),
        ),
        case(
            "http://127.0.0.1:1/api/customers/c-1002/profile",
            Want::PersonalDenied(403, "consent_required"),
        ),
        // Network-path reference: `//host/...` is a path here, and routes nowhere.
        case(
            "//evil.example/api/customers/c-1001/profile",
            Want::Refused(404, "no_route"),
        ),
        // Asterisk-form is not a path.
        case("*", Want::Refused(400, "bad_path")),
    ];
    cases.push(Case {
        purpose: None,
        ..case(
            "http://evil.example/api/customers/c-1001/profile",
            Want::PersonalDenied(400, "missing_purpose"),
        )
    });
    cases.push(Case {
        token: false,
        ..case(
            "http://evil.example/api/customers/c-1001/profile",
            Want::PersonalDenied(401, "unauthenticated"),
        )
    });
    cases.push(Case {
        token: false,
        ..case(
            "http://evil.example/status/../api/customers/c-1001/profile",
            Want::PersonalDenied(401, "unauthenticated"),
        )
    });
    run(cases).await;
}

/// The real binary at debug level: after the path attacks and a served request, the JSON log
/// holds no personal value and no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_attacks_leave_no_personal_data_in_the_logs() {
    let up = marker_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "");
    let bin = start_logged_binary(work.path(), &config, gw_port, admin_port).await;
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let t = adv_token();
    let targets = [
        ADV_PROFILE,
        "/api/customers/c-1001/%2e%2e/c-1002/profile",
        "/api/customers/c-1001/%c0%ae%c0%ae/profile",
        "/api/customers/c-1001/%252e%252e/profile",
        "/api/customers/c-1001%2F..%2Fc-1002/profile",
        "/api/customers/c-1001%00/profile",
        "/api/products/../customers/c-1001/profile",
        "/api/customers/c-1001/../../products/x",
        "/api/products/x?/../customers/c-1001/profile",
        "http://evil.example/api/customers/c-1001/profile",
        "/api/customers/anna.schmidt@example.eu/profile",
    ];
    for target in targets {
        let (status, text) = raw_get(bin.gw, target, &t, "X-Purpose: marketing\r\n").await;
        assert!(status != 0, "{target}: {text}");
        assert_no_markers(target, &text, &PII_MARKERS[..1]);
    }
    // A subject id that *is* an e-mail address is the caller's choice of path; the gateway logs
    // paths only in the audit trail, so the log must not hold it either.
    let mut forbidden: Vec<&str> = PII_MARKERS.to_vec();
    forbidden.push(&t);
    assert_log_clean(bin, work.path(), &forbidden);
}
