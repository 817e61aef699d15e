//! The streaming walk against its oracle, the tree walk (`Plan::apply` over a parsed value).
//!
//! Outputs are compared as parsed JSON values, not bytes: the stream keeps the upstream's member
//! order, white space and string escapes where it copies, while the tree re-serialises a sorted
//! map compactly. The [`Outcome`]s (removed paths, redaction counts) must be equal.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;

use super::super::{
    Action, Detector, FieldFilter, FieldPath, FieldRule, Outcome, Plan, Redactor, Validator,
};
use super::StreamError;

/// Runs both implementations over `input` and checks they agree; returns the stream's result.
pub(crate) fn agree(plan: &Plan, input: &[u8]) -> Result<(Vec<u8>, Outcome), StreamError> {
    let mut out = Vec::new();
    let stream = plan.minimise_json(input, &mut out);
    let tree = serde_json::from_slice::<Value>(input);
    match (&stream, tree) {
        (Ok(outcome), Ok(mut doc)) => {
            let expected = plan.apply(&mut doc);
            assert_eq!(
                outcome,
                &expected,
                "outcome for {}",
                String::from_utf8_lossy(input)
            );
            let released: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
                panic!(
                    "stream output is not JSON ({e}): {}",
                    String::from_utf8_lossy(&out)
                )
            });
            assert_eq!(
                released,
                doc,
                "output for {}",
                String::from_utf8_lossy(input)
            );
        }
        (Err(StreamError::DuplicateKey), Ok(_)) => {
            assert!(
                crate::json::check(input).is_err(),
                "no duplicate in {}",
                String::from_utf8_lossy(input)
            );
        }
        (Err(e), Ok(_)) => panic!(
            "stream refused ({e}) what serde_json reads: {}",
            String::from_utf8_lossy(input)
        ),
        (Ok(_), Err(e)) => panic!(
            "stream accepted what serde_json refuses ({e}): {}",
            String::from_utf8_lossy(input)
        ),
        (Err(_), Err(_)) => {}
    }
    stream.map(|o| (out, o))
}

fn paths(ps: &[&str]) -> Vec<FieldPath> {
    ps.iter().map(|p| FieldPath::parse(p).unwrap()).collect()
}

fn replace(name: &str, pattern: &str, with: &str) -> Arc<Redactor> {
    Arc::new(Redactor::new(name, pattern, &Action::Replace(with.into()), None, None).unwrap())
}

fn mask(name: &str, pattern: &str) -> Arc<Redactor> {
    Arc::new(Redactor::new(name, pattern, &Action::Mask { keep_last: 2 }, None, None).unwrap())
}

fn builtin(d: Detector) -> Arc<Redactor> {
    Arc::new(
        Redactor::builtin(
            d.name(),
            d,
            &Action::Replace(format!("<{}>", d.name())),
            None,
        )
        .unwrap(),
    )
}

fn email() -> Arc<Redactor> {
    replace("email", r"[a-z0-9.]+@[a-z0-9]+\.[a-z]{2,}", "[EMAIL]")
}

fn eu_like() -> Plan {
    Plan::new(
        FieldFilter::Allow(paths(&["id", "first_name", "email", "preferences"])),
        vec![FieldRule {
            paths: paths(&["email"]),
            redactor: mask("mask_email", r"^[^@]+"),
        }],
        vec![
            builtin(Detector::CardNumber),
            builtin(Detector::Email),
            builtin(Detector::Phone),
        ],
    )
}

#[test]
fn keeps_order_and_spelling_of_what_it_copies() {
    let plan = eu_like();
    let input = br#" { "preferences" : {"z":1, "a":"\u00e9"}, "id":"c-1", "orders":[{"sku":"x"}], "email":"bob@example.com" } "#;
    let (out, outcome) = agree(&plan, input).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"preferences":{"z":1,"a":"\u00e9"},"id":"c-1","email":"**b@example.com"}"#
    );
    assert_eq!(outcome.fields_removed, vec!["orders".to_owned()]);
    assert_eq!(outcome.redactions.get("mask_email"), Some(&1));
}

