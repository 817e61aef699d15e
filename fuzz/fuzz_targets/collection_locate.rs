//! Finding a collection's records in arbitrary bytes (`redact::locate`) against its oracle,
//! serde_json's tree: whatever the locator accepts, serde_json reads; the elements it finds are
//! the tree's array at the path, each element's subject is the tree's string at the subject path,
//! and the envelope's scalars are the tree's. The first byte picks the paths.
#![no_main]

use consentgate::redact::{StreamError, locate};
use consentgate::routing::get_path;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KEYS: [&str; 4] = ["items", "id", "a", "b"];

fn path(bits: u8) -> Vec<String> {
    (0..usize::from(bits & 3))
        .map(|i| KEYS[usize::from(bits >> (2 + i)) & 3].to_owned())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let at = path(pick);
    let mut subject = path(pick.rotate_left(4));
    if subject.is_empty() {
        subject.push("id".to_owned());
    }
    let envelope = vec!["b".to_owned(), "id".to_owned()];
    let found = match locate::collection(input, &at, &subject, &envelope, usize::MAX) {
        Ok(found) => found,
        Err(e) => {
            // Refused: serde_json refuses it too, unless it is a key named twice.
            if e != StreamError::DuplicateKey {
                assert!(
                    serde_json::from_slice::<Value>(input).is_err(),
                    "refused what serde_json reads: {e}"
                );
            }
            return;
        }
    };
    let doc: Value = serde_json::from_slice(input).expect("accepted what serde_json refuses");
    let want = get_path(&doc, &at).and_then(Value::as_array);
    match (&found.elements, want) {
        (None, None) => {}
        (Some(got), Some(want)) => {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                let parsed: Value = serde_json::from_slice(g.text).expect("element text");
                assert_eq!(&parsed, w);
                let s = get_path(w, &subject).and_then(Value::as_str);
                assert_eq!(g.subject.as_deref(), s);
            }
        }
        (got, want) => panic!("{got:?} vs {want:?}"),
    }
    for (i, text) in &found.envelope {
        let v: Value = serde_json::from_slice(text).expect("envelope text");
        assert!(!v.is_object() && !v.is_array());
        assert_eq!(doc.get(&envelope[*i]), Some(&v));
    }
    // Every top-level scalar the envelope names is found (unless its key holds the records).
    if !at.is_empty() {
        for (i, name) in envelope.iter().enumerate() {
            let scalar = doc
                .get(name)
                .is_some_and(|v| !v.is_object() && !v.is_array());
            if scalar && at.first() != Some(name) {
                assert!(
                    found.envelope.iter().any(|(j, _)| *j == i),
                    "envelope {name} missed"
                );
            }
        }
    }
});
