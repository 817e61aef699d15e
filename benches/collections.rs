//! Collection routes through the whole gateway (in process, loopback sockets, sled store,
//! audit `group`): not a test, figures printed for docs/PERFORMANCE.md.
//!
//! 1. A 1,000-record JSON list (~1 MB, subjects across eu / us-ca / br / default with mixed
//!    consents): the median time of GET through the gateway minus the median of the same GET
//!    straight to the upstream, at one connection (issue target ≤ 10 ms added).
//! 2. An NDJSON export of `NDJSON_RECORDS` records (default 1,000,000) through the gateway:
//!    records/s and the process's peak RSS growth (upstream, gateway and client share the
//!    process, so the figure is an upper bound for the gateway; issue target ≥ 100,000
//!    records/s, RSS ≤ 64 MiB).
//!
//! Run: `cargo bench --bench collections` (`ROUNDS=…`, `NDJSON_RECORDS=…`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consentgate::Gateway;
use consentgate::config::Settings;
use consentgate::consent::parse_import;
use consentgate::http::{Body, full};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};

const RECORDS: usize = 1000;
const REGIONS: [&str; 4] = ["eu", "us-ca", "br", "default"];

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn customer(i: usize) -> Value {
    json!({
        "id": format!("c-{i:06}"), "first_name": "Anna", "last_name": "Schmidt",
        "email": format!("anna.{i}@example.eu"), "phone": "+49 30 1234567",
        "date_of_birth": "1987-04-12",
        "address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"},
        "preferences": {"newsletter": true, "language": "de"},
        "payment": {"card_number": "4111 1111 1111 1111", "iban": "DE89 3704 0044 0532 0130 00"},
        "orders": [{"id": "o-1", "sku": "SKU-1234", "total": 42.5, "placed_at": "2026-10-02T09:14:00Z"},
                   {"id": "o-2", "sku": "SKU-9876", "total": 12.0, "placed_at": "2026-11-01T17:40:00Z"}],
        "support_notes": "Called about the last order; wants the newsletter in German."
    })
}

