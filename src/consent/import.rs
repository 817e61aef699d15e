//! Bulk import from a consent-management platform: NDJSON, one change per line.
//!
//! Line format: `{"subject", "purpose", "status", "region"?, "expires_at"?,
//! "source"?, "recorded_at"?}`; `status` is `granted`, `denied` or
//! `withdrawn`, timestamps are RFC 3339, unknown and repeated keys are refused
//! and `null` counts as absent for the optional keys. Each line is read and
//! checked by the same validator as a `PUT` (`super::input`): `expires_at` must
//! be in the future and `recorded_at` must not be. Blank lines are skipped
//! (they still count for line numbers). Parsing is pure: [`parse_import`]
//! validates every line and the store applies the result all at once, or nothing.
//!
//! Lines are applied in file order: a later line for the same subject and
//! purpose replaces the current state of an earlier one, and history is in
//! that order too. A line's `recorded_at` is kept on its receipt as given
//! (it does not reorder history); without it the import time is used.
//! Receipts from an import have `collection_method: "import"` and name the
//! importing token's `sub` as `recorded_by`. A line's `region`, when it differs
//! from the subject's region at that point, leaves a region receipt.

use serde::Serialize;
use time::OffsetDateTime;

use super::input::{WriteContext, consent_change, parse_object};
use super::model::{ConsentChange, ConsentStatus};
use super::store::StoreError;
use super::validate::validate_region;

/// Most non-blank lines one import may carry.
pub const MAX_IMPORT_LINES: usize = 100_000;

/// `collection_method` written on receipts created by an import.
pub const IMPORT_COLLECTION_METHOD: &str = "import";

const KEYS: [&str; 7] = [
    "subject",
    "purpose",
    "status",
    "region",
    "expires_at",
    "source",
    "recorded_at",
];

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Lines applied (0 when any line was bad).
    pub imported: usize,
    /// Lines refused.
    pub rejected: usize,
    /// Each refused line, in file order.
    pub errors: Vec<LineError>,
}

/// One refused import line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number in the uploaded text.
    pub line: usize,
    /// What is wrong, in plain words (never the line's personal data).
    pub reason: String,
}

/// One valid import line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    /// 1-based line number in the uploaded text.
    pub line: usize,
    /// The consent change (collection method `import`).
    pub change: ConsentChange,
    /// The subject's region, when the line sets it.
    pub region: Option<String>,
}

/// Every line of an import, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedImport {
    /// The good lines, in file order.
    pub lines: Vec<ImportLine>,
    /// The bad lines, in file order. When not empty, nothing may be applied.
    pub errors: Vec<LineError>,
}

/// Parses and validates every line of an NDJSON import made by `recorded_by` at `now`.
/// Fails only when the import has more than [`MAX_IMPORT_LINES`] non-blank lines; bad
/// lines are listed in [`ParsedImport::errors`].
pub fn parse_import(
    ndjson: &[u8],
    recorded_by: &str,
    now: OffsetDateTime,
) -> Result<ParsedImport, StoreError> {
    let cx = WriteContext {
        method: IMPORT_COLLECTION_METHOD,
        recorded_by,
        now,
    };
    let mut parsed = ParsedImport::default();
    let mut count = 0usize;
    for (index, raw) in ndjson.split(|&b| b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        count += 1;
        if count > MAX_IMPORT_LINES {
            return Err(StoreError::ImportTooLarge {
                max: MAX_IMPORT_LINES,
            });
        }
        match parse_line(raw, index + 1, &cx) {
            Ok(line) => parsed.lines.push(line),
            Err(reason) => parsed.errors.push(LineError {
                line: index + 1,
                reason,
            }),
        }
    }
    Ok(parsed)
}

