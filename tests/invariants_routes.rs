//! Fail-closed invariants on the routing and exchange side (issue 10): route tables that would
//! let a non-personal route serve personal data are refused at load; paths that only alias a
//! personal route are refused; subject aliasing is under the route's control; a decided
//! exchange is audited even when its client goes away; one grammar per name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The test config with `[[route]]` tables replaced by `routes`.
fn config_with_routes(upstream: std::net::SocketAddr, routes: &str) -> String {
    let text = config_text(upstream, "");
    let at = text.find("[[route]]").unwrap();
    format!("{}{routes}", &text[..at])
}

fn route(name: &str, pattern: &str, upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nmatch = \"{pattern}\"\nupstream = \"http://{upstream}\"\n{extra}\n"
    )
}

#[tokio::test]
async fn a_non_personal_route_listed_before_a_personal_one_it_overlaps_is_refused_at_load() {
    let up = Upstream::json(json!({"id": "c-1001"})).await;
    let a = up.addr;
    let personal = route(
        "customers",
        "/api/customers/{subject}/**",
        a,
        "personal_data = true",
    );
    let shadows = [
        route("everything", "/api/**", a, "personal_data = false"),
        route("root", "/**", a, "personal_data = false"),
        route(
            "open",
            "/api/customers/{subject}/**",
            a,
            "personal_data = false\npublic = true",
        ),
        route(
            "one-profile",
            "/api/customers/c-1001/profile",
            a,
            "personal_data = false",
        ),
        route("by-id", "/api/{subject}/c-1001", a, "personal_data = false"),
    ];
    for shadow in &shadows {
        let text = config_with_routes(a, &format!("{shadow}{personal}"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, &text).unwrap();
        let err = consentgate::config::Settings::load(&file)
            .unwrap_err()
            .to_string();
        let line_of = |needle: &str| {
            text[..text.find(needle).unwrap()]
                .bytes()
                .filter(|b| *b == b'\n')
                .count()
                + 1
        };
        let name = shadow.lines().nth(1).unwrap();
        let name = name.trim_start_matches("name = \"").trim_end_matches('"');
        let earlier = format!(
            "{}:{}",
            file.display(),
            line_of(&format!("name = \"{name}\""))
        );
        let later = format!("{}:{}", file.display(), line_of("name = \"customers\""));
        assert!(err.contains(name) && err.contains("customers"), "{err}");
        assert!(
            err.contains(&earlier) && err.contains(&later),
            "{err} should name {earlier} and {later}"
        );
        // The real binary refuses to start, with exit code 2.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
            .args(["serve", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&earlier), "{stderr}");
    }

    // The personal route first, a catch-all after it: accepted, and the personal route wins.
    let text = config_with_routes(
        a,
        &format!(
            "{personal}{}",
            route("rest", "/**", a, "personal_data = false")
        ),
    );
    let gw = TestGateway::start(&text).await;
    let t = token("crm", &["support"], "");
    let r = get_personal(
        &gw,
        "/api/customers/c-1001/profile",
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.headers.get("x-consentgate-decision").unwrap(),
        "allow",
        "decided as personal"
    );
    let r = get(&gw.url("/api/products/7"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("x-consentgate-decision").is_none());
    gw.shutdown().await;
}

#[tokio::test]
async fn paths_that_alias_a_personal_route_through_a_non_personal_one_are_refused() {
    let up = Upstream::json(json!({"id": "c-1001", "email": "anna@example.eu"})).await;
    let a = up.addr;
    let text = config_with_routes(
        a,
        &format!(
            "{}{}",
            route(
                "customers",
                "/api/customers/{subject}/**",
                a,
                "personal_data = true"
            ),
            route("rest", "/**", a, "personal_data = false")
        ),
    );
    let gw = TestGateway::start(&text).await;
    let t = token("crm", &["support"], "");
    for path in [
        "/API/customers/c-1001/profile",
        "/api/Customers/c-1001",
        "/api/customers;v=1/c-1001/profile",
        "/api;x/customers/c-1001",
        "/api/customers/c-1001;jsessionid=1/profile",
        "/api/customers/c-1001;",
    ] {
        let before = up.count();
        let (status, text) = raw_get(gw.addr, path, &t, "X-Purpose: support\r\n").await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("bad_path"), "{path}: {text}");
        assert!(!text.contains("anna@example.eu"), "{path}");
        assert_eq!(up.count(), before, "{path}: the upstream was contacted");
    }
    // Ordinary non-personal paths with capitals or parameters still pass.
    let (status, _) = raw_get(gw.addr, "/api/Products;v=2/7", &t, "").await;
    assert_eq!(status, 200);
    gw.shutdown().await;
}

/// Config whose customers route carries `extra` lines.
fn customers_with(upstream: std::net::SocketAddr, extra: &str) -> String {
    let text = config_text(upstream, "");
    let from = "personal_data = true\n";
    assert!(text.contains(from));
    text.replacen(from, &format!("personal_data = true\n{extra}\n"), 1)
}

#[tokio::test]
async fn subject_case_lower_decides_aliases_as_one_subject() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&customers_with(up.addr, "subject_case = \"lower\"")).await;
    set_subject_region(&gw, "c-2001", "eu").await;
    put_consent_status(&gw, "c-2001", "marketing", "granted").await;
    let t = token("crm", &["marketing"], "");
    for path in [
        "/api/customers/C-2001/profile",
        "/api/customers/c-2001/profile",
    ] {
        let r = get_personal(&gw, path, Some(&t), Some("marketing"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.headers.get("x-consentgate-region").unwrap(), "eu");
    }
    put_consent_status(&gw, "c-2001", "marketing", "denied").await;
    let r = get_personal(
        &gw,
        "/api/customers/C-2001/profile",
        Some(&t),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the alias follows the denial"
    );
    let records = audit_records(&gw.dir.path().join("data/audit"));
    assert!(
        records.iter().all(|r| r["subject"] == "c-2001"),
        "{records:?}"
    );
    gw.shutdown().await;

    // Exact (the default): the upper-case alias is another, unknown subject.
    let gw = TestGateway::start(&customers_with(up.addr, "")).await;
    set_subject_region(&gw, "c-2001", "eu").await;
    put_consent_status(&gw, "c-2001", "marketing", "granted").await;
    let r = get_personal(
        &gw,
        "/api/customers/C-2001/profile",
        Some(&t),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.headers.get("x-consentgate-region").unwrap(), "default");
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_subject_deny_refuses_subjects_without_a_stored_region() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&customers_with(up.addr, "unknown_subject = \"deny\"")).await;
    let t = token("crm", &["support", "marketing"], "");
    let before = up.count();
    let r = get_personal(
        &gw,
        "/api/customers/c-9999/profile",
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.code(), "consent_required");
    assert_eq!(up.count(), before);
    let rec = audit_records(&gw.dir.path().join("data/audit"))
        .pop()
        .unwrap();
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["reason"], "unknown_subject");
    assert_eq!(rec["subject"], "c-9999");
    // Once the consent system knows the subject, it is decided as usual.
    set_subject_region(&gw, "c-9999", "eu").await;
    let r = get_personal(
        &gw,
        "/api/customers/c-9999/profile",
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn route_options_are_validated() {
    let up = Upstream::echo().await;
    for (extra, key) in [
        ("subject_case = \"upper\"", "subject_case"),
        ("unknown_subject = \"allow\"", "unknown_subject"),
    ] {
        let err = consentgate::config::Settings::from_toml(
            &customers_with(up.addr, extra),
            std::path::Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(key), "{err}");
    }
    let text = config_text(up.addr, "").replacen(
        "personal_data = false\n",
        "personal_data = false\nsubject_case = \"lower\"\n",
        1,
    );
    assert!(
        consentgate::config::Settings::from_toml(&text, std::path::Path::new(".")).is_err(),
        "subject options on a non-personal route"
    );
}

/// An upstream that answers after `delay`, counting the requests it received.
async fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::start(std::sync::Arc::new(move |_seen| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            json_response(
                StatusCode::OK,
                bytes::Bytes::from_static(br#"{"id":"c-1001","first_name":"Anna"}"#),
            )
        })
    }))
    .await
}

