//! Per-request consent lookup (subject region + consent for one purpose) on a
//! sled store holding 100,000 subjects. Target: under 5 µs median.
//!
//! Run: `cargo bench --bench consent`.

use std::hint::black_box;

use consentgate::consent::{ConsentStore, SledStore};
use criterion::Criterion;

const SUBJECTS: u64 = 100_000;
const PURPOSES: [&str; 3] = ["marketing", "analytics", "support"];
const CHUNK: u64 = 10_000;

fn subject(n: u64) -> String {
    format!("cust-{n:08}")
}

/// Fills the store through the import path: every subject has a region and a
/// decision for two of the three purposes.
fn populate(store: &SledStore) {
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
        match store.import(ndjson.as_bytes()) {
            Ok(report) if report.rejected == 0 => {}
            other => panic!("bench setup import failed: {other:?}"),
        }
        start += CHUNK;
    }
}

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store =
        SledStore::open(dir.path().join("consent")).unwrap_or_else(|e| panic!("open store: {e}"));
    populate(&store);

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
            let (region, consent) = store
                .lookup(black_box(&subjects[i]), black_box("marketing"))
                .unwrap_or_else(|e| panic!("lookup: {e}"));
            black_box((region, consent.map(|c| c.effective(now))))
        })
    });
    group.bench_function("lookup_no_consent", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            let found = store
                .lookup(black_box(&subjects[i]), black_box("support"))
                .unwrap_or_else(|e| panic!("lookup: {e}"));
            black_box(found)
        })
    });
    group.bench_function("region_only", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            let region = store
                .region(black_box(&subjects[i]))
                .unwrap_or_else(|e| panic!("region: {e}"));
            black_box(region)
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lookup(&mut c);
    c.final_summary();
}
