//! The demo's sample customer-data API: a small hyper server the gateway proxies to.
//!
//! `GET /api/customers/{id}` → the customer; `GET /api/customers/{id}/orders` → their orders;
//! `GET /api/customers?segment=…` → a customer segment (every sample customer, in a list with
//! `segment`, `total` and `next_cursor` around it); `GET /api/products/**` → the catalogue.
//! Anything else → 404.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::http::{Body, full};

fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A segment of customers, as a CRM's search endpoint answers it.
fn segment(customers: &HashMap<String, Value>, query: Option<&str>) -> Value {
    let name = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("segment="))
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("all");
    let mut items: Vec<&Value> = customers.values().collect();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    serde_json::json!({"segment": name, "items": items, "total": items.len(), "next_cursor": null,
                       "generated_by": "crm-export@example.com"})
}

fn answer(
    customers: &HashMap<String, Value>,
    products: &Value,
    req: &Request<Incoming>,
) -> Response<Body> {
    let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "customers"] => json(StatusCode::OK, &segment(customers, req.uri().query())),
        ["api", "customers", id] => match customers.get(*id) {
            Some(doc) => json(StatusCode::OK, doc),
            None => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no such customer"}),
            ),
        },
        ["api", "customers", id, "orders"] => match customers.get(*id) {
            Some(doc) => json(
                StatusCode::OK,
                &serde_json::json!({"id": id, "orders": doc["orders"]}),
            ),
            None => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no such customer"}),
            ),
        },
        ["api", "products", ..] => json(StatusCode::OK, products),
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not found"}),
        ),
    }
}

/// Serves the sample API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let customers: Arc<HashMap<String, Value>> = Arc::new(
        super::data::customers()
            .into_iter()
            .map(|c| (c.id.to_string(), c.doc))
            .collect(),
    );
    let products = Arc::new(super::data::products());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let customers = customers.clone();
        let products = products.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = answer(&customers, &products, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
