//! Canonical JSON per RFC 8785 (JCS): object members sorted by the UTF-16 code units of their
//! names at every level, no whitespace, strings escaped as JCS says (the two-character forms
//! `\b \t \n \f \r \" \\`, other control characters as `\u00xx`, everything else as is), and
//! numbers in ECMAScript's `Number.prototype.toString` form (so integers above 2^53 are
//! rounded to the nearest double, as every JCS implementation does). What audit hashes,
//! checkpoint signatures and consent receipt hashes are computed over. Pure, no I/O.

use serde_json::{Number, Value};

/// Appends the canonical JSON form of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(key, out);
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
        Value::String(s) => write_str(s, out),
        Value::Number(n) => write_number(n, out),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

/// The canonical JSON form of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

/// Appends `s` as a JCS string. serde_json's escaping is exactly JCS's: the short forms for
/// `\b \t \n \f \r " \`, `\u00xx` (lower-case hex) for the other control characters, and no
/// escaping of `/`, DEL or non-ASCII.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    // Serialising a `&str` into a `Vec` cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Appends an unsigned integer in JCS form (exact up to 2^53, a double's digits above).
pub fn write_u64(n: u64, out: &mut Vec<u8>) {
    const EXACT: u64 = 1 << 53;
    if n <= EXACT {
        let (buf, at) = digits(n);
        out.extend_from_slice(buf.get(at..).unwrap_or_default());
    } else {
        // Deliberately lossy: JCS numbers are IEEE 754 doubles.
        write_f64(n as f64, out);
    }
}

/// The decimal digits of `n` at the end of a stack buffer: `(buffer, first digit's index)`.
fn digits(mut n: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            return (buf, at);
        }
    }
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64() {
        write_u64(u, out);
    } else if let Some(i) = n.as_i64() {
        // Negative: the magnitude's form after a minus sign.
        out.push(b'-');
        write_u64(i.unsigned_abs(), out);
    } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
        write_f64(f, out);
    } else {
        // A number no double can hold (arbitrary-precision text beyond f64's range) has no
        // JCS form; its own text is kept so that it still hashes deterministically.
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
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
    fn rfc8785_examples() {
        // RFC 8785 §3.2.3: sorting by UTF-16 code units, not code points or UTF-8 bytes.
        let v = json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{0080}": "Control", "\u{00f6}": "Latin Small Letter O With Diaeresis"});
        let s = String::from_utf8(to_vec(&v)).unwrap();
        let order: Vec<&str> = [
            "\\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .to_vec();
        let mut at = 0;
        for key in order {
            let pos = s[at..].find(&format!("\"{key}\"")).unwrap();
            at += pos + 1;
        }
        // RFC 8785 §3.2.2.3 number forms.
        let nums: Value = serde_json::from_str(
            "[1E30, 4.50, 2e-3, 0.000001, 1e-7, -0.0, 9007199254740993, 1e21, 333333333.33333329]",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(to_vec(&nums)).unwrap(),
            "[1e+30,4.5,0.002,0.000001,1e-7,0,9007199254740992,1e+21,333333333.3333333]"
        );
        assert_eq!(
            String::from_utf8(to_vec(&json!(["\u{7f}\u{1f}/\u{2028}"]))).unwrap(),
            "[\"\u{7f}\\u001f/\u{2028}\"]"
        );
    }

    #[test]
    fn integers_are_exact_to_two_to_the_53_and_doubles_above() {
        assert_eq!(to_vec(&json!(1u64 << 53)), b"9007199254740992");
        assert_eq!(to_vec(&json!(u64::MAX)), b"18446744073709552000");
        assert_eq!(to_vec(&json!(-12)), b"-12");
        assert_eq!(to_vec(&json!(i64::MIN)), b"-9223372036854776000");
    }

    /// Feeds serde_jcs numbers as the doubles JCS defines them to be (our serde_json keeps
    /// arbitrary-precision number text, which serde_jcs would copy as is).
    struct Oracle<'a>(&'a Value);

    impl serde::Serialize for Oracle<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{SerializeMap, SerializeSeq};
            match self.0 {
                Value::Null => s.serialize_unit(),
                Value::Bool(b) => s.serialize_bool(*b),
                Value::Number(n) => s.serialize_f64(n.as_f64().unwrap()),
                Value::String(v) => s.serialize_str(v),
                Value::Array(items) => {
                    let mut seq = s.serialize_seq(Some(items.len()))?;
                    for item in items {
                        seq.serialize_element(&Oracle(item))?;
                    }
                    seq.end()
                }
                Value::Object(map) => {
                    let mut m = s.serialize_map(Some(map.len()))?;
                    for (k, v) in map {
                        m.serialize_entry(k, &Oracle(v))?;
                    }
                    m.end()
                }
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0u64..=1 << 53).prop_map(|n| json!(n)),
            (-(1i64 << 53)..0).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "\\PC{0,12}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// An independent JCS implementation (serde_jcs) is the oracle.
        #[test]
        fn matches_serde_jcs(v in arb_json()) {
            let ours = to_vec(&v);
            let theirs = serde_jcs::to_vec(&Oracle(&v)).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}
