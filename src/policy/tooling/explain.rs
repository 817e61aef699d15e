//! `consentgate policy explain --region R --purpose P [--consent S] [--gpc] [FILE|-]`.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use super::check::write_errors;
use super::test_options;
use crate::policy::{ConsentState, PolicySet, Verdict};
use crate::redact::ExplanationKind;

/// Shows what `purpose` of `region` would release for `input_json`: the decision, each
/// removed or redacted path with the rule responsible, then the output JSON.
/// Returns 0, 1 when the policies are invalid, 2 for an unknown region/purpose or bad input.
pub fn explain(
    dir: &Path,
    region: &str,
    purpose: &str,
    consent: ConsentState,
    gpc: bool,
    input_json: &str,
    out: &mut dyn Write,
) -> i32 {
    run(dir, region, purpose, consent, gpc, input_json, out).unwrap_or(2)
}

fn run(
    dir: &Path,
    region: &str,
    purpose: &str,
    consent: ConsentState,
    gpc: bool,
    input_json: &str,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let set = match PolicySet::load_dir(dir, &test_options()) {
        Ok(set) => set,
        Err(e) => {
            write_errors(&e, out)?;
            return Ok(1);
        }
    };
    let Some(policy) = set.get(region) else {
        let known: Vec<&str> = set.regions().collect();
        writeln!(
            out,
            "no policy for region \"{region}\"; known regions: {}",
            known.join(", ")
        )?;
        return Ok(2);
    };
    let Some(p) = policy.purpose(purpose) else {
        let known: Vec<&str> = policy.purposes.keys().map(String::as_str).collect();
        writeln!(
            out,
            "region \"{region}\" has no purpose \"{purpose}\"; its purposes: {}",
            known.join(", ")
        )?;
        return Ok(2);
    };
    let mut doc: Value = match serde_json::from_str(input_json) {
        Ok(v) => v,
        Err(e) => {
            writeln!(out, "the input is not valid JSON: {e}")?;
            return Ok(2);
        }
    };
    let decision = policy.decide(p, consent, gpc);
    writeln!(out, "policy:   {} ({})", policy.label(), policy.name)?;
    writeln!(
        out,
        "purpose:  {} (basis {}{})",
        p.name,
        p.basis.as_str(),
        match p.consent {
            Some(crate::policy::ConsentMode::OptIn) => ", opt-in",
            Some(crate::policy::ConsentMode::OptOut) => ", opt-out",
            None => "",
        }
    )?;
    writeln!(
        out,
        "input:    consent {}, gpc {}",
        consent.as_str(),
        if gpc { "1" } else { "absent" }
    )?;
    writeln!(
        out,
        "decision: {} ({})",
        decision.verdict.as_str(),
        decision.reason
    )?;
    if decision.verdict == Verdict::Deny {
        writeln!(out, "nothing would be released")?;
        return Ok(0);
    }
    let (outcome, steps) = p.apply_explain(&mut doc);
    for (kind, title) in [
        (ExplanationKind::Removed, "removed:"),
        (ExplanationKind::Redacted, "redacted:"),
    ] {
        let lines: Vec<_> = steps.iter().filter(|s| s.kind == kind).collect();
        if lines.is_empty() {
            writeln!(out, "{title} nothing")?;
            continue;
        }
        writeln!(out, "{title}")?;
        let width = lines.iter().map(|s| s.path.len()).max().unwrap_or(0);
        for s in lines {
            writeln!(out, "  {:width$}  {}", s.path, s.rule)?;
        }
    }
    if !outcome.redactions.is_empty() {
        let counts: Vec<String> = outcome
            .redactions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "redaction counts: {}", counts.join(", "))?;
    }
    writeln!(out, "output:")?;
    let pretty = serde_json::to_string_pretty(&doc).unwrap_or_default();
    writeln!(out, "{pretty}")?;
    Ok(0)
}
