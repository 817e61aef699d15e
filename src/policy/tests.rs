//! Loader, decision, registry and tooling tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::loader::load_texts;
use super::*;

fn key() -> LoadOptions {
    LoadOptions {
        hash_key: Some(b"k".to_vec()),
        ..Default::default()
    }
}

fn load(files: &[(&str, &str)]) -> Result<Vec<Arc<Policy>>, Vec<String>> {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
        .collect();
    let mut errors = BTreeSet::new();
    let set = load_texts(&texts, &key(), &mut errors);
    if errors.is_empty() {
        Ok(set.into_values().collect())
    } else {
        Err(errors.iter().map(ToString::to_string).collect())
    }
}

const BASE: &str = "\
region: base
name: Base
redactors:
  email: { pattern: '[a-z]+@[a-z.]+', replace: '[EMAIL]' }
  mask_email: { pattern: '^(.)[^@]*(@.*)$', replace: '$1***$2' }
";

const EU: &str = "\
region: eu
name: EU
extends: base
mode: enforce
honor_gpc: false
purposes:
  marketing:
    basis: consent
    consent: opt_in
    gpc_opt_out: true
    fields:
      allow: [id, first_name, email, preferences]
    redact:
      - fields: [email]
        with: mask_email
      - text: [email]
  order_fulfilment:
    basis: contract
    fields:
      deny: [payment.**]
";

#[test]
fn loads_with_extends_and_applies() {
    let ps = load(&[("base.yaml", BASE), ("eu.yaml", EU)]).unwrap();
    let eu = ps.iter().find(|p| p.region == "eu").unwrap();
    assert_eq!(eu.redactors.len(), 2);
    let m = eu.purpose("marketing").unwrap();
    assert_eq!(m.consent, Some(ConsentMode::OptIn));
    let mut doc = json!({"id": "c-1", "email": "anna@example.eu", "payment": {"x": 1}});
    let out = m.apply(&mut doc);
    assert_eq!(doc, json!({"id": "c-1", "email": "a***@example.eu"}));
    assert_eq!(out.fields_removed, vec!["payment"]);
    assert_eq!(out.redactions.get("mask_email"), Some(&1));
    assert_eq!(eu.version.len(), 64);
    assert_eq!(eu.label(), format!("eu@{}", &eu.version[..12]));
}

#[test]
fn version_is_stable_and_follows_resolved_content() {
    let a = load(&[("base.yaml", BASE), ("eu.yaml", EU)]).unwrap();
    let b = load(&[("base.yaml", BASE), ("eu.yaml", EU)]).unwrap();
    assert_eq!(a[1].version, b[1].version);
    // Comments and formatting do not change the version.
    let commented = format!("# a comment\n{EU}\n# trailing\n");
    let c = load(&[("base.yaml", BASE), ("eu.yaml", &commented)]).unwrap();
    assert_eq!(a[1].version, c[1].version);
    // A change in the parent changes the child's version.
    let base2 = BASE.replace("[EMAIL]", "[MAIL]");
    let d = load(&[("base.yaml", &base2), ("eu.yaml", EU)]).unwrap();
    assert_ne!(a[1].version, d[1].version);
}

#[test]
fn child_purposes_and_redactors_override_parent() {
    let base = format!(
        "{BASE}purposes:\n  support:\n    basis: contract\n    fields: {{ allow: [id] }}\n"
    );
    let child = "\
region: eu
name: EU
extends: base
purposes:
  support:
    basis: legitimate_interest
    fields: { allow: [id, email] }
redactors:
  email: { pattern: 'x', replace: 'y' }
";
    let ps = load(&[("base.yaml", &base), ("eu.yaml", child)]).unwrap();
    let eu = ps.iter().find(|p| p.region == "eu").unwrap();
    assert_eq!(
        eu.purpose("support").unwrap().basis,
        Basis::LegitimateInterest
    );
    assert_eq!(eu.redactors["email"].pattern.as_deref(), Some("x"));
}

