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
    write_header(&policy, p, consent, gpc, decision, out)?;
    if decision.verdict == Verdict::Deny {
        writeln!(out, "nothing would be released")?;
        return Ok(0);
    }
    let (outcome, steps) = p.apply_explain(&mut doc);
    write_steps(&steps, &outcome, "", out)?;
    writeln!(out, "output:")?;
    let pretty = serde_json::to_string_pretty(&doc).unwrap_or_default();
    writeln!(out, "{pretty}")?;
    Ok(0)
}

/// Prints what was removed and redacted, each path with its rule, then the counts.
fn write_steps(
    steps: &[crate::redact::Explanation],
    outcome: &crate::redact::Outcome,
    indent: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for (kind, title) in [
        (ExplanationKind::Removed, "removed:"),
        (ExplanationKind::Redacted, "redacted:"),
    ] {
        let lines: Vec<_> = steps.iter().filter(|s| s.kind == kind).collect();
        if lines.is_empty() {
            writeln!(out, "{indent}{title} nothing")?;
            continue;
        }
        writeln!(out, "{indent}{title}")?;
        let width = lines.iter().map(|s| s.path.len()).max().unwrap_or(0);
        for s in lines {
            writeln!(out, "{indent}  {:width$}  {}", s.path, s.rule)?;
        }
    }
    if !outcome.redactions.is_empty() {
        let counts: Vec<String> = outcome
            .redactions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "{indent}redaction counts: {}", counts.join(", "))?;
    }
    Ok(())
}

/// Where a list's records are, for [`explain_list`].
pub struct ListShape<'a> {
    /// Field path of the array in the input (`""`: the input is the array).
    pub path: &'a str,
    /// Field path of each record's subject.
    pub subject: &'a str,
}

/// Like [`explain`], for a collection response: every record of the list at `shape.path`
/// decided under `region`/`consent` (as if each subject were there), records without a valid
/// subject withheld, each released record's removals and redactions shown, then the released
/// list. Exit codes as [`explain`].
#[allow(clippy::too_many_arguments)]
pub fn explain_list(
    dir: &Path,
    region: &str,
    purpose: &str,
    consent: ConsentState,
    gpc: bool,
    shape: &ListShape<'_>,
    input_json: &str,
    out: &mut dyn Write,
) -> i32 {
    run_list(dir, region, purpose, consent, gpc, shape, input_json, out).unwrap_or(2)
}

#[allow(clippy::too_many_arguments)]
fn run_list(
    dir: &Path,
    region: &str,
    purpose: &str,
    consent: ConsentState,
    gpc: bool,
    shape: &ListShape<'_>,
    input_json: &str,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    use crate::routing::parse_field_path;
    let (path, subject) = match (
        parse_field_path(shape.path),
        parse_field_path(shape.subject),
    ) {
        (Ok(p), Ok(s)) if !s.is_empty() => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            writeln!(out, "{e}")?;
            return Ok(2);
        }
        _ => {
            writeln!(
                out,
                "--subject names the field holding each record's subject, like id"
            )?;
            return Ok(2);
        }
    };
    // Read as the gateway reads a collection: one strict pass (a key named twice is refused).
    let found = match crate::redact::locate::collection(
        input_json.as_bytes(),
        &path,
        &subject,
        &[],
        usize::MAX,
    ) {
        Ok(found) => found,
        Err(e) => {
            writeln!(out, "the input cannot be read as the gateway reads it: {e}")?;
            return Ok(2);
        }
    };
    let Some(items) = found.elements else {
        writeln!(
            out,
            "the input has no array of records at \"{}\"",
            shape.path
        )?;
        return Ok(2);
    };
    let set = match PolicySet::load_dir(dir, &test_options()) {
        Ok(set) => set,
        Err(e) => {
            write_errors(&e, out)?;
            return Ok(1);
        }
    };
    let Some(policy) = set.get(region) else {
        writeln!(out, "no policy for region \"{region}\"")?;
        return Ok(2);
    };
    let Some(p) = policy.purpose(purpose).cloned() else {
        writeln!(out, "region \"{region}\" has no purpose \"{purpose}\"")?;
        return Ok(2);
    };
    let decision = policy.decide(&p, consent, gpc);
    write_header(&policy, &p, consent, gpc, decision, out)?;
    let mut released = Vec::new();
    let count = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let id = item
            .subject
            .filter(|s| crate::consent::validate_subject(s).is_ok())
            .map(|s| s.into_owned());
        let Some(id) = id else {
            writeln!(
                out,
                "record {i}: no valid subject at \"{}\": withheld",
                shape.subject
            )?;
            continue;
        };
        if decision.verdict == Verdict::Deny {
            writeln!(out, "record {i} ({id}): withheld")?;
            continue;
        }
        writeln!(out, "record {i} ({id}): released")?;
        // The element's text was validated above.
        let Ok(mut record) = serde_json::from_slice::<Value>(item.text) else {
            writeln!(out, "record {i}: not readable")?;
            return Ok(2);
        };
        let (outcome, steps) = p.apply_explain(&mut record);
        write_steps(&steps, &outcome, "  ", out)?;
        released.push(record);
    }
    writeln!(
        out,
        "released {} of {count} records ({} withheld)",
        released.len(),
        count - released.len()
    )?;
    writeln!(
        out,
        "output (the released records; the route's envelope decides what else passes):"
    )?;
    let pretty = serde_json::to_string_pretty(&Value::Array(released)).unwrap_or_default();
    writeln!(out, "{pretty}")?;
    Ok(0)
}

