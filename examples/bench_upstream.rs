//! The load harness's upstream: realistic customer JSON of about 1 KB and 16 KB, on one core.
//!
//! `cargo run --release --example bench_upstream -- 127.0.0.1:9100`
//! - `/api/customers/{id}` and `/api/products/1k`: the ~1 KB document
//! - `/api/customers/{id}/big` and `/api/products/16k`: the 16 KB document (at least 16 384 bytes)
//! - `/api/customers/{id}/pii` and `/api/products/pii`: a 16 KB document whose every string
//!   holds e-mails, phones, cards, IBANs and IP addresses (for the text detectors)
#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const SIXTEEN_KB: usize = 16 * 1024;

/// Free text dense with personal data of every detected kind.
const PII_NOTES: [&str; 6] = [
    "Call +49 30 1234567 or mail anna.schmidt@example.eu; card 4111 1111 1111 1111 on file.",
    "Refund to DE89 3704 0044 0532 0130 00, confirm via j.doe+refunds@mail.example.com.",
    "Login from 192.0.2.44 and 2001:db8::8a2e:370:7334; SSN on file 078-05-1123.",
    "Second card 5555-5555-5555-4444, phone (415) 555-0132, backup ip 198.51.100.7.",
    "Pagamento via PL61 1090 1014 0000 0712 1981 2874, email marcin@example.pl, tel +48 22 123 45 67.",
    "CPF 123.456.789-09, contato maria@example.com.br, fone +55 11 91234-5678, IP 203.0.113.9.",
];

fn pii_document() -> serde_json::Value {
    let mut notes = Vec::new();
    let mut i = 0usize;
    loop {
        let doc = serde_json::json!({"id": "c-1001", "notes": notes});
        if serde_json::to_vec(&doc).map_or(0, |b| b.len()) >= SIXTEEN_KB {
            return doc;
        }
        notes.push(serde_json::json!({
            "at": format!("2026-11-{:02}T10:00:00Z", 1 + i % 28),
            "text": PII_NOTES[i % PII_NOTES.len()],
            "from": PII_NOTES[(i + 1) % PII_NOTES.len()],
        }));
        i += 1;
    }
}

fn documents() -> (Bytes, Bytes, Bytes) {
    let customers = consentgate::demo::data::customers();
    let small = customers
        .iter()
        .find(|c| c.id == "c-1001")
        .map(|c| c.doc.clone())
        .unwrap_or_default();
    // ~16 KB: the same customer with a longer order history and support notes.
    let mut big = small.clone();
    let order = big["orders"][0].clone();
    big["support_history"] = (0..12)
        .map(|i| serde_json::json!({"at": format!("2026-0{}-1{}T10:00:00Z", 1 + i % 9, i % 10),
            "note": "Customer called from +49 30 1234567 about card 4111 1111 1111 1111, email anna.schmidt@example.eu"}))
        .collect::<Vec<_>>()
        .into();
    // A longer order history until the document is 16 KB.
    let mut orders = Vec::new();
    let mut i = 0;
    while serde_json::to_vec(&big).map_or(0, |b| b.len()) < SIXTEEN_KB {
        let mut o = order.clone();
        o["id"] = format!("o-{}", 6000 + i).into();
        orders.push(o);
        big["orders"] = orders.clone().into();
        i += 1;
    }
    let small = serde_json::to_vec(&small).unwrap_or_default();
    let big = serde_json::to_vec(&big).unwrap_or_default();
    let pii = serde_json::to_vec(&pii_document()).unwrap_or_default();
    (Bytes::from(small), Bytes::from(big), Bytes::from(pii))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (small, big, pii) = documents();
        eprintln!(
            "bench upstream on {addr}: documents of {}, {} and {} (PII-dense) bytes",
            small.len(),
            big.len(),
            pii.len()
        );
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (small, big, pii) = (small.clone(), big.clone(), pii.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().path();
                    let body = if path.ends_with("/big") || path.ends_with("/16k") {
                        big.clone()
                    } else if path.ends_with("/pii") {
                        pii.clone()
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
