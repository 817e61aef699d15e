//! One validator for every consent write that comes from outside: the body of
//! `PUT /v1/subjects/{s}/consents/{p}`, the body of `PUT /v1/subjects/{s}` and each line
//! of an NDJSON import are read by the same strict JSON object reader and checked by the
//! same field and time rules.
//!
//! The reader refuses what a lax JSON parser would let through: a key given twice (JSON
//! says nothing about which one wins, so `"status":"denied","status":"granted"` is refused
//! rather than guessed), keys outside the allowed set, and anything but one object.
//! Messages never repeat a value (it may be personal data); an unknown key is named,
//! shortened.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use time::OffsetDateTime;

use super::model::{ConsentChange, ConsentStatus};
use super::validate::{ValidationError, check_times, parse_timestamp, validate_region};

/// Keys of a consent PUT body.
pub const PUT_CONSENT_KEYS: [&str; 3] = ["status", "expires_at", "source"];
/// Keys of a region PUT body.
pub const PUT_REGION_KEYS: [&str; 1] = ["region"];

/// One JSON object whose keys are all distinct and allowed.
#[derive(Debug)]
pub(crate) struct Object {
    fields: Vec<(String, Value)>,
}

/// An object's fields in order, and the first key that was given twice.
type Parsed = (Vec<(String, Value)>, Option<String>);

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut fields: Vec<(String, Value)> = Vec::new();
        let mut duplicate = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if fields.iter().any(|(k, _)| *k == key) {
                duplicate.get_or_insert(key);
            } else {
                fields.push((key, value));
            }
        }
        Ok((fields, duplicate))
    }
}

/// Parses `bytes` as one JSON object with distinct keys, each in `allowed`. `what` names
/// the input in messages ("the request body", "each line").
pub(crate) fn parse_object(bytes: &[u8], allowed: &[&str], what: &str) -> Result<Object, String> {
    let starts_object = bytes.trim_ascii_start().first() == Some(&b'{');
    if !starts_object {
        return match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => Err(format!("{what} must be one JSON object")),
            Err(e) => Err(format!("not valid JSON: {e}")),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = de
        .deserialize_map(ObjectVisitor)
        .and_then(|p| de.end().map(|()| p))
        .map_err(|e| format!("not valid JSON: {e}"))?;
    let (fields, duplicate) = parsed;
    if let Some(key) = duplicate {
        return Err(format!(
            "key \"{}\" is given twice; give each key once",
            shorten(&key)
        ));
    }
    // Inside values too (any depth), with the gateway's shared strict reader.
    crate::json::check(bytes).map_err(|_| {
        "a key is given twice inside a nested object; give each key once".to_owned()
    })?;
    if let Some((unknown, _)) = fields.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "unknown key \"{}\"; allowed keys: {}",
            shorten(unknown),
            allowed.join(", ")
        ));
    }
    Ok(Object { fields })
}

impl Object {
    fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string field; `null` or absent is `None`.
    pub(crate) fn string(&self, key: &'static str) -> Result<Option<String>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!("\"{key}\" must be a string")),
        }
    }

    /// A string field that must be there.
    pub(crate) fn required(&self, key: &'static str) -> Result<String, String> {
        self.string(key)?
            .ok_or_else(|| format!("\"{key}\" is required"))
    }

    /// An RFC 3339 timestamp field.
    pub(crate) fn timestamp(&self, key: &'static str) -> Result<Option<OffsetDateTime>, String> {
        self.string(key)?
            .map(|text| parse_timestamp(&text, key).map_err(|e| e.to_string()))
            .transpose()
    }
}

/// The fields a consent write carries besides subject, purpose and status.
pub(crate) struct WriteContext<'a> {
    /// `collection_method` of the receipt (`api`, `import`).
    pub(crate) method: &'a str,
    /// Who records it: the token's `sub`.
    pub(crate) recorded_by: &'a str,
    /// The moment of the write: the time rules are checked against it.
    pub(crate) now: OffsetDateTime,
}

/// Builds and checks a consent change from a parsed object: `expires_at`, `source` and
/// `recorded_at` (each only if the path allows the key), the shape rules of
/// [`ConsentChange::validate`] and the time rules of [`check_times`].
pub(crate) fn consent_change(
    object: &Object,
    subject: String,
    purpose: String,
    status: ConsentStatus,
    cx: &WriteContext<'_>,
) -> Result<ConsentChange, String> {
    let expires_at = object.timestamp("expires_at")?;
    let recorded_at = object.timestamp("recorded_at")?;
    let change = ConsentChange {
        subject,
        purpose,
        status,
        expires_at,
        source: object.string("source")?,
        collection_method: Some(cx.method.to_owned()),
        recorded_at,
        recorded_by: cx.recorded_by.to_owned(),
    };
    change.validate().map_err(|e| e.to_string())?;
    check_times(expires_at, recorded_at, cx.now).map_err(|e| e.to_string())?;
    Ok(change)
}

