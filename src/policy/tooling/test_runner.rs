//! `consentgate policy test [DIR]`: runs `DIR/tests/*.yaml`.

use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::check::write_errors;
use super::diff::diff;
use super::test_options;
use crate::policy::loader::is_policy_file;
use crate::policy::{ConsentState, PolicySet, Verdict};

/// One test case: a single subject (`region`, `consent`), or a collection (`records`: one
/// region and consent per element of the `input` array).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    region: Option<String>,
    purpose: String,
    #[serde(default = "no_consent")]
    consent: ConsentState,
    #[serde(default)]
    gpc: bool,
    #[serde(default)]
    records: Option<Vec<Element>>,
    input: Value,
    expect: Expect,
}

/// One element of a collection case: its subject's region and consent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Element {
    region: String,
    #[serde(default = "no_consent")]
    consent: ConsentState,
}

fn no_consent() -> ConsentState {
    ConsentState::None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    decision: Option<Verdict>,
    /// Collection cases: the decision for each element, in order.
    #[serde(default)]
    decisions: Option<Vec<Verdict>>,
    /// Collection cases: the released elements, in order.
    #[serde(default)]
    body: Option<Value>,
}

/// Runs every case; prints `ok`/`FAIL` per case (with a path-by-path diff for failures) and
/// a final `N passed, N failed`. Returns 1 if any case failed or the policies are invalid.
pub fn test(dir: &Path, out: &mut dyn Write) -> i32 {
    run(dir, out).unwrap_or(2)
}

