//! Canonical JSON: object keys sorted at every level, no whitespace,
//! serde_json string and number formatting. Pure, no I/O.

use serde_json::Value;

/// Appends the canonical JSON form of `value` to `out`.
pub(crate) fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers have one serde_json form.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// Returns the canonical JSON form of `value`.
pub(crate) fn to_canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail; fall back to an empty string defensively.
    let encoded = serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec());
    out.extend_from_slice(&encoded);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_level_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "q\"\n"}});
        let s = String::from_utf8(to_canonical(&v)).unwrap();
        assert_eq!(
            s,
            r#"{"a":{"c":"q\"\n","z":[3,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn round_trips_through_serde_json() {
        let v = json!({"é": "ünï", "n": 18446744073709551615u64, "e": [], "o": {}});
        let canon = to_canonical(&v);
        let back: Value = serde_json::from_slice(&canon).unwrap();
        assert_eq!(back, v);
        assert_eq!(to_canonical(&back), canon);
    }
}
