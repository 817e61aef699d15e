//! Audit log append throughput: 64 concurrent writers (tokio tasks), group commit
//! versus fsync per record, on a temporary directory.
//!
//! `cargo bench --bench audit`

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use consentgate::audit::{AuditConfig, AuditEntry, AuditLog, ConsentUsed, Decision, SyncMode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const WRITERS: u64 = 64;

fn entry(writer: u64) -> AuditEntry {
    AuditEntry {
        request_id: format!("req-{writer}"),
        caller: Some("crm".to_owned()),
        subject: Some(format!("subject-{writer}")),
        purpose: Some("support".to_owned()),
        region: Some("eu".to_owned()),
        route: Some("customers".to_owned()),
        method: "GET".to_owned(),
        path: format!("/api/customers/subject-{writer}"),
        decision: Decision::Allow,
        reason: "consent_granted".to_owned(),
        policy: Some("eu@0123456789abcdef".to_owned()),
        consent: ConsentUsed::Granted,
        status: 200,
        fields_removed: vec!["$.ssn".to_owned(), "$.notes".to_owned()],
        redactions: BTreeMap::from([("email".to_owned(), 1), ("phone".to_owned(), 2)]),
        collection: None,
    }
}

/// Appends `per_writer` records from each of 64 tasks; returns the elapsed time.
fn run(rt: &tokio::runtime::Runtime, log: &AuditLog, per_writer: u64) -> Duration {
    rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let log = log.clone();
                tokio::spawn(async move {
                    for _ in 0..per_writer {
                        if log.append(entry(w)).await.is_err() {
                            panic!("append failed");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            if t.await.is_err() {
                panic!("writer task failed");
            }
        }
        started.elapsed()
    })
}

fn bench_append(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        panic!("no tokio runtime");
    };
    let mut group = c.benchmark_group("audit_append_64_writers");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, sync) in [("group", SyncMode::Group), ("always", SyncMode::Always)] {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temp dir");
        };
        let Ok(log) = AuditLog::open(AuditConfig {
            sync,
            ..AuditConfig::new(dir.path())
        }) else {
            panic!("cannot open audit log");
        };
        // Elements = records per iteration: one append from each writer.
        group.throughput(Throughput::Elements(WRITERS));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run(&rt, &log, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
