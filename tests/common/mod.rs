//! Shared test support: dev keys in a temp dir, an in-process upstream on port 0, the gateway
//! in-process on port 0, a plain hyper client, and token minting for good and bad tokens.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use consentgate::Gateway;
use consentgate::config::Settings;
use consentgate::http::{Body, full};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub type UpstreamFn =
    Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An in-process upstream recording what it receives.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(handler: UpstreamFn) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            log.lock().unwrap().push(seen.clone());
                            Ok::<_, Infallible>(handler(seen).await)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    /// An upstream that answers every request with this JSON.
    pub async fn json(value: Value) -> Upstream {
        let body = Bytes::from(serde_json::to_vec(&value).unwrap());
        Upstream::start(Arc::new(move |_seen| {
            let body = body.clone();
            Box::pin(async move { json_response(StatusCode::OK, body) })
        }))
        .await
    }

    /// An upstream that echoes the request (method, uri, headers, body) as JSON.
    pub async fn echo() -> Upstream {
        Upstream::start(Arc::new(|seen: Seen| {
            Box::pin(async move {
                let headers: serde_json::Map<String, Value> = seen
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            Value::String(v.to_str().unwrap_or("?").to_string()),
                        )
                    })
                    .collect();
                let v = json!({"method": seen.method.as_str(), "uri": seen.uri, "headers": headers,
                               "body": String::from_utf8_lossy(&seen.body)});
                json_response(StatusCode::OK, Bytes::from(serde_json::to_vec(&v).unwrap()))
            })
        }))
        .await
    }

    /// An upstream that answers `body` (JSON) to every request, each only once `release` (the
    /// returned sender) turns true: the requests are surely in flight until then, however
    /// loaded the machine.
    pub async fn held(body: &'static [u8]) -> (Upstream, tokio::sync::watch::Sender<bool>) {
        let (release, held) = tokio::sync::watch::channel(false);
        let up = Upstream::start(Arc::new(move |_seen| {
            let mut held = held.clone();
            Box::pin(async move {
                let _ = held.wait_for(|go| *go).await;
                json_response(StatusCode::OK, Bytes::from_static(body))
            })
        }))
        .await;
        (up, release)
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until this upstream has received `n` requests (20 s at most).
    pub async fn wait_for(&self, n: usize) {
        let started = std::time::Instant::now();
        while self.count() < n {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{n} requests never reached the upstream ({} did)",
                self.count()
            );
            sleep_ms(5).await;
        }
    }
}

pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// Dev key material in a temp dir, made once per test process.
pub fn dev_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let certs = tmp.path().join("certs/dev");
        consentgate::devtools::certs::generate(&certs).unwrap();
        (tmp, certs)
    })
    .1
}

/// A config for tests: routes `customers` (personal) and `catalog`, both to `upstream`.
pub fn config_text(upstream: SocketAddr, extra_gateway: &str) -> String {
    let certs = dev_dir().display();
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
default_region = "default"
max_body_bytes = 65536
upstream_timeout = "1s"
shutdown_grace = "5s"
{extra_gateway}
[admin]
listen = "127.0.0.1:0"
[auth]
issuer = "consentgate-dev"
audience = "consentgate"
jwks = "{certs}/jwks.json"
hs256_secret_file = "{certs}/hs256.secret"
leeway = "5s"
[store]
path = "data/consent"
[audit]
dir = "data/audit"
[policies]
dir = "{policies}"
hash_secret_file = "{certs}/hash.secret"
watch = false
[[route]]
name = "customers"
match = "/api/customers/{{subject}}/**"
upstream = "http://{upstream}"
personal_data = true
[[route]]
name = "catalog"
match = "/api/products/**"
upstream = "http://{upstream}"
personal_data = false
[[route]]
name = "status"
match = "/status"
upstream = "http://{upstream}"
personal_data = false
public = true
"#,
        policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
    )
}

