//! Crash durability of consent writes with the real binary: acknowledged writes survive a
//! SIGKILL that lands while more writes are in flight, and the current state after restart is
//! the last acknowledged write per purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const PURPOSES: [&str; 5] = [
    "marketing",
    "analytics",
    "personalisation",
    "sale",
    "cross_context_advertising",
];

/// Writes `consentgate.toml` into `dir` (relative data paths, absolute keys and policies) and
/// returns its path and the admin address.
fn write_config(dir: &Path) -> (PathBuf, SocketAddr) {
    let gateway: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The upstream is never contacted: only the admin API is used.
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let text = config_text(upstream, "")
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{gateway}\""),
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{admin}\""),
            1,
        );
    assert!(text.contains("path = \"data/consent\""));
    let path = dir.join("consentgate.toml");
    std::fs::write(&path, text).unwrap();
    (path, admin)
}

/// The gateway binary as a child process; killed (SIGKILL) when dropped.
struct Gateway {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl Gateway {
    async fn start(dir: &Path, config: &Path, admin: SocketAddr, run: u32) -> Gateway {
        let log = dir.join(format!("gateway-{run}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut gw = Gateway { child, admin, log };
        gw.wait_ready().await;
        gw
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "gateway exited early ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(r) = try_send(build_request(Method::GET, &url, None, None)).await
                && r.status == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready in 15 s: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            sleep_ms(50).await;
        }
    }

    /// SIGKILL: no shutdown handler runs, nothing is flushed on the way out.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One consent change to send.
#[derive(Debug, Clone)]
struct Op {
    subject: String,
    purpose: &'static str,
    /// `granted`, `denied` or `withdrawn` (DELETE).
    status: &'static str,
    expires_at: Option<String>,
}

impl Op {
    /// The `n`-th change of a deterministic mix over five purposes.
    fn nth(subject: &str, n: usize) -> Op {
        let status = ["granted", "denied", "withdrawn", "granted"][n % 4];
        Op {
            subject: subject.to_string(),
            purpose: PURPOSES[(n / 2 + n) % PURPOSES.len()],
            status,
            expires_at: (status == "granted" && n.is_multiple_of(3)).then(|| rfc3339_in(86_400)),
        }
    }

    /// Sends the change; `Ok(receipt)` only when acknowledged with 200.
    async fn send(&self, admin: SocketAddr) -> Result<Value, String> {
        let url = format!(
            "http://{admin}/v1/subjects/{}/consents/{}",
            self.subject, self.purpose
        );
        let t = consent_admin_token();
        let req = if self.status == "withdrawn" {
            build_request(Method::DELETE, &url, Some(&t), None)
        } else {
            let mut body = json!({"status": self.status, "source": "durability-test"});
            if let Some(at) = &self.expires_at {
                body["expires_at"] = json!(at);
            }
            build_request(Method::PUT, &url, Some(&t), Some(&body.to_string()))
        };
        let r = try_send(req).await?;
        assert_eq!(r.status, StatusCode::OK, "a write answered: {}", r.text());
        let receipt = r.json();
        assert_eq!(receipt["status"], self.status);
        assert_eq!(receipt["purpose"], self.purpose);
        Ok(receipt)
    }
}

/// What one writer knows after the crash: acknowledged receipts, and at most one write that
/// was sent but not answered (it may or may not have been applied).
#[derive(Debug, Default)]
struct Outcome {
    acked: Vec<Value>,
    unknown: Option<Op>,
}

async fn admin_get(admin: SocketAddr, path: &str) -> Value {
    let url = format!("http://{admin}{path}");
    let r = try_send(build_request(
        Method::GET,
        &url,
        Some(&consent_admin_token()),
        None,
    ))
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    r.json()
}

/// Checks one subject after the restart against what its writer saw.
/// Returns whether the unanswered write, if any, was applied.
async fn verify(admin: SocketAddr, subject: &str, outcome: &Outcome) -> bool {
    let history = admin_get(admin, &format!("/v1/subjects/{subject}/consents/history")).await;
    let receipts = history["receipts"].as_array().unwrap();
    let by_id: BTreeMap<&str, &Value> = receipts
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_id.len(), receipts.len(), "receipt ids are unique");
    let ids: Vec<&str> = receipts.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "{subject}: history is oldest first");

    // Every acknowledged write is there, unchanged.
    for ack in &outcome.acked {
        let id = ack["id"].as_str().unwrap();
        let stored = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{subject}: acknowledged receipt {id} lost in the crash"));
        assert_eq!(*stored, ack, "{subject}: receipt {id} changed");
    }
    // Nothing else, except possibly the one unanswered write.
    let extra: Vec<&&Value> = by_id
        .iter()
        .filter(|(id, _)| !outcome.acked.iter().any(|a| a["id"] == **id))
        .map(|(_, r)| r)
        .collect();
    match (&outcome.unknown, extra.as_slice()) {
        (_, []) => {}
        (Some(op), [r]) => {
            assert_eq!(
                r["purpose"], op.purpose,
                "{subject}: unexpected receipt {r}"
            );
            assert_eq!(r["status"], op.status, "{subject}: unexpected receipt {r}");
            let last_acked = outcome.acked.last().map(|a| a["id"].as_str().unwrap());
            assert!(
                last_acked.is_none_or(|l| r["id"].as_str().unwrap() > l),
                "{subject}: the unanswered write comes after the acknowledged ones"
            );
        }
        (_, more) => panic!("{subject}: receipts nobody wrote: {more:?}"),
    }

