//! The audit log verifiable by anyone, through real sockets and files: the independent Python
//! verifier (`scripts/verify_audit.py`) and `consentgate audit verify` accept the chain the
//! gateway wrote and refuse it after a byte edit that parses the same; a checkpoint without a
//! trusted key is never "ok"; retention deletes old segments and both verifiers start from
//! the signed checkpoint that anchors the rest; a chain head edited on disk makes the gateway
//! not ready; exports and reports neutralise what callers put into names and paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use http::{Method, StatusCode};
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_audit.py");

/// Runs the Python verifier; returns its exit code and its JSON report.
fn python_verify(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(dir)
        .args(extra)
        .output()
        .expect("python3 is needed for the independent verifier test");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "verifier printed {text:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn cli_verify(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["audit", "verify", "--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, out) = cli(&args);
    let report = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    (code, report)
}

fn public_key() -> PathBuf {
    dev_dir().join("audit.pub")
}

fn checkpoint_lines(key_every: &str) -> String {
    format!(
        "checkpoint_key = \"{}\"\ncheckpoint_every = {key_every}",
        dev_dir().join("audit.key").display()
    )
}

async fn start(audit: &Path, audit_extra: &str) -> (Upstream, TestGateway) {
    let up = Upstream::json(sample_customer("c-1001")).await;
    let gw = TestGateway::start(&config_with_audit(up.addr, "", audit, audit_extra)).await;
    set_subject_region(&gw, "c-1001", "eu").await;
    (up, gw)
}