/// A running in-process gateway.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub async fn start(config: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::from_toml(config, dir.path()).unwrap();
        Self::start_with(settings, dir).await
    }

    pub async fn start_with(settings: Settings, dir: tempfile::TempDir) -> TestGateway {
        let gateway = Gateway::bind(settings).await.unwrap();
        let addr = gateway.gateway_addr();
        let admin = gateway.admin_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async {
            let _ = rx.await;
        }));
        TestGateway {
            addr,
            admin,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A plain HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response read fully.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(req: Request<Full<Bytes>>) -> Reply {
    let resp = client().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// GET with optional bearer token and extra headers.
pub async fn get(url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::new())).unwrap()).await
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard valid claims for `sub` with purposes and scope.
pub fn claims(sub: &str, purposes: &[&str], scope: &str) -> Value {
    let now = now();
    json!({"sub": sub, "iss": "consentgate-dev", "aud": "consentgate", "iat": now, "nbf": now,
           "exp": now + 600, "purposes": purposes, "scope": scope})
}

/// Signs claims with the dev ES256 key (kid from the key).
pub fn sign_es256(claims: &Value) -> String {
    let pem = std::fs::read_to_string(dev_dir().join("jwt.key")).unwrap();
    let pair = rcgen::KeyPair::from_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(consentgate::devtools::certs::key_id(&pair));
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Signs claims with the dev HS256 secret.
pub fn sign_hs256(claims: &Value) -> String {
    let secret = std::fs::read(dev_dir().join("hs256.secret")).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim_ascii()),
    )
    .unwrap()
}

/// A good token.
pub fn token(sub: &str, purposes: &[&str], scope: &str) -> String {
    consentgate::install_crypto_provider();
    sign_es256(&claims(sub, purposes, scope))
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A body fed through a channel, for streaming tests.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl ChannelBody {
    pub fn new() -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (tx, ChannelBody(rx))
    }

    pub fn boxed(self) -> Body {
        http_body_util::BodyExt::boxed(self)
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = consentgate::http::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Sends raw bytes on a new connection and reads the whole answer (the request should carry
/// `Connection: close`). Returns the status code (0 if none) and the full text.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A raw GET of `path` exactly as written, with a bearer token and extra header lines.
pub async fn raw_get(addr: SocketAddr, path: &str, token: &str, extra: &str) -> (u16, String) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
    );
    raw(addr, req.as_bytes()).await
}

// --- consent-tests helpers ---

/// `http://{admin}{path}` for a gateway's admin listener.
pub fn admin_url(gw: &TestGateway, path: &str) -> String {
    format!("http://{}{}", gw.admin, path)
}

/// Builds a request with an optional bearer token and an optional body.
pub fn build_request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let bytes = Bytes::from(body.unwrap_or("").to_owned());
    b.body(Full::new(bytes)).unwrap()
}

/// Sends a request and reads the answer; `Err` when the connection fails (for crash tests).
pub async fn try_send(req: Request<Full<Bytes>>) -> Result<Reply, String> {
    let resp = client().request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// An admin-API call on `gw` (path starting with `/`).
pub async fn admin_call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    send(build_request(method, &admin_url(gw, path), token, body)).await
}

/// A token holding every consent scope (`consent:write consent:read`).
pub fn consent_admin_token() -> String {
    token("consent-admin", &[], "consent:write consent:read")
}

/// Sets a subject's region through the admin API and asserts it worked.
pub async fn set_subject_region(gw: &TestGateway, subject: &str, region: &str) {
    let body = json!({ "region": region }).to_string();
    let r = admin_call(
        gw,
        Method::PUT,
        &format!("/v1/subjects/{subject}"),
        Some(&consent_admin_token()),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "set region: {}", r.text());
}

/// Records a consent decision (`body` is the JSON body) and returns the reply.
pub async fn put_consent_body(gw: &TestGateway, subject: &str, purpose: &str, body: &str) -> Reply {
    admin_call(
        gw,
        Method::PUT,
        &format!("/v1/subjects/{subject}/consents/{purpose}"),
        Some(&consent_admin_token()),
        Some(body),
    )
    .await
}

/// Records `status` (granted / denied) for a purpose and asserts it was acknowledged.
pub async fn put_consent_status(
    gw: &TestGateway,
    subject: &str,
    purpose: &str,
    status: &str,
) -> Value {
    let r = put_consent_body(
        gw,
        subject,
        purpose,
        &json!({ "status": status }).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "put consent: {}", r.text());
    r.json()
}

/// Withdraws a purpose and asserts it was acknowledged.
pub async fn withdraw_consent(gw: &TestGateway, subject: &str, purpose: &str) -> Value {
    let r = admin_call(
        gw,
        Method::DELETE,
        &format!("/v1/subjects/{subject}/consents/{purpose}"),
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "withdraw: {}", r.text());
    r.json()
}

