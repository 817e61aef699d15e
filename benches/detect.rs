//! Free-text detection throughput with every built-in detector on (a purpose listing all nine
//! detectors of `policies/base.yaml`), on 16 KB inputs:
//! - `doc_dense`: a customer-notes JSON document where every string holds e-mails, phones,
//!   cards, IBANs and IP addresses, through the gateway's path (`…/stream`:
//!   `Purpose::minimise_json`, one pass over the text) and the tree walk beside it (`…/tree`:
//!   parse → apply → serialise);
//! - `doc_clean`: the same shape with ordinary text (dates, amounts, SKUs, times) and no PII;
//! - `text_dense` / `text_clean`: the detectors alone over one 16 KB string
//!   (`Purpose::redact_str`: find, resolve, rewrite).
//!
//! Run: `cargo bench --bench detect`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use consentgate::policy::{LoadOptions, PolicySet, Purpose};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

const DETECTORS: &str = "email, phone, card_number, iban, ipv4, ipv6, us_ssn, br_cpf, br_cnpj";

const DENSE: &[&str] = &[
    "Customer anna.schmidt@example.eu called from +49 30 1234567 about card 4111 1111 1111 1111.",
    "Refund to IBAN DE89 3704 0044 0532 0130 00, confirmation sent to mateo.garcía@example.es.",
    "Login from 192.168.10.24 and 2001:db8::8a2e:370:7334, phone (415) 555-0132, SSN 078-05-1123.",
    "Second card 5555-5555-5555-4444, callback 090-1234-5678, CPF 529.982.247-25, GB82WEST12345698765432.",
];

const CLEAN: &[&str] = &[
    "Leave the parcel with the neighbour if nobody is at home; ring twice at the back door.",
    "Order o-1042 of 2024-03-01 shipped at 10:15, total 42.50 EUR, SKU-1234 and SKU-9 in one box.",
    "The customer asked about delivery times for the new espresso beans (1 kg, dark roast).",
    "Version 1.2.3 of the app fixed the login issue; the ticket was closed after 3 days.",
];

fn purpose() -> Arc<Purpose> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = std::fs::copy(
        root.join("policies/base.yaml"),
        dir.path().join("base.yaml"),
    );
    copy.unwrap_or_else(|e| panic!("copy base.yaml: {e}"));
    let all = format!(
        "region: all\nname: every detector\nextends: base\npurposes:\n  all:\n    basis: contract\n    fields: {{ deny: [] }}\n    redact:\n      - text: [{DETECTORS}]\n"
    );
    std::fs::write(dir.path().join("all.yaml"), all).unwrap_or_else(|e| panic!("write: {e}"));
    let set = PolicySet::load_dir(dir.path(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("policies: {e}"));
    let Some(p) = set.get("all").and_then(|p| p.purpose("all").cloned()) else {
        panic!("purpose missing");
    };
    p
}

/// A JSON document of about `target` bytes: notes records with text fields from `lines`.
fn doc(lines: &[&str], target: usize) -> String {
    let mut notes = Vec::new();
    let mut i = 0;
    loop {
        let candidate = json!({ "notes": notes });
        if candidate.to_string().len() >= target {
            return candidate.to_string();
        }
        notes.push(json!({
            "id": format!("n-{i}"),
            "subject": lines[i % lines.len()],
            "body": format!("{} {}", lines[(i + 1) % lines.len()], lines[(i + 2) % lines.len()]),
        }));
        i += 1;
    }
}

fn text(lines: &[&str], target: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < target {
        s.push_str(lines[i % lines.len()]);
        s.push(' ');
        i += 1;
    }
    s
}

fn bench(c: &mut Criterion) {
    let purpose = purpose();
    let mut group = c.benchmark_group("detect_all");
    for (label, lines) in [("dense", DENSE), ("clean", CLEAN)] {
        let d = doc(lines, 16_000);
        group.throughput(Throughput::Bytes(d.len() as u64));
        let mut streamed = Vec::new();
        let outcome = purpose.minimise_json(d.as_bytes(), &mut streamed);
        let mut tree: Value = serde_json::from_str(&d).unwrap_or_default();
        assert_eq!(
            outcome.ok(),
            Some(purpose.apply(&mut tree)),
            "stream outcome"
        );
        let streamed: Value = serde_json::from_slice(&streamed).unwrap_or_default();
        assert_eq!(streamed, tree, "the stream and the tree disagree");
        group.bench_function(format!("doc_{label}_16KB/stream"), |b| {
            b.iter(|| {
                // As the pipeline does: a fresh buffer of the input's size.
                let mut out = Vec::with_capacity(d.len());
                let outcome = purpose.minimise_json(black_box(d.as_bytes()), &mut out);
                black_box((outcome, out))
            })
        });
        group.bench_function(format!("doc_{label}_16KB/tree"), |b| {
            b.iter(|| {
                let mut v: Value = serde_json::from_str(black_box(&d)).unwrap_or_default();
                let outcome = purpose.apply(&mut v);
                let out = serde_json::to_vec(&v).unwrap_or_default();
                black_box((outcome, out))
            })
        });
        let t = text(lines, 16_000);
        group.throughput(Throughput::Bytes(t.len() as u64));
        group.bench_function(format!("text_{label}_16KB"), |b| {
            b.iter(|| black_box(purpose.redact_str(black_box(&t))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
