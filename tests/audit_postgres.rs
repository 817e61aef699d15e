//! The audit log on PostgreSQL (`[audit] backend = "postgres"`), black-box, against a real
//! PostgreSQL (needs `CONSENTGATE_TEST_PG_URL`; fails in CI without it), with in-process
//! gateways and real `consentgate serve` processes on loopback:
//! - every record names its chain (`replica`; `null` in the file backend) and counts `seq`
//!   per chain from 1; the rows of `audit_records` hold the record's canonical bytes, chained
//!   by `prev`/`hash` per replica, and the columns say what the line says;
//! - `GET /v1/audit` on any replica merges every chain (ordered by `ts`, `replica`, `seq`),
//!   pages with opaque cursors good on any replica (each record exactly once, also while
//!   both chains are being written), filters across chains, refuses a forged cursor;
//!   `GET /v1/audit/verify` answers per chain and points at a tampered or deleted row, or at
//!   a row whose indexed columns no longer say what its line says; the subject report covers
//!   accesses through other replicas; a replica left idle still serves;
//! - the CLI: `audit verify|export --url`, and `audit migrate` of a file chain that a
//!   gateway then continues;
//! - faults: SIGKILL under load releases no 200 without its committed record; a second live
//!   replica of the same name is refused at start (exit 2), the name is free again once the
//!   first stops or dies; PostgreSQL stopped means 503 and not ready, then recovery in the
//!   same process with a chain that still verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::pg::*;
use common::*;
use consentgate::audit::GENESIS_PREV;
use http::{Method, StatusCode};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

/// The file-backend `[audit]` table of [`config_text`].
const FILE_AUDIT_TABLE: &str = "[audit]\ndir = \"data/audit\"\n";

/// Replaces the file-backend `[audit]` table of a test config with `section`.
fn with_audit(config: &str, section: &str) -> String {
    assert!(
        config.contains(FILE_AUDIT_TABLE),
        "config has no file [audit] table"
    );
    config.replacen(FILE_AUDIT_TABLE, section, 1)
}

/// An `[audit]` table on PostgreSQL: `replica` when given (else the hostname), and an explicit
/// `url`/`password_file` when given (else `[store]`'s).
fn pg_audit_section(replica: Option<&str>, target: Option<(&str, &Path)>) -> String {
    let mut s = String::from("[audit]\nbackend = \"postgres\"\n");
    if let Some(r) = replica {
        s.push_str(&format!("replica = \"{r}\"\n"));
    }
    if let Some((url, pw)) = target {
        s.push_str(&format!(
            "url = \"{url}\"\npassword_file = \"{}\"\n",
            pw.display()
        ));
    }
    s
}

/// `config` with both the store and the audit log on `url` (the audit log taking `[store]`'s
/// URL and password file by default).
fn on_postgres(config: &str, url: &str, pw: &Path, replica: Option<&str>) -> String {
    with_audit(
        &with_store(config, &pg_store_section(url, pw, "1s")),
        &pg_audit_section(replica, None),
    )
}

/// An in-process gateway (ports from 0) with store and audit on `url`, chain `replica`.
async fn pg_gateway(up: &Upstream, url: &str, env: &PgEnv, replica: &str) -> TestGateway {
    TestGateway::start(&on_postgres(
        &config_text(up.addr, ""),
        url,
        &env.password_file,
        Some(replica),
    ))
    .await
}

/// A caller that may declare marketing, support and order_fulfilment.
fn crm() -> String {
    token("crm", &["marketing", "support", "order_fulfilment"], "")
}

/// A second caller.
fn billing() -> String {
    token("billing", &["support", "order_fulfilment"], "")
}

/// A personal GET of `subject`'s profile through the gateway listening on `gw`.
async fn try_access(
    gw: SocketAddr,
    subject: &str,
    purpose: &str,
    tok: &str,
) -> Result<Reply, String> {
    let mut req = build_request(
        Method::GET,
        &format!("http://{gw}/api/customers/{subject}/profile"),
        Some(tok),
        None,
    );
    req.headers_mut()
        .insert("x-purpose", purpose.parse().unwrap());
    try_send(req).await
}

/// [`try_access`] that gives up after 10 s (`Err` then: the gateway hung).
async fn timed_access(
    gw: SocketAddr,
    subject: &str,
    purpose: &str,
    tok: &str,
) -> Result<Reply, String> {
    tokio::time::timeout(
        Duration::from_secs(10),
        try_access(gw, subject, purpose, tok),
    )
    .await
    .unwrap_or_else(|_| Err("no answer within 10 s".to_owned()))
}

/// [`try_access`] that must get an answer.
async fn access(gw: SocketAddr, subject: &str, purpose: &str, tok: &str) -> Reply {
    try_access(gw, subject, purpose, tok).await.unwrap()
}

fn request_id(r: &Reply) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_owned()
}

/// An auditor's GET on the admin listener at `admin`.
async fn auditor_get(admin: SocketAddr, path: &str) -> Reply {
    send(build_request(
        Method::GET,
        &format!("http://{admin}{path}"),
        Some(&auditor_token()),
        None,
    ))
    .await
}

/// `GET /v1/audit?{query}`: the NDJSON lines and the next cursor.
async fn audit_page(admin: SocketAddr, query: &str) -> (Vec<String>, Option<String>) {
    let r = auditor_get(admin, &format!("/v1/audit?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let lines = r.text().lines().map(str::to_owned).collect();
    let next = r
        .headers
        .get("x-next-cursor")
        .map(|v| v.to_str().unwrap().to_owned());
    (lines, next)
}

/// Every page of `GET /v1/audit?{query}&limit={limit}`, following the cursors.
async fn audit_pages(admin: SocketAddr, query: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut q = format!("{query}&limit={limit}");
    loop {
        let (lines, next) = audit_page(admin, &q).await;
        assert!(
            lines.len() <= limit,
            "{q}: {} lines on a page of {limit}",
            lines.len()
        );
        pages.push(lines);
        match next {
            Some(c) => q = format!("{query}&limit={limit}&cursor={c}"),
            None => break,
        }
        assert!(pages.len() < 200, "{query}: paging does not end");
    }
    pages
}

/// `GET /v1/audit/verify` as JSON.
async fn verify_api(admin: SocketAddr) -> Value {
    let r = auditor_get(admin, "/v1/audit/verify").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// The entry of `replica` in a verify report's `chains`.
fn chain<'a>(report: &'a Value, replica: &str) -> &'a Value {
    report["chains"]
        .as_array()
        .unwrap_or_else(|| panic!("no chains in {report}"))
        .iter()
        .find(|c| c["replica"] == replica)
        .unwrap_or_else(|| panic!("no chain {replica} in {report}"))
}

/// Asserts a verify report: `ok`, the total, and per chain (name, records, first_bad_seq).
fn assert_report(report: &Value, ok: bool, chains: &[(&str, usize, Option<u64>)]) {
    assert_eq!(report["ok"], ok, "{report}");
    let listed = report["chains"]
        .as_array()
        .unwrap_or_else(|| panic!("no chains in {report}"));
    assert_eq!(listed.len(), chains.len(), "{report}");
    for (name, records, bad) in chains {
        let c = chain(report, name);
        assert_eq!(c["records"], *records, "chain {name}: {report}");
        match bad {
            Some(seq) => assert_eq!(c["first_bad_seq"], *seq, "chain {name}: {report}"),
            None => assert!(c["first_bad_seq"].is_null(), "chain {name}: {report}"),
        }
    }
    if ok {
        let total: usize = chains.iter().map(|c| c.1).sum();
        assert_eq!(report["records"], total, "{report}");
    }
}

/// `/readyz`: (status, body); `(0, null)` without an answer within 10 s.
async fn ready(admin: SocketAddr) -> (u16, Value) {
    let req = try_send(build_request(
        Method::GET,
        &format!("http://{admin}/readyz"),
        None,
        None,
    ));
    match tokio::time::timeout(Duration::from_secs(10), req).await {
        Ok(Ok(r)) => (r.status.as_u16(), r.json()),
        _ => (0, Value::Null),
    }
}

/// One row of `audit_records`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    replica: String,
    seq: i64,
    /// `ts`, in whole milliseconds since the epoch.
    ts_ms: i64,
    subject: Option<String>,
    caller: Option<String>,
    purpose: Option<String>,
    decision: Option<String>,
    line: Vec<u8>,
    hash: Option<String>,
}

