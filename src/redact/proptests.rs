//! Property tests: denied paths never survive, allow-lists leak nothing, detectors leave no match.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

const KEYS: &[&str] = &["a", "b", "c", "email", "card"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 @.-]{0,24}".prop_map(Value::String),
        Just(Value::String("x 4111 1111 1111 1111 y".into())),
        Just(Value::String("mail bob@example.com now".into())),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        4 => key(),
        1 => Just("*".to_owned()),
        1 => Just("**".to_owned()),
    ];
    prop::collection::vec(seg, 1..4)
        .prop_map(|s| s.join("."))
        .prop_filter("valid path", |p| FieldPath::parse(p).is_ok())
}

/// Every (key-path, value) pair in the document, array indices skipped.
fn leaves(v: &Value, at: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    out.push((at.clone(), v.clone()));
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                at.push(k.clone());
                leaves(c, at, out);
                at.pop();
            }
        }
        Value::Array(a) => a.iter().for_each(|c| leaves(c, at, out)),
        _ => {}
    }
}

/// Reference matcher, written independently of the automaton.
fn matches(pattern: &[&str], keys: &[String]) -> bool {
    match (pattern.first(), keys.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            matches(&pattern[1..], keys) || (!keys.is_empty() && matches(pattern, &keys[1..]))
        }
        (Some(&"*"), Some(_)) => matches(&pattern[1..], &keys[1..]),
        (Some(p), Some(k)) => *p == k && matches(&pattern[1..], &keys[1..]),
        _ => false,
    }
}

fn matches_prefix(pattern: &str, keys: &[String]) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    (0..=keys.len()).any(|n| matches(&p, &keys[..n]))
}

proptest! {
    #[test]
    fn denied_paths_never_survive(doc in json(), deny in prop::collection::vec(path(), 1..4)) {
        let plan = Plan::new(
            FieldFilter::Deny(deny.iter().map(|p| FieldPath::parse(p).unwrap()).collect()),
            vec![],
            vec![],
        );
        let mut out = doc;
        plan.apply(&mut out);
        let mut all = Vec::new();
        leaves(&out, &mut Vec::new(), &mut all);
        for (keys, _) in all {
            for d in &deny {
                prop_assert!(!matches(&d.split('.').collect::<Vec<_>>(), &keys), "{d} survived at {keys:?}");
            }
        }
    }

    #[test]
    fn allow_list_keeps_nothing_else(doc in json(), allow in prop::collection::vec(path(), 1..4)) {
        let plan = Plan::new(
            FieldFilter::Allow(allow.iter().map(|p| FieldPath::parse(p).unwrap()).collect()),
            vec![],
            vec![],
        );
        let mut out = doc;
        plan.apply(&mut out);
        let mut all = Vec::new();
        leaves(&out, &mut Vec::new(), &mut all);
        for (keys, value) in all {
            let allowed = allow.iter().any(|a| matches_prefix(a, &keys));
            // Outside allowed subtrees only containers (ancestors) may remain.
            let removed_root = keys.is_empty() && value.is_null();
            prop_assert!(allowed || removed_root || value.is_object() || value.is_array(),
                "{keys:?} = {value} survived allow {allow:?}");
        }
    }

    #[test]
    fn detectors_leave_no_validated_match(doc in json()) {
        let email = Arc::new(Redactor::new("email", r"[a-z0-9.]+@[a-z0-9]+\.[a-z]{2,}",
            &Action::Replace("[EMAIL]".into()), None, None).unwrap());
        let card = Arc::new(Redactor::new("card", r"\b(?:\d[ -]?){12,18}\d\b",
            &Action::Replace("[CARD]".into()), Some(Validator::Luhn), None).unwrap());
        let plan = Plan::new(FieldFilter::KeepAll, vec![], vec![email.clone(), card.clone()]);
        let mut out = doc;
        plan.apply(&mut out);
        let mut all = Vec::new();
        leaves(&out, &mut Vec::new(), &mut all);
        for (_, v) in all {
            let text = match v { Value::String(s) => s, Value::Number(n) => n.to_string(), _ => continue };
            prop_assert!(!email.detects(&text), "email left in {text}");
            prop_assert!(!card.detects(&text), "card left in {text}");
        }
    }
}

