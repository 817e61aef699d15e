//! Canonical JSON: object keys sorted (by their UTF-8 bytes) at every level, no whitespace,
//! serde_json's string and number forms. What audit hashes, checkpoint signatures and consent
//! receipt hashes are computed over. Pure, no I/O.

use serde_json::Value;

/// Appends the canonical JSON form of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers have one serde_json form.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// The canonical JSON form of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serialising a `&str` into a `Vec` cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_level_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "q\"\n", "d": 1.5}});
        let s = String::from_utf8(to_vec(&v)).unwrap();
        assert_eq!(
            s,
            r#"{"a":{"c":"q\"\n","d":1.5,"z":[3,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn round_trips_through_serde_json() {
        let v = json!({"é": "ünï", "n": 18446744073709551615u64, "e": [], "o": {}});
        let canon = to_vec(&v);
        let back: Value = serde_json::from_slice(&canon).unwrap();
        assert_eq!(back, v);
        assert_eq!(to_vec(&back), canon);
    }
}
