//! Per-request consent lookup (subject region + consent for one purpose) on a
//! sled store holding 100,000 subjects, through the backend-neutral `ConsentStore`
//! (each call awaited on a current-thread runtime, as the data plane awaits it).
//! Target: under 5 µs median.
//!
//! Run: `cargo bench --bench consent`.

use std::hint::black_box;

use consentgate::consent::{ConsentStore, parse_import};
use criterion::Criterion;

const SUBJECTS: u64 = 100_000;
const PURPOSES: [&str; 3] = ["marketing", "analytics", "support"];
const CHUNK: u64 = 10_000;

fn subject(n: u64) -> String {
    format!("cust-{n:08}")
}

/// Fills the store through the import path: every subject has a region and a
/// decision for two of the three purposes.
fn populate(rt: &tokio::runtime::Runtime, store: &ConsentStore) {
    let mut start = 0;
    while start < SUBJECTS {
        let mut ndjson = String::new();
        for n in start..(start + CHUNK).min(SUBJECTS) {
            let region = if n.is_multiple_of(2) { "eu" } else { "us" };
            for (i, purpose) in PURPOSES.iter().enumerate().take(2) {
                let status = if (n + i as u64).is_multiple_of(3) {
                    "denied"
                } else {
                    "granted"
                };
                ndjson.push_str(&format!(
                    "{{\"subject\":\"{}\",\"purpose\":\"{purpose}\",\"status\":\"{status}\",\"region\":\"{region}\",\"expires_at\":\"2040-01-01T00:00:00Z\",\"source\":\"bench\"}}\n",
                    subject(n)
                ));
            }
        }
        let parsed = parse_import(ndjson.as_bytes(), "bench", time::OffsetDateTime::now_utc())
            .unwrap_or_else(|e| panic!("bench setup import: {e}"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        rt.block_on(store.import(parsed.lines))
            .unwrap_or_else(|e| panic!("bench setup import failed: {e}"));
        start += CHUNK;
    }
}

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let store = ConsentStore::open_sled(dir.path().join("consent"))
        .unwrap_or_else(|e| panic!("open store: {e}"));
    populate(&rt, &store);

    // A fixed pseudo-random walk over subjects, so lookups are not cache-friendly in order.
    let subjects: Vec<String> = (0..4096u64)
        .map(|i| subject(i.wrapping_mul(2_654_435_761) % SUBJECTS))
        .collect();
    let now = time::OffsetDateTime::now_utc();

    let mut group = c.benchmark_group("consent");
    let mut i = 0usize;
    group.bench_function("lookup_hit", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            let found = rt
                .block_on(store.lookup(black_box(&subjects[i]), black_box("marketing")))
                .unwrap_or_else(|e| panic!("lookup: {e}"));
            black_box((found.region, found.consent.map(|c| c.effective(now))))
        })
    });
    group.bench_function("lookup_no_consent", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            let found = rt
                .block_on(store.lookup(black_box(&subjects[i]), black_box("support")))
                .unwrap_or_else(|e| panic!("lookup: {e}"));
            black_box(found)
        })
    });
    group.bench_function("region_only", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            let region = rt
                .block_on(store.region(black_box(&subjects[i])))
                .unwrap_or_else(|e| panic!("region: {e}"));
            black_box(region)
        })
    });
    let batch: Vec<&str> = subjects.iter().take(100).map(String::as_str).collect();
    group.bench_function("lookup_many_100", |b| {
        b.iter(|| {
            let found = rt
                .block_on(store.lookup_many(black_box(&batch), black_box("marketing")))
                .unwrap_or_else(|e| panic!("lookup_many: {e}"));
            black_box(found)
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lookup(&mut c);
    c.final_summary();
}