/// Pieces of free text: PII of every built-in kind, near-misses and filler.
const PIECES: &[&str] = &[
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "378282246310005",
    "4111 1111 1111 1112",
    "DE89 3704 0044 0532 0130 00",
    "PL61109010140000071219812874",
    "GB82 WEST 1234 5698 7654 32",
    "anna.schmidt@example.eu",
    "mateo.garcía@example.es",
    "a@xn--d1acufc.xn--p1ai",
    "+49 30 1234567",
    "(415) 555-0132",
    "090-1234-5678",
    "078-05-1123",
    "078 05 1123",
    "529.982.247-25",
    "11.222.333/0001-81",
    "192.168.0.1",
    "::ffff:192.0.2.1",
    "fe80::1%eth0",
    "2001:db8::/32",
    "１２３",
    "４１１１ １１１１ １１１１ １１１１",
    "2024-03-01",
    "42.5",
    "10115",
    "SKU-1234",
    " ",
    " ",
    ", ",
    "-",
    "/",
    ":",
    ".",
    "(",
    ")",
    "x",
    "call",
    "0",
    "12",
    "1234",
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..12).prop_map(|v| v.concat())
}

fn builtins() -> Vec<Arc<Redactor>> {
    let mut v: Vec<Arc<Redactor>> = Detector::ALL
        .iter()
        .map(|&d| {
            Arc::new(
                Redactor::builtin(
                    d.name(),
                    d,
                    &Action::Replace(format!("<{}>", d.name())),
                    None,
                )
                .unwrap(),
            )
        })
        .collect();
    v.push(Arc::new(
        Redactor::new(
            "digits4",
            r"\d{4}",
            &Action::Replace("<d4>".into()),
            None,
            None,
        )
        .unwrap(),
    ));
    v.push(Arc::new(
        Redactor::new(
            "luhn_pattern",
            r"\d[\d ]{11,22}\d",
            &Action::Mask { keep_last: 4 },
            Some(Validator::Luhn),
            None,
        )
        .unwrap(),
    ));
    v
}

proptest! {
    #[test]
    fn detector_order_does_not_change_the_output(
        t in text(),
        order in Just(builtins()).prop_shuffle(),
    ) {
        let reference = Plan::new(FieldFilter::KeepAll, vec![], builtins());
        let shuffled = Plan::new(FieldFilter::KeepAll, vec![], order);
        let mut a = Vec::new();
        let mut b = Vec::new();
        let out_a = reference.redact_text(&t, &mut |n, c| a.push((n.to_owned(), c)));
        let out_b = shuffled.redact_text(&t, &mut |n, c| b.push((n.to_owned(), c)));
        prop_assert_eq!(out_a, out_b);
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_second_pass_finds_nothing(t in text()) {
        let plan = Plan::new(FieldFilter::KeepAll, vec![], builtins().into_iter().take(9).collect());
        let once = plan.redact_text(&t, &mut |_, _| {}).unwrap_or(t);
        prop_assert!(plan.redact_text(&once, &mut |_, _| {}).is_none(), "{once}");
    }

    #[test]
    fn full_width_digits_are_found_like_ascii(t in text()) {
        let plan = Plan::new(FieldFilter::KeepAll, vec![], builtins().into_iter().take(9).collect());
        let wide: String = t
            .chars()
            .map(|c| if c.is_ascii_digit() { char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c) } else { c })
            .collect();
        let ascii_spans = plan.detect_spans(&t).len();
        let wide_spans = plan.detect_spans(&wide).len();
        prop_assert_eq!(ascii_spans, wide_spans, "{} / {}", t, wide);
    }
}
