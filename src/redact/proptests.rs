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
