//! `consent::parse_import` on arbitrary bytes: never panics; every non-blank line is either a
//! good line or an error, in file order; error line numbers are real line numbers; good lines
//! pass the shared validators (shape and time rules, the same as a PUT); error reasons stay
//! short.
#![no_main]

use consentgate::consent::{
    IMPORT_COLLECTION_METHOD, check_times, parse_import, validate_purpose, validate_region,
    validate_subject,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::now_utc();
    let Ok(parsed) = parse_import(data, "fuzz-importer", now) else {
        return; // only possible above MAX_IMPORT_LINES, far beyond the input size
    };
    let total_lines = data.split(|&b| b == b'\n').count();
    let non_blank = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        parsed.lines.len() + parsed.errors.len(),
        non_blank,
        "every non-blank line is either imported or rejected"
    );
    let mut last = 0;
    for e in &parsed.errors {
        assert!(
            e.line >= 1 && e.line <= total_lines,
            "line {} of {total_lines}",
            e.line
        );
        assert!(e.line > last, "errors out of order or repeated");
        last = e.line;
        assert!(!e.reason.is_empty());
        assert!(e.reason.len() < 512, "reason of {} bytes", e.reason.len());
        // Reasons never repeat the line's subject id (personal data).
        let raw = data
            .split(|&b| b == b'\n')
            .nth(e.line - 1)
            .unwrap_or_default();
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice(raw)
            && let Some(serde_json::Value::String(subject)) = o.get("subject")
            && subject.len() >= 16
        {
            assert!(
                !e.reason.contains(subject.as_str()),
                "reason quotes the subject"
            );
        }
    }
    for line in &parsed.lines {
        let c = &line.change;
        assert!(validate_subject(&c.subject).is_ok(), "bad subject imported");
        assert!(validate_purpose(&c.purpose).is_ok(), "bad purpose imported");
        if let Some(region) = &line.region {
            assert!(validate_region(region).is_ok(), "bad region imported");
        }
        assert_eq!(
            c.collection_method.as_deref(),
            Some(IMPORT_COLLECTION_METHOD)
        );
        assert!(c.validate().is_ok());
        assert_eq!(c.recorded_by, "fuzz-importer");
        assert!(check_times(c.expires_at, c.recorded_at, now).is_ok());
    }
});
