//! The disk's `fdatasync` latency, as the audit log meets it: appends of one record-sized line
//! to a file, each followed by `fdatasync`.
//!
//! `cargo run --release --example fsync_probe -- DIR [COUNT] [--preallocated]` prints one
//! JSON line: `{"count","p50_us","p99_us","max_us"}` (the file is created in DIR and removed).
//! With `--preallocated` the file is first written full of zeros and synced, and the lines
//! overwrite it from the start: `fdatasync` then has no file growth to commit (what a
//! zero-filled, preallocated segment would give the audit log).
#![allow(missing_docs)]

use std::io::{Seek, SeekFrom, Write};
use std::time::Instant;

const LINE: usize = 601;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preallocated = args.iter().any(|a| a == "--preallocated");
    let mut args = args.into_iter().filter(|a| a != "--preallocated");
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
    let path = dir.join(format!("fsync-probe-{}.jsonl", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    if preallocated {
        file.write_all(&vec![0u8; count * LINE])?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
    }
    let line = [b'x'; LINE - 1];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        file.write_all(&line)?;
        file.write_all(b"\n")?;
        let started = Instant::now();
        file.sync_data()?;
        samples.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    drop(file);
    std::fs::remove_file(&path)?;
    samples.sort_unstable();
    let at = |p: f64| samples[((p * samples.len() as f64) as usize).min(samples.len() - 1)];
    println!(
        "{{\"count\":{count},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        at(0.50),
        at(0.99),
        samples.last().copied().unwrap_or(0)
    );
    Ok(())
}
