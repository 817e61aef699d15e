//! Demo traffic: a few dozen requests from three services through the gateway, so that the
//! dashboard and `/metrics` show allowed, denied, report-mode and GPC decisions at once.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One request: caller, purpose, subject, whether it sends `Sec-GPC: 1`.
type Call = (&'static str, &'static str, &'static str, bool);

/// The requests, each sent `ROUNDS` times.
const CALLS: &[Call] = &[
    ("crm-service", "marketing", "c-1001", false),
    ("crm-service", "marketing", "c-1002", false),
    ("crm-service", "analytics", "c-1001", false),
    ("crm-service", "personalisation", "c-1001", false),
    ("crm-service", "order_fulfilment", "c-1001", false),
    ("support-desk", "support", "c-1001", false),
    ("support-desk", "support", "c-2001", false),
    ("ad-partner", "sale", "c-2001", false),
    ("ad-partner", "sale", "c-2001", true),
    ("ad-partner", "sale", "c-2002", false),
    ("crm-service", "marketing", "c-3001", false),
    ("crm-service", "personalisation", "c-3001", false),
];
const ROUNDS: usize = 3;

/// Sends the demo traffic to the gateway at `addr` (plain HTTP). `token` signs a token for a
/// caller and purposes. Returns how many requests were answered.
pub async fn send(addr: SocketAddr, token: impl Fn(&str, &[&str]) -> Option<String>) -> usize {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut answered = 0;
    for _ in 0..ROUNDS {
        for (caller, purpose, subject, gpc) in CALLS {
            let Some(token) = token(caller, &[purpose]) else {
                continue;
            };
            let mut req = http::Request::get(format!("http://{addr}/api/customers/{subject}"))
                .header("authorization", format!("Bearer {token}"))
                .header("x-purpose", *purpose);
            if *gpc {
                req = req.header("sec-gpc", "1");
            }
            let Ok(req) = req.body(Empty::new()) else {
                continue;
            };
            if let Ok(resp) = client.request(req).await {
                let _ = resp.into_body().collect().await;
                answered += 1;
            }
        }
    }
    answered
}
