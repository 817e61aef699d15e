//! Engine tests: the classes of issue 11 (order, greedy matches, partial spans, narrow forms)
//! and of issue 10.7 (digits of every script), through `Plan::redact_text`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::redact::{Action, Detector, FieldFilter, Plan, Redactor};

fn detector(d: Detector) -> Arc<Redactor> {
    let label = format!("[{}]", d.name().to_uppercase());
    Arc::new(Redactor::builtin(d.name(), d, &Action::Replace(label), None).unwrap())
}

fn plan(ds: &[Detector]) -> Plan {
    Plan::new(
        FieldFilter::KeepAll,
        vec![],
        ds.iter().map(|&d| detector(d)).collect(),
    )
}

fn all() -> Plan {
    plan(&Detector::ALL)
}

fn run(p: &Plan, text: &str) -> String {
    p.redact_text(text, &mut |_, _| {})
        .unwrap_or_else(|| text.to_owned())
}

#[test]
fn order_does_not_decide_the_outcome() {
    for order in [
        [Detector::CardNumber, Detector::Iban],
        [Detector::Iban, Detector::CardNumber],
    ] {
        assert_eq!(
            run(&plan(&order), "PL61 1090 1014 0000 0712 1981 2874"),
            "[IBAN]"
        );
    }
    for order in [
        [Detector::Phone, Detector::UsSsn],
        [Detector::UsSsn, Detector::Phone],
    ] {
        assert_eq!(run(&plan(&order), "078-05-1123"), "[US_SSN]");
    }
}

#[test]
fn known_lengths_stop_greedy_matches() {
    assert_eq!(
        run(&all(), "DE89370400440532013000 BIC COBADEFF"),
        "[IBAN] BIC COBADEFF"
    );
    assert_eq!(
        run(&all(), "iban vg96 vpvg 0000 0123 4567 8901 X"),
        "iban [IBAN] X"
    );
}

#[test]
fn spans_are_whole() {
    let p = all();
    for (text, want) in [
        ("090-1234-5678", "[PHONE]"),
        ("mateo.garcía@example.es", "[EMAIL]"),
        ("a@xn--d1acufc.xn--p1ai", "[EMAIL]"),
        ("::ffff:192.0.2.1", "[IPV6]"),
        ("fe80::1%eth0 up", "[IPV6] up"),
        ("2001:db8::/32.", "[IPV6]."),
        ("10.0.0.0/8", "[IPV4]"),
        ("(415) 555-0132", "[PHONE]"),
        ("+44 (20) 7123 4567", "[PHONE]"),
        ("+49 (0)30 1234567", "[PHONE]"),
        (
            "+49 30 1234567 5555 5555 5555 4444",
            "[PHONE] [CARD_NUMBER]",
        ),
    ] {
        assert_eq!(run(&p, text), want, "{text}");
    }
}

#[test]
fn ssn_forms_and_rules() {
    let p = plan(&[Detector::UsSsn]);
    for ok in ["078 05 1123", "078.05.1123", "078051123", "078-051123"] {
        assert_eq!(run(&p, ok), "[US_SSN]", "{ok}");
    }
    for bad in [
        "000-05-1123",
        "666-05-1123",
        "950-05-1123",
        "078-00-1123",
        "078-05-0000",
        "693-09.4444",
    ] {
        assert_eq!(run(&p, bad), bad);
    }
}

#[test]
fn unicode_digits_are_digits() {
    let p = all();
    assert_eq!(
        run(&p, "card ４１１１ １１１１ １１１１ １１１１ ok"),
        "card [CARD_NUMBER] ok"
    );
    assert_eq!(run(&p, "card ٤١١١١١١١١١١١١١١١"), "card [CARD_NUMBER]");
    assert_eq!(run(&p, "ssn ०७८-०५-११२३"), "ssn [US_SSN]");
    // A zero-width space between groups does not hide the number, and is replaced with it.
    assert_eq!(run(&p, "4111\u{200b}1111 1111 1111"), "[CARD_NUMBER]");
}

#[test]
fn brazilian_numbers() {
    let p = all();
    assert_eq!(run(&p, "CPF 529.982.247-25"), "CPF [BR_CPF]");
    assert_eq!(run(&p, "CNPJ 11.222.333/0001-81"), "CNPJ [BR_CNPJ]");
    assert_eq!(run(&p, "CPF 529.982.247-26"), "CPF 529.982.247-26");
}

#[test]
fn text_without_pii_is_untouched_and_not_allocated() {
    let p = all();
    for text in [
        "",
        "a",
        "Leave the parcel with the neighbour.",
        "order o-1 total 42.5 on 2024-03-01 at 10:15, SKU-1234, postcode 10115",
        "std::vector<int> and 1:2:3",
        "version 1.2.3, ISBN 978-3-16-148410-0",
    ] {
        assert!(p.redact_text(text, &mut |_, _| {}).is_none(), "{text}");
    }
}

#[test]
fn counts_name_the_redactor() {
    let p = all();
    let mut hits = Vec::new();
    let out = p
        .redact_text("a@b.eu, c@d.eu and 4111 1111 1111 1111", &mut |n, c| {
            hits.push((n.to_owned(), c));
        })
        .unwrap();
    assert_eq!(out, "[EMAIL], [EMAIL] and [CARD_NUMBER]");
    hits.sort();
    assert_eq!(
        hits,
        vec![("card_number".to_owned(), 1), ("email".to_owned(), 2)]
    );
}

#[test]
fn custom_patterns_join_the_same_resolution() {
    let order = Arc::new(
        Redactor::new(
            "order_id",
            r"ORD-\d{6}",
            &Action::Replace("[ORDER]".into()),
            None,
            None,
        )
        .unwrap(),
    );
    let p = Plan::new(
        FieldFilter::KeepAll,
        vec![],
        vec![order, detector(Detector::Email)],
    );
    assert_eq!(
        run(&p, "ORD-123456 for anna@example.eu"),
        "[ORDER] for [EMAIL]"
    );
}

#[test]
fn explain_names_winner_and_losers() {
    let p = plan(&[Detector::Phone, Detector::UsSsn]);
    let (out, spans) = p.explain_text("SSN 078-05-1123", &mut |_, _| {});
    assert_eq!(out.as_deref(), Some("SSN [US_SSN]"));
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert!(
        spans[0].starts_with("us_ssn took characters 4..15 (validated)"),
        "{spans:?}"
    );
    let (_, spans) = all().explain_text("PL61 1090 1014 0000 0712 1981 2874", &mut |_, _| {});
    assert!(spans[0].contains("card_number"), "{spans:?}");
    assert!(spans[0].contains("iban is longer"), "{spans:?}");
}

#[test]
fn adversarial_inputs_stay_linear() {
    let p = all();
    let digits = "1 ".repeat(50_000);
    let colons = "1:".repeat(50_000);
    let ats = "a@".repeat(50_000);
    let dots = "a.".repeat(50_000) + "@x";
    for text in [digits, colons, ats, dots] {
        let start = std::time::Instant::now();
        let _ = p.redact_text(&text, &mut |_, _| {});
        assert!(start.elapsed().as_secs() < 5, "{}", &text[..10]);
    }
}

#[test]
fn glued_values_are_all_found_round_after_round() {
    // Each replacement gives the next value the boundary it lacked.
    let p = all();
    let t = "DE89 3704 0044 0532 0130 00a@xn--d1acufc.xn--p1aife80::1%eth0+49 30 1234567DE89 3704 0044 0532 0130 00";
    let once = run(&p, t);
    assert_eq!(run(&p, &once), once);
    assert!(once.ends_with("[IBAN]"), "{once}");
}