#[test]
fn exact_error_messages() {
    let eu = "\
region: eu
name: EU
purposes:
  marketing:
    basis: contract
    consent: opt_in
    fields:
      allow: [id]
      deny: [email]
  support:
    basis: consent
    fields:
      allow: [id..x]
    redact:
      - text: [nope]
redactors:
  bad: { pattern: '(', replace: 'x' }
  two: { pattern: 'a', replace: 'x', mask: { keep_last: 1 } }
";
    let errs = load(&[("eu.yaml", eu)]).unwrap_err();
    assert_eq!(
        errs,
        vec![
            "eu.yaml:6:14: purpose \"marketing\" sets consent, but its basis is contract; consent applies only with basis: consent",
            "eu.yaml:8:7: purpose \"marketing\" has both allow and deny lists; keep one",
            "eu.yaml:13:15: purpose \"support\": field path \"id..x\" has an empty part (two dots in a row, or a dot at the start or end)",
            "eu.yaml:15:16: purpose \"support\" uses redactor \"nope\", which is not defined (defined: bad, two)",
            "eu.yaml:17:19: redactor \"bad\" has a pattern that is not a valid regular expression: unclosed group",
            "eu.yaml:18:3: redactor \"two\" has more than one action (replace, mask); keep one",
        ]
    );
}

#[test]
fn schema_errors_name_the_place() {
    let errs = load(&[
        ("eu.yaml", "region: eu\nname: EU\nmode: strict\n"),
        ("us.yaml", "region: us\nname: US\ncolour: blue\n"),
        ("br.yaml", "region: br\n"),
        ("de.yaml", "region: fr\nname: x\n"),
        ("x.yaml", "region: x\nname: [\n"),
    ])
    .unwrap_err();
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert_eq!(errs[0], "br.yaml:1:1: the required key \"name\" is missing");
    assert_eq!(
        errs[1],
        "de.yaml:1:9: region is \"fr\", but the file is named de.yaml; the region must equal the file name without .yaml"
    );
    assert_eq!(
        errs[2],
        "eu.yaml:3:7: \"strict\" is not a valid choice here; use one of: enforce, report"
    );
    assert!(errs[3].starts_with(
        "us.yaml:3:1: unknown key \"colour\"; the keys allowed here are: region, name, extends"
    ));
    assert!(errs[4].starts_with("x.yaml:"));
}

#[test]
fn extends_cycles_and_unknown_parents() {
    let a = "region: a\nname: A\nextends: b\n";
    let b = "region: b\nname: B\nextends: a\n";
    let c = "region: c\nname: C\nextends: nothere\n";
    let d = "region: d\nname: D\nextends: e\n";
    let e = "region: e\nname: [\n";
    let errs = load(&[
        ("a.yaml", a),
        ("b.yaml", b),
        ("c.yaml", c),
        ("d.yaml", d),
        ("e.yaml", e),
    ])
    .unwrap_err();
    assert!(errs.contains(&"a.yaml:3:10: extends \"b\", which leads back to a (a cycle: a → b → a); remove one extends".to_owned()), "{errs:#?}");
    assert!(errs.contains(&"b.yaml:3:10: extends \"a\", which leads back to b (a cycle: b → a → b); remove one extends".to_owned()));
    assert!(
        errs.contains(
            &"c.yaml:3:10: extends \"nothere\", but there is no nothere.yaml in the policy folder"
                .to_owned()
        )
    );
    assert!(errs.contains(
        &"d.yaml:3:10: extends \"e\", but e.yaml has errors; fix those first".to_owned()
    ));
}

#[test]
fn hash_redactor_needs_a_key_only_when_used() {
    let base = "region: base\nname: B\nredactors:\n  pseudonym: { pattern: '.+', hash: true }\n";
    let user = "region: eu\nname: EU\nextends: base\npurposes:\n  analytics:\n    basis: contract\n    fields: { allow: [id] }\n    redact:\n      - fields: [id]\n        with: pseudonym\n";
    let texts = |files: &[(&str, &str)]| -> Vec<(String, String)> {
        files
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    let mut errors = BTreeSet::new();
    load_texts(
        &texts(&[("base.yaml", base)]),
        &LoadOptions::default(),
        &mut errors,
    );
    assert!(errors.is_empty());
    load_texts(
        &texts(&[("base.yaml", base), ("eu.yaml", user)]),
        &LoadOptions::default(),
        &mut errors,
    );
    let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        vec![
            "base.yaml:4:3: redactor \"pseudonym\" uses hash, which needs a secret key: set [policies] hash_secret_file in the config"
        ]
    );
}

