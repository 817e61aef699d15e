//! Policy hot reload through real sockets: the policy API lists regions and versions; a
//! changed file is applied by `POST /v1/policies/reload`, by the file watcher, and by SIGHUP
//! to the real binary; an invalid set is refused with `file:line:column` errors while the last
//! good set keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SUBJECT: &str = "c-1001";
const PROFILE: &str = "/api/customers/c-1001/profile";
const MARKETING_ALLOW: &str = "allow: [id, first_name, email, preferences]";
const MARKETING_ALLOW_NO_EMAIL: &str = "allow: [id, first_name, preferences]";

/// A copy of the shipped policy files (top level only) in a temp dir.
fn policy_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// The test config with its policies in `policies` and `watch` set.
fn config(up: &Upstream, policies: &Path, watch: bool) -> String {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let text = config_text(up.addr, "");
    assert!(text.contains(shipped) && text.contains("watch = false"));
    text.replace(shipped, &policies.display().to_string())
        .replace("watch = false", &format!("watch = {watch}"))
}

/// Rewrites `eu.yaml` in `dir` with `from` replaced by `to` (first occurrence).
fn edit_eu(dir: &Path, from: &str, to: &str) {
    let path = dir.join("eu.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in eu.yaml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn policy_token() -> String {
    token("compliance", &[], "policy:read policy:admin")
}

async fn listing_at(url: &str) -> Value {
    let r = send(build_request(Method::GET, url, Some(&policy_token()), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

async fn listing(gw: &TestGateway) -> Value {
    listing_at(&admin_url(gw, "/v1/policies")).await
}

fn version(listing: &Value, region: &str) -> String {
    listing["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["region"] == region)
        .unwrap_or_else(|| panic!("no {region} in {listing}"))["version"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn reload(gw: &TestGateway) -> Reply {
    admin_call(
        gw,
        Method::POST,
        "/v1/policies/reload",
        Some(&policy_token()),
        None,
    )
    .await
}

/// An eu subject with marketing consent, served the eu policy test document.
async fn marketing_setup(watch: bool) -> (Upstream, TestGateway, tempfile::TempDir) {
    let doc = policy_case(
        "eu",
        "marketing is released with granted consent, minimised",
    )
    .0;
    let up = Upstream::json(doc).await;
    let policies = policy_copy();
    let gw = TestGateway::start(&config(&up, policies.path(), watch)).await;
    set_subject_region(&gw, SUBJECT, "eu").await;
    put_consent_status(&gw, SUBJECT, "marketing", "granted").await;
    (up, gw, policies)
}

async fn marketing_body(gw: &TestGateway) -> Value {
    let t = token("crm", &["marketing"], "");
    let r = get_personal(gw, PROFILE, Some(&t), Some("marketing"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

fn with_email() -> Value {
    json!({"email": "a***@example.eu", "first_name": "Anna", "id": "c-1001",
           "preferences": {"language": "de", "newsletter": true}})
}

fn without_email() -> Value {
    json!({"first_name": "Anna", "id": "c-1001",
           "preferences": {"language": "de", "newsletter": true}})
}

#[tokio::test]
async fn policy_api_lists_regions_versions_and_needs_its_scopes() {
    let up = Upstream::json(json!({})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let l = listing(&gw).await;
    for region in ["eu", "us-ca", "br", "default"] {
        let v = version(&l, region);
        assert_eq!(v.len(), 64, "{region}: a SHA-256 version");
        assert!(v.bytes().all(|b| b.is_ascii_hexdigit()));
        let p = l["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["region"] == region)
            .unwrap();
        assert!(
            p["label"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{region}@"))
        );
        assert!(
            v.starts_with(p["label"].as_str().unwrap().split('@').nth(1).unwrap()),
            "the label holds a prefix of the version"
        );
        assert!(!p["purposes"].as_array().unwrap().is_empty());
    }
    assert!(l["last_reload_error"].is_null());
    let br = l["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["region"] == "br")
        .unwrap();
    assert!(br["purposes"].to_string().contains("credit_protection"));

    // Scopes: policy:read to list, policy:admin to reload.
    let reader = token("viewer", &[], "policy:read");
    let r = admin_call(&gw, Method::GET, "/v1/policies", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = admin_call(
        &gw,
        Method::POST,
        "/v1/policies/reload",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = reload(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        version(&r.json(), "eu"),
        version(&l, "eu"),
        "an unchanged file keeps its version"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn api_reload_applies_a_changed_policy_to_the_next_request() {
    let (_up, gw, policies) = marketing_setup(false).await;
    let before = version(&listing(&gw).await, "eu");
    let us_before = version(&listing(&gw).await, "us-ca");
    assert_eq!(marketing_body(&gw).await, with_email());

    edit_eu(policies.path(), MARKETING_ALLOW, MARKETING_ALLOW_NO_EMAIL);
    // Without a reload (watch off) nothing changes.
    assert_eq!(marketing_body(&gw).await, with_email());
    let r = reload(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let after = version(&r.json(), "eu");
    assert_ne!(after, before, "a changed file has a new version");
    assert_eq!(version(&r.json(), "us-ca"), us_before);
    assert_eq!(marketing_body(&gw).await, without_email());

    // The audit record names the new version.
    let records = audit_records(&gw.dir.path().join("data/audit"));
    let label = records.last().unwrap()["policy"].as_str().unwrap();
    let short = label.strip_prefix("eu@").unwrap();
    assert!(
        !short.is_empty() && after.starts_with(short),
        "{label} names {after}"
    );
    assert!(!before.starts_with(short), "{label} is not the old version");
    gw.shutdown().await;
}

#[tokio::test]
async fn invalid_policy_is_refused_with_positions_and_the_last_good_set_serves() {
    let (_up, gw, policies) = marketing_setup(false).await;
    let before = version(&listing(&gw).await, "eu");
    // Break marketing's basis: an unknown legal basis.
    let text = std::fs::read_to_string(policies.path().join("eu.yaml")).unwrap();
    let marketing_at = text.find("  marketing:").unwrap();
    let basis_at = marketing_at + text[marketing_at..].find("basis: consent").unwrap();
    let line = text[..basis_at].matches('\n').count() + 1;
    let broken = format!(
        "{}basis: maybe_later{}",
        &text[..basis_at],
        &text[basis_at + "basis: consent".len()..]
    );
    std::fs::write(policies.path().join("eu.yaml"), broken).unwrap();

    let r = reload(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "bad_request");
    let errors: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let prefix = format!("eu.yaml:{line}:");
    let at_line = errors
        .iter()
        .find(|e| e.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no error at {prefix} in {errors:?}"));
    let column: u64 = at_line[prefix.len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(column > 0, "{at_line}");

    let l = listing(&gw).await;
    let last_error = l["last_reload_error"].as_str().unwrap();
    assert!(last_error.contains(&prefix), "{last_error}");
    assert_eq!(version(&l, "eu"), before, "the last good set keeps serving");
    assert_eq!(marketing_body(&gw).await, with_email());

    // Fixed and valid again: applied, the error cleared.
    std::fs::write(
        policies.path().join("eu.yaml"),
        text.replacen(MARKETING_ALLOW, MARKETING_ALLOW_NO_EMAIL, 1),
    )
    .unwrap();
    let r = reload(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["last_reload_error"].is_null());
    assert_eq!(marketing_body(&gw).await, without_email());
    gw.shutdown().await;
}

#[tokio::test]
async fn file_watch_applies_a_change_without_an_api_call() {
    let (_up, gw, policies) = marketing_setup(true).await;
    let before = version(&listing(&gw).await, "eu");
    assert_eq!(marketing_body(&gw).await, with_email());
    edit_eu(policies.path(), MARKETING_ALLOW, MARKETING_ALLOW_NO_EMAIL);
    let started = Instant::now();
    loop {
        if version(&listing(&gw).await, "eu") != before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the watcher did not reload within 3 s"
        );
        sleep_ms(50).await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "reload took {took:?}");
    assert_eq!(marketing_body(&gw).await, without_email());
    assert!(listing(&gw).await["last_reload_error"].is_null());
    gw.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_real_binary() {
    let up = Upstream::json(json!({})).await;
    let policies = policy_copy();
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let text = binary_config(up.addr, gw_port, admin_port, "");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let text = text.replace(shipped, &policies.path().display().to_string());
    let bin = Binary::start(work.path(), &text, gw_port, admin_port, "serve.log").await;
    let url = bin.admin_url("/v1/policies");
    let before = listing_at(&url).await;
    let v0 = version(&before, "eu");

    // A valid change: applied on SIGHUP.
    edit_eu(policies.path(), MARKETING_ALLOW, MARKETING_ALLOW_NO_EMAIL);
    sleep_ms(100).await;
    assert_eq!(version(&listing_at(&url).await, "eu"), v0, "watch is off");
    bin.signal("HUP");
    let started = Instant::now();
    let v1 = loop {
        let v = version(&listing_at(&url).await, "eu");
        if v != v0 {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no reload on SIGHUP"
        );
        sleep_ms(50).await;
    };
    let l = listing_at(&url).await;
    assert!(l["last_reload_error"].is_null());
    assert!(l["reloads"].as_u64().unwrap() >= 1);

    // An invalid change: refused on SIGHUP, the error is reported, v1 keeps serving.
    std::fs::write(policies.path().join("eu.yaml"), "region: eu\npurposes: [\n").unwrap();
    bin.signal("HUP");
    let started = Instant::now();
    loop {
        let l = listing_at(&url).await;
        if let Some(e) = l["last_reload_error"].as_str() {
            assert!(e.contains("eu.yaml:"), "{e}");
            assert_eq!(version(&l, "eu"), v1);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no reload on SIGHUP"
        );
        sleep_ms(50).await;
    }
    assert!(bin.stop(), "the binary exits 0 on SIGTERM");
}