/// `GET /v1/subjects/{s}/consents` as JSON.
pub async fn current_consents(gw: &TestGateway, subject: &str) -> Value {
    let r = admin_call(
        gw,
        Method::GET,
        &format!("/v1/subjects/{subject}/consents"),
        Some(&consent_admin_token()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "current: {}", r.text());
    r.json()
}

/// An RFC 3339 UTC timestamp `secs` seconds from now (negative: in the past).
pub fn rfc3339_in(secs: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A realistic customer document (invented data; the card number is a public test number).
pub fn sample_customer(id: &str) -> Value {
    json!({
        "id": id, "first_name": "Anna", "last_name": "Schmidt",
        "email": "anna.schmidt@example.eu", "phone": "+49 30 1234567",
        "date_of_birth": "1987-04-12", "national_id": "T22000129",
        "address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"},
        "region": "eu", "preferences": {"newsletter": true, "language": "de"},
        "payment": {"card_number": "4111 1111 1111 1111", "iban": "DE89 3704 0044 0532 0130 00"},
        "orders": [
            {"id": "o-5001", "sku": "SKU-1234", "total": 42.5, "placed_at": "2026-10-02T09:14:00Z"},
            {"id": "o-5002", "sku": "SKU-9876", "total": 12.0, "placed_at": "2026-11-01T17:40:00Z"}
        ],
        "support_notes": "Customer called from +49 30 1234567 about card 4111 1111 1111 1111"
    })
}

// --- pipeline-tests helpers ---

/// Every purpose the caller of the pipeline tests may declare.
pub const PIPELINE_PURPOSES: &[&str] = &[
    "marketing",
    "analytics",
    "personalisation",
    "order_fulfilment",
    "support",
    "tax_reporting",
];

/// A token for an auditor and policy admin (`audit:read policy:read policy:admin`).
pub fn auditor_token() -> String {
    token("auditor", &[], "audit:read policy:read policy:admin")
}

/// One case of `policies/tests/<region>.yaml` by name: its `input` and `expect.body`
/// (`Value::Null` when the case has no body).
pub fn policy_case(region: &str, name: &str) -> (Value, Value) {
    let path = format!(
        "{}/policies/tests/{region}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let cases: Vec<Value> = serde_saphyr::from_str(&text).unwrap();
    let case = cases
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name:?} in {path}"));
    (case["input"].clone(), case["expect"]["body"].clone())
}

/// The demo's sample document of `id` (`consentgate::demo::data::customers()`).
pub fn demo_doc(id: &str) -> Value {
    consentgate::demo::data::customers()
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.doc)
        .unwrap_or_else(|| panic!("no demo customer {id}"))
}

/// Every string leaf of `v` (for "no personal value leaked" checks).
pub fn string_leaves(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// The value of an unlabelled counter or gauge on the admin listener's `/metrics`.
pub async fn series_value(gw: &TestGateway, name: &str) -> u64 {
    let text = get(&format!("http://{}/metrics", gw.admin), None, &[])
        .await
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// GET a personal route of `gw` with a purpose (`None`: no `X-Purpose`) and extra headers.
pub async fn get_personal(
    gw: &TestGateway,
    path: &str,
    token: Option<&str>,
    purpose: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(p) = purpose {
        headers.push(("x-purpose", p));
    }
    get(&gw.url(path), token, &headers).await
}

/// The config of [`config_text`] with the audit log in `audit_dir` (an absolute path, so it
/// outlives the gateway's own temp dir) and extra `[audit]` lines.
pub fn config_with_audit(
    upstream: SocketAddr,
    extra_gateway: &str,
    audit_dir: &Path,
    audit_extra: &str,
) -> String {
    let text = config_text(upstream, extra_gateway);
    let from = "[audit]\ndir = \"data/audit\"\n";
    assert!(text.contains(from), "config_text changed its [audit] table");
    text.replace(
        from,
        &format!(
            "[audit]\ndir = \"{}\"\n{audit_extra}\n",
            audit_dir.display()
        ),
    )
}

/// The segment files (`<20 digits>.jsonl`) of an audit dir, oldest first.
pub fn audit_segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.strip_suffix(".jsonl"))
                            .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The raw lines of every segment of an audit dir, in order.
pub fn audit_raw_lines(dir: &Path) -> Vec<String> {
    audit_segments(dir)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every record of an audit dir, parsed, in order.
pub fn audit_records(dir: &Path) -> Vec<Value> {
    audit_raw_lines(dir)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A port nothing listens on, for a process started later to bind (the binary's listeners, a
/// private PostgreSQL cluster, chromedriver).
///
/// Taken below the kernel's ephemeral range (32768 and up), where `bind(:0)` and outgoing
/// connections pick theirs, so nothing else in the run takes it between this call and the
/// child's bind; each call of a test process gets a different port (a cursor from an offset of
/// the process id), and one that cannot be bound now is passed over.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// [`config_text`] with fixed listen ports, for running the real binary.
pub fn binary_config(upstream: SocketAddr, gw_port: u16, admin_port: u16, extra: &str) -> String {
    let text = config_text(upstream, extra);
    text.replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{gw_port}\""),
        1,
    )
    .replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{admin_port}\""),
        1,
    )
}