#[test]
fn decisions_follow_step_5() {
    let ps = load(&[("base.yaml", BASE), ("eu.yaml", EU)]).unwrap();
    let mut eu = (*ps[1]).clone();
    let m = eu.purpose("marketing").unwrap().clone();
    let d = |p: &Policy, c, g| decide(p, &m, c, g);
    assert_eq!(
        d(&eu, ConsentState::Granted, false).reason,
        "opt_in_consent_granted"
    );
    assert_eq!(d(&eu, ConsentState::Granted, false).verdict, Verdict::Allow);
    for (c, r) in [
        (ConsentState::None, "consent_missing"),
        (ConsentState::Denied, "consent_denied"),
        (ConsentState::Withdrawn, "consent_withdrawn"),
        (ConsentState::Expired, "consent_expired"),
    ] {
        assert_eq!(
            d(&eu, c, false),
            Decision {
                verdict: Verdict::Deny,
                reason: r
            }
        );
    }
    // GPC is ignored unless the policy honours it.
    assert_eq!(d(&eu, ConsentState::Granted, true).verdict, Verdict::Allow);
    eu.honor_gpc = true;
    // GPC opts out of opt-out purposes; an explicit opt-in grant stands (SPEC step 5).
    assert_eq!(
        d(&eu, ConsentState::Granted, true).reason,
        "opt_in_consent_granted"
    );
    eu.mode = Mode::Report;
    assert_eq!(
        d(&eu, ConsentState::None, false).verdict,
        Verdict::ReportDeny
    );
    let of = eu.purpose("order_fulfilment").unwrap();
    assert_eq!(
        decide(&eu, of, ConsentState::Withdrawn, true),
        Decision {
            verdict: Verdict::Allow,
            reason: "basis_contract"
        }
    );
    let mut opt_out = (*m).clone();
    opt_out.consent = Some(ConsentMode::OptOut);
    assert_eq!(
        decide(&eu, &opt_out, ConsentState::None, false).reason,
        "opt_out_not_objected"
    );
    assert_eq!(
        decide(&eu, &opt_out, ConsentState::Expired, false).verdict,
        Verdict::Allow
    );
    assert_eq!(
        decide(&eu, &opt_out, ConsentState::Withdrawn, false).reason,
        "consent_withdrawn"
    );
    assert_eq!(
        decide(&eu, &opt_out, ConsentState::None, true).reason,
        "gpc_opt_out"
    );
    opt_out.mode = Some(Mode::Enforce);
    assert_eq!(
        decide(&eu, &opt_out, ConsentState::None, true).verdict,
        Verdict::Deny
    );
    assert_eq!(
        serde_json::to_string(&ConsentState::Withdrawn).unwrap(),
        "\"withdrawn\""
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn load_dir_ignores_other_files_and_registry_keeps_last_good_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "base.yaml", BASE);
    write(dir, "eu.yaml", EU);
    write(dir, "_draft.yaml", "not: [valid");
    write(dir, "notes.txt", "ignored");
    std::fs::create_dir(dir.join("tests")).unwrap();
    write(&dir.join("tests"), "eu.yaml", "- junk");
    let reg = Arc::new(PolicyRegistry::load(dir, key()).unwrap());
    let before = reg.current();
    assert_eq!(before.regions().collect::<Vec<_>>(), vec!["base", "eu"]);

    write(dir, "eu.yaml", "region: eu\nname: [\n");
    let err = reg.reload().unwrap_err();
    assert!(err.to_string().starts_with("eu.yaml:"));
    assert_eq!(reg.last_error(), Some(err));
    assert!(Arc::ptr_eq(&before, &reg.current()));
    assert_eq!(reg.reload_count(), 0);

    write(dir, "eu.yaml", &EU.replace("name: EU", "name: EU 2"));
    reg.reload().unwrap();
    assert_eq!(reg.current().get("eu").unwrap().name, "EU 2");
    assert_eq!(reg.last_error(), None);
    assert_eq!(reg.reload_count(), 1);
    // The old set is still intact for requests that hold it.
    assert_eq!(before.get("eu").unwrap().name, "EU");
}

