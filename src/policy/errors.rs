//! Load errors, phrased for compliance officers: `file:line:column: message`.

use std::fmt;

use serde_saphyr::Location;

/// One problem found while loading policies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadError {
    /// File name relative to the policy folder (e.g. `eu.yaml`), or the folder itself.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
    /// Plain-words explanation.
    pub message: String,
}

impl LoadError {
    pub(crate) fn at(file: &str, loc: Location, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        }
    }

    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// Converts a YAML or schema error from the parser.
    pub(crate) fn from_yaml(file: &str, err: &serde_saphyr::Error) -> Self {
        let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
        Self {
            file: file.to_owned(),
            line,
            column,
            message: plain_yaml_message(&err.to_string()),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Every problem found in a policy folder, sorted by file and position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// The individual errors.
    pub fn errors(&self) -> &[LoadError] {
        &self.0
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Rewrites the parser's wording (without its " at line L, column C" suffix) in plain words.
fn plain_yaml_message(raw: &str) -> String {
    let msg = match raw.rfind(" at line ") {
        Some(i) if raw[i..].contains(", column ") => &raw[..i],
        _ => raw,
    };
    let ticked = |s: &str| -> Option<String> {
        let start = s.find('`')? + 1;
        let len = s.get(start..)?.find('`')?;
        s.get(start..start + len).map(str::to_owned)
    };
    let after = |s: &str, marker: &str| -> Option<String> {
        s.find(marker)
            .map(|i| s[i + marker.len()..].trim().to_owned())
    };
    if msg.starts_with("unknown field")
        && let Some(key) = ticked(msg)
    {
        return match after(msg, "expected one of") {
            Some(allowed) => {
                format!("unknown key \"{key}\"; the keys allowed here are: {allowed}")
            }
            None => format!("unknown key \"{key}\"; no keys are allowed here"),
        };
    }
    if msg.starts_with("unknown variant")
        && let (Some(v), Some(allowed)) = (ticked(msg), after(msg, "expected one of"))
    {
        return format!("\"{v}\" is not a valid choice here; use one of: {allowed}");
    }
    if msg.starts_with("missing field")
        && let Some(key) = ticked(msg)
    {
        return format!("the required key \"{key}\" is missing");
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("the key \"{key}\" appears twice; keep one");
    }
    msg.to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_parser_wording() {
        assert_eq!(
            plain_yaml_message(
                "unknown field `modez`, expected one of region, mode at line 2, column 1"
            ),
            "unknown key \"modez\"; the keys allowed here are: region, mode"
        );
        assert_eq!(
            plain_yaml_message(
                "unknown variant `strict`, expected one of enforce, report at line 2, column 7"
            ),
            "\"strict\" is not a valid choice here; use one of: enforce, report"
        );
        assert_eq!(
            plain_yaml_message(
                "duplicate mapping key: region, set DuplicateKeyPolicy in Options if acceptable at line 2, column 1"
            ),
            "the key \"region\" appears twice; keep one"
        );
        assert_eq!(
            plain_yaml_message("unclosed bracket '[' at line 3, column 10"),
            "unclosed bracket '['"
        );
    }
}
