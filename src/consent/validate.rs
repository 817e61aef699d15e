//! Input validation for consent data: subject ids, purpose and region names,
//! free-text sources and RFC 3339 timestamps.
//!
//! These functions are used by the store (defence in depth) and by the HTTP
//! layer, so a bad value is refused with the same plain message everywhere.
//! Messages never repeat the offending value: it may be personal data.

use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// Longest accepted subject id, in characters.
pub const MAX_SUBJECT_LEN: usize = 128;
/// Longest accepted purpose name, in characters.
pub const MAX_PURPOSE_LEN: usize = 64;
/// Longest accepted region name, in characters.
pub const MAX_REGION_LEN: usize = 32;
/// Longest accepted `source` text, in characters.
pub const MAX_SOURCE_LEN: usize = 256;
/// Longest accepted collection method, in characters.
pub const MAX_COLLECTION_METHOD_LEN: usize = 64;
/// Longest accepted `recorded_by` (a token's `sub`), in characters.
pub const MAX_RECORDED_BY_LEN: usize = 256;

/// Why a consent input value was refused. Messages are plain words meant for
/// the person who sent the value, and never contain the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The subject id is empty, too long or has a character outside `[A-Za-z0-9._:@-]`.
    #[error("subject id must be 1 to 128 characters, each a letter, a digit or one of . _ : @ -")]
    Subject,
    /// The purpose name is malformed.
    #[error(
        "purpose must be 1 to 64 characters of lowercase letters, digits and _, starting with a letter"
    )]
    Purpose,
    /// The region name is malformed.
    #[error("region must be 1 to 32 characters of lowercase letters, digits and -")]
    Region,
    /// The source text is empty, too long or has control characters.
    #[error("source must be 1 to 256 printable characters")]
    Source,
    /// The collection method is empty, too long or has control characters.
    #[error("collection method must be 1 to 64 printable characters")]
    CollectionMethod,
    /// The caller name to record on a receipt is empty, too long or has control characters.
    #[error(
        "the caller's name (the token's sub) must be 1 to 256 printable characters to be recorded on a receipt"
    )]
    RecordedBy,
    /// `expires_at` is not after the moment of the write.
    #[error("expires_at is in the past; a consent must expire after it is recorded")]
    ExpiresInPast,
    /// `recorded_at` is after the moment of the write.
    #[error("recorded_at is in the future; a decision cannot be recorded before it was made")]
    RecordedInFuture,
    /// The status is not one of the three known words.
    #[error("status must be \"granted\", \"denied\" or \"withdrawn\"")]
    Status,
    /// A timestamp is not RFC 3339.
    #[error("{field} must be an RFC 3339 timestamp such as 2025-01-31T12:00:00Z")]
    Timestamp {
        /// Name of the field that held the timestamp.
        field: &'static str,
    },
}

/// Checks a subject id: 1–128 characters from `[A-Za-z0-9._:@-]`.
pub fn validate_subject(subject: &str) -> Result<(), ValidationError> {
    let ok = !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Subject)
    }
}

/// Checks a purpose name: 1–64 characters from `[a-z0-9_]`, starting with a letter.
pub fn validate_purpose(purpose: &str) -> Result<(), ValidationError> {
    let ok = purpose.len() <= MAX_PURPOSE_LEN
        && purpose
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Purpose)
    }
}

/// Checks a region name: 1–32 characters from `[a-z0-9-]`.
pub fn validate_region(region: &str) -> Result<(), ValidationError> {
    let ok = !region.is_empty()
        && region.len() <= MAX_REGION_LEN
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Region)
    }
}

/// Checks a `source` text: 1–256 characters, none of them a control character.
pub fn validate_source(source: &str) -> Result<(), ValidationError> {
    if printable(source, MAX_SOURCE_LEN) {
        Ok(())
    } else {
        Err(ValidationError::Source)
    }
}

/// Checks a collection method (for example `api` or `import`): 1–64 printable characters.
pub fn validate_collection_method(method: &str) -> Result<(), ValidationError> {
    if printable(method, MAX_COLLECTION_METHOD_LEN) {
        Ok(())
    } else {
        Err(ValidationError::CollectionMethod)
    }
}