#[test]
fn watch_reloads_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "base.yaml", BASE);
    write(dir, "eu.yaml", EU);
    let reg = Arc::new(PolicyRegistry::load(dir, key()).unwrap());
    let _guard = Arc::clone(&reg).watch().unwrap();
    write(dir, "eu.yaml", &EU.replace("name: EU", "name: EU watched"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reg.current().get("eu").unwrap().name != "EU watched" {
        assert!(std::time::Instant::now() < deadline, "no reload seen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn empty_or_missing_folder_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = PolicySet::load_dir(tmp.path(), &key()).unwrap_err();
    assert!(e.to_string().contains("no policy files"));
    let e = PolicySet::load_dir(&tmp.path().join("nope"), &key()).unwrap_err();
    assert!(e.to_string().contains("cannot read the policy folder"));
}

fn shipped() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../main/policies"))
}

fn shipped_dir() -> std::path::PathBuf {
    // The harness crate lives in /work/scratch/policy, the main crate in /work/main.
    let main = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    if main.is_dir() {
        main
    } else {
        shipped().to_path_buf()
    }
}

#[test]
fn shipped_policies_check_and_test_clean() {
    let dir = shipped_dir();
    let mut out = Vec::new();
    let code = tooling::check(&dir, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("eu: EU / EEA (GDPR)"));
    let mut out = Vec::new();
    let code = tooling::test(&dir, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.trim_end().ends_with(" passed, 0 failed"), "{text}");
}

#[test]
fn test_tool_reports_failures_with_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "base.yaml", BASE);
    write(dir, "eu.yaml", EU);
    std::fs::create_dir(dir.join("tests")).unwrap();
    write(
        &dir.join("tests"),
        "eu.yaml",
        "\
- name: good
  region: eu
  purpose: marketing
  consent: granted
  gpc: false
  input: {id: c-1, email: anna@example.eu, phone: '1'}
  expect: {decision: allow, body: {id: c-1, email: a***@example.eu}}
- name: bad body
  region: eu
  purpose: marketing
  consent: granted
  gpc: false
  input: {id: c-1, email: anna@example.eu}
  expect: {decision: allow, body: {id: c-1, email: anna@example.eu}}
- name: bad decision
  region: eu
  purpose: marketing
  consent: none
  gpc: false
  input: {}
  expect: {decision: allow}
",
    );
    let mut out = Vec::new();
    assert_eq!(tooling::test(dir, &mut out), 1);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "\
ok   tests/eu.yaml: good
FAIL tests/eu.yaml: bad body
       body differs (- missing, + unexpected, ~ changed):
       ~ email: expected \"anna@example.eu\", got \"a***@example.eu\"
FAIL tests/eu.yaml: bad decision
       expected decision allow, got deny (consent_missing)
1 passed, 2 failed
"
    );
}

#[test]
fn check_and_explain_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "base.yaml", BASE);
    write(dir, "eu.yaml", EU);
    let mut out = Vec::new();
    let input = r#"{"id":"c-1","email":"anna@example.eu","payment":{"card":"x"}}"#;
    let code = tooling::explain(
        dir,
        "eu",
        "marketing",
        ConsentState::Granted,
        false,
        input,
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("decision: allow (opt_in_consent_granted)"));
    assert!(text.contains("  payment  not in the allow list"));
    assert!(text.contains("  email  redactor mask_email (field rule \"email\")"));
    assert!(text.contains("\"email\": \"a***@example.eu\""));
    let mut out = Vec::new();
    assert_eq!(
        tooling::explain(dir, "mars", "x", ConsentState::None, false, "{}", &mut out),
        2
    );
    let mut out = Vec::new();
    assert_eq!(
        tooling::explain(
            dir,
            "eu",
            "marketing",
            ConsentState::None,
            false,
            "{",
            &mut out
        ),
        2
    );

    write(
        dir,
        "eu.yaml",
        &EU.replace(
            "deny: [payment.**]",
            "deny: [payment.**]\n      allow: [id]",
        ),
    );
    let mut out = Vec::new();
    assert_eq!(tooling::check(dir, &mut out), 1);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "eu.yaml:20:7: purpose \"order_fulfilment\" has both allow and deny lists; keep one\n1 problem found; no policy was loaded\n"
    );
}

