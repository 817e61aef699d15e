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

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    region: String,
    purpose: String,
    #[serde(default = "no_consent")]
    consent: ConsentState,
    #[serde(default)]
    gpc: bool,
    input: Value,
    expect: Expect,
}

fn no_consent() -> ConsentState {
    ConsentState::None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: Verdict,
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
    let Some(policy) = set.get(&case.region) else {
        return vec![format!("there is no policy for region \"{}\"", case.region)];
    };
    let Some(purpose) = policy.purpose(&case.purpose) else {
        return vec![format!(
            "region \"{}\" has no purpose \"{}\"",
            case.region, case.purpose
        )];
    };
    let decision = policy.decide(purpose, case.consent, case.gpc);
    if decision.verdict != case.expect.decision {
        return vec![format!(
            "expected decision {}, got {} ({})",
            case.expect.decision.as_str(),
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
