//! Minimise + redact throughput on realistic customer documents of about 1 KB, 16 KB and 1 MB,
//! with the shipped EU policy (`marketing`: allow-list + mask; `support`: deny-list + free-text
//! detectors over every string). `stream/…` is the pipeline's path (`Purpose::minimise_json`,
//! one pass over the text); `tree/…` the oracle (parse → apply → serialise).
//!
//! Run: `cargo bench --bench redact`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use consentgate::policy::{LoadOptions, PolicySet};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

fn order(i: usize) -> Value {
    json!({
        "id": format!("o-{i}"),
        "sku": format!("SKU-{}", 1000 + i),
        "total": 42.5 + i as f64,
        "placed_at": "2024-03-01T10:15:00Z",
        "status": "delivered",
        "shipping_address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"},
        "items": [{"sku": format!("SKU-{}", 1000 + i), "qty": 1, "name": "Espresso beans 1kg"}],
        "note": if i.is_multiple_of(5) {
            "Customer asked to call +49 30 1234567 before delivery, paid with 4111 1111 1111 1111"
        } else {
            "Leave the parcel with the neighbour if nobody is at home."
        }
    })
}

/// A customer document of roughly `target` bytes (the sample shape plus orders).
fn customer(target: usize) -> String {
    let mut doc = json!({
        "id": "c-1001", "first_name": "Anna", "last_name": "Schmidt",
        "email": "anna.schmidt@example.eu", "phone": "+49 30 1234567", "date_of_birth": "1987-04-12",
        "address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"},
        "region": "eu", "preferences": {"newsletter": true, "language": "de"},
        "payment": {"card_number": "4111 1111 1111 1111", "iban": "DE89 3704 0044 0532 0130 00"},
        "orders": [],
        "support_notes": "Customer called from +49 30 1234567 about card 4111 1111 1111 1111, email anna.schmidt@example.eu",
        "national_id": "T22000129"
    });
    // Sized by adding up the orders' own lengths (and a comma each), not by serialising the
    // growing document after every order.
    let mut len = doc.to_string().len();
    let mut i = 0;
    while len < target {
        let o = order(i);
        len += o.to_string().len() + usize::from(i > 0);
        if let Some(orders) = doc["orders"].as_array_mut() {
            orders.push(o);
        }
        i += 1;
    }
    doc.to_string()
}

fn bench(c: &mut Criterion) {
    let opts = LoadOptions {
        hash_key: Some(b"bench-key".to_vec()),
        ..Default::default()
    };
    let Ok(set) = PolicySet::load_dir(Path::new(POLICIES), &opts) else {
        panic!("the shipped policies must load");
    };
    let Some(eu) = set.get("eu") else {
        panic!("eu policy missing");
    };
    for purpose_name in ["marketing", "support"] {
        let Some(purpose) = eu.purpose(purpose_name) else {
            panic!("purpose missing");
        };
        let mut group = c.benchmark_group(format!("eu_{purpose_name}"));
        for (label, size) in [("1KB", 1_000), ("16KB", 16_000), ("1MB", 1_000_000)] {
            let text = customer(size);
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function(format!("stream/{label}"), |b| {
                b.iter(|| {
                    let input = black_box(text.as_bytes());
                    let mut out = Vec::with_capacity(input.len());
                    let outcome = purpose.minimise_json(input, &mut out);
                    black_box((outcome, out))
                })
            });
            group.bench_function(format!("tree/{label}"), |b| {
                b.iter(|| {
                    let mut doc: Value = serde_json::from_str(black_box(&text)).unwrap_or_default();
                    let outcome = purpose.apply(&mut doc);
                    let out = serde_json::to_vec(&doc).unwrap_or_default();
                    black_box((outcome, out))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