fn rss_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn upstream(list: Bytes, lines: Arc<Vec<Bytes>>, ndjson_records: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let list = list.clone();
            let lines = lines.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let list = list.clone();
                    let lines = lines.clone();
                    async move {
                        let body: Body = if req.uri().path().ends_with("/export") {
                            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
                            let lines = lines.clone();
                            tokio::spawn(async move {
                                // Lines serialised once: the upstream only copies bytes, so
                                // the figure is the gateway's, not the generator's.
                                let mut chunk = bytes::BytesMut::with_capacity(80 * 1024);
                                for i in 0..ndjson_records {
                                    chunk.extend_from_slice(&lines[i % lines.len()]);
                                    if chunk.len() > 64 * 1024
                                        && tx.send(chunk.split().freeze()).await.is_err()
                                    {
                                        return;
                                    }
                                }
                                let _ = tx.send(chunk.freeze()).await;
                            });
                            BodyExt::boxed(ChannelBody(rx))
                        } else {
                            full(list)
                        };
                        let mut resp = Response::new(body);
                        resp.headers_mut().insert(
                            "content-type",
                            "application/json"
                                .parse()
                                .unwrap_or_else(|_| unreachable!()),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A body fed through a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = consentgate::http::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn config(upstream: SocketAddr, certs: &std::path::Path) -> String {
    let certs = certs.display();
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
default_region = "default"
upstream_timeout = "30s"
[admin]
listen = "127.0.0.1:0"
[auth]
issuer = "consentgate-dev"
audience = "consentgate"
jwks = "{certs}/jwks.json"
[store]
path = "data/consent"
[audit]
dir = "data/audit"
sync = "group"
[policies]
dir = "{policies}"
hash_secret_file = "{certs}/hash.secret"
watch = false
[[route]]
name = "list"
match = "/api/customers"
upstream = "http://{upstream}"
personal_data = true
collection = {{ path = "items", subject = "id", envelope = ["total"] }}
[[route]]
name = "export"
match = "/api/export"
upstream = "http://{upstream}"
personal_data = true
collection = {{ format = "ndjson", subject = "id" }}
"#,
        policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
    )
}

/// Regions for every subject, marketing granted for two in three, denied for the rest.
async fn seed(gateway: &Gateway) {
    let mut ndjson = String::new();
    for i in 0..RECORDS {
        let status = if i % 3 == 0 { "denied" } else { "granted" };
        ndjson.push_str(&format!(
            "{{\"subject\":\"c-{i:06}\",\"purpose\":\"marketing\",\"status\":\"{status}\",\"region\":\"{}\",\"source\":\"bench\"}}\n",
            REGIONS[i % REGIONS.len()]
        ));
    }
    let parsed = parse_import(ndjson.as_bytes(), "bench", time::OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("seed: {e}"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    gateway
        .state()
        .store
        .import(parsed.lines)
        .await
        .unwrap_or_else(|e| panic!("seed: {e}"));
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn get(client: &HttpClient, url: &str, token: Option<&str>) -> (u16, usize) {
    let mut b = Request::get(url).header("x-purpose", "marketing");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("request: {e}"));
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap_or_else(|e| panic!("body: {e}")).into_data() {
            n += data.len();
        }
    }
    (status, n)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds = env_or("ROUNDS", 200);
    let ndjson_records = env_or("NDJSON_RECORDS", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let certs = dir.path().join("certs/dev");
    consentgate::devtools::certs::generate(&certs).unwrap_or_else(|e| panic!("certs: {e}"));
    let items: Vec<Value> = (0..RECORDS).map(customer).collect();
    let list = Bytes::from(
        serde_json::to_vec(&json!({"items": items, "total": RECORDS})).unwrap_or_default(),
    );
    rt.block_on(async {
        let lines: Vec<Bytes> = items
            .iter()
            .map(|c| Bytes::from(format!("{c}\n")))
            .collect();
        let up = upstream(list.clone(), Arc::new(lines), ndjson_records).await;
        let settings = Settings::from_toml(&config(up, &certs), dir.path())
            .unwrap_or_else(|e| panic!("config: {e}"));
        let gateway = Gateway::bind(settings).await.unwrap_or_else(|e| panic!("bind: {e}"));
        seed(&gateway).await;
        let gw = gateway.gateway_addr();
        tokio::spawn(gateway.serve(std::future::pending()));
        let token = consentgate::devtools::token::sign(
            &certs.join("jwt.key"),
            &consentgate::devtools::token::TokenRequest {
                sub: "bench",
                purposes: vec!["marketing".into()],
                scope: "",
                ttl: Duration::from_secs(3600),
                issuer: "consentgate-dev",
                audience: "consentgate",
            },
        )
        .unwrap_or_else(|e| panic!("token: {e}"));
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let direct_url = format!("http://{up}/api/customers");
        let gw_url = format!("http://{gw}/api/customers");
        // Warm both paths (connections, sled cache, policy plans).
        for _ in 0..20 {
            get(&client, &direct_url, None).await;
            get(&client, &gw_url, Some(&token)).await;
        }
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        let mut released = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            get(&client, &direct_url, None).await;
            direct.push(t.elapsed());
            let t = Instant::now();
            let (status, n) = get(&client, &gw_url, Some(&token)).await;
            through.push(t.elapsed());
            assert_eq!(status, 200);
            released = n;
        }
        let (d, g) = (median(direct), median(through));
        println!(
            "list of {RECORDS} records ({} KB upstream, {} KB released): direct p50 {:.2} ms, through the gateway p50 {:.2} ms, added {:.2} ms ({:.2} µs/record: decision, minimisation, serialisation and audit)",
            list.len() / 1024,
            released / 1024,
            d.as_secs_f64() * 1e3,
            g.as_secs_f64() * 1e3,
            (g.saturating_sub(d)).as_secs_f64() * 1e3,
            g.saturating_sub(d).as_secs_f64() * 1e6 / RECORDS as f64
        );

        let t = Instant::now();
        let (_, direct_bytes) = get(&client, &format!("http://{up}/api/export"), None).await;
        println!(
            "NDJSON export straight from the upstream: {} MB in {:.2} s",
            direct_bytes / (1 << 20),
            t.elapsed().as_secs_f64()
        );
        let rss_before = rss_kib("VmRSS:");
        let t = Instant::now();
        let (status, bytes) = get(&client, &format!("http://{gw}/api/export"), Some(&token)).await;
        let elapsed = t.elapsed();
        assert_eq!(status, 200);
        println!(
            "NDJSON export of {ndjson_records} records ({} MB released): {:.1} s, {:.0} records/s; process RSS {} MiB before, peak {} MiB",
            bytes / (1 << 20),
            elapsed.as_secs_f64(),
            ndjson_records as f64 / elapsed.as_secs_f64(),
            rss_before / 1024,
            rss_kib("VmHWM:") / 1024
        );
    });
}