/// Keys of `schema.json` objects must match the serde model: a policy key the schema does
/// not describe (or the reverse) fails here.
#[test]
fn schema_describes_every_key_of_the_model() {
    let text = std::fs::read_to_string(shipped_dir().join("schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let sorted = |mut v: Vec<&str>| {
        v.sort_unstable();
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&schema),
        sorted(vec![
            "region",
            "name",
            "extends",
            "mode",
            "honor_gpc",
            "non_json",
            "receipt_retention",
            "purposes",
            "redactors"
        ])
    );
    let defs = &schema["$defs"];
    assert_eq!(
        keys(&defs["purpose"]),
        sorted(vec![
            "basis",
            "consent",
            "gpc_opt_out",
            "mode",
            "fields",
            "redact",
            "purpose_category",
            "pii_category",
            "spi_category",
            "third_party"
        ])
    );
    assert_eq!(
        keys(&defs["purpose"]["properties"]["fields"]),
        sorted(vec!["allow", "deny"])
    );
    assert_eq!(
        keys(&defs["purpose"]["properties"]["redact"]["items"]),
        sorted(vec!["fields", "with", "text"])
    );
    assert_eq!(
        keys(&defs["redactor"]),
        sorted(vec![
            "pattern", "detector", "replace", "mask", "hash", "validate"
        ])
    );
    // Every key the schema allows is accepted by the loader (unknown keys are errors there).
    let full = "\
region: eu
name: EU
extends: base
mode: report
honor_gpc: true
non_json: pass
receipt_retention: 10years
purposes:
  p:
    basis: consent
    consent: opt_out
    gpc_opt_out: true
    mode: enforce
    purpose_category: ['6 - Marketing']
    pii_category: ['2 - Contact']
    spi_category: ['Health']
    third_party: Mail Co
    fields: { allow: [a] }
    redact:
      - fields: [a]
        with: r
      - text: [r]
redactors:
  r: { pattern: 'x', replace: 'y', validate: luhn }
  d: { detector: email, replace: '[EMAIL]' }
  m: { pattern: 'x', mask: { keep_last: 2 } }
  h: { pattern: 'x', hash: true }
";
    load(&[("base.yaml", "region: base\nname: B\n"), ("eu.yaml", full)]).unwrap();
}

#[test]
fn detector_redactors_are_checked() {
    let with = |r: &str| {
        format!(
            "region: eu\nname: EU\npurposes:\n  p:\n    basis: contract\n    fields: {{ deny: [] }}\n    redact:\n      - text: [r]\nredactors:\n  r: {r}\n"
        )
    };
    let ok = load(&[(
        "eu.yaml",
        &with("{ detector: card_number, replace: '[CARD]' }"),
    )])
    .unwrap();
    let p = ok[0].purpose("p").unwrap();
    let mut doc = serde_json::json!({"n": "pay ４１１１ １１１１ １１１１ １１１１"});
    p.apply(&mut doc);
    assert_eq!(doc["n"], "pay [CARD]");
    assert_eq!(
        ok[0].redactors["r"].detector,
        Some(crate::redact::Detector::CardNumber)
    );
    for (r, msg) in [
        (
            "{ detector: passport, replace: x }",
            "names detector \"passport\", which is not built in",
        ),
        (
            "{ detector: email, pattern: x, replace: x }",
            "has both pattern and detector",
        ),
        (
            "{ detector: email, validate: luhn, replace: x }",
            "built-in detectors validate their own matches",
        ),
        (
            "{ replace: x }",
            "needs a pattern (a regular expression) or a detector",
        ),
    ] {
        let errs = load(&[("eu.yaml", &with(r))]).unwrap_err();
        assert!(errs.iter().any(|e| e.contains(msg)), "{r}: {errs:?}");
        assert!(errs.iter().all(|e| e.starts_with("eu.yaml:")), "{errs:?}");
    }
}

