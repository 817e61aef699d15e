//! Where a collection route's records are: a JSON array at a field path, or one record per
//! NDJSON line, each naming its data subject at a field path.

use serde_json::Value;

/// `route.collection`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// JSON array or NDJSON stream.
    pub format: CollectionFormat,
    /// Field path inside each record naming its data subject (`customer.id` → two keys).
    pub subject: Vec<String>,
    /// More records than this → `502 collection_too_large` (`None`: no limit; NDJSON only).
    pub max_elements: Option<u64>,
}

/// The two shapes of a collection body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionFormat {
    /// A JSON document with the records in one array.
    Json {
        /// Field path of the array (empty: the body is the array).
        path: Vec<String>,
        /// Top-level scalar fields that pass as they are.
        envelope: Vec<String>,
    },
    /// One JSON record per line, decided and released as lines arrive.
    Ndjson,
}

/// `max_elements` of a JSON collection when the route does not set it.
pub const DEFAULT_MAX_ELEMENTS: u64 = 10_000;

/// Splits a dotted field path into keys: `""` → none; an empty key or a wildcard is refused
/// (a record's subject or the array must be one definite place).
pub fn parse_field_path(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split('.')
        .map(|key| {
            if key.is_empty() {
                Err(format!(
                    "\"{text}\" has an empty key; write keys separated by single dots, like \"customer.id\""
                ))
            } else if key.contains('*') {
                Err(format!(
                    "\"{text}\" has a wildcard; name one definite field, like \"customer.id\""
                ))
            } else {
                Ok(key.to_owned())
            }
        })
        .collect()
}

/// The value at `path` inside `value` (objects only; arrays are not transparent here).
pub fn get_path<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(value, |v, key| v.as_object()?.get(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths() {
        assert!(parse_field_path("").unwrap().is_empty());
        assert_eq!(parse_field_path("customer.id").unwrap(), ["customer", "id"]);
        for bad in [".", "a.", ".a", "a..b", "*", "a.**", "items.*"] {
            assert!(parse_field_path(bad).is_err(), "{bad:?}");
        }
        let doc = json!({"a": {"b": [1]}, "c": 2});
        let path = parse_field_path("a.b").unwrap();
        assert_eq!(get_path(&doc, &path), Some(&json!([1])));
        assert_eq!(get_path(&doc, &[]), Some(&doc));
        assert_eq!(get_path(&doc, &parse_field_path("c.d").unwrap()), None);
        assert_eq!(
            get_path(&json!([{"a": 1}]), &parse_field_path("a").unwrap()),
            None
        );
    }
}
