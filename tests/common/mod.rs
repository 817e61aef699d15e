//! Shared test support: dev keys in a temp dir, an in-process upstream on port 0, the gateway
//! in-process on port 0, a plain hyper client, and token minting for good and bad tokens.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

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
