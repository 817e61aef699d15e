//! `/metrics` checked by Prometheus' own tool, and the operators' kit in `deploy/` checked
//! against it: `promtool check metrics` on the text format, `promtool check rules`
//! on the alerting rules, and every metric the Grafana dashboard and the rules query present
//! in a scrape after the seeded history.
//!
//! Without `promtool` (Debian package `prometheus`) these fail under `CI`, and are skipped
//! with a message otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stats_seed;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is not installed (apt-get install prometheus); CI must run this check"
    );
    eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
    None
}

fn check_metrics(tool: &str, text: &str) {
    let mut child = Command::new(tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metric names in PromQL expressions (`consentgate_…`).
fn names_in(expr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"consentgate_[a-z0-9_]+").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposition_passes_promtool_and_deploy_queries_name_real_series() {
    let up = stats_seed::upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    stats_seed::seed(&gw).await;
    let text = get(&admin_url(&gw, "/metrics"), None, &[]).await.text();
    let open = get(
        &admin_url(&gw, "/metrics"),
        None,
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await
    .text();
    gw.shutdown().await;

    // Every sample name in the scrape.
    let samples: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/consentgate.json")).unwrap(),
    )
    .unwrap();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(names_in(target["expr"].as_str().unwrap()));
        }
    }
    let rules = std::fs::read_to_string(deploy.join("prometheus/alerts.yml")).unwrap();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        queried.extend(names_in(line));
    }
    assert!(queried.len() > 10, "{queried:?}");
    for name in &queried {
        assert!(
            samples.contains(name),
            "{name} is queried but not exported:\n{text}"
        );
    }

    let Some(tool) = promtool() else { return };
    check_metrics(tool, &text);
    // promtool reads the text format only; the OpenMetrics form is checked for its shape.
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE consentgate_incidents counter\n"),
        "{open}"
    );
    let out = Command::new(tool)
        .args(["check", "rules"])
        .arg(deploy.join("prometheus/alerts.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