const RECEIPTS: &str = "\
region: eu
name: EU
receipt_retention: 400d
purposes:
  marketing:
    basis: consent
    purpose_category: ['6 - Marketing']
    pii_category: ['1 - Biographical', '2 - Contact']
    spi_category: ['Health']
    third_party: Mail Co
    fields:
      allow: [id]
";

#[test]
fn receipt_keys_are_loaded_and_inherited() {
    let set = load(&[("eu.yaml", RECEIPTS)]).unwrap();
    let eu = &set[0];
    assert_eq!(
        eu.receipt_retention,
        std::time::Duration::from_secs(400 * 86_400)
    );
    let m = eu.purpose("marketing").unwrap();
    assert_eq!(m.purpose_category, ["6 - Marketing"]);
    assert_eq!(m.pii_category, ["1 - Biographical", "2 - Contact"]);
    assert_eq!(m.spi_category, ["Health"]);
    assert_eq!(m.third_party.as_deref(), Some("Mail Co"));
    // A child inherits the parent's retention; without one anywhere, the default applies.
    let child = "region: br\nname: BR\nextends: eu\n";
    let set = load(&[("eu.yaml", RECEIPTS), ("br.yaml", child)]).unwrap();
    assert!(
        set.iter()
            .all(|p| p.receipt_retention.as_secs() == 400 * 86_400)
    );
    let set = load(&[("base.yaml", BASE), ("eu.yaml", EU)]).unwrap();
    assert!(
        set.iter()
            .all(|p| p.receipt_retention == DEFAULT_RECEIPT_RETENTION)
    );
}

#[test]
fn receipt_keys_are_validated_with_locations() {
    let cases = [
        (
            "receipt_retention: 400d",
            "receipt_retention: 1h",
            "eu.yaml:3:20: receipt_retention must be at least 1 day",
        ),
        (
            "receipt_retention: 400d",
            "receipt_retention: soon",
            "is not a duration",
        ),
        (
            "purpose_category: ['6 - Marketing']",
            "purpose_category: []",
            "has an empty purpose_category",
        ),
        (
            "pii_category: ['1 - Biographical', '2 - Contact']",
            "pii_category: ['2 - Contact', '2 - Contact']",
            "lists pii_category \"2 - Contact\" twice",
        ),
        (
            "spi_category: ['Health']",
            "spi_category: ['  ']",
            "spi_category entry that is not 1 to 128",
        ),
        (
            "third_party: Mail Co",
            "third_party: ''",
            "has a third_party that is not",
        ),
    ];
    for (good, bad, expected) in cases {
        let text = RECEIPTS.replace(good, bad);
        let errors = load(&[("eu.yaml", &text)]).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{bad}: {errors:?}"
        );
    }
    // Unknown keys stay errors.
    let typo = RECEIPTS.replace("pii_category:", "pii_categories:");
    assert!(load(&[("eu.yaml", &typo)]).is_err());
}

#[test]
fn a_default_retention_keeps_the_version() {
    let explicit = EU.replace(
        "mode: enforce\n",
        "mode: enforce\nreceipt_retention: 6years\n",
    );
    let a = load(&[("base.yaml", BASE), ("eu.yaml", EU)]).unwrap();
    let b = load(&[("base.yaml", BASE), ("eu.yaml", &explicit)]).unwrap();
    let version = |set: &[Arc<Policy>]| {
        set.iter()
            .find(|p| p.region == "eu")
            .unwrap()
            .version
            .clone()
    };
    assert_eq!(version(&a), version(&b));
    let other = EU.replace(
        "mode: enforce\n",
        "mode: enforce\nreceipt_retention: 7years\n",
    );
    let c = load(&[("base.yaml", BASE), ("eu.yaml", &other)]).unwrap();
    assert_ne!(version(&a), version(&c));
}
