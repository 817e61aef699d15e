//! Soak test (ignored by default; run with `scripts/soak`): the real binary under mixed
//! requests at 64 concurrent connections (at least 12,000, and for `SOAK_SECS` seconds,
//! default 20) while a subject's marketing consent flips every ~50 ms and the policies are
//! reloaded every ~200 ms. Afterwards: every answer matches the
//! consent state of its time, every personal-data request has exactly one audit record, the
//! audit chain verifies, and the gateway's peak RSS stays under 256 MiB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::json;

/// At least this many requests...
const MIN_REQUESTS: usize = 12_000;
/// ...and for at least `SOAK_SECS` seconds (default), but never more than this many.
const DEFAULT_SECS: u64 = 20;
const MAX_REQUESTS: usize = 2_000_000;
const CONCURRENCY: usize = 64;
/// The subject whose marketing consent flips.
const FLIP: &str = "soak-flip";
/// An eu subject without consent.
const DENIED: &str = "soak-denied";
const HWM_LIMIT_KIB: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Marketing on the flipping subject.
    Flip,
    /// Marketing on c-1001 (granted once, never changed).
    Granted,
    /// Marketing on a subject without consent.
    Denied,
    /// Order fulfilment (contract) on c-1001.
    Contract,
    /// The catalog (not personal).
    Catalog,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 10 {
            0..=3 => Kind::Flip,
            4 | 5 => Kind::Granted,
            6 => Kind::Denied,
            7 => Kind::Contract,
            _ => Kind::Catalog,
        }
    }

    fn target(self) -> (String, Option<&'static str>) {
        match self {
            Kind::Flip => (format!("/api/customers/{FLIP}/profile"), Some("marketing")),
            Kind::Granted => (ADV_PROFILE.to_string(), Some("marketing")),
            Kind::Denied => (
                format!("/api/customers/{DENIED}/profile"),
                Some("marketing"),
            ),
            Kind::Contract => (ADV_PROFILE.to_string(), Some("order_fulfilment")),
            Kind::Catalog => ("/api/products/x".to_string(), None),
        }
    }
}

/// One answered request.
#[derive(Debug)]
struct Outcome {
    id: String,
    kind: Kind,
    sent: Instant,
    received: Instant,
    status: u16,
}

/// One consent write: when it was sent, when it was acknowledged, what it set.
#[derive(Debug, Clone, Copy)]
struct Write {
    sent: Instant,
    acked: Instant,
    granted: bool,
}