fn run(dir: &Path, out: &mut dyn Write) -> std::io::Result<i32> {
    let set = match PolicySet::load_dir(dir, &test_options()) {
        Ok(set) => set,
        Err(e) => {
            write_errors(&e, out)?;
            return Ok(1);
        }
    };
    let tests_dir = dir.join("tests");
    let mut files: Vec<String> = match std::fs::read_dir(&tests_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| is_policy_file(n))
            .collect(),
        Err(e) => {
            writeln!(out, "cannot read {}: {e}", tests_dir.display())?;
            return Ok(1);
        }
    };
    files.sort();
    let (mut passed, mut failed) = (0u64, 0u64);
    for file in files {
        let shown = format!("tests/{file}");
        let text = match std::fs::read_to_string(tests_dir.join(&file)) {
            Ok(t) => t,
            Err(e) => {
                writeln!(out, "FAIL {shown}: cannot read the file: {e}")?;
                failed += 1;
                continue;
            }
        };
        let options = serde_saphyr::options! { with_snippet: false };
        let cases: Vec<Case> = match serde_saphyr::from_str_with_options(&text, options) {
            Ok(c) => c,
            Err(e) => {
                let err = crate::policy::LoadError::from_yaml(&shown, &e);
                writeln!(out, "FAIL {err}")?;
                failed += 1;
                continue;
            }
        };
        for case in cases {
            let problems = run_case(&set, &case);
            if problems.is_empty() {
                writeln!(out, "ok   {shown}: {}", case.name)?;
                passed += 1;
            } else {
                writeln!(out, "FAIL {shown}: {}", case.name)?;
                for p in problems {
                    writeln!(out, "       {p}")?;
                }
                failed += 1;
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed > 0 || passed == 0 { 1 } else { 0 })
}

/// The problems with one case; empty when it passes.
fn run_case(set: &PolicySet, case: &Case) -> Vec<String> {
    match (&case.region, &case.records, case.expect.decision, &case.expect.decisions) {
        (Some(region), None, Some(decision), None) => run_single(set, case, region, decision),
        (None, Some(records), None, Some(decisions)) => {
            run_collection(set, case, records, decisions)
        }
        (_, None, _, _) => vec![
            "a case needs region and expect.decision (or, for a collection, records and expect.decisions)".to_owned(),
        ],
        _ => vec![
            "a collection case has records (one region and consent per input element) and expect.decisions, but no region, consent or expect.decision".to_owned(),
        ],
    }
}

/// A collection case: every element decided by its own region's policy (an element whose
/// region lacks the purpose is withheld, as the gateway does); the released ones minimised.
fn run_collection(
    set: &PolicySet,
    case: &Case,
    records: &[Element],
    expected: &[Verdict],
) -> Vec<String> {
    let Some(input) = case.input.as_array() else {
        return vec!["a collection case's input is the list of records (a JSON array)".to_owned()];
    };
    if input.len() != records.len() || expected.len() != records.len() {
        return vec![format!(
            "input has {} elements, records {} and expect.decisions {}: give one of each per element",
            input.len(),
            records.len(),
            expected.len()
        )];
    }
    let mut problems = Vec::new();
    let mut released = Vec::new();
    for (i, ((element, record), want)) in records.iter().zip(input).zip(expected).enumerate() {
        let Some(policy) = set.get(&element.region) else {
            problems.push(format!(
                "element {i}: there is no policy for region \"{}\"",
                element.region
            ));
            continue;
        };
        let (verdict, reason) = match policy.purpose(&case.purpose) {
            Some(purpose) => {
                let d = policy.decide(purpose, element.consent, case.gpc);
                if d.verdict != Verdict::Deny {
                    let mut record = record.clone();
                    purpose.apply(&mut record);
                    released.push(record);
                }
                (d.verdict, d.reason)
            }
            None => (Verdict::Deny, "unknown_purpose"),
        };
        if verdict != *want {
            problems.push(format!(
                "element {i} ({}): expected decision {}, got {} ({reason})",
                element.region,
                want.as_str(),
                verdict.as_str()
            ));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let Some(expected) = &case.expect.body else {
        return Vec::new();
    };
    let mut lines = diff(expected, &Value::Array(released));
    if !lines.is_empty() {
        lines.insert(
            0,
            "released list differs (- missing, + unexpected, ~ changed):".to_owned(),
        );
    }
    lines
}

fn run_single(set: &PolicySet, case: &Case, region: &str, decision: Verdict) -> Vec<String> {
    let Some(policy) = set.get(region) else {
        return vec![format!("there is no policy for region \"{region}\"")];
    };
    let Some(purpose) = policy.purpose(&case.purpose) else {
        return vec![format!(
            "region \"{region}\" has no purpose \"{}\"",
            case.purpose
        )];
    };
    let expected = decision;
    let decision = policy.decide(purpose, case.consent, case.gpc);
    if decision.verdict != expected {
        return vec![format!(
            "expected decision {}, got {} ({})",
            expected.as_str(),
            decision.verdict.as_str(),
            decision.reason
        )];
    }
    if decision.verdict == Verdict::Deny {
        return Vec::new();
    }
    let Some(expected) = &case.expect.body else {
        return Vec::new();
    };
    let mut body = case.input.clone();
    purpose.apply(&mut body);
    let mut lines = diff(expected, &body);
    if !lines.is_empty() {
        lines.insert(
            0,
            "body differs (- missing, + unexpected, ~ changed):".to_owned(),
        );
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The shipped policies with `cases` as their only test file.
    fn dir_with(cases: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::create_dir(tmp.path().join("tests")).unwrap();
        std::fs::write(tmp.path().join("tests/list.yaml"), cases).unwrap();
        tmp
    }

    #[test]
    fn collection_cases_decide_each_element_by_its_region() {
        let dir = dir_with(
            "\
- name: good
  purpose: marketing
  records: [{region: eu, consent: granted}, {region: eu}, {region: us-ca}]
  input: [{id: a, email: anna@example.eu, x: 1}, {id: b}, {id: c, email: c@example.com}]
  expect:
    decisions: [allow, deny, allow]
    body: [{id: a, email: a***@example.eu}, {id: c, email: c@example.com}]
- name: wrong decision and body
  purpose: marketing
  records: [{region: eu, consent: granted}, {region: us-ca, consent: denied}]
  input: [{id: a, email: anna@example.eu}, {id: c}]
  expect:
    decisions: [allow, allow]
- name: wrong body
  purpose: marketing
  records: [{region: eu, consent: granted}]
  input: [{id: a, email: anna@example.eu}]
  expect:
    decisions: [allow]
    body: [{id: a, email: anna@example.eu}]
- name: mismatched lengths
  purpose: marketing
  records: [{region: eu}]
  input: [{id: a}, {id: b}]
  expect: {decisions: [deny]}
- name: mixed forms
  region: eu
  purpose: marketing
  records: [{region: eu}]
  input: [{id: a}]
  expect: {decisions: [deny]}
",
        );
        let mut out = Vec::new();
        assert_eq!(test(dir.path(), &mut out), 1);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "\
ok   tests/list.yaml: good
FAIL tests/list.yaml: wrong decision and body
       element 1 (us-ca): expected decision allow, got deny (consent_denied)
FAIL tests/list.yaml: wrong body
       released list differs (- missing, + unexpected, ~ changed):
       ~ [0].email: expected \"anna@example.eu\", got \"a***@example.eu\"
FAIL tests/list.yaml: mismatched lengths
       input has 2 elements, records 1 and expect.decisions 1: give one of each per element
FAIL tests/list.yaml: mixed forms
       a collection case has records (one region and consent per input element) and expect.decisions, but no region, consent or expect.decision
1 passed, 4 failed
"
        );
    }
}
