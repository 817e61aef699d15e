//! The labelled PII corpus (`tests/data/pii/*.jsonl`, one file per built-in detector) run
//! through the shipped detector definitions (`policies/base.yaml`) with every detector on at
//! once, as a purpose listing them all would. Reports recall and precision per detector and
//! fails unless every positive span is hidden whole.
//!
//! Each line is `{"text": ..., "pii": [substrings that must be hidden], "source": ...}`; an
//! entry of `pii` is the substring (of the file's kind) or `{"kind": ..., "span": ...}` for
//! another kind in the same text. An empty `pii` list marks a negative (text that holds
//! nothing of that detector's kind).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use consentgate::policy::{LoadOptions, PolicySet, Purpose};
use serde_json::Value;

const DETECTORS: [&str; 9] = [
    "email",
    "phone",
    "card_number",
    "iban",
    "ipv4",
    "ipv6",
    "us_ssn",
    "br_cpf",
    "br_cnpj",
];

fn all_detectors() -> std::sync::Arc<Purpose> {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("policies/base.yaml"),
        dir.path().join("base.yaml"),
    )
    .unwrap();
    let all = format!(
        "region: all\nname: every detector\nextends: base\npurposes:\n  all:\n    basis: contract\n    fields: {{ deny: [] }}\n    redact:\n      - text: [{}]\n",
        DETECTORS.join(", ")
    );
    std::fs::write(dir.path().join("all.yaml"), all).unwrap();
    let set = PolicySet::load_dir(dir.path(), &LoadOptions::default()).unwrap();
    set.get("all").unwrap().purpose("all").unwrap().clone()
}

#[derive(Default)]
struct Tally {
    positives: usize,
    whole: usize,
    partial: Vec<String>,
    missed: Vec<String>,
    mislabelled: Vec<String>,
    true_spans: usize,
    false_spans: Vec<String>,
    negatives: usize,
}

/// Whether every letter or digit of `text[start..end]` lies inside one of `spans`.
fn coverage(text: &str, start: usize, end: usize, spans: &[(usize, usize)]) -> (usize, usize) {
    let mut covered = 0;
    let mut total = 0;
    for (i, c) in text[start..end].char_indices() {
        if !c.is_alphanumeric() {
            continue;
        }
        total += 1;
        let at = start + i;
        if spans.iter().any(|&(s, e)| s <= at && at < e) {
            covered += 1;
        }
    }
    (covered, total)
}

#[test]
fn every_positive_is_hidden_whole() {
    let purpose = all_detectors();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pii");
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for det in DETECTORS {
        let text = std::fs::read_to_string(dir.join(format!("{det}.jsonl")))
            .unwrap_or_else(|e| panic!("{det}.jsonl: {e}"));
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let case: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{det}.jsonl:{}: {e}", n + 1));
            let text = case["text"].as_str().unwrap();
            let pii: Vec<(&'static str, &str)> = case["pii"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) => (det, s),
                    None => {
                        let kind = v["kind"].as_str().unwrap();
                        let kind = DETECTORS.into_iter().find(|d| *d == kind).unwrap();
                        (kind, v["span"].as_str().unwrap())
                    }
                })
                .collect();
            let found = purpose.detect_spans(text);
            let spans: Vec<(usize, usize)> = found.iter().map(|s| (s.start, s.end)).collect();
            let where_ = || format!("{det}.jsonl:{} {text:?}", n + 1);
            let mut expected = Vec::new();
            let mut from = 0;
            for (_, p) in &pii {
                let at = text[from..]
                    .find(p)
                    .map(|i| i + from)
                    .or_else(|| text.find(p))
                    .unwrap_or_else(|| panic!("{}: {p:?} is not in the text", where_()));
                from = at + p.len();
                expected.push((at, at + p.len()));
            }
            if pii.is_empty() {
                tallies.entry(det).or_default().negatives += 1;
            }
            for (&(s, e), &(kind, p)) in expected.iter().zip(&pii) {
                let t = tallies.entry(kind).or_default();
                t.positives += 1;
                let (covered, total) = coverage(text, s, e, &spans);
                if covered == total {
                    t.whole += 1;
                    let labels: Vec<&str> = found
                        .iter()
                        .filter(|f| f.start < e && f.end > s)
                        .map(|f| f.redactor.as_str())
                        .collect();
                    if !labels.contains(&kind) {
                        t.mislabelled
                            .push(format!("{}: {p:?} taken by {labels:?}", where_()));
                    }
                } else if covered > 0 {
                    t.partial.push(format!("{}: {p:?}", where_()));
                } else {
                    t.missed.push(format!("{}: {p:?}", where_()));
                }
            }
            // Precision: a detector should only take spans that overlap a labelled one.
            for f in &found {
                let t = tallies
                    .entry(
                        DETECTORS
                            .iter()
                            .find(|d| **d == f.redactor)
                            .copied()
                            .unwrap_or("other"),
                    )
                    .or_default();
                if expected.iter().any(|&(s, e)| f.start < e && f.end > s) {
                    t.true_spans += 1;
                } else {
                    t.false_spans
                        .push(format!("{}: took {:?}", where_(), &text[f.start..f.end]));
                }
            }
        }
    }
    let mut report = String::from(
        "detector     positives  whole  partial  missed  recall   precision  negatives\n",
    );
    let mut failures = Vec::new();
    for (det, t) in &tallies {
        let recall = 100.0 * t.whole as f64 / t.positives.max(1) as f64;
        let taken = t.true_spans + t.false_spans.len();
        let precision = 100.0 * t.true_spans as f64 / taken.max(1) as f64;
        report.push_str(&format!(
            "{det:<12} {:>9}  {:>5}  {:>7}  {:>6}  {recall:>6.1}%  {precision:>8.1}%  {:>9}\n",
            t.positives,
            t.whole,
            t.partial.len(),
            t.missed.len(),
            t.negatives
        ));
        failures.extend(t.partial.iter().map(|p| format!("partial  {p}")));
        failures.extend(t.missed.iter().map(|p| format!("missed   {p}")));
        for fp in &t.false_spans {
            report.push_str(&format!("  false positive  {fp}\n"));
        }
        for m in &t.mislabelled {
            report.push_str(&format!("  hidden, but by another detector  {m}\n"));
        }
    }
    println!("{report}");
    assert!(
        failures.is_empty(),
        "{report}\nnot hidden whole:\n{}",
        failures.join("\n")
    );
}