/// Checks a `recorded_by` name (a token's `sub`): 1–256 printable characters.
pub fn validate_recorded_by(name: &str) -> Result<(), ValidationError> {
    if printable(name, MAX_RECORDED_BY_LEN) {
        Ok(())
    } else {
        Err(ValidationError::RecordedBy)
    }
}

/// The time rules every consent write from outside obeys (PUT and import alike):
/// `expires_at`, when given, is after `now`; `recorded_at`, when given, is not after `now`.
pub fn check_times(
    expires_at: Option<OffsetDateTime>,
    recorded_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), ValidationError> {
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ValidationError::ExpiresInPast);
    }
    if recorded_at.is_some_and(|t| t > now) {
        return Err(ValidationError::RecordedInFuture);
    }
    Ok(())
}

fn printable(text: &str, max_chars: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max_chars && !text.chars().any(char::is_control)
}

/// Parses an RFC 3339 timestamp and converts it to UTC. `field` names the
/// input field in the error message.
pub fn parse_timestamp(text: &str, field: &'static str) -> Result<OffsetDateTime, ValidationError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|_| ValidationError::Timestamp { field })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        for ok in [
            "a",
            "cust-42",
            "user@example.com",
            "urn:x:1",
            "A.b_C",
            &"x".repeat(128),
        ] {
            assert_eq!(validate_subject(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a\0b", "é", "a%2F", &"x".repeat(129)] {
            assert_eq!(
                validate_subject(bad),
                Err(ValidationError::Subject),
                "{bad}"
            );
        }
    }

    #[test]
    fn purposes() {
        for ok in ["marketing", "a", "ads_2", &"a".repeat(64)] {
            assert_eq!(validate_purpose(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Marketing",
            "2ads",
            "_ads",
            "ads-x",
            "ads x",
            &"a".repeat(65),
        ] {
            assert_eq!(
                validate_purpose(bad),
                Err(ValidationError::Purpose),
                "{bad}"
            );
        }
    }

    #[test]
    fn regions() {
        for ok in ["eu", "us-ca", "default", "1", &"a".repeat(32)] {
            assert_eq!(validate_region(ok), Ok(()), "{ok}");
        }
        for bad in ["", "EU", "us_ca", "eu ", &"a".repeat(33)] {
            assert_eq!(validate_region(bad), Err(ValidationError::Region), "{bad}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!(validate_source("web form, checkout page ✓"), Ok(()));
        assert_eq!(validate_source(&"é".repeat(256)), Ok(()));
        assert_eq!(validate_source(""), Err(ValidationError::Source));
        assert_eq!(validate_source("a\nb"), Err(ValidationError::Source));
        assert_eq!(
            validate_source(&"é".repeat(257)),
            Err(ValidationError::Source)
        );
        assert_eq!(validate_collection_method("api"), Ok(()));
        assert_eq!(
            validate_collection_method("a\tb"),
            Err(ValidationError::CollectionMethod)
        );
    }

    #[test]
    fn recorded_by_names() {
        assert_eq!(validate_recorded_by("crm-admin"), Ok(()));
        assert_eq!(validate_recorded_by(&"é".repeat(256)), Ok(()));
        for bad in ["", "a\nb", "\u{7f}", &"x".repeat(257)] {
            assert_eq!(validate_recorded_by(bad), Err(ValidationError::RecordedBy));
        }
    }

    #[test]
    fn time_rules() {
        let now = OffsetDateTime::now_utc();
        let s = time::Duration::SECOND;
        assert_eq!(check_times(None, None, now), Ok(()));
        assert_eq!(check_times(Some(now + s), Some(now - s), now), Ok(()));
        assert_eq!(check_times(None, Some(now), now), Ok(()));
        assert_eq!(
            check_times(Some(now), None, now),
            Err(ValidationError::ExpiresInPast)
        );
        assert_eq!(
            check_times(None, Some(now + s), now),
            Err(ValidationError::RecordedInFuture)
        );
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2025-01-31T13:00:00+01:00", "expires_at").unwrap();
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert_eq!(t.unix_timestamp(), 1_738_324_800);
        let err = parse_timestamp("2025-01-31", "expires_at").unwrap_err();
        assert_eq!(
            err,
            ValidationError::Timestamp {
                field: "expires_at"
            }
        );
        assert!(
            err.to_string()
                .starts_with("expires_at must be an RFC 3339")
        );
    }

    #[test]
    fn messages_do_not_echo_values() {
        let err = validate_subject("secret name").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