/// The policy, purpose, input and decision lines.
fn write_header(
    policy: &crate::policy::Policy,
    p: &crate::policy::Purpose,
    consent: ConsentState,
    gpc: bool,
    decision: crate::policy::Decision,
    out: &mut dyn Write,
) -> std::io::Result<()> {
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
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_explained_record_by_record() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let input = r#"{"items": [{"id": "c-1", "email": "anna@example.eu", "payment": {}},
                                  {"email": "x@example.eu"}, {"id": "bad id"}], "total": 3}"#;
        let shape = ListShape {
            path: "items",
            subject: "id",
        };
        let mut out = Vec::new();
        let code = explain_list(
            &dir,
            "eu",
            "marketing",
            ConsentState::Granted,
            false,
            &shape,
            input,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("decision: allow (opt_in_consent_granted)"),
            "{text}"
        );
        assert!(
            text.contains("record 0 (c-1): released\n  removed:\n    payment"),
            "{text}"
        );
        assert!(
            text.contains("record 1: no valid subject at \"id\": withheld"),
            "{text}"
        );
        assert!(text.contains("record 2: no valid subject"), "{text}");
        assert!(
            text.contains("released 1 of 3 records (2 withheld)"),
            "{text}"
        );
        assert!(text.contains("\"a***@example.eu\""), "{text}");
        assert!(!text.contains("x@example.eu"), "{text}");

        let mut out = Vec::new();
        let shape = ListShape {
            path: "nope",
            subject: "id",
        };
        let code = explain_list(
            &dir,
            "eu",
            "marketing",
            ConsentState::None,
            false,
            &shape,
            input,
            &mut out,
        );
        assert_eq!(code, 2);
        let mut out = Vec::new();
        let shape = ListShape {
            path: "items",
            subject: "id",
        };
        explain_list(
            &dir,
            "eu",
            "marketing",
            ConsentState::None,
            false,
            &shape,
            input,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("record 0 (c-1): withheld"), "{text}");
        // A key named twice is refused, as the gateway refuses it.
        let mut out = Vec::new();
        let twice = r#"{"items": [{"id": "c-1", "id": "c-2"}]}"#;
        let code = explain_list(
            &dir,
            "eu",
            "marketing",
            ConsentState::Granted,
            false,
            &shape,
            twice,
            &mut out,
        );
        assert_eq!(code, 2);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("names the same key twice"), "{text}");
    }
}