impl Row {
    fn record(&self) -> Value {
        serde_json::from_slice(&self.line).unwrap_or_else(|e| {
            panic!(
                "row ({}, {}) line is not JSON ({e}): {:?}",
                self.replica,
                self.seq,
                String::from_utf8_lossy(&self.line)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8(self.line.clone()).unwrap()
    }

    fn request_id(&self) -> String {
        self.record()["request_id"].as_str().unwrap().to_owned()
    }
}

/// A file-backend line as a row of chain `replica` (its columns taken from the line).
fn file_row(replica: &str, line: &str) -> Row {
    let rec: Value = serde_json::from_str(line).unwrap();
    let text = |k: &str| rec[k].as_str().map(str::to_owned);
    Row {
        replica: replica.to_owned(),
        seq: rec["seq"].as_i64().unwrap(),
        ts_ms: ts_ms(&rec),
        subject: text("subject"),
        caller: text("caller"),
        purpose: text("purpose"),
        decision: text("decision"),
        line: line.as_bytes().to_vec(),
        hash: text("hash"),
    }
}

/// Every row of `audit_records`, by replica and seq.
async fn rows(url: &str, pw: &Path) -> Vec<Row> {
    let client = pg_client(url, pw).await;
    client
        .query(
            "SELECT replica, seq, floor(extract(epoch FROM ts) * 1000)::bigint AS ts_ms, subject, \
             caller, purpose, decision, line, hash FROM audit_records ORDER BY replica, seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Row {
            replica: r.get("replica"),
            seq: r.get("seq"),
            ts_ms: r.get("ts_ms"),
            subject: r.get("subject"),
            caller: r.get("caller"),
            purpose: r.get("purpose"),
            decision: r.get("decision"),
            line: r.get("line"),
            hash: r.get("hash"),
        })
        .collect()
}

/// A SQL statement on the test database (tampering).
async fn execute(url: &str, pw: &Path, sql: &str, line: Option<&[u8]>) -> u64 {
    let client = pg_client(url, pw).await;
    match line {
        Some(l) => client.execute(sql, &[&l]).await.unwrap(),
        None => client.execute(sql, &[]).await.unwrap(),
    }
}

/// A record's `ts` in milliseconds since the epoch.
fn ts_ms(rec: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(rec["ts"].as_str().unwrap(), &Rfc3339).unwrap();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// RFC 3339 for milliseconds since the epoch.
fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    consentgate::hex::encode(ctx.finish().as_ref())
}

/// Checks the rows of chain `replica` independently: seqs 1..=n, the stored line is the
/// canonical JSON of the record (no newline) naming this chain and seq (records
/// `1..=migrated` came from a file log and name no chain), `prev` is the previous hash,
/// `hash = SHA-256(prev ‖ canonical record without hash)`, and the columns say what the line
/// says. Returns the chain's rows.
fn assert_chain_sound<'a>(all: &'a [Row], replica: &str, migrated: i64) -> Vec<&'a Row> {
    let chain: Vec<&Row> = all.iter().filter(|r| r.replica == replica).collect();
    let mut prev = GENESIS_PREV.to_owned();
    for (i, row) in chain.iter().enumerate() {
        let ctx = format!(
            "chain {replica}, row {i}: {:?}",
            String::from_utf8_lossy(&row.line)
        );
        assert_eq!(row.seq, i as i64 + 1, "seq counts per chain from 1; {ctx}");
        assert!(!row.line.ends_with(b"\n"), "line without newline; {ctx}");
        let rec = row.record();
        assert_eq!(
            consentgate::canonical_json::to_vec(&rec),
            row.line,
            "the stored line is canonical JSON; {ctx}"
        );
        assert_eq!(rec["seq"], row.seq, "{ctx}");
        if row.seq <= migrated {
            assert!(
                rec["replica"].is_null(),
                "a record from a file log names no chain; {ctx}"
            );
        } else {
            assert_eq!(rec["replica"], replica, "the record names its chain; {ctx}");
        }
        assert_eq!(rec["prev"], prev.as_str(), "prev chains per replica; {ctx}");
        let mut without = rec.clone();
        without.as_object_mut().unwrap().remove("hash");
        let want = sha256_hex(&[
            prev.as_bytes(),
            &consentgate::canonical_json::to_vec(&without),
        ]);
        assert_eq!(
            rec["hash"],
            want.as_str(),
            "hash = SHA-256(prev ‖ JCS); {ctx}"
        );
        assert_eq!(
            row.hash.as_deref(),
            Some(want.as_str()),
            "hash column; {ctx}"
        );
        assert_eq!(row.ts_ms, ts_ms(&rec), "ts column; {ctx}");
        assert_eq!(
            row.subject.as_deref(),
            rec["subject"].as_str(),
            "subject column; {ctx}"
        );
        assert_eq!(
            row.caller.as_deref(),
            rec["caller"].as_str(),
            "caller column; {ctx}"
        );
        assert_eq!(
            row.purpose.as_deref(),
            rec["purpose"].as_str(),
            "purpose column; {ctx}"
        );
        assert_eq!(
            row.decision.as_deref(),
            rec["decision"].as_str(),
            "decision column; {ctx}"
        );
        prev = want;
    }
    chain
}