/// `consentgate serve` as a child process; killed (SIGKILL) when dropped.
pub struct Binary {
    pub child: std::process::Child,
    pub gw: SocketAddr,
    pub admin: SocketAddr,
}

impl Binary {
    /// Writes `config` to `dir/consentgate.toml` and starts `consentgate serve` on it; waits
    /// until `/healthz` answers (stderr goes to `dir/<log>`).
    pub async fn start(
        dir: &Path,
        config: &str,
        gw_port: u16,
        admin_port: u16,
        log: &str,
    ) -> Binary {
        Binary::spawn(dir, config, gw_port, admin_port, log, &[], &[]).await
    }

    /// Like [`Binary::start`], with global options before `serve` (e.g. `--log-format json`)
    /// and extra environment variables.
    pub async fn spawn(
        dir: &Path,
        config: &str,
        gw_port: u16,
        admin_port: u16,
        log: &str,
        global_args: &[&str],
        env: &[(&str, &str)],
    ) -> Binary {
        let path = dir.join("consentgate.toml");
        std::fs::write(&path, config).unwrap();
        let err = std::fs::File::create(dir.join(log)).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
            .args(global_args)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let bin = Binary {
            child,
            gw: SocketAddr::from(([127, 0, 0, 1], gw_port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let url = format!("http://{}/healthz", bin.admin);
            if let Ok(r) = try_send(build_request(Method::GET, &url, None, None)).await
                && r.status == StatusCode::OK
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "consentgate serve did not come up: {}",
                std::fs::read_to_string(dir.join(log)).unwrap_or_default()
            );
            sleep_ms(50).await;
        }
        bin
    }

    /// `http://{admin}{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// `http://{gateway}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gw, path)
    }