fn parse_line(raw: &[u8], line: usize, cx: &WriteContext<'_>) -> Result<ImportLine, String> {
    let object = parse_object(raw, &KEYS, "each line")?;
    let subject = object.required("subject")?;
    let purpose = object.required("purpose")?;
    let status: ConsentStatus = object
        .required("status")?
        .parse()
        .map_err(|e: super::validate::ValidationError| e.to_string())?;
    let region = object.string("region")?;
    if let Some(region) = &region {
        validate_region(region).map_err(|e| e.to_string())?;
    }
    let change = consent_change(&object, subject, purpose, status, cx)?;
    Ok(ImportLine {
        line,
        change,
        region,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn parse(input: &[u8]) -> Result<ParsedImport, StoreError> {
        parse_import(input, "cmp-sync", NOW)
    }

    #[test]
    fn parses_good_lines_and_skips_blank_ones() {
        let input = b"{\"subject\":\"c-1\",\"purpose\":\"marketing\",\"status\":\"granted\",\"region\":\"eu\",\"expires_at\":\"2030-01-01T00:00:00+02:00\",\"source\":\"cmp\",\"recorded_at\":\"2024-05-01T10:00:00Z\"}\n\n  \r\n{\"subject\":\"c-2\",\"purpose\":\"ads\",\"status\":\"withdrawn\",\"region\":null}\r\n";
        let parsed = parse(input).unwrap();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.lines.len(), 2);
        let first = &parsed.lines[0];
        assert_eq!(first.region.as_deref(), Some("eu"));
        assert_eq!(
            first.change.expires_at,
            Some(datetime!(2029-12-31 22:00 UTC))
        );
        assert_eq!(
            first.change.recorded_at,
            Some(datetime!(2024-05-01 10:00 UTC))
        );
        assert_eq!(first.change.collection_method.as_deref(), Some("import"));
        assert_eq!(first.change.recorded_by, "cmp-sync");
        assert_eq!(parsed.lines[1].change.status, ConsentStatus::Withdrawn);
        assert_eq!(parsed.lines[1].region, None);
    }

    #[test]
    fn reports_each_bad_line_with_its_number() {
        let input = concat!(
            "{\"subject\":\"ok\",\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
            "not json\n",
            "\n",
            "[1,2]\n",
            "{\"subject\":\"ok\",\"purpose\":\"marketing\",\"status\":\"maybe\"}\n",
            "{\"subject\":\"ok\",\"purpose\":\"marketing\",\"status\":\"granted\",\"extra\":1}\n",
            "{\"subject\":\"has space\",\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
            "{\"subject\":\"ok\",\"status\":\"granted\"}\n",
            "{\"subject\":\"ok\",\"purpose\":\"marketing\",\"status\":\"granted\",\"expires_at\":\"tomorrow\"}\n",
            "{\"subject\":5,\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
            "{\"subject\":\"ok\",\"purpose\":\"marketing\",\"status\":\"granted\",\"region\":\"EU\"}\n",
        );
        let parsed = parse(input.as_bytes()).unwrap();
        assert_eq!(parsed.lines.len(), 1);
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6, 7, 8, 9, 10, 11]);
        let reasons: Vec<&str> = parsed.errors.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons[0].starts_with("not valid JSON"));
        assert_eq!(reasons[1], "each line must be one JSON object");
        assert!(reasons[2].starts_with("status must be"));
        assert!(reasons[3].starts_with("unknown key \"extra\""));
        assert!(reasons[4].starts_with("subject id must be"));
        assert!(!reasons[4].contains("has space"));
        assert_eq!(reasons[5], "\"purpose\" is required");
        assert!(reasons[6].starts_with("expires_at must be an RFC 3339"));
        assert_eq!(reasons[7], "\"subject\" must be a string");
        assert!(reasons[8].starts_with("region must be"));
    }

    #[test]
    fn import_follows_the_put_rules() {
        let input = concat!(
            "{\"subject\":\"a\",\"purpose\":\"marketing\",\"status\":\"denied\",\"status\":\"granted\"}\n",
            "{\"subject\":\"a\",\"purpose\":\"marketing\",\"status\":\"granted\",\"expires_at\":\"2025-01-01T00:00:00Z\"}\n",
            "{\"subject\":\"a\",\"purpose\":\"marketing\",\"status\":\"granted\",\"recorded_at\":\"2026-01-01T00:00:01Z\"}\n",
            "{\"subject\":\"a\",\"subject\":\"b\",\"purpose\":\"marketing\",\"status\":\"granted\"}\n",
            "{\"subject\":\"a\",\"purpose\":\"marketing\",\"status\":\"granted\",\"recorded_at\":\"2025-12-31T23:59:59Z\",\"expires_at\":\"2026-01-01T00:00:01Z\"}\n",
        );
        let parsed = parse(input.as_bytes()).unwrap();
        let reasons: Vec<(usize, &str)> = parsed
            .errors
            .iter()
            .map(|e| (e.line, e.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].1.contains("\"status\" is given twice"));
        assert!(reasons[1].1.starts_with("expires_at is in the past"));
        assert!(reasons[2].1.starts_with("recorded_at is in the future"));
        assert!(reasons[3].1.contains("\"subject\" is given twice"));
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.lines[0].line, 5);
    }

    #[test]
    fn caps_the_number_of_lines() {
        let line = "{\"subject\":\"s\",\"purpose\":\"p\",\"status\":\"granted\"}\n";
        let input = line.repeat(MAX_IMPORT_LINES + 1);
        assert!(matches!(
            parse(input.as_bytes()),
            Err(StoreError::ImportTooLarge {
                max: MAX_IMPORT_LINES
            })
        ));
        let blank_heavy = "\n".repeat(MAX_IMPORT_LINES + 5) + line;
        assert_eq!(parse(blank_heavy.as_bytes()).unwrap().lines.len(), 1);
    }

    #[test]
    fn long_unknown_keys_are_shortened() {
        let key = "k".repeat(500);
        let input = format!("{{\"{key}\":1}}");
        let parsed = parse(input.as_bytes()).unwrap();
        assert!(parsed.errors[0].reason.len() < 200);
    }
}
