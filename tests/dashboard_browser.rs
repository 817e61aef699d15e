//! The dashboard in a real headless browser (Debian's Chromium driven by chromedriver over
//! the W3C WebDriver protocol): the gateway runs with the seeded history, the page loads
//! from the admin listener, a token is typed in, the seeded figures appear, an access report
//! opens, nothing is stored in the browser, and a screenshot is kept at
//! `target/dashboard.png`.
//!
//! Without `chromium` and `chromedriver` (`scripts/dashboard-test` installs them) the test
//! fails under `CI`, and is skipped with a message otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stats_seed;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(method: Method, url: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let reply = send(req).await;
    let v = reply.json();
    assert!(reply.status.is_success(), "webdriver {url}: {v}");
    v["value"].clone()
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.driver.base, self.id)
    }

    async fn js(&self, script: &str) -> Value {
        call(
            Method::POST,
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let v = call(
            Method::POST,
            &self.url("/element"),
            Some(json!({"using": "css selector", "value": css})),
        )
        .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Waits (up to 10 s) until `script` returns true.
    async fn wait_for(&self, script: &str) {
        for _ in 0..100 {
            if self.js(script).await == json!(true) {
                return;
            }
            sleep_ms(100).await;
        }
        let status = self
            .js("return document.getElementById('status').textContent")
            .await;
        panic!("timed out waiting for {script}; page status: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_seeded_figures_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        which("chromium").or_else(|| which("chromium-browser")),
        which("chromedriver"),
    ) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromedriver are not installed (scripts/dashboard-test installs them); CI must run this test"
        );
        eprintln!(
            "SKIPPED: chromium and chromedriver are not installed (run scripts/dashboard-test)"
        );
        return;
    };
    let up = stats_seed::upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    stats_seed::seed(&gw).await;

    let port = common::free_port();
    let driver = Driver {
        child: Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = try_send(
            Request::get(format!("{}/status", driver.base))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
            && r.json()["value"]["ready"] == true
        {
            ready = true;
            break;
        }
        sleep_ms(100).await;
    }
    assert!(ready, "chromedriver did not start");
    let session = call(
        Method::POST,
        &format!("{}/session", driver.base),
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,2000"]
            }
        }}})),
    )
    .await;
    let s = Session {
        driver: &driver,
        id: session["sessionId"].as_str().unwrap().to_owned(),
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        call(
            Method::POST,
            &s.url("/url"),
            Some(json!({"url": admin_url(&gw, "/dashboard")})),
        )
        .await;
        assert_eq!(
            s.js("return document.title").await,
            "consentgate — compliance dashboard"
        );
        let input = s.find("#token").await;
        call(
            Method::POST,
            &s.url(&format!("/element/{input}/value")),
            Some(json!({"text": auditor_token()})),
        )
        .await;
        let button = s.find("#load").await;
        call(Method::POST, &s.url(&format!("/element/{button}/click")), Some(json!({}))).await;
        s.wait_for("return !document.getElementById('figures').hidden").await;

        let row = |cell: &str, table: &str| {
            format!(
                "return [...document.querySelectorAll('#{table} tbody tr[data-cell=\"{cell}\"] td')].map(td => td.textContent)"
            )
        };
        assert_eq!(
            s.js(&row("eu/marketing", "consent-table")).await,
            json!(["eu", "marketing", "1", "1", "1", "1", "25.0%"])
        );
        assert_eq!(
            s.js(&row("default/marketing", "consent-table")).await,
            json!(["default", "marketing", "1", "0", "0", "0", "100.0%"])
        );
        assert_eq!(
            s.js(&row("eu/marketing", "access-table")).await,
            json!(["eu", "marketing", "7", "4", "3", "0", "0", "6", "3"])
        );
        assert_eq!(
            s.js(&row("us-ca/sale", "access-table")).await.as_array().unwrap()[6],
            "1",
            "GPC applied"
        );
        let tile = |id: &str| format!("return document.querySelector('#incident-{id} b').textContent");
        assert_eq!(s.js(&tile("report_deny")).await, "1");
        assert_eq!(s.js(&tile("fail_closed")).await, "1");
        assert_eq!(s.js(&tile("audit_failures")).await, "0");
        assert_eq!(
            s.js("return [...document.querySelectorAll('#callers-table tbody tr')].map(r => r.textContent).slice(0, 2)").await,
            json!(["marketingcrm6", "marketingads1"])
        );
        // The charts are inline SVG: two rects per decided cell (three here), bars on the timeline.
        assert_eq!(
            s.js("return document.querySelectorAll('#consent-chart svg rect').length").await,
            json!(6)
        );
        assert!(
            s.js("return document.querySelectorAll('#timeline svg rect').length").await.as_u64().unwrap() >= 3
        );
        // A subject's access report, fetched with the token kept in memory.
        let link = s.find("#subjects-table a.report-link").await;
        call(Method::POST, &s.url(&format!("/element/{link}/click")), Some(json!({}))).await;
        s.wait_for("return !document.getElementById('report').hidden").await;
        let report = s.js("return document.getElementById('report').textContent").await;
        assert!(report.as_str().unwrap().contains("c-eu-1"), "{report}");
        // Nothing kept in the browser: no storage, no cookie, the input cleared.
        assert_eq!(
            s.js("return [localStorage.length, sessionStorage.length, document.cookie, document.getElementById('token').value]").await,
            json!([0, 0, "", ""])
        );
        let png = call(Method::GET, &s.url("/screenshot"), None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("dashboard.png"), &bytes).unwrap();
        eprintln!("screenshot: {}", target.join("dashboard.png").display());
    })
    .await
    .expect("the browser test took over a minute");
    let _ = call(Method::DELETE, &s.url(""), None).await;
    gw.shutdown().await;
}