async fn worker(
    url: String,
    token: String,
    next: Arc<AtomicUsize>,
    until: Instant,
    out: Arc<Mutex<Vec<Outcome>>>,
) {
    let client = client();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= MAX_REQUESTS || (i >= MIN_REQUESTS && Instant::now() >= until) {
            return;
        }
        let kind = Kind::of(i);
        let (path, purpose) = kind.target();
        let id = format!("soak-{i}");
        let mut b = Request::get(format!("{url}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .header("x-request-id", &id);
        if let Some(p) = purpose {
            b = b.header("x-purpose", p);
        }
        let sent = Instant::now();
        let resp = client
            .request(b.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let received = Instant::now();
        let text = String::from_utf8_lossy(&body);
        // Marketing never sees these, whatever the timing.
        if purpose == Some("marketing") {
            assert_no_markers(&id, &text, PII_MARKERS);
        }
        out.lock().unwrap().push(Outcome {
            id,
            kind,
            sent,
            received,
            status,
        });
    }
}

async fn admin(bin: &Binary, method: Method, path: &str, token: &str, body: Option<String>) -> u16 {
    let r = send(build_request(
        method,
        &bin.admin_url(path),
        Some(token),
        body.as_deref(),
    ))
    .await;
    r.status.as_u16()
}

/// Flips the marketing consent of [`FLIP`] every ~50 ms until `stop`.
async fn flipper(bin: Arc<Binary>, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Write>>>) {
    let token = consent_admin_token();
    let path = format!("/v1/subjects/{FLIP}/consents/marketing");
    let mut granted = true;
    while !stop.load(Ordering::Relaxed) {
        let body = json!({"status": if granted { "granted" } else { "denied" }}).to_string();
        let sent = Instant::now();
        let status = admin(&bin, Method::PUT, &path, &token, Some(body)).await;
        let acked = Instant::now();
        assert_eq!(status, 200, "consent write");
        log.lock().unwrap().push(Write {
            sent,
            acked,
            granted,
        });
        granted = !granted;
        sleep_ms(50).await;
    }
}

/// Rewrites the copied eu policy's display name (a new version, the same rules) and reloads,
/// every ~200 ms until `stop`. Returns the number of successful reloads.
async fn reloader(bin: Arc<Binary>, dir: std::path::PathBuf, stop: Arc<AtomicBool>) -> usize {
    let token = auditor_token();
    let eu = dir.join("eu.yaml");
    let original = std::fs::read_to_string(&eu).unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let text = original.replace(
            "name: EU / EEA (GDPR)",
            &format!("name: EU / EEA (GDPR) soak {n}"),
        );
        let tmp = dir.join(".eu.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &eu).unwrap();
        let status = admin(&bin, Method::POST, "/v1/policies/reload", &token, None).await;
        assert_eq!(status, 200, "reload");
        n += 1;
        sleep_ms(200).await;
    }
    n
}

/// Whether `status` is consistent with the flips: the state ACKed before the request was sent,
/// or that of any write in flight (not yet ACKed when the request was sent, already sent before
/// its answer came back). The second value: the answer differs from the ACKed state (only the
/// in-flight tolerance admits it).
fn consistent(o: &Outcome, writes: &[Write]) -> (bool, bool) {
    let baseline = writes
        .iter()
        .rfind(|w| w.acked < o.sent)
        .map(|w| w.granted)
        .unwrap_or(false);
    let mut allowed = vec![baseline];
    allowed.extend(
        writes
            .iter()
            .filter(|w| w.acked >= o.sent && w.sent <= o.received)
            .map(|w| w.granted),
    );
    let got = match o.status {
        200 => true,
        403 => false,
        _ => return (false, false),
    };
    (allowed.contains(&got), got != baseline)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "soak test: run with scripts/soak"]
async fn soak_mixed_load_with_consent_flips_and_policy_reloads() {
    let up = marker_upstream().await;
    let work = tempfile::tempdir().unwrap();
    // A copy of the shipped policies, so reloads can rewrite it.
    let policies = work.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for e in std::fs::read_dir(shipped).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), policies.join(e.file_name())).unwrap();
        }
    }
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "")
        .replace(
            &format!("dir = \"{shipped}\""),
            &format!("dir = \"{}\"", policies.display()),
        )
        .replace("upstream_timeout = \"1s\"", "upstream_timeout = \"10s\"");
    assert!(config.contains(&policies.display().to_string()));
    let bin = Binary::start(work.path(), &config, gw_port, admin_port, "serve.log").await;
    let pid = bin.child.id();
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    prepare_subject(bin.admin, DENIED, "eu", &[]).await;
    prepare_subject(bin.admin, FLIP, "eu", &[]).await;
    admin_put_at(
        bin.admin,
        &format!("/v1/subjects/{FLIP}/consents/marketing"),
        json!({"status": "denied"}),
    )
    .await;
    let initial = Write {
        sent: Instant::now(),
        acked: Instant::now(),
        granted: false,
    };

    let bin = Arc::new(bin);
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(vec![initial]));
    let flips = tokio::spawn(flipper(bin.clone(), stop.clone(), writes.clone()));
    let reloads = tokio::spawn(reloader(bin.clone(), policies.clone(), stop.clone()));

    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(MIN_REQUESTS)));
    let token = adv_token();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            tokio::spawn(worker(
                format!("http://{}", bin.gw),
                token.clone(),
                next.clone(),
                until,
                outcomes.clone(),
            ))
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    flips.await.unwrap();
    let reload_count = reloads.await.unwrap();
    let hwm = vm_hwm_kib(pid);

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let writes = writes.lock().unwrap().clone();
    assert!(outcomes.len() >= MIN_REQUESTS, "{}", outcomes.len());

    // Every answer is what its kind and time allow.
    let mut tolerated = 0;
    let mut by_status: HashMap<(Kind, u16), usize> = HashMap::new();
    for o in &outcomes {
        *by_status.entry((o.kind, o.status)).or_default() += 1;
        match o.kind {
            Kind::Flip => {
                let (ok, tolerant) = consistent(o, &writes);
                assert!(
                    ok,
                    "{}: {} inconsistent with the consent flips",
                    o.id, o.status
                );
                tolerated += usize::from(tolerant);
            }
            Kind::Denied => assert_eq!(o.status, 403, "{}", o.id),
            _ => assert_eq!(o.status, 200, "{}", o.id),
        }
    }

    let bin = Arc::into_inner(bin).expect("binary still shared");
    assert!(bin.stop(), "the gateway exits 0 on SIGTERM");

    // One audit record per personal-data request, none for the catalog; decisions match.
    let audit_dir = work.path().join("data/audit");
    let records = audit_records(&audit_dir);
    let mut by_id: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
    for r in &records {
        by_id
            .entry(r["request_id"].as_str().unwrap())
            .or_default()
            .push(r);
    }
    for o in &outcomes {
        let recs = by_id.get(o.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        if o.kind == Kind::Catalog {
            assert!(recs.is_empty(), "{}: {recs:?}", o.id);
            continue;
        }
        assert_eq!(recs.len(), 1, "{}: {} records", o.id, recs.len());
        assert_eq!(recs[0]["status"], o.status, "{}", o.id);
        let want = if o.status == 200 { "allow" } else { "deny" };
        assert_eq!(recs[0]["decision"], want, "{}", o.id);
    }
    let (code, out) = cli(&["audit", "verify", "--dir", audit_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "audit verify: {out}");
    assert!(hwm < HWM_LIMIT_KIB, "VmHWM {} MiB", hwm / 1024);

    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.received - o.sent).collect();
    latencies.sort();
    let personal = outcomes.iter().filter(|o| o.kind != Kind::Catalog).count();
    let mut counts: Vec<_> = by_status.into_iter().collect();
    counts.sort_by_key(|((k, s), _)| (format!("{k:?}"), *s));
    println!("soak summary");
    println!(
        "  requests       {} in {:.1} s ({:.0}/s) at {CONCURRENCY} connections",
        outcomes.len(),
        elapsed.as_secs_f64(),
        outcomes.len() as f64 / elapsed.as_secs_f64()
    );
    for ((k, s), n) in counts {
        println!("  {:<14} {s}: {n}", format!("{k:?}"));
    }
    println!(
        "  latency        p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    println!(
        "  consent flips  {} (write latency mean {:?}; answers that differ from the last ACKed state, admitted as in flight: {tolerated})",
        writes.len() - 1,
        writes[1..]
            .iter()
            .map(|w| w.acked - w.sent)
            .sum::<Duration>()
            / (writes.len() as u32 - 1).max(1)
    );
    println!("  policy reloads {reload_count}");
    println!(
        "  audit          {} records, {personal} personal requests, chain verified",
        records.len()
    );
    println!(
        "  gateway VmHWM  {} MiB (limit {} MiB)",
        hwm / 1024,
        HWM_LIMIT_KIB / 1024
    );
}
