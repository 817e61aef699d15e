//! An open-loop load generator for latency at a fixed offered rate, precise to a few
//! microseconds.
//!
//! `cargo run --release --example loadgen -- URL RATE SECONDS CONNECTIONS [Header: value]...`
//!
//! Request `i` is due at `start + i / RATE`; connection `i % CONNECTIONS` sends it. Each
//! connection is a plain blocking socket on its own thread that sleeps until its next due time
//! with the kernel's timer slack set to 1 ns (the default 50 µs slack, or tokio's 1 ms timer
//! wheel, would add that much error to every sample). Latency is measured from the due time,
//! not from when the request went out, so a slow answer that delays the next request on its
//! connection is counted (no coordinated omission). The first second is warm-up and is not
//! recorded. HTTP/1.1 keep-alive; `Content-Length` and chunked answers; a non-2xx answer is an
//! error.
//!
//! Prints one JSON line: `{"rate","sent","ok","errors","p50_us","p99_us","p999_us","max_us"}`.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Target {
    addr: String,
    request: Vec<u8>,
}

/// Reads one HTTP/1.1 response; returns its status.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => length = v.parse::<u64>().ok(),
            "transfer-encoding" => chunked = v.contains("chunked"),
            "connection" => close = v.contains("close"),
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            std::io::copy(&mut r.by_ref().take(size + 2), &mut std::io::sink())?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink())?;
    }
    if close {
        return Err(bad("server closed the connection"));
    }
    Ok(status)
}

fn connect(t: &Target) -> std::io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(&t.addr)?;
    s.set_nodelay(true)?;
    Ok(BufReader::with_capacity(64 * 1024, s))
}

/// One connection's share: requests `k, k + n, k + 2n, …` of `total`.
fn worker(
    t: &Target,
    k: usize,
    n: usize,
    total: usize,
    start: Instant,
    interval: Duration,
) -> (Vec<u64>, u64) {
    // Precise sleeps for this thread (timer slack is per thread).
    let _ = nix::sys::prctl::set_timerslack(1);
    let warm_until = start + Duration::from_secs(1);
    let mut lat = Vec::with_capacity(total / n + 1);
    let mut errors = 0u64;
    let mut conn = connect(t).ok();
    for i in (k..total).step_by(n) {
        let due = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let ok = (|| -> std::io::Result<bool> {
            if conn.is_none() {
                conn = Some(connect(t)?);
            }
            let Some(c) = conn.as_mut() else {
                return Ok(false);
            };
            c.get_mut().write_all(&t.request)?;
            Ok((200..300).contains(&read_response(c)?))
        })();
        match ok {
            Ok(true) => {
                if due >= warm_until {
                    lat.push(u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
            }
            Ok(false) => errors += 1,
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
    }
    (lat, errors)
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
    let conns: usize = args[4].parse::<usize>()?.max(1);
    let authority = url.authority().ok_or("the URL has no host")?.to_string();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {authority}\r\n",
        url.path_and_query().map_or("/", |p| p.as_str())
    );
    for h in &args[5..] {
        if let Some((k, v)) = h.split_once(':') {
            request.push_str(&format!("{}: {}\r\n", k.trim(), v.trim()));
        }
    }
    request.push_str("\r\n");
    let target = Target {
        addr: authority,
        request: request.into_bytes(),
    };
    let total = (rate * (seconds + 1.0)) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Connections open before the clock starts.
    let start = Instant::now() + Duration::from_millis(200);
    let (all, errors) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|k| {
                let t = &target;
                s.spawn(move || worker(t, k, conns, total, start, interval))
            })
            .collect();
        let mut all = Vec::with_capacity(total);
        let mut errors = 0;
        for h in handles {
            if let Ok((lat, e)) = h.join() {
                all.extend(lat);
                errors += e;
            }
        }
        (all, errors)
    });
    let mut all = all;
    all.sort_unstable();
    println!(
        "{{\"rate\":{rate},\"sent\":{total},\"ok\":{},\"errors\":{errors},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        all.len(),
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        percentile(&all, 99.9),
        all.last().copied().unwrap_or(0)
    );
    Ok(())
}
