//! `consentgate policy check [DIR]`.

use std::io::Write;
use std::path::Path;

use super::test_options;
use crate::policy::{LoadErrors, Mode, PolicySet};

/// Validates every policy in `dir`. Prints each error as `file:line:column: message` and
/// returns 1, or prints one summary line per region and returns 0.
pub fn check(dir: &Path, out: &mut dyn Write) -> i32 {
    match PolicySet::load_dir(dir, &test_options()) {
        Ok(set) => write_summary(&set, out).map_or(2, |()| 0),
        Err(e) => write_errors(&e, out).map_or(2, |()| 1),
    }
}

pub(crate) fn write_errors(e: &LoadErrors, out: &mut dyn Write) -> std::io::Result<()> {
    for err in e.errors() {
        writeln!(out, "{err}")?;
    }
    let n = e.errors().len();
    writeln!(
        out,
        "{n} problem{} found; no policy was loaded",
        if n == 1 { "" } else { "s" }
    )
}

fn write_summary(set: &PolicySet, out: &mut dyn Write) -> std::io::Result<()> {
    for s in set.summaries() {
        let mode = match s.mode {
            Mode::Enforce => "enforce",
            Mode::Report => "report",
        };
        writeln!(
            out,
            "{}: {} ({}, {mode}), purposes: {}",
            s.region,
            s.name,
            s.label,
            if s.purposes.is_empty() {
                "none".to_owned()
            } else {
                s.purposes.join(", ")
            }
        )?;
    }
    writeln!(out, "{} policies OK", set.len())
}