    /// Sends a signal by number (`kill -<sig> <pid>`).
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGTERM and wait for the exit (graceful shutdown); returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the CLI with `args`; returns (exit code, stdout).
pub fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

// --- adversarial helpers ---

/// The subject of the marker document (region `eu` once [`prepare_subject`] ran).
pub const ADV_SUBJECT: &str = "c-1001";
/// A personal-data path of [`ADV_SUBJECT`].
pub const ADV_PROFILE: &str = "/api/customers/c-1001/profile";
/// A unique value in a field no purpose of the shipped policies allows.
pub const CANARY: &str = "CANARY-7f3a-personal";
/// Personal values of the demo customer `c-1001`.
pub const M_EMAIL: &str = "anna.schmidt@example.eu";
pub const M_LAST_NAME: &str = "Schmidt";
pub const M_PHONE: &str = "+49 30 1234567";
pub const M_CARD: &str = "4111 1111 1111 1111";
pub const M_IBAN: &str = "DE89 3704 0044 0532 0130 00";
pub const M_DOB: &str = "1987-04-12";
pub const M_STREET: &str = "Hauptstr";
/// Every marker eu `marketing` removes or masks (its answer keeps `id`, `first_name`, a masked
/// e-mail and `preferences`).
pub const PII_MARKERS: &[&str] = &[
    CANARY,
    M_EMAIL,
    M_LAST_NAME,
    M_PHONE,
    M_CARD,
    M_IBAN,
    M_DOB,
    M_STREET,
];
/// Every purpose the shipped policies define.
pub const ADV_PURPOSES: &[&str] = &[
    "marketing",
    "analytics",
    "personalisation",
    "order_fulfilment",
    "support",
    "tax_reporting",
    "sale",
    "cross_context_advertising",
    "identity_verification",
];

/// The demo customer `c-1001` plus [`CANARY`] in a field every purpose drops.
pub fn marker_doc() -> Value {
    let mut doc = demo_doc(ADV_SUBJECT);
    doc["internal_canary"] = json!(CANARY);
    doc
}

/// [`marker_doc`] serialised.
pub fn marker_bytes() -> Bytes {
    Bytes::from(serde_json::to_vec(&marker_doc()).unwrap())
}

/// A token that may declare every purpose.
pub fn adv_token() -> String {
    token("crm", ADV_PURPOSES, "")
}

/// `text` without the random or content-derived parts that hold any short digit string by
/// chance: runs of 32 or more lowercase hex digits (hashes, request ids, trace ids) become `#`,
/// policy labels' hashes (`eu@` + 12 hex digits) `@#`, and fractions of seconds in timestamps
/// `.#`. A SHA-256 holding `75004` is not a leaked postcode; no personal value in the fixtures
/// has any of these shapes.
pub fn without_digests(text: &str) -> String {
    static NOISE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"[0-9a-f]{32,}|@[0-9a-f]{12}\b|(?P<t>\d\d:\d\d:\d\d)\.\d+").unwrap()
    });
    NOISE
        .replace_all(text, |c: &regex::Captures<'_>| match c.name("t") {
            Some(t) => format!("{}.#", t.as_str()),
            None if c[0].starts_with('@') => "@#".to_owned(),
            None => "#".to_owned(),
        })
        .into_owned()
}

/// The markers of `markers` found in `text`, digests aside (see [`without_digests`]).
pub fn leaks(text: &str, markers: &[&str]) -> Vec<String> {
    let text = without_digests(text);
    markers
        .iter()
        .filter(|m| text.contains(**m))
        .map(|m| (*m).to_string())
        .collect()
}

/// Asserts that no marker appears in `text`.
pub fn assert_no_markers(what: &str, text: &str, markers: &[&str]) {
    let found = leaks(text, markers);
    assert!(
        found.is_empty(),
        "{what}: personal data leaked {found:?} in {text:?}"
    );
}

/// Asserts that no marker appears in a reply's body, header names or header values.
pub fn assert_reply_clean(what: &str, r: &Reply, markers: &[&str]) {
    assert_no_markers(what, &r.text(), markers);
    for (k, v) in &r.headers {
        let line = format!("{k}: {}", String::from_utf8_lossy(v.as_bytes()));
        assert_no_markers(what, &line, markers);
    }
}

/// Asserts a JSON error reply with `status` and `code` that carries no marker.
pub fn assert_error_reply(what: &str, r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text());
    assert_eq!(r.code(), code, "{what}: {}", r.text());
    assert_eq!(r.headers["content-type"], "application/json", "{what}");
    assert_reply_clean(what, r, PII_MARKERS);
}

/// A raw HTTP/1.1 response split into status, lower-cased head and body.
pub struct RawReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawReply {
    /// Parses the first response of `text` (a body after the blank line, not de-chunked).
    pub fn parse(text: &str) -> RawReply {
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        RawReply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    /// The JSON error code of the body (empty when there is none).
    pub fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// A header value of the head (lower-cased), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
    }
}

/// Asserts a raw answer: `status`, and when `code` is not empty its JSON error code; never a
/// marker anywhere.
pub fn assert_raw(what: &str, text: &str, status: u16, code: &str) -> RawReply {
    let r = RawReply::parse(text);
    assert_eq!(r.status, status, "{what}: {text}");
    if !code.is_empty() {
        assert_eq!(r.code(), code, "{what}: {text}");
    }
    assert_no_markers(what, text, PII_MARKERS);
    r
}

/// Writes `request` on a new connection (write errors tolerated: the server may close early),
/// then reads until EOF or `timeout`. Returns everything read.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw answer stream split into its responses (framed by `Content-Length`; a response
/// without one runs to the end).
pub fn split_responses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.starts_with("HTTP/1.") {
        let Some(end) = rest.find("\r\n\r\n") else {
            out.push(rest.to_string());
            break;
        };
        let len = RawReply::parse(&rest[..end + 4])
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        let stop = match len {
            Some(n) => (end + 4 + n).min(rest.len()),
            None => rest.len(),
        };
        out.push(rest[..stop].to_string());
        rest = &rest[stop..];
    }
    out
}