/// `n` allowed reads, one refusal before authentication, one forbidden purpose.
async fn traffic(gw: &TestGateway, n: usize) {
    let t = token("crm", &["support"], "");
    for _ in 0..n {
        let r = get_personal(
            gw,
            "/api/customers/c-1001/profile",
            Some(&t),
            Some("support"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = get_personal(
        gw,
        "/api/customers/c-1001/profile",
        None,
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = get_personal(
        gw,
        "/api/customers/c-1001/profile",
        Some(&t),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Waits until the audit dir holds `n` records (lazy records are written just after).
async fn wait_records(dir: &Path, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let records = audit_records(dir);
        if records.len() >= n {
            return records;
        }
        sleep_ms(10).await;
    }
    panic!("fewer than {n} records");
}

fn rewrite_line(dir: &Path, index: usize, edit: impl Fn(&str) -> String) {
    let mut seen = 0;
    for seg in audit_segments(dir) {
        let text = std::fs::read_to_string(&seg).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        if index < seen + lines.len() {
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let edited = edit(&out[index - seen]);
            assert_ne!(edited, out[index - seen]);
            out[index - seen] = edited;
            std::fs::write(&seg, out.join("\n") + "\n").unwrap();
            return;
        }
        seen += lines.len();
    }
    panic!("no line {index}");
}

#[tokio::test]
async fn the_python_verifier_and_the_cli_accept_the_chain_and_catch_byte_edits() {
    let audit = tempfile::tempdir().unwrap();
    let (_up, gw) = start(audit.path(), &checkpoint_lines("2")).await;
    traffic(&gw, 5).await;
    let records = wait_records(audit.path(), 7).await;
    // The refusal before authentication names nobody.
    let unauth: Vec<&Value> = records.iter().filter(|r| r["status"] == 401).collect();
    assert_eq!(unauth.len(), 1);
    assert!(unauth[0]["subject"].is_null() && unauth[0]["caller"].is_null());
    gw.shutdown().await;
    let key = public_key();
    let key = key.to_str().unwrap();
    let (code, report) = python_verify(audit.path(), &["--public-key", key]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["records"], 7);
    assert!(
        report["checkpoints_checked"].as_u64().unwrap() >= 3,
        "{report}"
    );
    assert_eq!(report["signatures"], "verified");
    let (code, report) = cli_verify(audit.path(), &["--public-key", key]);
    assert_eq!((code, &report["ok"]), (0, &Value::Bool(true)), "{report}");

    // Without a key, the chain alone is fine; a checkpoint relied upon is "unverified".
    let (code, _) = python_verify(audit.path(), &[]);
    assert_eq!(code, 0);
    let cp_file = audit.path().join("checkpoints.jsonl");
    let cp = cp_file.to_str().unwrap();
    let (code, report) = cli_verify(audit.path(), &["--checkpoint", cp]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["checkpoint"]["signature"], "unverified");
    let (code, report) = python_verify(audit.path(), &["--checkpoint", cp]);
    assert_eq!(
        (code, &report["signatures"]),
        (1, &Value::from("unverified"))
    );
    // A forged checkpoint (right seq and hash, signed by nobody we trust) is invalid.
    let last: Value = serde_json::from_str(
        std::fs::read_to_string(&cp_file)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let mut forged = last.clone();
    forged["sig"] = Value::from("A".repeat(86));
    let forged_file = audit.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let f = forged_file.to_str().unwrap();
    let (code, report) = cli_verify(audit.path(), &["--checkpoint", f, "--public-key", key]);
    assert_eq!(
        (code, &report["checkpoint"]["signature"]),
        (1, &Value::from("invalid"))
    );
    let (code, _) = python_verify(audit.path(), &["--checkpoint", f, "--public-key", key]);
    assert_eq!(code, 1);

    // Byte edits that parse as the same record: both verifiers refuse them, at that seq.
    let pristine: Vec<(PathBuf, Vec<u8>)> = audit_segments(audit.path())
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let edits: [&dyn Fn(&str) -> String; 4] = [
        &|l| l.replacen(",\"method\"", ", \"method\"", 1),
        &|l| l.replacen("\"GET\"", "\"\\u0047ET\"", 1),
        &|l| l.replacen("{", "{\"status\":1,", 1),
        &|l| l.replacen("\"status\":200", "\"status\":201", 1),
    ];
    for edit in edits {
        for (p, b) in &pristine {
            std::fs::write(p, b).unwrap();
        }
        rewrite_line(audit.path(), 2, edit);
        let (code, report) = python_verify(audit.path(), &["--public-key", key]);
        assert_eq!(
            (code, &report["first_bad_seq"]),
            (1, &Value::from(3)),
            "{report}"
        );
        let (code, report) = cli_verify(audit.path(), &["--public-key", key]);
        assert_eq!(
            (code, &report["first_bad_seq"]),
            (1, &Value::from(3)),
            "{report}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_old_segments_and_verification_starts_from_the_anchor() {
    let audit = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}\nsegment_bytes = 4096\nretention = \"1s\"",
        checkpoint_lines("1")
    );
    let (_up, gw) = start(audit.path(), &extra).await;
    traffic(&gw, 18).await;
    let before = wait_records(audit.path(), 20).await;
    assert!(audit_segments(audit.path()).len() >= 3);
    sleep_ms(1500).await;
    traffic(&gw, 1).await;
    let mut first = before[0]["seq"].as_u64().unwrap();
    for _ in 0..300 {
        if let Some(r) = audit_records(audit.path()).first() {
            first = r["seq"].as_u64().unwrap();
        }
        if first > 1 {
            break;
        }
        sleep_ms(10).await;
    }
    assert!(first > 1, "no segment was deleted");
    let records = audit_records(audit.path());
    let note = records.iter().find(|r| r["reason"] == "retention").unwrap();
    assert_eq!(note["path"], format!("/audit/records/1-{}", first - 1));
    // The gateway's own verify trusts its key and says where it starts.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/audit/verify",
        Some(&auditor_token()),
        None,
    )
    .await;
    let report = r.json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["first_seq"], first);
    assert_eq!(report["from_checkpoint"]["seq"], first - 1);
    // The access report says how far back it reaches.
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/c-1001/report",
        Some(&auditor_token()),
        None,
    )
    .await;
    assert_eq!(r.json()["accesses_since"], records[0]["ts"]);
    gw.shutdown().await;
    let key = public_key();
    let key = key.to_str().unwrap();
    let (code, report) = cli_verify(audit.path(), &["--public-key", key]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["from_checkpoint"]["signature"], "verified");
    let (code, report) = python_verify(audit.path(), &["--public-key", key]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["from_checkpoint"], first - 1);
    // Without the trusted key the anchor could be forged: not ok.
    let (code, report) = cli_verify(audit.path(), &[]);
    assert_eq!(code, 1, "{report}");
    let (code, _) = python_verify(audit.path(), &[]);
    assert_eq!(code, 1);
}

#[tokio::test]
async fn a_chain_head_edited_on_disk_makes_the_gateway_not_ready() {
    let audit = tempfile::tempdir().unwrap();
    let (_up, gw) = start(audit.path(), "").await;
    traffic(&gw, 2).await;
    wait_records(audit.path(), 4).await;
    let r = admin_call(&gw, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
    let n = audit_records(audit.path()).len();
    // Parses the same; only the stored bytes differ.
    rewrite_line(audit.path(), n - 1, |l| {
        l.replacen(",\"path\":", ",\"path\" :", 1)
    });
    let (_up, gw) = start(audit.path(), "").await;
    let r = admin_call(&gw, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let body = r.json();
    assert_eq!(body["checks"]["audit"], false);
    assert!(
        body["audit"]["chain_head_problem"]
            .as_str()
            .unwrap()
            .contains("canonical")
    );
    let r = admin_call(&gw, Method::GET, "/metrics", None, None).await;
    assert!(r.text().contains("consentgate_audit_chain_head_ok 0\n"));
    assert!(r.text().contains("consentgate_audit_writer_alive 1\n"));
    gw.shutdown().await;
}

#[tokio::test]
async fn exports_and_reports_neutralise_what_callers_put_in_names_and_paths() {
    let audit = tempfile::tempdir().unwrap();
    let (_up, gw) = start(audit.path(), "").await;
    let caller = "=HYPERLINK(\"http://evil.example/\") [x](javascript:alert(1)) <img src=x onerror=alert(1)>";
    let t = token(caller, &["support"], "");
    let r = get_personal(
        &gw,
        "/api/customers/c-1001/profile",
        Some(&t),
        Some("support"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    wait_records(audit.path(), 1).await;
    let (code, csv) = cli(&[
        "audit",
        "export",
        "--dir",
        audit.path().to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{csv}");
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("1,"), "{row}");
    assert!(row.contains("\"'=HYPERLINK("), "{row}");
    // No cell starts with a formula character.
    for line in csv.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell}"
            );
        }
    }
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/c-1001/report?format=markdown",
        Some(&auditor_token()),
        None,
    )
    .await;
    let md = r.text();
    assert!(!md.contains("<img") && !md.contains("](javascript"), "{md}");
    assert!(md.contains("&lt;img"), "{md}");
    let r = admin_call(
        &gw,
        Method::GET,
        "/v1/subjects/c-1001/report?format=html",
        Some(&auditor_token()),
        None,
    )
    .await;
    assert!(!r.text().contains("<img"));
    gw.shutdown().await;
}
