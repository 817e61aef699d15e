//! PostgreSQL for the store tests: the cluster CI starts (`CONSENTGATE_TEST_PG_URL`,
//! `CONSENTGATE_TEST_PG_PASSWORD_FILE`, from `scripts/pg-dev env`), a fresh database per
//! test, private clusters for tests that stop the server, and configs for gateways on it.
//!
//! Tests that need PostgreSQL call [`pg_env`] first: under CI (`CI` set) a missing
//! variable FAILS the test; elsewhere the test is skipped with a loud message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the test cluster is.
#[derive(Debug, Clone)]
pub struct PgEnv {
    /// URL of the cluster's `consentgate` database (superuser `consentgate`).
    pub url: String,
    /// File holding the password.
    pub password_file: PathBuf,
}

/// The test cluster from the environment; `None` (skip) outside CI when it is not set.
pub fn pg_env() -> Option<PgEnv> {
    let url = std::env::var("CONSENTGATE_TEST_PG_URL").ok();
    let pw = std::env::var("CONSENTGATE_TEST_PG_PASSWORD_FILE").ok();
    match (url, pw) {
        (Some(url), Some(pw)) if !url.is_empty() => Some(PgEnv {
            url,
            password_file: PathBuf::from(pw),
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "this test needs PostgreSQL: CONSENTGATE_TEST_PG_URL and \
                 CONSENTGATE_TEST_PG_PASSWORD_FILE must be set in CI (.ci/run starts \
                 scripts/pg-dev and exports them)"
            );
            eprintln!(
                "\n*** SKIPPED: this test needs PostgreSQL. Run `eval \"$(scripts/pg-dev env)\"` \
                 and run the tests again. ***\n"
            );
            None
        }
    }
}

fn password(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap().trim_end().to_owned()
}

/// A client on `url` (no TLS; the test cluster listens on loopback only).
pub async fn pg_client(url: &str, password_file: &Path) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.password(password(password_file));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_database(env: &PgEnv) -> String {
    let client = pg_client(&env.url, &env.password_file).await;
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let name = format!(
        "cgtest_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = env.url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// The `[store]` table for a PostgreSQL store.
pub fn pg_store_section(url: &str, password_file: &Path, max_staleness: &str) -> String {
    format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\nmax_staleness = \"{max_staleness}\"\n",
        password_file.display()
    )
}

/// Replaces the sled `[store]` table of a test config with `section`.
pub fn with_store(config: &str, section: &str) -> String {
    let old = "[store]\npath = \"data/consent\"\n";
    assert!(config.contains(old), "config has no sled [store] table");
    config.replacen(old, section, 1)
}

/// [`super::config_text`] on PostgreSQL.
pub fn pg_config_text(upstream: SocketAddr, url: &str, pw: &Path, max_staleness: &str) -> String {
    with_store(
        &super::config_text(upstream, ""),
        &pg_store_section(url, pw, max_staleness),
    )
}

/// A private cluster (its own folder and port) for tests that stop and start the server;
/// destroyed on drop.
pub struct PrivateCluster {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub password_file: PathBuf,
}

fn pg_dev(dir: &Path, cmd: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-dev");
    let out = std::process::Command::new(script)
        .arg(cmd)
        .env("PGDEV_DIR", dir)
        // Used when the cluster is created (a restart keeps its port): one no client takes.
        .env("PGDEV_PORT", super::free_port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/pg-dev {cmd} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PrivateCluster {
    /// Creates and starts a cluster (a few seconds).
    pub fn start() -> PrivateCluster {
        let dir = tempfile::Builder::new()
            .prefix("cg-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        let text = pg_dev(dir.path(), "env");
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap()
                .to_owned()
        };
        PrivateCluster {
            url: var("CONSENTGATE_TEST_PG_URL"),
            password_file: PathBuf::from(var("CONSENTGATE_TEST_PG_PASSWORD_FILE")),
            dir,
        }
    }

    /// Fast shutdown (connections are terminated).
    pub fn stop(&self) {
        pg_dev(self.dir.path(), "stop");
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        pg_dev(self.dir.path(), "start");
    }

    pub fn env(&self) -> PgEnv {
        PgEnv {
            url: self.url.clone(),
            password_file: self.password_file.clone(),
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-dev");
        let _ = std::process::Command::new(script)
            .arg("destroy")
            .env("PGDEV_DIR", self.dir.path())
            .output();
    }
}

/// Polls `f` until it returns true or `limit` passes; returns the time it took.
pub async fn wait_until<F, Fut>(limit: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Polls `status` (an HTTP status; 0 for a failed request) after a withdrawal acknowledged
/// at `acked`, until it answers 403 or `2 × limit` passes. Returns (the latest *send* time,
/// relative to `acked`, of a request that was still allowed; the time the first 403 was
/// received). The staleness guarantee is: the first value is below `limit`.
pub async fn watch_until_refused<F, Fut>(
    mut status: F,
    acked: std::time::Instant,
    limit: Duration,
) -> (Duration, Option<Duration>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut last_allowed_send = Duration::ZERO;
    while acked.elapsed() < 2 * limit {
        let sent = acked.elapsed();
        match status().await {
            403 => return (last_allowed_send, Some(acked.elapsed())),
            200 => last_allowed_send = sent,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (last_allowed_send, None)
}
