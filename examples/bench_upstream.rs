//! The load harness's upstream: realistic customer JSON of about 1 KB and 16 KB, on one core.
//!
//! `cargo run --release --example bench_upstream -- 127.0.0.1:9100`
//! - `/api/customers/{id}` and `/api/products/1k`: the ~1 KB document
//! - `/api/customers/{id}/big` and `/api/products/16k`: the ~16 KB document
#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn documents() -> (Bytes, Bytes) {
    let customers = consentgate::demo::data::customers();
    let small = customers
        .iter()
        .find(|c| c.id == "c-1001")
        .map(|c| c.doc.clone())
        .unwrap_or_default();
    // ~16 KB: the same customer with a longer order history and support notes.
    let mut big = small.clone();
    let order = big["orders"][0].clone();
    let mut orders = Vec::new();
    for i in 0..40 {
        let mut o = order.clone();
        o["id"] = format!("o-{}", 6000 + i).into();
        orders.push(o);
    }
    big["orders"] = orders.into();
    big["support_history"] = (0..12)
        .map(|i| serde_json::json!({"at": format!("2026-0{}-1{}T10:00:00Z", 1 + i % 9, i % 10),
            "note": "Customer called from +49 30 1234567 about card 4111 1111 1111 1111, email anna.schmidt@example.eu"}))
        .collect::<Vec<_>>()
        .into();
    let small = serde_json::to_vec(&small).unwrap_or_default();
    let big = serde_json::to_vec(&big).unwrap_or_default();
    (Bytes::from(small), Bytes::from(big))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (small, big) = documents();
        eprintln!(
            "bench upstream on {addr}: documents of {} and {} bytes",
            small.len(),
            big.len()
        );
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (small, big) = (small.clone(), big.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().path();
                    let body = if path.ends_with("/big") || path.ends_with("/16k") {
                        big.clone()
                    } else {
                        small.clone()
                    };
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap_or_default(),
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
