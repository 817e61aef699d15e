//! JSON from outside the gateway (tokens, admin bodies, import lines) is parsed strictly: an
//! object that names a key twice is refused at any depth. serde_json keeps the last of
//! duplicate keys, so `{"status":"denied","status":"granted"}` would otherwise mean whatever
//! the last writer wanted while a reviewer reads the first.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why strict JSON was refused.
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// Not JSON, or not of the expected shape.
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
}

/// Parses `bytes` as `T`, refusing duplicate object keys anywhere in the document.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictJsonError> {
    serde_json::from_slice::<NoDuplicates>(bytes)?;
    Ok(serde_json::from_slice(bytes)?)
}

/// Checks only that `bytes` is JSON without duplicate object keys.
pub fn check(bytes: &[u8]) -> Result<(), StrictJsonError> {
    serde_json::from_slice::<NoDuplicates>(bytes)?;
    Ok(())
}

/// Deserialises any JSON value, keeping nothing, and fails on a repeated key in any object.
struct NoDuplicates;

impl<'de> de::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            // With `arbitrary_precision`, a number arrives as a one-entry map under a private
            // key holding its text; nothing to check inside it.
            if key.starts_with("$serde_json::private::") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if !seen.insert(key) {
                // The key itself may be personal data: it is not repeated in the message.
                return Err(de::Error::custom("an object names the same key twice"));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        assert!(from_slice::<Value>(br#"{"a":1,"b":[{"c":2}]}"#).is_ok());
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":{"status":"denied","status":"granted"}}"#,
            br#"[{"k":1},{"k":1,"k":1}]"#,
        ] {
            let e = from_slice::<Value>(bad).unwrap_err().to_string();
            assert!(e.contains("same key twice"), "{e}");
        }
    }

    #[test]
    fn numbers_and_escapes_pass() {
        let v: Value = from_slice(br#"{"n":1e400,"m":-0.5,"s":"\u00e9","t":"a\"b"}"#).unwrap();
        assert_eq!(v["s"], "é");
        // Escaped and plain spellings of one key are the same key.
        assert!(check(br#"{"a":1,"\u0061":2}"#).is_err());
    }
}
