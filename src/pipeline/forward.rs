//! Forwarding: the upstream request (headers cleaned, forwarding headers set) and its send,
//! with the timeout and error mapping.

use std::error::Error as _;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::error::GatewayError;
use crate::http::body::{ReadError, read_admitted};

use super::budget::{BufferBudget, Reservation};
use crate::http::headers::{self, X_CALLER, X_REQUEST_ID};
use crate::http::{Body, client::UpstreamClient};
use crate::routing::Upstream;
use crate::server::ConnInfo;

/// What the upstream request is built from.
pub(crate) struct Outbound<'a> {
    pub(crate) upstream: &'a Upstream,
    /// Normalised path.
    pub(crate) path: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) caller: Option<&'a str>,
    pub(crate) conn: ConnInfo,
    /// Personal-data route: no `Range`, identity encoding, `HEAD` sent as `GET`.
    pub(crate) personal: bool,
    pub(crate) max_body: u64,
}

/// Builds the upstream request from the client's.
pub(crate) fn request(
    mut parts: Parts,
    body: Incoming,
    out: &Outbound<'_>,
) -> Result<Request<Body>, GatewayError> {
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GatewayError::BadRequest("Content-Length is not a number".into()))?;
        if len > out.max_body {
            return Err(GatewayError::RequestTooLarge {
                limit: out.max_body,
            });
        }
    }
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}?{q}", out.path),
        None => out.path.to_string(),
    };
    let uri = Uri::builder()
        .scheme(out.upstream.scheme.clone())
        .authority(out.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::BadPath("the request target cannot be forwarded".into()))?;

    let host = parts.headers.remove(header::HOST).or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let h = &mut parts.headers;
    headers::remove_hop_by_hop(h);
    headers::remove_own_headers(h);
    h.remove(header::AUTHORIZATION);
    headers::set_forwarded(
        h,
        out.conn.remote.ip(),
        if out.conn.tls { "https" } else { "http" },
        host.as_ref(),
    );
    if let Ok(v) = HeaderValue::from_str(out.request_id) {
        h.insert(&X_REQUEST_ID, v);
    }
    if let Some(caller) = out.caller.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(&X_CALLER, caller);
    }
    if out.personal {
        h.remove(header::RANGE);
        h.remove(header::IF_RANGE);
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if parts.method == http::Method::HEAD {
            parts.method = http::Method::GET;
        }
    }
    let body = Limited::new(body, usize::try_from(out.max_body).unwrap_or(usize::MAX)).map_err(
        |e: crate::http::BoxError| -> crate::http::BoxError {
            if e.is::<LengthLimitError>() {
                e
            } else {
                Box::new(ClientBodyError(e))
            }
        },
    );
    let mut req = Request::from_parts(parts, body.boxed());
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    Ok(req)
}

/// The client's request body failed (malformed chunking, cut off): the client's fault, not the
/// upstream's.
#[derive(Debug)]
struct ClientBodyError(crate::http::BoxError);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {}

/// What went wrong talking to the upstream, for metrics.
pub(crate) fn error_kind(err: &GatewayError) -> &'static str {
    match err {
        GatewayError::UpstreamTimeout => "timeout",
        GatewayError::RequestTooLarge { .. } => "request_too_large",
        GatewayError::ResponseTooLarge { .. } => "response_too_large",
        GatewayError::UnprocessableUpstreamBody(_) => "body",
        _ => "connect",
    }
}

/// Sends the request; waits at most `timeout` for the response head.
pub(crate) async fn send(
    client: &UpstreamClient,
    req: Request<Body>,
    timeout: Duration,
    max_body: u64,
) -> Result<Response<Incoming>, GatewayError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(GatewayError::UpstreamTimeout),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => {
            let mut source = e.source();
            while let Some(s) = source {
                if s.is::<LengthLimitError>() {
                    return Err(GatewayError::RequestTooLarge { limit: max_body });
                }
                if s.is::<ClientBodyError>() {
                    return Err(GatewayError::BadRequest(
                        "the request body is malformed or was cut off".into(),
                    ));
                }
                source = s.source();
            }
            tracing::debug!(error = %e, "upstream request failed");
            Err(GatewayError::UpstreamUnavailable)
        }
    }
}

/// Cleans upstream response headers for release.
pub(crate) fn response_headers(headers: &mut http::HeaderMap) {
    headers::remove_hop_by_hop(headers);
    headers::remove_own_headers(headers);
}

/// Sends a personal-data request and buffers the whole answer: head and body within
/// `timeout`, the body capped at `max_body` (by `Content-Length` or while reading) and held
/// against `budget` (`503 overloaded` when it has no room; the returned reservation gives the
/// bytes back when dropped, once the answer is minimised). A partial answer (`206`) is
/// refused: `Range` was removed, and a fragment cannot be minimised with certainty. The
/// headers are returned as the upstream sent them.
pub(crate) async fn buffered(
    client: &UpstreamClient,
    req: Request<Body>,
    timeout: Duration,
    max_body: u64,
    budget: &BufferBudget,
) -> Result<(http::response::Parts, bytes::Bytes, Reservation), GatewayError> {
    let mut reservation = budget.reserve();
    let exchange = async {
        let (parts, body) = send(client, req, timeout, max_body).await?.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_body) {
            return Err(GatewayError::ResponseTooLarge { limit: max_body });
        }
        // A declared length is reserved before any byte is read: refused at once if no room.
        if declared.is_some_and(|len| !reservation.cover(len)) {
            return Err(GatewayError::Overloaded);
        }
        let bytes = read_admitted(body, max_body, |total| reservation.cover(total))
            .await
            .map_err(|e| match e {
                ReadError::TooLarge(limit) => GatewayError::ResponseTooLarge { limit },
                ReadError::Stream(_) => GatewayError::UpstreamUnavailable,
                ReadError::Refused => GatewayError::Overloaded,
            })?;
        Ok((parts, bytes))
    };
    let (parts, bytes) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)??;
    if parts.status == http::StatusCode::PARTIAL_CONTENT {
        return Err(GatewayError::UnprocessableUpstreamBody(
            "the upstream answered with partial content, which cannot be minimised".into(),
        ));
    }
    Ok((parts, bytes, reservation))
}