/// Number of responses in a raw answer stream.
pub fn count_responses(text: &str) -> usize {
    split_responses(text).len()
}

/// An upstream that serves [`marker_doc`] under `/api/customers/` and a harmless product
/// document anywhere else.
pub async fn marker_upstream() -> Upstream {
    let doc = marker_bytes();
    let product = Bytes::from_static(br#"{"sku":"SKU-1234","name":"Mug","price":9.5}"#);
    Upstream::start(Arc::new(move |seen: Seen| {
        let body = if seen.uri.starts_with("/api/customers/") {
            doc.clone()
        } else {
            product.clone()
        };
        Box::pin(async move { json_response(StatusCode::OK, body) })
    }))
    .await
}

/// An admin `PUT` on the admin listener at `admin`; asserts `200`.
pub async fn admin_put_at(admin: SocketAddr, path: &str, body: Value) {
    let url = format!("http://{admin}{path}");
    let r = send(build_request(
        Method::PUT,
        &url,
        Some(&consent_admin_token()),
        Some(&body.to_string()),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
}

/// Sets `subject`'s region and grants `granted` purposes.
pub async fn prepare_subject(admin: SocketAddr, subject: &str, region: &str, granted: &[&str]) {
    admin_put_at(
        admin,
        &format!("/v1/subjects/{subject}"),
        json!({"region": region}),
    )
    .await;
    for p in granted {
        admin_put_at(
            admin,
            &format!("/v1/subjects/{subject}/consents/{p}"),
            json!({"status": "granted"}),
        )
        .await;
    }
}

/// A gateway on [`config_text`] + `extra` in front of [`marker_upstream`], with
/// [`ADV_SUBJECT`] in `eu` and `marketing` granted.
pub async fn marker_gateway(extra: &str) -> (Upstream, TestGateway) {
    let up = marker_upstream().await;
    let gw = TestGateway::start(&config_text(up.addr, extra)).await;
    prepare_subject(gw.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    (up, gw)
}

/// Every audit record of an in-process gateway.
pub fn gw_audit(gw: &TestGateway) -> Vec<Value> {
    audit_records(&gw.dir.path().join("data/audit"))
}

/// Asserts exactly one audit record for `request_id`, with `decision` and `status`.
pub fn assert_one_audit(gw: &TestGateway, request_id: &str, decision: &str, status: u16) -> Value {
    let lines = audit_raw_lines(&gw.dir.path().join("data/audit"));
    for l in &lines {
        assert_no_markers("audit log", l, PII_MARKERS);
    }
    let recs: Vec<Value> = gw_audit(gw)
        .into_iter()
        .filter(|r| r["request_id"] == request_id)
        .collect();
    assert_eq!(recs.len(), 1, "{request_id}: {recs:?}");
    assert_eq!(recs[0]["decision"], decision, "{request_id}: {:?}", recs[0]);
    assert_eq!(recs[0]["status"], status, "{request_id}: {:?}", recs[0]);
    recs[0].clone()
}

/// `consentgate --log-format json serve` with `RUST_LOG=debug`, stderr in `dir/serve.log`.
pub async fn start_logged_binary(
    dir: &Path,
    config: &str,
    gw_port: u16,
    admin_port: u16,
) -> Binary {
    Binary::spawn(
        dir,
        config,
        gw_port,
        admin_port,
        "serve.log",
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
    )
    .await
}

/// Stops a [`start_logged_binary`] gateway and asserts its JSON debug log holds request lines
/// and none of `forbidden` (personal data, tokens).
pub fn assert_log_clean(bin: Binary, dir: &Path, forbidden: &[&str]) -> String {
    assert!(bin.stop(), "the gateway exits 0 on SIGTERM");
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"message\":\"request\"")),
        "no request lines logged: {log}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"DEBUG\"")),
        "debug level not active"
    );
    for (i, line) in lines.iter().enumerate() {
        let found = leaks(line, forbidden);
        assert!(found.is_empty(), "log line {i} leaks {found:?}: {line}");
    }
    log
}

pub mod pg;