/// The rows in the merged order of `GET /v1/audit`: `ts`, then `replica`, then `seq`.
fn merged(all: &[Row]) -> Vec<&Row> {
    let mut out: Vec<&Row> = all.iter().collect();
    out.sort_by(|a, b| {
        (ts_ms(&a.record()), &a.replica, a.seq).cmp(&(ts_ms(&b.record()), &b.replica, b.seq))
    });
    out
}

fn texts(rows: &[&Row]) -> Vec<String> {
    rows.iter().map(|r| r.text()).collect()
}

/// `(replica, seq)` of NDJSON lines, for readable failures.
fn keys(lines: &[String]) -> Vec<(String, u64)> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["replica"].as_str().unwrap_or("?").to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Runs the CLI; returns (exit code, stdout, stderr).
fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `consentgate audit verify --url … --password-file …`: (exit code, the JSON report).
fn cli_verify(url: &str, pw: &Path) -> (i32, Value) {
    let pw = pw.display().to_string();
    let (code, out, err) = run_cli(&["audit", "verify", "--url", url, "--password-file", &pw]);
    let report = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("audit verify printed no JSON ({e}): {out:?} {err:?}"));
    (code, report)
}

// --- real processes ---

/// A `consentgate serve` child with its folder.
struct Proc {
    bin: Binary,
    _dir: tempfile::TempDir,
}