/// Sends a request, then closes the connection before the answer comes.
async fn send_and_hang_up(addr: std::net::SocketAddr, method: &str, rid: &str, token: &str) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} /api/customers/c-1001/profile HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nX-Purpose: support\r\nX-Request-Id: {rid}\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(s);
}

#[tokio::test]
async fn an_exchange_whose_client_disconnects_still_gets_its_record() {
    let up = slow_upstream(Duration::from_millis(300)).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &["support"], "");
    for (i, method) in ["GET", "DELETE", "PUT"].iter().enumerate() {
        let rid = format!("hangup-{i}");
        send_and_hang_up(gw.addr, method, &rid, &t).await;
        // The upstream is called once the exchange is decided, and its answer is audited.
        let mut records = Vec::new();
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            records = audit_records(&gw.dir.path().join("data/audit"))
                .into_iter()
                .filter(|r| r["request_id"] == rid.as_str())
                .collect::<Vec<Value>>();
            if !records.is_empty() {
                break;
            }
        }
        assert_eq!(records.len(), 1, "{method}: {records:?}");
        assert_eq!(records[0]["method"], *method);
        assert_eq!(records[0]["status"], 200, "{method}: {:?}", records[0]);
        assert_eq!(records[0]["decision"], "allow");
    }
    assert_eq!(up.count(), 3);
    // Every decision counted in the metrics has its record. A record is readable once written
    // and counted once durable, so the count may trail the file by one fsync: poll for it.
    let records = audit_records(&gw.dir.path().join("data/audit")).len() as u64;
    let mut seen = (0, String::new());
    for _ in 0..250 {
        let metrics = get(&format!("http://{}/metrics", gw.admin), None, &[])
            .await
            .text();
        let decided: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("consentgate_decisions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        seen = (decided, metrics);
        if seen.0 >= records {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.0, records, "{}", seen.1);
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_waits_for_an_abandoned_exchange_to_be_recorded() {
    let up = slow_upstream(Duration::from_millis(400)).await;
    let audit = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(&config_with_audit(up.addr, "", audit.path(), "")).await;
    let t = token("crm", &["support"], "");
    send_and_hang_up(gw.addr, "GET", "abandoned", &t).await;
    gw.shutdown().await;
    let records = audit_records(audit.path());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["request_id"], "abandoned");
    assert_eq!(records[0]["status"], 200);
}

/// A copy of the shipped policies with `edit` applied to `file`.
fn policies_with(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    dir
}

fn config_with_policies(upstream: std::net::SocketAddr, policies: &std::path::Path) -> String {
    config_text(upstream, "").replace(
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        &policies.display().to_string(),
    )
}

#[tokio::test]
async fn names_follow_one_grammar_and_the_default_region_must_have_a_policy() {
    // A purpose name X-Purpose could never declare is refused where it is written.
    for bad in ["news-letter", "News", "a.b", "_x", "9lives"] {
        let dir = policies_with("eu.yaml", "  marketing:\n", &format!("  {bad}:\n"));
        let (code, out) = cli(&["policy", "check", dir.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{bad}: {out}");
        assert!(
            out.contains("eu.yaml:") && out.contains(bad),
            "{bad}: {out}"
        );
    }
    // default_region without a policy: start-up fails with a message naming it.
    let up = Upstream::echo().await;
    let text = config_text(up.addr, "")
        .replace("default_region = \"default\"", "default_region = \"mars\"");
    let settings =
        consentgate::config::Settings::from_toml(&text, tempfile::tempdir().unwrap().path())
            .unwrap();
    let err = consentgate::Gateway::bind(settings)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("default_region") && err.contains("mars"),
        "{err}"
    );

    // A reload that would remove the default region's policy is refused; the last good set
    // keeps serving.
    let dir = policies_with("eu.yaml", "  marketing:\n", "  marketing:\n");
    let gw = TestGateway::start(&config_with_policies(up.addr, dir.path())).await;
    std::fs::remove_file(dir.path().join("default.yaml")).unwrap();
    let admin = token("compliance", &[], "policy:read policy:admin");
    let r = admin_call(&gw, Method::POST, "/v1/policies/reload", Some(&admin), None).await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("default_region"), "{}", r.text());
    let t = token("crm", &["support"], "");
    let r = get_personal(
        &gw,
        "/api/customers/c-5555/profile",
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;
}

/// Runs the CLI; returns the exit code and stdout + stderr.
fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
