//! A readable, path-by-path difference between two JSON values.

use serde_json::Value;

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn show(path: &str) -> &str {
    if path.is_empty() { "(body)" } else { path }
}

/// One line per difference: `- path` missing, `+ path` unexpected, `~ path` changed.
pub(crate) fn diff(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(expected, actual, "", &mut out);
    out
}

fn walk(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = child(path, k);
                match a.get(k) {
                    Some(av) => walk(ev, av, &p, out),
                    None => out.push(format!("- {p}: expected {ev}, but it is missing")),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) {
                    out.push(format!("+ {}: not expected, got {av}", child(path, k)));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!(
                    "~ {}: expected {} items, got {}",
                    show(path),
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                walk(ev, av, &format!("{path}[{i}]"), out);
            }
        }
        (e, a) if e != a => out.push(format!("~ {}: expected {e}, got {a}", show(path))),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_each_difference() {
        let e = json!({"a": 1, "b": {"c": "x"}, "l": [1, 2]});
        let a = json!({"a": 2, "b": {}, "l": [1], "z": true});
        assert_eq!(
            diff(&e, &a),
            vec![
                "~ a: expected 1, got 2",
                "- b.c: expected \"x\", but it is missing",
                "~ l: expected 2 items, got 1",
                "+ z: not expected, got true",
            ]
        );
        assert!(diff(&e, &e).is_empty());
    }
}