    // Current state: the last acknowledged write per purpose, unless the unanswered write
    // (which came after every acknowledged one) was applied.
    let current = admin_get(admin, &format!("/v1/subjects/{subject}/consents")).await;
    let consents = current["consents"].as_array().unwrap();
    let mut last: BTreeMap<&str, &Value> = BTreeMap::new();
    for ack in &outcome.acked {
        last.insert(ack["purpose"].as_str().unwrap(), ack);
    }
    for (purpose, ack) in &last {
        let record = consents
            .iter()
            .find(|c| c["purpose"] == *purpose)
            .unwrap_or_else(|| panic!("{subject}: no current state for {purpose}"));
        let applied_later = extra
            .first()
            .is_some_and(|r| r["purpose"] == *purpose && record["receipt_id"] == r["id"]);
        if !applied_later {
            assert_eq!(record["receipt_id"], ack["id"], "{subject}/{purpose}");
            assert_eq!(record["status"], ack["status"], "{subject}/{purpose}");
            assert_eq!(
                record.get("expires_at"),
                ack.get("expires_at"),
                "{subject}/{purpose}"
            );
        }
    }
    assert!(
        consents.len() <= last.len() + usize::from(!extra.is_empty()),
        "{subject}: current state has purposes nobody wrote: {current}"
    );
    !extra.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_consent_writes_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (config, admin) = write_config(dir.path());
    let mut gw = Gateway::start(dir.path(), &config, admin, 1).await;

    // Phase 1: 50 sequential writes, every one acknowledged.
    let mut main = Outcome::default();
    set_region(admin, "dur-main", "us-ca").await;
    for n in 0..50 {
        let receipt = Op::nth("dur-main", n).send(admin).await.unwrap();
        main.acked.push(receipt);
    }

    // Phase 2: concurrent writers, killed mid-flight.
    let writers: Vec<(String, Arc<Mutex<Outcome>>)> = (0..3)
        .map(|k| {
            (
                format!("dur-w{k}"),
                Arc::new(Mutex::new(Outcome::default())),
            )
        })
        .collect();
    let mut tasks = Vec::new();
    for (subject, outcome) in &writers {
        let (subject, outcome) = (subject.clone(), outcome.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let op = Op::nth(&subject, n);
                outcome.lock().unwrap().unknown = Some(op.clone());
                match op.send(admin).await {
                    Ok(receipt) => {
                        let mut o = outcome.lock().unwrap();
                        o.acked.push(receipt);
                        o.unknown = None;
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let acked = || {
        writers
            .iter()
            .map(|(_, o)| o.lock().unwrap().acked.len())
            .sum::<usize>()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while acked() < 30 && Instant::now() < deadline {
        sleep_ms(5).await;
    }
    gw.kill();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("writers stop once the gateway is gone")
            .unwrap();
    }
    let in_flight = writers
        .iter()
        .filter(|(_, o)| o.lock().unwrap().unknown.is_some())
        .count();
    assert!(acked() > 0, "some concurrent writes were acknowledged");
    eprintln!(
        "killed with {} concurrent writes acknowledged, {in_flight} unanswered",
        acked()
    );

    // Restart on the same directory.
    let gw2 = Gateway::start(dir.path(), &config, admin, 2).await;
    assert!(!verify(admin, "dur-main", &main).await);
    let current = admin_get(admin, "/v1/subjects/dur-main/consents").await;
    assert_eq!(current["region"], "us-ca", "the subject's region survived");
    let mut applied = 0;
    for (subject, outcome) in &writers {
        let outcome = std::mem::take(&mut *outcome.lock().unwrap());
        applied += usize::from(verify(admin, subject, &outcome).await);
    }
    eprintln!("{applied} of the unanswered writes were applied before the kill");

    // Receipt ids are never reused after the crash.
    let subjects = writers
        .iter()
        .map(|(subject, _)| subject.clone())
        .chain(std::iter::once("dur-main".to_string()));
    let mut max_id = String::new();
    for subject in subjects {
        let h = admin_get(admin, &format!("/v1/subjects/{subject}/consents/history")).await;
        for r in h["receipts"].as_array().unwrap() {
            max_id = max_id.max(r["id"].as_str().unwrap().to_string());
        }
    }
    let fresh = Op::nth("dur-main", 1).send(admin).await.unwrap();
    assert!(
        fresh["id"].as_str().unwrap() > max_id.as_str(),
        "new id {} after {max_id}",
        fresh["id"]
    );
    drop(gw2);
    drop(gw);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

async fn set_region(admin: SocketAddr, subject: &str, region: &str) {
    let url = format!("http://{admin}/v1/subjects/{subject}");
    let body = json!({ "region": region }).to_string();
    let r = try_send(build_request(
        Method::PUT,
        &url,
        Some(&consent_admin_token()),
        Some(&body),
    ))
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