/// Parses and checks the body of `PUT /v1/subjects/{subject}/consents/{purpose}`:
/// `{"status": "granted"|"denied", "expires_at"?, "source"?}`. The receipt will say
/// `collection_method: "api"` and `recorded_by`.
pub fn parse_consent_body(
    body: &[u8],
    subject: &str,
    purpose: &str,
    recorded_by: &str,
    now: OffsetDateTime,
) -> Result<ConsentChange, String> {
    let object = parse_object(body, &PUT_CONSENT_KEYS, "the request body")?;
    let status = match object.required("status")?.as_str() {
        "granted" => ConsentStatus::Granted,
        "denied" => ConsentStatus::Denied,
        _ => return Err("status must be \"granted\" or \"denied\"; withdraw with DELETE".into()),
    };
    let cx = WriteContext {
        method: "api",
        recorded_by,
        now,
    };
    consent_change(&object, subject.to_owned(), purpose.to_owned(), status, &cx)
}

/// Parses and checks the body of `PUT /v1/subjects/{subject}`: `{"region": "eu"}`.
pub fn parse_region_body(body: &[u8]) -> Result<String, String> {
    let object = parse_object(body, &PUT_REGION_KEYS, "the request body")?;
    let region = object.required("region")?;
    validate_region(&region).map_err(|e: ValidationError| e.to_string())?;
    Ok(region)
}

/// Cuts a key for a message, so a huge key cannot blow up the answer.
fn shorten(key: &str) -> String {
    const MAX: usize = 40;
    if key.chars().count() <= MAX {
        key.to_owned()
    } else {
        let mut short: String = key.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn body(text: &str) -> Result<ConsentChange, String> {
        parse_consent_body(text.as_bytes(), "c-1", "marketing", "admin", NOW)
    }

    #[test]
    fn good_body() {
        let c = body(r#"{"status":"granted","expires_at":"2027-01-01T00:00:00Z","source":"form"}"#)
            .unwrap();
        assert_eq!(c.status, ConsentStatus::Granted);
        assert_eq!(c.expires_at, Some(datetime!(2027-01-01 00:00 UTC)));
        assert_eq!(c.source.as_deref(), Some("form"));
        assert_eq!(c.collection_method.as_deref(), Some("api"));
        assert_eq!(c.recorded_by, "admin");
        assert_eq!(c.recorded_at, None);
        let c = body(r#" {"status":"denied","expires_at":null} "#).unwrap();
        assert_eq!(c.status, ConsentStatus::Denied);
    }

    #[test]
    fn duplicate_keys_are_refused_even_when_escaped() {
        for text in [
            r#"{"status":"denied","status":"granted"}"#,
            r#"{"status":"granted","st\u0061tus":"granted"}"#,
            r#"{"status":"granted","source":"a","source":"a"}"#,
            r#"{"status":"granted","source":{"a":1,"a":2}}"#,
        ] {
            let err = body(text).unwrap_err();
            assert!(err.contains("given twice"), "{text}: {err}");
        }
    }

    #[test]
    fn bad_bodies() {
        let cases = [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            (r#"{"status":"granted"} x"#, "not valid JSON"),
            ("[1]", "the request body must be one JSON object"),
            ("5", "the request body must be one JSON object"),
            ("\"granted\"", "the request body must be one JSON object"),
            (r#"{"status":"withdrawn"}"#, "status must be"),
            (
                r#"{"status":"granted","recorded_at":"2025-01-01T00:00:00Z"}"#,
                "unknown key \"recorded_at\"",
            ),
            (r#"{"status":5}"#, "\"status\" must be a string"),
            (r#"{}"#, "\"status\" is required"),
            (
                r#"{"status":"granted","expires_at":"2025-06-01T00:00:00Z"}"#,
                "expires_at is in the past",
            ),
            (
                r#"{"status":"granted","expires_at":"2026-01-01T00:00:00Z"}"#,
                "expires_at is in the past",
            ),
            (
                r#"{"status":"granted","expires_at":"soon"}"#,
                "expires_at must be an RFC 3339",
            ),
            (r#"{"status":"granted","source":"a\nb"}"#, "source must be"),
        ];
        for (text, want) in cases {
            let err = body(text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        let err = parse_consent_body(br#"{"status":"granted"}"#, "c-1", "marketing", "", NOW)
            .unwrap_err();
        assert!(err.contains("token's sub"), "{err}");
    }

    #[test]
    fn region_body() {
        assert_eq!(parse_region_body(br#"{"region":"eu"}"#).unwrap(), "eu");
        for (text, want) in [
            (
                r#"{"region":"eu","region":"us-ca"}"#,
                "key \"region\" is given twice",
            ),
            (r#"{"region":"EU"}"#, "region must be"),
            (r#"{"region":"eu","x":1}"#, "unknown key \"x\""),
            (r#"{}"#, "\"region\" is required"),
            (r#"["eu"]"#, "the request body must be one JSON object"),
        ] {
            let err = parse_region_body(text.as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn messages_do_not_echo_values() {
        let err = body(r#"{"status":"granted-secret-value"}"#).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        let long = format!("{{\"{}\":1}}", "k".repeat(500));
        assert!(body(&long).unwrap_err().len() < 200);
    }

    proptest::proptest! {
        #[test]
        fn parse_object_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = parse_object(&bytes, &PUT_CONSENT_KEYS, "x");
        }

        #[test]
        fn a_repeated_key_is_always_refused(
            key in proptest::sample::select(&PUT_CONSENT_KEYS[..]),
            a in "[a-z]{0,8}", b in "[a-z]{0,8}"
        ) {
            let text = format!("{{\"{key}\":\"{a}\",\"{key}\":\"{b}\"}}");
            let err = parse_object(text.as_bytes(), &PUT_CONSENT_KEYS, "x").unwrap_err();
            proptest::prop_assert!(err.contains("given twice"));
        }
    }
}