#[test]
fn scalar_roots_and_ancestors_follow_the_tree() {
    let allow = Plan::new(FieldFilter::Allow(paths(&["a.b"])), vec![], vec![]);
    for input in [
        &b"5"[..],
        b"\"x\"",
        b"null",
        b"[1,{\"a\":2}]",
        b"{\"a\":[1,{\"b\":[3]},{\"c\":1}]}",
    ] {
        agree(&allow, input).unwrap();
    }
    let (out, o) = agree(&allow, b"7").unwrap();
    assert_eq!(out, b"null");
    assert_eq!(o.fields_removed, vec!["(document)".to_owned()]);
}

#[test]
fn refuses_what_serde_json_refuses() {
    let plan = eu_like();
    for bad in [
        &b""[..],
        b" ",
        b"{",
        b"{\"a\":1,}",
        b"[1,]",
        b"01",
        b"-",
        b"1.",
        b".5",
        b"1e",
        b"+1",
        b"[1 2]",
        b"nul",
        b"truex",
        b"{\"a\" 1}",
        b"{1:2}",
        b"\"\\x\"",
        b"\"\\ud800\"",
        b"\"\\udc00\"",
        b"\"\\ud800\\u0041\"",
        b"\"a\x01\"",
        b"\"\xff\"",
        b"\"\xc3\"",
        b"{\"orders\":\"\xed\xa0\x80\"}",
        b"[] []",
    ] {
        assert!(
            agree(&plan, bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    for good in [
        &b"\"\\ud83d\\ude00\""[..],
        b"-0",
        b"1e400",
        b"-12.5E+3",
        b"\"\\u0000\\/\"",
        b"[]",
        b"{}",
    ] {
        assert!(
            agree(&plan, good).is_ok(),
            "{}",
            String::from_utf8_lossy(good)
        );
    }
}

#[test]
fn duplicate_keys_are_refused_even_in_removed_parts() {
    let plan = eu_like();
    for bad in [
        &br#"{"id":1,"id":2}"#[..],
        br#"{"orders":[{"sku":1,"qty":2,"sku":3}]}"#,
        br#"{"id":1,"\u0069d":2}"#,
        br#"{"a":{"x":1,"y":2,"z":3,"x":4}}"#,
    ] {
        assert_eq!(agree(&plan, bad).unwrap_err(), StreamError::DuplicateKey);
    }
    // The same key in sibling objects is no duplicate.
    agree(&plan, br#"[{"id":1},{"id":2}]"#).unwrap();
}

#[test]
fn nesting_is_bounded_like_serde_json() {
    let plan = eu_like();
    for n in [126, 127, 128, 200] {
        let doc = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let r = agree(&plan, doc.as_bytes());
        assert_eq!(r.is_ok(), n <= 127, "{n}");
        let doc = format!("{}1{}", "{\"orders\":".repeat(n), "}".repeat(n));
        assert_eq!(agree(&plan, doc.as_bytes()).is_ok(), n <= 127, "{n}");
    }
    let doc = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        agree(&plan, doc.as_bytes()).unwrap_err(),
        StreamError::TooDeep
    );
}

#[test]
fn the_tree_fallback_agrees() {
    let mut plan = eu_like();
    plan.stream = None;
    let (out, o) = agree(
        &plan,
        br#"{"id":"c","orders":[1],"email":"bob@example.com"}"#,
    )
    .unwrap();
    assert_eq!(out, br#"{"email":"**b@example.com","id":"c"}"#);
    assert_eq!(o.fields_removed, vec!["orders".to_owned()]);
    assert_eq!(
        agree(&plan, br#"{"a":1,"a":1}"#).unwrap_err(),
        StreamError::DuplicateKey
    );
}

// ---- property test: generated documents, spellings and plans ----------------------------

const KEYS: &[&str] = &["a", "b", "email", "card", "x.y", "é", "q\"t", ""];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "7",
    "-12",
    "42.5",
    "1e400",
    "-1.5E-7",
    "123456789012345678901234567890",
    "4111111111111111",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(NUMBERS).prop_map(|n| serde_json::from_str::<Value>(n).unwrap()),
        "[a-z0-9 @.\\-\"\\\\\n\u{e9}\u{1f600}]{0,20}".prop_map(Value::String),
        Just(Value::String("x 4111 1111 1111 1111 y".into())),
        Just(Value::String("mail bob@example.com now".into())),
        Just(Value::String("call +49 30 1234567".into())),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A tiny deterministic generator for spelling choices.
struct Bits(u64);

impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// Writes `v` as JSON text with random white space and random `\u` escapes.
fn render(v: &Value, bits: &mut Bits, out: &mut String) {
    let ws = |bits: &mut Bits, out: &mut String| {
        if bits.one_in(4) {
            out.push_str([" ", "\n", "\t ", "\r\n  "][(bits.next() % 4) as usize]);
        }
    };
    ws(bits, out);
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, c)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(bits, out);
                string(k, bits, out);
                ws(bits, out);
                out.push(':');
                render(c, bits, out);
            }
            ws(bits, out);
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, c) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(c, bits, out);
            }
            ws(bits, out);
            out.push(']');
        }
        Value::String(s) => string(s, bits, out),
        other => out.push_str(&other.to_string()),
    }
    ws(bits, out);
}

