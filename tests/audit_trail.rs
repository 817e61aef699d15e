//! The audit trail through real sockets: exactly one record per personal-data request whatever
//! its outcome, with the right fields and no personal values; the auditor API (verify, filters,
//! cursor paging, subject reports); tampering caught by `consentgate audit verify`; an audit log
//! that cannot be written stops every release (`503`) until it can again; signed checkpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

/// The demo documents of the two eu subjects the tests use.
const SUBJECTS: [&str; 2] = ["c-1001", "c-1002"];

/// An upstream serving the demo document of the subject in the path; `/html` answers a
/// non-JSON page, `/slow` answers after the gateway's 1 s upstream timeout.
async fn demo_upstream() -> Upstream {
    Upstream::start(Arc::new(|seen: Seen| {
        Box::pin(async move {
            let subject = seen.uri.split('/').nth(3).unwrap_or("").to_string();
            if seen.uri.ends_with("/slow") {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            if seen.uri.ends_with("/html") {
                let mut resp = json_response(
                    StatusCode::OK,
                    bytes::Bytes::from("<html>Anna Schmidt +49 30 1234567</html>"),
                );
                resp.headers_mut()
                    .insert("content-type", "text/html".parse().unwrap());
                return resp;
            }
            let doc = if seen.uri.starts_with("/api/products") {
                consentgate::demo::data::products()
            } else {
                demo_doc(&subject)
            };
            json_response(
                StatusCode::OK,
                bytes::Bytes::from(serde_json::to_vec(&doc).unwrap()),
            )
        })
    }))
    .await
}

/// The test config plus a personal route whose upstream is not listening.
fn config_with_dead_route(up: &Upstream, audit_dir: &Path, audit_extra: &str) -> String {
    let dead = free_port();
    format!(
        "{}\n[[route]]\nname = \"dead\"\nmatch = \"/api/dead/{{subject}}/**\"\nupstream = \"http://127.0.0.1:{dead}\"\npersonal_data = true\n",
        config_with_audit(up.addr, "", audit_dir, audit_extra)
    )
}

struct Env {
    up: Upstream,
    gw: TestGateway,
    audit: tempfile::TempDir,
}

impl Env {
    async fn start(audit_extra: &str) -> Env {
        let up = demo_upstream().await;
        let audit = tempfile::tempdir().unwrap();
        let gw = TestGateway::start(&config_with_dead_route(&up, audit.path(), audit_extra)).await;
        for s in SUBJECTS {
            set_subject_region(&gw, s, "eu").await;
        }
        Env { up, gw, audit }
    }

    fn records(&self) -> Vec<Value> {
        audit_records(self.audit.path())
    }

    /// A personal GET as `crm` (who may declare marketing, support, order_fulfilment).
    async fn call(&self, path: &str, purpose: Option<&str>) -> Reply {
        let t = token("crm", &["marketing", "support", "order_fulfilment"], "");
        get_personal(&self.gw, path, Some(&t), purpose, &[]).await
    }

    async fn admin(&self, path: &str) -> Reply {
        admin_call(&self.gw, Method::GET, path, Some(&auditor_token()), None).await
    }

    /// NDJSON lines of `GET /v1/audit?{query}` and the next cursor.
    async fn audit_page(&self, query: &str) -> (Vec<Value>, Option<String>) {
        let r = self.admin(&format!("/v1/audit?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        assert_eq!(r.headers["content-type"], "application/x-ndjson");
        let lines = r
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let next = r
            .headers
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        (lines, next)
    }

    /// Seqs of the access records a query returns (each read of the log is itself an
    /// `admin` record, left out here).
    async fn seqs(&self, query: &str) -> Vec<u64> {
        let (lines, _) = self.audit_page(query).await;
        lines
            .iter()
            .filter(|l| l["route"] != "admin")
            .map(|l| l["seq"].as_u64().unwrap())
            .collect()
    }
}

/// Personal values of the demo documents that must never reach an audit line.
fn personal_values() -> Vec<String> {
    let mut out = Vec::new();
    for s in SUBJECTS {
        out.extend(
            string_leaves(&demo_doc(s))
                .into_iter()
                .filter(|v| v.len() >= 4 && !SUBJECTS.contains(&v.as_str())),
        );
    }
    out
}

fn assert_no_personal_values(lines: &[String]) {
    let values = personal_values();
    assert!(values.iter().any(|v| v == "Anna"));
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    for line in lines {
        let found = leaks(line, &values);
        assert!(found.is_empty(), "{found:?} in audit line {line}");
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn one_record_per_personal_request_for_every_outcome() {
    let env = Env::start("").await;
    put_consent_status(&env.gw, "c-1001", "marketing", "granted").await;
    let policies = admin_call(
        &env.gw,
        Method::GET,
        "/v1/policies",
        Some(&auditor_token()),
        None,
    )
    .await
    .json();
    let eu_label = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["region"] == "eu")
        .unwrap()["label"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(eu_label.starts_with("eu@"));

    // (path, purpose, with token, status, decision, reason, consent, region/policy known)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        bool,
        u16,
        &'a str,
        &'a str,
        &'a str,
        bool,
    );
    let cases: [Case; 9] = [
        (
            "/api/customers/c-1001/profile",
            Some("support"),
            true,
            200,
            "allow",
            "basis_legitimate_interest",
            "n/a",
            true,
        ),
        (
            "/api/customers/c-1001/profile",
            Some("marketing"),
            true,
            200,
            "allow",
            "opt_in_consent_granted",
            "granted",
            true,
        ),
        (
            "/api/customers/c-1002/profile",
            Some("marketing"),
            true,
            403,
            "deny",
            "consent_missing",
            "none",
            true,
        ),
        (
            "/api/customers/c-1001/profile",
            Some("analytics"),
            true,
            403,
            "deny",
            "forbidden_purpose",
            "n/a",
            false,
        ),
        (
            "/api/customers/c-1001/profile",
            None,
            true,
            400,
            "deny",
            "missing_purpose",
            "n/a",
            false,
        ),
        (
            "/api/customers/c-1001/profile",
            Some("support"),
            false,
            401,
            "deny",
            "unauthenticated",
            "n/a",
            false,
        ),
        (
            "/api/customers/c-1001/html",
            Some("support"),
            true,
            502,
            "allow",
            "unprocessable_upstream_body",
            "n/a",
            true,
        ),
        (
            "/api/dead/c-1001/profile",
            Some("support"),
            true,
            502,
            "allow",
            "upstream_unavailable",
            "n/a",
            true,
        ),
        (
            "/api/customers/c-1001/slow",
            Some("support"),
            true,
            504,
            "allow",
            "upstream_timeout",
            "n/a",
            true,
        ),
    ];
    for (i, (path, purpose, with_token, status, decision, reason, consent, known)) in
        cases.into_iter().enumerate()
    {
        let before = env.records().len();
        let upstream_before = env.up.count();
        let r = if with_token {
            env.call(path, purpose).await
        } else {
            get_personal(&env.gw, path, None, Some("support"), &[]).await
        };
        assert_eq!(
            r.status.as_u16(),
            status,
            "{path} {purpose:?}: {}",
            r.text()
        );
        let records = env.records();
        assert_eq!(
            records.len(),
            before + 1,
            "exactly one record for {path} {purpose:?}"
        );
        let rec = &records[before];
        let ctx = format!("case {i}: {rec}");
        assert_eq!(rec["seq"].as_u64().unwrap(), before as u64 + 1, "{ctx}");
        assert_eq!(
            rec["request_id"],
            r.headers["x-request-id"].to_str().unwrap(),
            "{ctx}"
        );
        assert_eq!(rec["method"], "GET", "{ctx}");
        assert_eq!(rec["path"], path, "{ctx}");
        let route = if path.starts_with("/api/dead") {
            "dead"
        } else {
            "customers"
        };
        assert_eq!(rec["route"], route, "{ctx}");
        assert_eq!(rec["decision"], decision, "{ctx}");
        assert_eq!(rec["reason"], reason, "{ctx}");
        assert_eq!(rec["consent"], consent, "{ctx}");
        assert_eq!(rec["status"], status, "{ctx}");
        if with_token {
            assert_eq!(rec["caller"], "crm", "{ctx}");
        } else {
            assert!(rec["caller"].is_null(), "{ctx}");
        }
        if with_token {
            assert_eq!(rec["subject"], path.split('/').nth(3).unwrap(), "{ctx}");
        }
        if reason != "missing_purpose" && with_token {
            assert_eq!(rec["purpose"].as_str(), purpose, "{ctx}");
        } else {
            assert!(rec["purpose"].is_null(), "{ctx}");
        }
        if known {
            assert_eq!(rec["region"], "eu", "{ctx}");
            assert_eq!(rec["policy"], eu_label.as_str(), "{ctx}");
        } else {
            assert!(rec["region"].is_null() && rec["policy"].is_null(), "{ctx}");
        }
        // Refused requests never reach the upstream.
        let forwarded = decision == "allow" && !path.starts_with("/api/dead");
        assert_eq!(
            env.up.count() - upstream_before,
            usize::from(forwarded),
            "{ctx}"
        );
        if decision == "allow" && status == 200 {
            assert_eq!(r.headers["x-consentgate-decision"], "allow");
        }
        if status != 200 {
            assert_eq!(rec["fields_removed"], serde_json::json!([]), "{ctx}");
            assert_eq!(rec["redactions"], serde_json::json!({}), "{ctx}");
        }
    }
    let records = env.records();
    // What was withheld and masked, by path and count only.
    let support = &records[0];
    // The demo document has no national_id; support's deny list takes the payment subtree.
    assert_eq!(strings(&support["fields_removed"]), ["payment"]);
    assert_eq!(support["redactions"]["birth_year"], 1);
    assert!(support["redactions"]["card_number"].as_u64().unwrap() >= 1);
    assert!(support["redactions"]["phone"].as_u64().unwrap() >= 2);
    let marketing = &records[1];
    let mut removed = strings(&marketing["fields_removed"]);
    removed.sort_unstable();
    assert_eq!(
        removed,
        [
            "address",
            "date_of_birth",
            "last_name",
            "orders",
            "payment",
            "phone",
            "region",
            "support_notes"
        ]
    );
    assert_eq!(
        marketing["redactions"],
        serde_json::json!({"mask_email": 1})
    );

    // A non-personal route writes nothing.
    let t = token("crm", &[], "");
    let r = get(&env.gw.url("/api/products/1"), Some(&t), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(env.records().len(), cases.len());

    assert_no_personal_values(&audit_raw_lines(env.audit.path()));
    let v = env.admin("/v1/audit/verify").await;
    assert_eq!(v.status, StatusCode::OK);
    let v = v.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"], cases.len());
    env.gw.shutdown().await;
}

#[tokio::test]
async fn audit_api_filters_and_pages_with_a_cursor() {
    let env = Env::start("").await;
    let plan = [
        ("c-1001", "support", 200),
        ("c-1001", "marketing", 403),
        ("c-1002", "support", 200),
        ("c-1001", "support", 200),
        ("c-1002", "order_fulfilment", 200),
    ];
    for (s, p, status) in plan {
        let r = env
            .call(&format!("/api/customers/{s}/profile"), Some(p))
            .await;
        assert_eq!(r.status.as_u16(), status);
        // Distinct millisecond timestamps for the time filters.
        sleep_ms(15).await;
    }
    let all = env.records();
    assert_eq!(all.len(), 5);
    let ts = |seq: usize| all[seq - 1]["ts"].as_str().unwrap().to_string();

    assert_eq!(env.seqs("").await, [1, 2, 3, 4, 5]);
    assert_eq!(env.seqs("subject=c-1001").await, [1, 2, 4]);
    assert_eq!(env.seqs("decision=deny").await, [2]);
    assert_eq!(env.seqs("decision=allow&subject=c-1002").await, [3, 5]);
    assert_eq!(env.seqs("purpose=support").await, [1, 3, 4]);
    assert_eq!(env.seqs("caller=crm").await, [1, 2, 3, 4, 5]);
    assert_eq!(env.seqs("caller=nobody").await, Vec::<u64>::new());
    assert_eq!(env.seqs(&format!("from={}", ts(3))).await, [3, 4, 5]);
    assert_eq!(env.seqs(&format!("to={}", ts(3))).await, [1, 2]);
    assert_eq!(
        env.seqs(&format!("from={}&to={}", ts(2), ts(4))).await,
        [2, 3]
    );

    // limit=2 over 5 records: three pages, no cursor on the last. `to` stops before the
    // records of these reads themselves (each read of the log is recorded).
    let last_ts = time::OffsetDateTime::parse(&ts(5), &Rfc3339).unwrap();
    let until = (last_ts + time::Duration::milliseconds(1))
        .format(&Rfc3339)
        .unwrap();
    let mut pages = Vec::new();
    let mut query = format!("limit=2&to={until}");
    loop {
        let (lines, next) = env.audit_page(&query).await;
        pages.push(
            lines
                .iter()
                .map(|l| l["seq"].as_u64().unwrap())
                .collect::<Vec<_>>(),
        );
        match next {
            Some(c) => query = format!("limit=2&to={until}&cursor={c}"),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages, [vec![1, 2], vec![3, 4], vec![5]]);
    // Filters and paging together.
    let (first, next) = env
        .audit_page(&format!("subject=c-1001&limit=2&to={until}"))
        .await;
    assert_eq!(first.len(), 2);
    let next = next.expect("a cursor after the first page");
    let (rest, last) = env
        .audit_page(&format!("subject=c-1001&limit=2&to={until}&cursor={next}"))
        .await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["seq"], 4);
    assert!(last.is_none());

    for bad in [
        "cursor=not-a-cursor!",
        "cursor=Zm9v",
        "limit=0",
        "decision=maybe",
        "from=yesterday",
    ] {
        let r = env.admin(&format!("/v1/audit?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let r = admin_call(
        &env.gw,
        Method::GET,
        "/v1/audit",
        Some(&token("crm", &[], "consent:read")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "audit:read is required");
    env.gw.shutdown().await;
}

#[tokio::test]
async fn subject_report_in_json_html_and_markdown() {
    let env = Env::start("").await;
    put_consent_status(&env.gw, "c-1001", "marketing", "granted").await;
    assert_eq!(
        env.call("/api/customers/c-1001/profile", Some("marketing"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        env.call("/api/customers/c-1001/profile", Some("support"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        env.call("/api/customers/c-1002/profile", Some("support"))
            .await
            .status,
        StatusCode::OK
    );

    let r = env.admin("/v1/subjects/c-1001/report").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let doc = r.json();
    assert_eq!(doc["subject"], "c-1001");
    assert_eq!(doc["region"], "eu");
    let consents = doc["consents"].to_string();
    assert!(
        consents.contains("marketing") && consents.contains("granted"),
        "{consents}"
    );
    let accesses = doc["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 2, "only this subject's accesses");
    assert_eq!(accesses[0]["purpose"], "marketing");
    assert_eq!(accesses[1]["purpose"], "support");
    assert!(
        accesses
            .iter()
            .all(|a| a["caller"] == "crm" && a["decision"] == "allow")
    );

    let html = env.admin("/v1/subjects/c-1001/report?format=html").await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = html.text();
    assert!(text.contains("<table") && text.contains("c-1001"));
    assert!(text.contains("<td>support</td>") && text.contains("<td>marketing</td>"));
    assert!(text.contains("opt_in_consent_granted"));

    let md = env
        .admin("/v1/subjects/c-1001/report?format=markdown")
        .await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(
        md.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let text = md.text();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("| crm |"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].contains("marketing") && rows[1].contains("support"));

    for body in [r.text(), html.text(), md.text()] {
        assert_no_personal_values(&[body]);
    }
    let bad = env.admin("/v1/subjects/c-1001/report?format=pdf").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    env.gw.shutdown().await;
}

#[tokio::test]
async fn tampering_is_found_by_the_cli_after_shutdown() {
    let env = Env::start("").await;
    for _ in 0..3 {
        let r = env
            .call("/api/customers/c-1001/profile", Some("support"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let Env { up: _up, gw, audit } = env;
    gw.shutdown().await;
    let dir = audit.path().to_str().unwrap();
    let (code, out) = cli(&["audit", "verify", "--dir", dir]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\"ok\":true") && out.contains("\"records\":3"),
        "{out}"
    );

    let segment = audit_segments(audit.path()).pop().unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines[1].contains("\"status\":200"));
    lines[1] = lines[1].replace("\"status\":200", "\"status\":204");
    std::fs::write(&segment, lines.join("\n") + "\n").unwrap();
    let (code, out) = cli(&["audit", "verify", "--dir", dir]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"first_bad_seq\":2"), "{out}");
    assert!(out.contains("\"ok\":false"), "{out}");
}

/// What stands where the audit log's next segment should be created.
#[derive(Clone, Copy, Debug)]
enum Obstacle {
    /// A directory: opening the segment fails.
    Directory,
    /// A symlink to `/dev/full`: writing it fails with ENOSPC.
    DiskFull,
}

async fn audit_failure_blocks_release_then_recovers(obstacle: Obstacle) {
    let env = Env::start("segment_bytes = 4096").await;
    let profile = "/api/customers/c-1001/profile";
    // Fill segments until the current one is full: the next record opens a new segment.
    loop {
        let r = env.call(profile, Some("support")).await;
        assert_eq!(r.status, StatusCode::OK);
        let segment = audit_segments(env.audit.path()).pop().unwrap();
        if std::fs::metadata(&segment).unwrap().len() >= 4096 {
            break;
        }
        assert!(env.records().len() < 50, "segments never fill");
    }
    let written = env.records().len();
    let next = env.audit.path().join(format!("{:020}.jsonl", written + 1));
    match obstacle {
        Obstacle::Directory => std::fs::create_dir(&next).unwrap(),
        Obstacle::DiskFull => std::os::unix::fs::symlink("/dev/full", &next).unwrap(),
    }
    let ready = || async {
        send(build_request(
            Method::GET,
            &admin_url(&env.gw, "/readyz"),
            None,
            None,
        ))
        .await
    };
    for _ in 0..2 {
        let r = env.call(profile, Some("support")).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{obstacle:?}: {}",
            r.text()
        );
        assert_eq!(r.code(), "audit_unavailable");
        assert!(r.headers.get("x-consentgate-decision").is_none());
        assert_no_personal_values(&[r.text()]);
        let rd = ready().await;
        assert_eq!(rd.status, StatusCode::SERVICE_UNAVAILABLE, "{}", rd.text());
        assert_eq!(rd.json()["checks"]["audit"], false);
    }
    // A refusal is audited too, so it cannot be answered either.
    let denied = env.call(profile, Some("analytics")).await;
    assert_eq!(denied.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(env.records().len(), written);

    // While the log is unhealthy the upstream is not called at all.
    let calls = env.up.count();
    let r = env.call(profile, Some("support")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        env.up.count(),
        calls,
        "the upstream was called with no record to follow"
    );

    match obstacle {
        Obstacle::Directory => std::fs::remove_dir(&next).unwrap(),
        Obstacle::DiskFull => std::fs::remove_file(&next).unwrap(),
    }
    // The first refusal after the disk recovers is still 503, but its record is written, which
    // shows the log healthy again; the next request is served.
    let r = env.call(profile, Some("support")).await;
    assert_eq!(r.code(), "audit_unavailable", "{}", r.text());
    assert_eq!(env.records().len(), written + 1);
    let r = env.call(profile, Some("support")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(ready().await.status, StatusCode::OK);
    assert_eq!(env.records().len(), written + 2);
    let v = env.admin("/v1/audit/verify").await.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"], written + 2);
    env.gw.shutdown().await;
}

#[tokio::test]
async fn audit_segment_that_cannot_be_opened_is_503_until_it_can() {
    audit_failure_blocks_release_then_recovers(Obstacle::Directory).await;
}

#[tokio::test]
async fn audit_disk_full_is_503_until_space_returns() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full; skipped");
        return;
    }
    audit_failure_blocks_release_then_recovers(Obstacle::DiskFull).await;
}

#[tokio::test]
async fn signed_checkpoint_verifies_with_the_cli() {
    let key = dev_dir().join("audit.key");
    let env = Env::start(&format!(
        "checkpoint_key = \"{}\"\ncheckpoint_every = 2",
        key.display()
    ))
    .await;
    for _ in 0..5 {
        let r = env
            .call("/api/customers/c-1001/profile", Some("support"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // The checkpoint is signed right after its batch is acknowledged: wait for seq 4.
    let mut cp = Value::Null;
    for _ in 0..100 {
        let r = env.admin("/v1/audit/checkpoint").await;
        if r.status == StatusCode::OK {
            cp = r.json();
            if cp["seq"] == 4 {
                break;
            }
        }
        sleep_ms(20).await;
    }
    assert_eq!(cp["seq"], 4, "{cp}");
    let records = env.records();
    assert_eq!(cp["hash"], records[3]["hash"]);
    for key in ["ts", "sig", "key_id"] {
        assert!(
            cp[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {cp}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("checkpoint.json");
    std::fs::write(&file, cp.to_string()).unwrap();
    let public = dev_dir().join("audit.pub");
    let args = |f: &Path| {
        vec![
            "audit".to_string(),
            "verify".into(),
            "--dir".into(),
            env.audit.path().display().to_string(),
            "--checkpoint".into(),
            f.display().to_string(),
            "--public-key".into(),
            public.display().to_string(),
        ]
    };
    let run = |f: &Path| {
        let a = args(f);
        cli(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out) = run(&file);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"ok\":true"), "{out}");

    // A forged checkpoint (another head hash) fails.
    let mut forged = cp.clone();
    forged["hash"] = Value::String(records[2]["hash"].as_str().unwrap().to_string());
    let bad = work.path().join("forged.json");
    std::fs::write(&bad, forged.to_string()).unwrap();
    let (code, out) = run(&bad);
    assert_eq!(code, 1, "{out}");
    env.gw.shutdown().await;
}