/// Starts `consentgate serve` on `config` (listen ports filled in); `Err((exit code,
/// stderr))` when it exits before `/healthz` answers.
async fn try_serve(up: &Upstream, make: &dyn Fn(&str) -> String) -> Result<Proc, (i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = make(&binary_config(up.addr, gw_port, admin_port, ""));
    let path = dir.path().join("consentgate.toml");
    std::fs::write(&path, &config).unwrap();
    let log = dir.path().join("serve.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut bin = Binary {
        child,
        gw: SocketAddr::from(([127, 0, 0, 1], gw_port)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = bin.child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            return Err((status.code().unwrap_or(-1), err));
        }
        let url = bin.admin_url("/healthz");
        if let Ok(r) = try_send(build_request(Method::GET, &url, None, None)).await
            && r.status == StatusCode::OK
        {
            return Ok(Proc { bin, _dir: dir });
        }
        assert!(
            Instant::now() < deadline,
            "consentgate serve neither came up nor exited: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        sleep_ms(50).await;
    }
}

/// A replica process with store and audit on `url`, chain `replica`.
async fn serve_replica(up: &Upstream, url: &str, pw: &Path, replica: &str) -> Proc {
    try_serve(up, &|c| on_postgres(c, url, pw, Some(replica)))
        .await
        .unwrap_or_else(|(code, err)| panic!("serve exited {code}: {err}"))
}

/// Starts a replica named `replica` once the name is free again (retrying while `serve`
/// refuses it with exit 2, for at most `limit`); returns it and how long that took.
async fn serve_when_free(
    up: &Upstream,
    url: &str,
    pw: &Path,
    replica: &str,
    limit: Duration,
) -> (Proc, Duration) {
    let start = Instant::now();
    loop {
        match try_serve(up, &|c| on_postgres(c, url, pw, Some(replica))).await {
            Ok(p) => return (p, start.elapsed()),
            Err((code, err)) => {
                assert_eq!(code, 2, "serve failed otherwise: {err}");
                assert!(
                    start.elapsed() < limit,
                    "the name {replica} was still refused {:?} after its replica ended: {err}",
                    start.elapsed()
                );
                sleep_ms(250).await;
            }
        }
    }
}

// --- the file backend ---

#[tokio::test]
async fn file_backend_records_name_no_replica() {
    let up = Upstream::json(sample_customer("f-1")).await;
    let audit = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(&config_with_audit(up.addr, "", audit.path(), "")).await;
    let t = crm();
    let mut ids = Vec::new();
    for purpose in ["support", "marketing"] {
        let r = access(gw.addr, "f-1", purpose, &t).await;
        ids.push(request_id(&r));
    }
    let lines = audit_raw_lines(audit.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    // The same chain rule as on PostgreSQL, checked independently on the file's lines.
    let as_rows: Vec<Row> = lines.iter().map(|l| file_row("file", l)).collect();
    assert_eq!(assert_chain_sound(&as_rows, "file", 2).len(), 2);
    for (i, line) in lines.iter().enumerate() {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert!(
            rec.as_object().unwrap().contains_key("replica"),
            "every record has the replica key: {line}"
        );
        assert!(
            rec["replica"].is_null(),
            "file backend: replica null: {line}"
        );
        assert!(line.contains("\"replica\":null"), "{line}");
        assert_eq!(rec["seq"], i as u64 + 1, "{line}");
        assert_eq!(rec["request_id"], ids[i].as_str(), "{line}");
    }
    let (listed, _) = audit_page(gw.admin, "").await;
    assert_eq!(listed[..2], lines[..], "the API serves the stored lines");
    let v = verify_api(gw.admin).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"], 3, "two accesses and the audit read: {v}");
    gw.shutdown().await;
}

// --- records and chains on PostgreSQL ---

#[tokio::test]
async fn records_on_postgres_name_their_replica_and_chain_per_replica() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("r-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let (t, bt) = (crm(), billing());
    // (through, subject, purpose, token, status, decision)
    let plan = [
        ("gw-1", "r-1", "support", &t, 200, "allow"),
        ("gw-2", "r-1", "order_fulfilment", &bt, 200, "allow"),
        ("gw-1", "r-2", "marketing", &t, 403, "deny"),
        ("gw-2", "r-2", "support", &bt, 200, "allow"),
        ("gw-1", "r-1", "order_fulfilment", &t, 200, "allow"),
    ];
    let mut sent = Vec::new();
    for (via, subject, purpose, tok, status, decision) in plan {
        let gw = if via == "gw-1" { &a } else { &b };
        let r = access(gw.addr, subject, purpose, tok).await;
        assert_eq!(r.status.as_u16(), status, "{via} {purpose}: {}", r.text());
        sent.push((via, subject, purpose, status, decision, request_id(&r)));
    }
    let all = rows(&url, &env.password_file).await;
    assert_eq!(all.len(), plan.len(), "one row per request: {all:?}");
    assert_eq!(assert_chain_sound(&all, "gw-1", 0).len(), 3);
    assert_eq!(assert_chain_sound(&all, "gw-2", 0).len(), 2);
    let mut per_chain: HashMap<&str, i64> = HashMap::new();
    for (via, subject, purpose, status, decision, id) in &sent {
        let row = all
            .iter()
            .find(|r| r.request_id() == *id)
            .unwrap_or_else(|| panic!("no row for request {id}"));
        let seq = per_chain.entry(via).or_default();
        *seq += 1;
        let rec = row.record();
        let ctx = rec.to_string();
        assert_eq!(
            row.replica, *via,
            "the row is in the chain it came through: {ctx}"
        );
        assert_eq!(row.seq, *seq, "{ctx}");
        assert_eq!(rec["subject"], *subject, "{ctx}");
        assert_eq!(rec["purpose"], *purpose, "{ctx}");
        assert_eq!(rec["status"], *status, "{ctx}");
        assert_eq!(rec["decision"], *decision, "{ctx}");
        assert_eq!(rec["route"], "customers", "{ctx}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_replica_idle_for_a_while_still_serves_and_records() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("i-1")).await;
    let gw = pg_gateway(&up, &url, &env, "gw-1").await;
    let t = crm();
    let first = access(gw.addr, "i-1", "support", &t).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    // Idle for longer than the writer's idle probe (1 s), twice over.
    sleep_ms(2500).await;
    let (code, body) = ready(gw.admin).await;
    assert_eq!(code, 200, "ready after idling: {body}");
    let second = access(gw.addr, "i-1", "support", &t).await;
    assert_eq!(
        second.status,
        StatusCode::OK,
        "served after idling: {}",
        second.text()
    );
    let all = rows(&url, &env.password_file).await;
    let chain1 = assert_chain_sound(&all, "gw-1", 0);
    assert_eq!(chain1.len(), 2);
    assert_eq!(chain1[1].request_id(), request_id(&second));
    gw.shutdown().await;
}

#[tokio::test]
async fn replica_defaults_to_the_hostname() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("h-1")).await;
    let gw = TestGateway::start(&on_postgres(
        &config_text(up.addr, ""),
        &url,
        &env.password_file,
        None,
    ))
    .await;
    let r = access(gw.addr, "h-1", "support", &crm()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let all = rows(&url, &env.password_file).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].replica, host);
    assert_chain_sound(&all, &host, 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn audit_list_on_any_replica_merges_every_chain_with_cursors_and_filters() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("m-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let (t, bt) = (crm(), billing());
    // Concurrent bursts through both replicas: records of both chains in the same
    // millisecond, so the replica and seq tie-breaks decide the order.
    let plan = [
        ("m-1", "support", t.clone(), 200),
        ("m-2", "order_fulfilment", bt.clone(), 200),
        ("m-1", "marketing", t.clone(), 403),
        ("m-2", "support", bt.clone(), 200),
    ];
    let mut sent: Vec<(&str, String)> = Vec::new();
    for _round in 0..4 {
        let mut tasks = Vec::new();
        for (subject, purpose, tok, status) in &plan {
            for (name, gw) in [("gw-1", a.addr), ("gw-2", b.addr)] {
                let (subject, purpose, tok, status) = (
                    subject.to_string(),
                    purpose.to_string(),
                    tok.clone(),
                    *status,
                );
                tasks.push((
                    name,
                    tokio::spawn(async move {
                        let r = access(gw, &subject, &purpose, &tok).await;
                        assert_eq!(r.status.as_u16(), status, "{purpose}: {}", r.text());
                        request_id(&r)
                    }),
                ));
            }
        }
        for (name, task) in tasks {
            sent.push((name, task.await.unwrap()));
        }
        sleep_ms(3).await;
    }
    let all = rows(&url, &env.password_file).await;
    assert_eq!(all.len(), 32, "one row per request");
    assert_eq!(assert_chain_sound(&all, "gw-1", 0).len(), 16);
    assert_eq!(assert_chain_sound(&all, "gw-2", 0).len(), 16);
    for (name, id) in &sent {
        let found: Vec<&Row> = all.iter().filter(|r| r.request_id() == *id).collect();
        assert_eq!(found.len(), 1, "request {id}: {found:?}");
        assert_eq!(found[0].replica, *name, "request {id}");
    }

    let order = merged(&all);
    // `to` ends before the records of these reads (each read of the log is recorded).
    let last = order.iter().map(|r| r.ts_ms).max().unwrap();
    let to = rfc3339_ms(last + 1);
    // On PostgreSQL the listing shows records once the listing watermark (2 s behind the
    // database's clock) has passed them: no record can appear behind it any more.
    sleep_ms(2_300).await;
    let bound = format!("to={to}");
    let want = texts(&order);
    for (name, gw) in [("gw-1", &a), ("gw-2", &b)] {
        let (lines, next) = audit_page(gw.admin, &format!("{bound}&limit=1000")).await;
        assert_eq!(
            keys(&lines),
            keys(&want),
            "GET /v1/audit on {name}: every chain merged by ts, replica, seq"
        );
        assert_eq!(lines, want, "on {name}: the stored bytes");
        assert!(next.is_none(), "on {name}: no cursor after the last record");
    }

    // Paging: every record exactly once, in order, whatever the page size.
    for (gw, limit) in [(&a, 5), (&b, 1), (&a, 7)] {
        let pages = audit_pages(gw.admin, &bound, limit).await;
        let flat: Vec<String> = pages.concat();
        assert_eq!(keys(&flat), keys(&want), "pages of {limit}");
        assert!(
            pages.len() <= want.len().div_ceil(limit) + 1,
            "pages of {limit}: {} pages",
            pages.len()
        );
    }
    // A cursor is a position in the merged order, good on any replica (a load balancer
    // may send each page to another one).
    let mut flat = Vec::new();
    let mut q = format!("{bound}&limit=4");
    for page in 0.. {
        let gw = if page % 2 == 0 { &a } else { &b };
        let (lines, next) = audit_page(gw.admin, &q).await;
        flat.extend(lines);
        match next {
            Some(c) => q = format!("{bound}&limit=4&cursor={c}"),
            None => break,
        }
        assert!(page < 50, "paging does not end");
    }
    assert_eq!(
        keys(&flat),
        keys(&want),
        "pages alternating between replicas"
    );

    // Filters across chains, alone and with paging.
    let cut_from = order[8].ts_ms;
    let cut_to = order[24].ts_ms;
    assert!(
        cut_from < cut_to,
        "the records span more than a millisecond"
    );
    type Pick = Box<dyn Fn(&Row) -> bool>;
    let filters: Vec<(String, Pick)> = vec![
        (
            "subject=m-1".into(),
            Box::new(|r| r.subject.as_deref() == Some("m-1")),
        ),
        (
            "caller=billing".into(),
            Box::new(|r| r.caller.as_deref() == Some("billing")),
        ),
        (
            "purpose=support".into(),
            Box::new(|r| r.purpose.as_deref() == Some("support")),
        ),
        (
            "decision=deny".into(),
            Box::new(|r| r.decision.as_deref() == Some("deny")),
        ),
        (
            "decision=allow&subject=m-2".into(),
            Box::new(|r| {
                r.decision.as_deref() == Some("allow") && r.subject.as_deref() == Some("m-2")
            }),
        ),
        ("caller=nobody".into(), Box::new(|_| false)),
        (
            format!("from={}", rfc3339_ms(cut_from)),
            Box::new(move |r| r.ts_ms >= cut_from),
        ),
    ];
    for (q, pick) in &filters {
        let expect: Vec<String> = order.iter().filter(|r| pick(r)).map(|r| r.text()).collect();
        for (name, gw) in [("gw-1", &a), ("gw-2", &b)] {
            let (lines, _) = audit_page(gw.admin, &format!("{q}&{bound}&limit=1000")).await;
            assert_eq!(keys(&lines), keys(&expect), "{q} on {name}");
        }
        let flat = audit_pages(b.admin, &format!("{q}&{bound}"), 3)
            .await
            .concat();
        assert_eq!(keys(&flat), keys(&expect), "{q} paged by 3");
    }
    let expect: Vec<String> = order
        .iter()
        .filter(|r| r.ts_ms >= cut_from && r.ts_ms < cut_to)
        .map(|r| r.text())
        .collect();
    let (lines, _) = audit_page(
        a.admin,
        &format!("from={}&to={}", rfc3339_ms(cut_from), rfc3339_ms(cut_to)),
    )
    .await;
    assert_eq!(keys(&lines), keys(&expect), "from and to across chains");

    for bad in ["cursor=not-a-cursor!", "cursor=Zm9v", "cursor=Z3ctMTo5OTk5"] {
        for gw in [&a, &b] {
            let r = auditor_get(gw.admin, &format!("/v1/audit?{bad}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Pages through the log from `from` with `limit`, alternating replicas, until the last page
/// or `budget` passes; returns the lines and the request id of the last page read (its own
/// admin record comes into being after that page, possibly at a place before its end).
async fn page_through(
    gws: [SocketAddr; 2],
    from: &str,
    limit: usize,
    budget: Duration,
) -> (Vec<String>, String) {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut q = format!("from={from}&limit={limit}");
    for page in 0usize.. {
        let r = auditor_get(gws[page % 2], &format!("/v1/audit?{q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text());
        seen.extend(r.text().lines().map(str::to_owned));
        let next = r
            .headers
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        match next {
            Some(c) if start.elapsed() < budget => {
                q = format!("from={from}&limit={limit}&cursor={c}")
            }
            _ => return (seen, request_id(&r)),
        }
    }
    unreachable!()
}

#[tokio::test]
async fn paging_while_both_replicas_write_returns_every_record_once() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("l-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let t = crm();
    let mut load = Vec::new();
    for gw in [a.addr, b.addr, b.addr] {
        let (stop, t) = (stop.clone(), t.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 50_000 {
                n += 1;
                let r = access(gw, "l-1", "support", &t).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            }
        }));
    }
    // The listing shows records older than its watermark (2 s behind the database's clock).
    sleep_ms(2_500).await;
    // Readers' sessions, each from a moment before the watermark to the end of what the
    // listing shows, while records keep arriving on both chains.
    let mut sessions = Vec::new();
    for _ in 0..60 {
        let now = time::OffsetDateTime::now_utc();
        let from_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap() - 2_100;
        let seen = page_through(
            [a.admin, b.admin],
            &rfc3339_ms(from_ms),
            40,
            Duration::from_secs(1),
        )
        .await;
        sessions.push((from_ms, seen.0, seen.1));
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let all = rows(&url, &env.password_file).await;
    assert_chain_sound(&all, "gw-1", 0);
    assert_chain_sound(&all, "gw-2", 0);
    let order = merged(&all);
    let position: HashMap<(String, u64), usize> = order
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.replica.clone(), r.seq as u64), i))
        .collect();
    let mut problems = Vec::new();
    for (i, (from_ms, seen, last_read)) in sessions.iter().enumerate() {
        let got = keys(seen);
        let Some(last) = got.last() else {
            // Records stamped in the session's first 100 ms were committed (within 1 s of their
            // ts) before its first read, 2.1 s after `from`: they must be listed. A machine so
            // loaded that no request was served in that window leaves nothing to list.
            let due = order
                .iter()
                .filter(|r| r.ts_ms >= *from_ms && r.ts_ms < *from_ms + 100)
                .count();
            if due > 0 {
                problems.push(format!(
                    "session {i}: nothing listed, though {due} records were older than the watermark"
                ));
            }
            continue;
        };
        let end = position[last];
        let want: Vec<(String, u64)> = order[..=end]
            .iter()
            .filter(|r| r.ts_ms >= *from_ms && r.request_id() != *last_read)
            .map(|r| (r.replica.clone(), r.seq as u64))
            .collect();
        if got == want {
            continue;
        }
        let got_set: HashSet<&(String, u64)> = got.iter().collect();
        let skipped: Vec<String> = want
            .iter()
            .filter(|k| !got_set.contains(k))
            .map(|k| {
                let rec = order[position[k]].record();
                format!("{k:?} {} at {}", rec["route"], rec["ts"])
            })
            .collect();
        let mut counts: HashMap<&(String, u64), usize> = HashMap::new();
        for k in &got {
            *counts.entry(k).or_default() += 1;
        }
        let twice = counts.values().filter(|n| **n > 1).count();
        problems.push(format!(
            "session {i}: {} records listed up to {last:?}; {} of the {} records before it in \
             the merged order never listed (e.g. {:?}), {twice} listed twice",
            got.len(),
            skipped.len(),
            want.len(),
            &skipped[..skipped.len().min(3)],
        ));
    }
    eprintln!(
        "{} records; {} sessions listed {:?} records",
        all.len(),
        sessions.len(),
        sessions.iter().map(|s| s.1.len()).collect::<Vec<_>>()
    );
    assert!(
        problems.is_empty(),
        "paging while both chains are written:\n{}",
        problems.join("\n")
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn verify_answers_per_chain_and_points_at_a_tampered_or_deleted_row() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("v-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let t = crm();
    for _ in 0..4 {
        assert_eq!(
            access(a.addr, "v-1", "support", &t).await.status,
            StatusCode::OK
        );
    }
    for _ in 0..3 {
        assert_eq!(
            access(b.addr, "v-1", "support", &t).await.status,
            StatusCode::OK
        );
    }
    for gw in [&a, &b] {
        assert_report(
            &verify_api(gw.admin).await,
            true,
            &[("gw-1", 4, None), ("gw-2", 3, None)],
        );
    }

    // One byte of gw-2's second record changed.
    let all = rows(&url, &pw).await;
    let original = all
        .iter()
        .find(|r| r.replica == "gw-2" && r.seq == 2)
        .unwrap()
        .line
        .clone();
    let text = String::from_utf8(original.clone()).unwrap();
    assert!(text.contains("\"status\":200"), "{text}");
    let forged = text.replacen("\"status\":200", "\"status\":204", 1);
    let n = execute(
        &url,
        &pw,
        "UPDATE audit_records SET line = $1 WHERE replica = 'gw-2' AND seq = 2",
        Some(forged.as_bytes()),
    )
    .await;
    assert_eq!(n, 1);
    for gw in [&a, &b] {
        let v = verify_api(gw.admin).await;
        assert_eq!(v["ok"], false, "{v}");
        assert!(chain(&v, "gw-2")["first_bad_seq"] == 2, "{v}");
        assert!(chain(&v, "gw-1")["first_bad_seq"].is_null(), "{v}");
        assert_eq!(chain(&v, "gw-1")["records"], 4, "{v}");
    }
    let (code, v) = cli_verify(&url, &pw);
    assert_eq!(code, 1, "{v}");
    assert_eq!(chain(&v, "gw-2")["first_bad_seq"], 2, "{v}");

    // Restored: good again.
    execute(
        &url,
        &pw,
        "UPDATE audit_records SET line = $1 WHERE replica = 'gw-2' AND seq = 2",
        Some(&original),
    )
    .await;
    assert_report(
        &verify_api(a.admin).await,
        true,
        &[("gw-1", 4, None), ("gw-2", 3, None)],
    );

    // A row of gw-1 deleted.
    let n = execute(
        &url,
        &pw,
        "DELETE FROM audit_records WHERE replica = 'gw-1' AND seq = 2",
        None,
    )
    .await;
    assert_eq!(n, 1);
    for gw in [&a, &b] {
        let v = verify_api(gw.admin).await;
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(chain(&v, "gw-1")["first_bad_seq"], 2, "{v}");
        assert!(chain(&v, "gw-2")["first_bad_seq"].is_null(), "{v}");
        assert_eq!(chain(&v, "gw-2")["records"], 3, "{v}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn subject_report_on_one_replica_lists_accesses_through_another() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let up = Upstream::json(sample_customer("p-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let (t, bt) = (crm(), billing());
    assert_eq!(
        access(b.addr, "p-1", "support", &bt).await.status,
        StatusCode::OK
    );
    assert_eq!(
        access(b.addr, "p-1", "order_fulfilment", &t).await.status,
        StatusCode::OK
    );
    assert_eq!(
        access(a.addr, "p-1", "marketing", &t).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        access(b.addr, "p-2", "support", &t).await.status,
        StatusCode::OK
    );
    let all = rows(&url, &env.password_file).await;
    // (seq, ts, purpose, replica) of every access to p-1.
    type Access = (i64, String, String, String);
    let mut want: Vec<Access> = all
        .iter()
        .filter(|r| r.subject.as_deref() == Some("p-1"))
        .map(|r| {
            let rec = r.record();
            (
                r.seq,
                rec["ts"].as_str().unwrap().to_owned(),
                rec["purpose"].as_str().unwrap().to_owned(),
                r.replica.clone(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 3);
    for (name, gw) in [("gw-1", &a), ("gw-2", &b)] {
        let r = auditor_get(gw.admin, "/v1/subjects/p-1/report").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let doc = r.json();
        let accesses: Vec<&Value> = doc["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["route"] != "admin")
            .collect();
        let mut purposes: Vec<&str> = accesses
            .iter()
            .map(|x| x["purpose"].as_str().unwrap())
            .collect();
        purposes.sort_unstable();
        assert_eq!(
            purposes,
            ["marketing", "order_fulfilment", "support"],
            "report on {name} covers every replica's accesses: {doc}"
        );
        let mut got: Vec<Access> = accesses
            .iter()
            .map(|x| {
                let seq = x["seq"].as_i64().unwrap();
                let ts = x["ts"].as_str().unwrap().to_owned();
                let purpose = x["purpose"].as_str().unwrap().to_owned();
                // Which chain: named by the report, or found by seq, ts and purpose.
                let replica = match x["replica"].as_str() {
                    Some(r) => r.to_owned(),
                    None => want
                        .iter()
                        .find(|w| w.0 == seq && w.1 == ts && w.2 == purpose)
                        .map(|w| w.3.clone())
                        .unwrap_or_default(),
                };
                (seq, ts, purpose, replica)
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "report on {name}: {doc}");
        let times: Vec<i64> = accesses.iter().map(|x| ts_ms(x)).collect();
        assert!(times.is_sorted(), "oldest first on {name}: {doc}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_row_whose_columns_disagree_with_its_line_is_tampering() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("c-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let t = crm();
    for gw in [&a, &b, &a, &b] {
        assert_eq!(
            access(gw.addr, "c-1", "support", &t).await.status,
            StatusCode::OK
        );
    }
    // The indexed subject of gw-2's second access rewritten: the line (and its hash) stay,
    // but the access would vanish from c-1's report and from `?subject=c-1`.
    let n = execute(
        &url,
        &pw,
        "UPDATE audit_records SET subject = 'someone-else' WHERE replica = 'gw-2' AND seq = 2",
        None,
    )
    .await;
    assert_eq!(n, 1);
    let report = auditor_get(a.admin, "/v1/subjects/c-1/report").await.json();
    let listed = report["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["route"] != "admin")
        .count();
    let v = verify_api(a.admin).await;
    assert!(
        v["ok"] == false && chain(&v, "gw-2")["first_bad_seq"] == 2 || listed == 4,
        "a rewritten subject column hides an access from the subject report ({listed} of 4 \
         listed) while verify says {v}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

// --- the CLI ---

#[tokio::test]
async fn cli_verifies_and_exports_every_chain_by_url() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("x-1")).await;
    let a = pg_gateway(&up, &url, &env, "gw-1").await;
    let b = pg_gateway(&up, &url, &env, "gw-2").await;
    let t = crm();
    for (gw, subject) in [
        (&a, "x-1"),
        (&b, "x-1"),
        (&a, "x-2"),
        (&a, "x-1"),
        (&b, "x-2"),
        (&b, "x-1"),
        (&a, "x-1"),
    ] {
        assert_eq!(
            access(gw.addr, subject, "support", &t).await.status,
            StatusCode::OK
        );
    }
    a.shutdown().await;
    b.shutdown().await;

    let (code, v) = cli_verify(&url, &pw);
    assert_eq!(code, 0, "{v}");
    assert_report(&v, true, &[("gw-1", 4, None), ("gw-2", 3, None)]);

    let all = rows(&url, &pw).await;
    let mut want: Vec<String> = all
        .iter()
        .filter(|r| r.subject.as_deref() == Some("x-1"))
        .map(Row::text)
        .collect();
    assert_eq!(want.len(), 5);
    let pws = pw.display().to_string();
    let (code, out, err) = run_cli(&[
        "audit",
        "export",
        "--url",
        &url,
        "--password-file",
        &pws,
        "--subject",
        "x-1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let mut got: Vec<String> = out.lines().map(str::to_owned).collect();
    let times: Vec<i64> = got
        .iter()
        .map(|l| ts_ms(&serde_json::from_str(l).unwrap()))
        .collect();
    assert!(times.is_sorted(), "oldest first: {out}");
    got.sort();
    want.sort();
    assert_eq!(got, want, "x-1's records of both chains, byte for byte");

    // A deleted row: exit 1, the chain and seq named.
    execute(
        &url,
        &pw,
        "DELETE FROM audit_records WHERE replica = 'gw-2' AND seq = 2",
        None,
    )
    .await;
    let (code, v) = cli_verify(&url, &pw);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(chain(&v, "gw-2")["first_bad_seq"], 2, "{v}");
    assert!(chain(&v, "gw-1")["first_bad_seq"].is_null(), "{v}");
}

#[tokio::test]
async fn migrate_copies_a_file_chain_byte_for_byte_and_a_gateway_continues_it() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("g-1")).await;
    let audit = tempfile::tempdir().unwrap();
    let file_gw = TestGateway::start(&config_with_audit(up.addr, "", audit.path(), "")).await;
    let t = crm();
    for purpose in ["support", "marketing", "order_fulfilment", "support"] {
        access(file_gw.addr, "g-1", purpose, &t).await;
    }
    file_gw.shutdown().await;
    let lines = audit_raw_lines(audit.path());
    assert_eq!(lines.len(), 4);

    let dir = audit.path().display().to_string();
    let pws = pw.display().to_string();
    let migrate = || {
        run_cli(&[
            "audit",
            "migrate",
            "--from",
            &dir,
            "--to",
            &url,
            "--password-file",
            &pws,
            "--replica",
            "gw-old",
        ])
    };
    let (code, out, err) = migrate();
    assert_eq!(code, 0, "{out}{err}");
    let copied = rows(&url, &pw).await;
    assert_eq!(copied.len(), 4, "{copied:?}");
    for (row, line) in copied.iter().zip(&lines) {
        assert_eq!(row.replica, "gw-old");
        assert_eq!(row.text(), *line, "copied byte for byte");
    }
    assert_chain_sound(&copied, "gw-old", 4);

    let (code, out, err) = migrate();
    assert_eq!(code, 0, "a second run: {out}{err}");
    assert_eq!(
        rows(&url, &pw).await,
        copied,
        "a second run changes nothing"
    );
    let (code, v) = cli_verify(&url, &pw);
    assert_eq!(code, 0, "{v}");
    assert_report(&v, true, &[("gw-old", 4, None)]);

    // A gateway (sled store, audit on PostgreSQL by explicit URL) continues the chain.
    let config = with_audit(
        &config_text(up.addr, ""),
        &pg_audit_section(Some("gw-old"), Some((&url, &pw))),
    );
    let gw = TestGateway::start(&config).await;
    let r = access(gw.addr, "g-1", "support", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let all = rows(&url, &pw).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all[..4], copied[..], "the migrated rows are untouched");
    let next = &all[4];
    assert_eq!((next.replica.as_str(), next.seq), ("gw-old", 5));
    assert_eq!(next.request_id(), request_id(&r));
    assert_eq!(
        next.record()["prev"],
        copied[3].record()["hash"],
        "the chain continues from the file's head"
    );
    assert_chain_sound(&all, "gw-old", 4);
    assert_report(&verify_api(gw.admin).await, true, &[("gw-old", 5, None)]);
    gw.shutdown().await;
    let (code, v) = cli_verify(&url, &pw);
    assert_eq!(code, 0, "{v}");
    assert_report(&v, true, &[("gw-old", 5, None)]);
}

// --- faults, with real processes ---

#[tokio::test]
async fn sigkill_under_load_releases_no_200_without_its_committed_record() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("k-0")).await;
    let a = serve_replica(&up, &url, &pw, "gw-1").await;
    let b = serve_replica(&up, &url, &pw, "gw-2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let t = crm();
    let mut tasks = Vec::new();
    // Releases on A, for the kill below.
    let on_a_now = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for (w, gw) in [
        a.bin.gw, a.bin.gw, a.bin.gw, a.bin.gw, a.bin.gw, a.bin.gw, b.bin.gw, b.bin.gw,
    ]
    .into_iter()
    .enumerate()
    {
        let (stop, t) = (stop.clone(), t.clone());
        let counter = (gw == a.bin.gw).then(|| on_a_now.clone());
        tasks.push(tokio::spawn(async move {
            let mut released = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                n += 1;
                let purpose = if n.is_multiple_of(2) {
                    "support"
                } else {
                    "order_fulfilment"
                };
                match try_access(gw, &format!("k-{}", (n as usize + w) % 4), purpose, &t).await {
                    Ok(r) if r.status == StatusCode::OK => {
                        if let Some(c) = &counter {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        released.push(request_id(&r));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (gw, released)
        }));
    }
    // Load for a while, and until A released enough, however slow the machine.
    sleep_ms(1500).await;
    let started = std::time::Instant::now();
    while on_a_now.load(Ordering::Relaxed) <= 20 && started.elapsed() < Duration::from_secs(30) {
        sleep_ms(20).await;
    }
    a.bin.signal("KILL");
    sleep_ms(200).await;
    stop.store(true, Ordering::Relaxed);
    let mut released: HashMap<SocketAddr, Vec<String>> = HashMap::new();
    for task in tasks {
        let (gw, ids) = task.await.unwrap();
        released.entry(gw).or_default().extend(ids);
    }
    let on_a = &released[&a.bin.gw];
    let on_b = &released[&b.bin.gw];
    assert!(
        on_a.len() > 20,
        "the load ran on A: {} released",
        on_a.len()
    );
    assert!(!on_b.is_empty(), "the load ran on B");

    let all = rows(&url, &pw).await;
    let chain_a = assert_chain_sound(&all, "gw-1", 0);
    assert_chain_sound(&all, "gw-2", 0);
    let mut seen: HashMap<String, &str> = HashMap::new();
    for r in &all {
        assert!(
            seen.insert(r.request_id(), r.replica.as_str()).is_none(),
            "request {} recorded twice",
            r.request_id()
        );
    }
    let missing: Vec<&String> = on_a
        .iter()
        .filter(|id| seen.get(*id) != Some(&"gw-1"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} responses released with 200 by the killed replica have no committed record: {:?}",
        missing.len(),
        on_a.len(),
        &missing[..missing.len().min(5)]
    );
    for id in on_b {
        assert_eq!(seen.get(id), Some(&"gw-2"), "request {id} through B");
    }
    let n_a = chain_a.len();
    let v = verify_api(b.bin.admin).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(chain(&v, "gw-1")["first_bad_seq"].is_null(), "{v}");
    assert_eq!(chain(&v, "gw-1")["records"], n_a, "{v}");
    eprintln!(
        "{} of A's 200s (and {} of B's) had their records after SIGKILL; chain gw-1 has {n_a}",
        on_a.len(),
        on_b.len()
    );

    // The killed replica's name is free again, and its chain continues.
    let (a2, took) = serve_when_free(&up, &url, &pw, "gw-1", Duration::from_secs(15)).await;
    eprintln!("the name gw-1 was free again {took:?} after SIGKILL");
    let r = access(a2.bin.gw, "k-0", "support", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let all = rows(&url, &pw).await;
    let chain_a = assert_chain_sound(&all, "gw-1", 0);
    let last = chain_a.last().unwrap();
    assert_eq!(last.request_id(), request_id(&r));
    assert_eq!(last.seq, n_a as i64 + 1, "seq continues after the restart");
    let v = verify_api(a2.bin.admin).await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn a_second_live_replica_of_the_same_name_is_refused_until_the_first_ends() {
    let Some(env) = pg_env() else { return };
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("d-1")).await;
    let t = crm();
    let first = serve_replica(&up, &url, &pw, "gw-1").await;
    assert_eq!(
        access(first.bin.gw, "d-1", "support", &t).await.status,
        StatusCode::OK
    );

    let refused = try_serve(&up, &|c| on_postgres(c, &url, &pw, Some("gw-1"))).await;
    let (code, stderr) = match refused {
        Ok(_) => panic!("a second live replica named gw-1 was started"),
        Err(e) => e,
    };
    assert_eq!(code, 2, "{stderr}");
    let messages: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("consentgate: "))
        .collect();
    assert_eq!(messages.len(), 1, "one message: {stderr}");
    assert!(
        messages[0].contains("gw-1") && messages[0].contains("replica"),
        "the message names the replica: {stderr}"
    );
    assert_eq!(stderr.lines().last(), Some(messages[0]), "{stderr}");
    // Another name is fine beside it.
    let other = serve_replica(&up, &url, &pw, "gw-2").await;
    assert_eq!(
        access(other.bin.gw, "d-1", "support", &t).await.status,
        StatusCode::OK
    );
    // The first still serves.
    assert_eq!(
        access(first.bin.gw, "d-1", "support", &t).await.status,
        StatusCode::OK
    );

    // Stopped gracefully: the name is free, the chain continues.
    let Proc { bin, _dir } = first;
    assert!(bin.stop(), "the first replica exits 0 on SIGTERM");
    let (second, took) = serve_when_free(&up, &url, &pw, "gw-1", Duration::from_secs(5)).await;
    eprintln!("gw-1 free {took:?} after a graceful stop");
    let r = access(second.bin.gw, "d-1", "support", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let all = rows(&url, &pw).await;
    let chain1 = assert_chain_sound(&all, "gw-1", 0);
    assert_eq!(chain1.len(), 3);
    assert_eq!(chain1[2].request_id(), request_id(&r));

    // Killed: free again too.
    second.bin.signal("KILL");
    let (third, took) = serve_when_free(&up, &url, &pw, "gw-1", Duration::from_secs(15)).await;
    eprintln!("gw-1 free {took:?} after SIGKILL");
    let r = access(third.bin.gw, "d-1", "support", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let all = rows(&url, &pw).await;
    let chain1 = assert_chain_sound(&all, "gw-1", 0);
    assert_eq!(chain1.len(), 4);
    assert_eq!(chain1[3].request_id(), request_id(&r));
    assert_report(
        &verify_api(third.bin.admin).await,
        true,
        &[("gw-1", 4, None), ("gw-2", 1, None)],
    );
    drop(other);
}

#[tokio::test]
async fn postgres_down_refuses_releases_then_the_same_process_recovers_with_a_sound_chain() {
    if pg_env().is_none() {
        return;
    }
    let cluster = PrivateCluster::start();
    let env = cluster.env();
    let url = fresh_database(&env).await;
    let pw = env.password_file.clone();
    let up = Upstream::json(sample_customer("o-1")).await;
    // The store stays on sled: every refusal here is the audit log's.
    let mut p = try_serve(&up, &|c| {
        with_audit(c, &pg_audit_section(Some("gw-1"), Some((&url, &pw))))
    })
    .await
    .unwrap_or_else(|(code, err)| panic!("serve exited {code}: {err}"));
    let t = crm();
    let mut released = Vec::new();
    for _ in 0..3 {
        let r = access(p.bin.gw, "o-1", "support", &t).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        released.push(request_id(&r));
    }
    let (code, body) = ready(p.bin.admin).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"]["audit"], true, "{body}");

    cluster.stop();
    let refused = wait_until(Duration::from_secs(5), || async {
        timed_access(p.bin.gw, "o-1", "support", &t)
            .await
            .is_ok_and(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(refused.is_some(), "still released with PostgreSQL down");
    for _ in 0..3 {
        let r = timed_access(p.bin.gw, "o-1", "support", &t).await.unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.code(), "audit_unavailable", "{}", r.text());
        assert!(r.headers.get("x-consentgate-decision").is_none());
    }
    let not_ready = wait_until(Duration::from_secs(3), || async {
        let (code, body) = ready(p.bin.admin).await;
        code == 503 && body["checks"]["audit"] == false
    })
    .await;
    assert!(
        not_ready.is_some(),
        "ready with PostgreSQL down: {:?}",
        ready(p.bin.admin).await
    );

    cluster.restart();
    let back = wait_until(Duration::from_secs(20), || async {
        let ok = timed_access(p.bin.gw, "o-1", "support", &t)
            .await
            .is_ok_and(|r| r.status == StatusCode::OK);
        ok && ready(p.bin.admin).await.0 == 200
    })
    .await;
    assert!(
        back.is_some(),
        "no recovery after PostgreSQL restarted: {:?}",
        ready(p.bin.admin).await
    );
    assert!(
        p.bin.child.try_wait().unwrap().is_none(),
        "the same process recovered"
    );
    for _ in 0..3 {
        let r = access(p.bin.gw, "o-1", "support", &t).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        released.push(request_id(&r));
    }
    let all = rows(&url, &pw).await;
    let chain1 = assert_chain_sound(&all, "gw-1", 0);
    let ids: HashSet<String> = chain1.iter().map(|r| r.request_id()).collect();
    for id in &released {
        assert!(ids.contains(id), "released request {id} has no record");
    }
    assert_report(
        &verify_api(p.bin.admin).await,
        true,
        &[("gw-1", chain1.len(), None)],
    );
    let Proc { bin, _dir } = p;
    assert!(bin.stop(), "exits 0 on SIGTERM");
}