fn string(s: &str, bits: &mut Bits, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' || c < ' ' || bits.one_in(6) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04X}"));
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        4 => key().prop_filter("no dots or empty", |k| !k.contains('.') && !k.is_empty()),
        1 => Just("*".to_owned()),
        1 => Just("**".to_owned()),
    ];
    prop::collection::vec(seg, 1..4)
        .prop_map(|s| s.join("."))
        .prop_filter("valid path", |p| FieldPath::parse(p).is_ok())
}

fn plan() -> impl Strategy<Value = Plan> {
    let filter = prop_oneof![
        Just(None),
        prop::collection::vec(path(), 0..4).prop_map(|p| Some((true, p))),
        prop::collection::vec(path(), 0..4).prop_map(|p| Some((false, p))),
    ];
    let rules = prop::collection::vec((prop::collection::vec(path(), 1..3), 0..3usize), 0..3);
    let text = prop::collection::vec(any::<bool>(), 4);
    (filter, rules, text).prop_map(|(filter, rules, text)| {
        let filter = match filter {
            None => FieldFilter::KeepAll,
            Some((true, p)) => {
                FieldFilter::Allow(p.iter().map(|p| FieldPath::parse(p).unwrap()).collect())
            }
            Some((false, p)) => {
                FieldFilter::Deny(p.iter().map(|p| FieldPath::parse(p).unwrap()).collect())
            }
        };
        let field_rules = rules
            .into_iter()
            .map(|(p, which)| FieldRule {
                paths: p.iter().map(|p| FieldPath::parse(p).unwrap()).collect(),
                redactor: match which {
                    0 => mask("mask", r"^[^@]+"),
                    1 => replace("digits", r"\d+", "#"),
                    _ => Arc::new(
                        Redactor::new(
                            "luhn",
                            r"\d[\d ]{11,22}\d",
                            &Action::Mask { keep_last: 4 },
                            Some(Validator::Luhn),
                            None,
                        )
                        .unwrap(),
                    ),
                },
            })
            .collect();
        let all = [
            email(),
            builtin(Detector::CardNumber),
            builtin(Detector::Phone),
            replace("four", r"\d{4}", "<4>"),
        ];
        let detectors = all
            .into_iter()
            .zip(text)
            .filter(|(_, on)| *on)
            .map(|(r, _)| r)
            .collect();
        Plan::new(filter, field_rules, detectors)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stream_equals_tree(doc in json(), plan in plan(), seed in 1..u64::MAX) {
        let mut text = String::new();
        render(&doc, &mut Bits(seed), &mut text);
        let r = agree(&plan, text.as_bytes());
        prop_assert!(r.is_ok(), "{text}");
    }

    #[test]
    fn stream_agrees_on_damaged_documents(doc in json(), plan in plan(), seed in 1..u64::MAX, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut text = String::new();
        render(&doc, &mut Bits(seed), &mut text);
        let mut bytes = text.into_bytes();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = agree(&plan, &bytes);
    }
}
