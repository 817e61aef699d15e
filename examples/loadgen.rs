//! An open-loop load generator for latency at a fixed offered rate (no coordinated omission:
//! each latency is measured from the request's scheduled start, not from when a connection was
//! free). For throughput the harness uses wrk.
//!
//! `cargo run --release --example loadgen -- URL RATE SECONDS CONNECTIONS [Header: value]...`
//! The first second is warm-up (connections opened, caches filled) and is not recorded.
//! Prints one JSON line: `{"rate","sent","ok","errors","p50_us","p99_us","p999_us","max_us"}`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen URL RATE SECONDS CONNECTIONS [Header: value]...");
        std::process::exit(2);
    }
    let url: http::Uri = args[1].parse()?;
    let rate: f64 = args[2].parse()?;
    let seconds: f64 = args[3].parse()?;
    let conns: usize = args[4].parse()?;
    let headers: Vec<(String, String)> = args[5..]
        .iter()
        .filter_map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(conns)
            .build_http();
        let total = (rate * (seconds + 1.0)) as usize;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let (tx, rx) = async_channel(total);
        let start = Instant::now();
        let warm_until = start + Duration::from_secs(1);
        let mut workers = Vec::new();
        for _ in 0..conns {
            let rx = rx.clone();
            let client = client.clone();
            let url = url.clone();
            let headers = headers.clone();
            workers.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                while let Some(scheduled) = rx.recv().await {
                    let mut b = Request::get(url.clone());
                    for (k, v) in &headers {
                        b = b.header(k, v);
                    }
                    let Ok(req) = b.body(Empty::new()) else { continue };
                    match client.request(req).await {
                        Ok(resp) if resp.status().is_success() => {
                            let _ = resp.into_body().collect().await;
                            if scheduled >= warm_until {
                                lat.push(u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX));
                            }
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        for i in 0..total {
            let at = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::time::sleep_until(at.into()).await;
            tx.send(at);
        }
        drop(tx);
        let mut all = Vec::with_capacity(total);
        let mut errors = 0;
        for w in workers {
            if let Ok((lat, e)) = w.await {
                all.extend(lat);
                errors += e;
            }
        }
        all.sort_unstable();
        println!(
            "{{\"rate\":{rate},\"sent\":{total},\"ok\":{},\"errors\":{errors},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
            all.len(),
            percentile(&all, 50.0),
            percentile(&all, 99.0),
            percentile(&all, 99.9),
            all.last().copied().unwrap_or(0)
        );
    });
    Ok(())
}

/// A tiny multi-consumer queue over a tokio mutex-guarded receiver.
fn async_channel(cap: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap.max(1));
    (
        Sender(tx),
        Receiver(std::sync::Arc::new(tokio::sync::Mutex::new(rx))),
    )
}

struct Sender(tokio::sync::mpsc::Sender<Instant>);

impl Sender {
    fn send(&self, at: Instant) {
        let _ = self.0.try_send(at);
    }
}

#[derive(Clone)]
struct Receiver(std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>);

impl Receiver {
    async fn recv(&self) -> Option<Instant> {
        self.0.lock().await.recv().await
    }
}
