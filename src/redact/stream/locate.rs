//! Finding values in JSON text without a tree: the records of a collection (the array at a
//! field path, each element's text and the string at its subject path) and the envelope's
//! top-level scalars, in one validating pass over the document.
//!
//! Reads exactly as strictly as the minimisation walk (same tokenizer): what it accepts is
//! what `serde_json` accepts, minus documents that name a key twice anywhere. Public for the
//! fuzz targets; the gateway's collection routes are its one user.

use std::borrow::Cow;

use super::StreamError;
use super::scan::{Scanner, Str, nest};

/// One element of a collection's array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element<'a> {
    /// The element's JSON text, as written (validated).
    pub text: &'a [u8],
    /// The string at the subject path inside the element, decoded; `None` when the element is
    /// not an object or holds no string there.
    pub subject: Option<Cow<'a, str>>,
}

/// What [`collection`] found in a document.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found<'a> {
    /// The array's elements in order, at most `keep` of them; `None` when there is no array
    /// at the path.
    pub elements: Option<Vec<Element<'a>>>,
    /// How many elements the array holds (all of them, kept or not).
    pub count: u64,
    /// `(i, text)` for each `envelope[i]` present at the top level with a scalar value, in
    /// the document's order.
    pub envelope: Vec<(usize, &'a [u8])>,
}

/// Validates `doc` and finds the array at `path` (object keys from the top; empty: the
/// document is the array), each element's string at `subject` for the first `keep` elements
/// (the rest are validated and counted only, so memory is bounded by `keep`), and the
/// top-level scalars named by `envelope`.
pub fn collection<'a>(
    doc: &'a [u8],
    path: &[String],
    subject: &[String],
    envelope: &[String],
    keep: usize,
) -> Result<Found<'a>, StreamError> {
    let mut sc = Scanner::new(doc);
    let mut found = Found::default();
    let want = Want {
        subject,
        envelope,
        keep,
    };
    want.at_path(&mut sc, 0, path, &mut found)?;
    sc.end()?;
    Ok(found)
}

/// Validates one record (an NDJSON line): `Ok(None)` when it is JSON but not an object, else
/// the string at `subject` (if any).
pub fn record<'a>(
    text: &'a [u8],
    subject: &[String],
) -> Result<Option<Option<Cow<'a, str>>>, StreamError> {
    let mut sc = Scanner::new(text);
    let object = sc.peek() == Some(b'{');
    let found = string_at(&mut sc, 0, subject)?;
    sc.end()?;
    Ok(object.then_some(found))
}

struct Want<'w> {
    subject: &'w [String],
    envelope: &'w [String],
    keep: usize,
}

impl Want<'_> {
    /// The value here is at `depth` open containers; `rest` is what is left of the path.
    fn at_path<'a>(
        &self,
        sc: &mut Scanner<'a>,
        depth: usize,
        rest: &[String],
        found: &mut Found<'a>,
    ) -> Result<(), StreamError> {
        let Some((first, rest)) = rest.split_first() else {
            return if sc.peek() == Some(b'[') {
                let (elements, count) = self.elements(sc, depth)?;
                found.elements = Some(elements);
                found.count = count;
                Ok(())
            } else {
                sc.skip(depth)
            };
        };
        if sc.peek() != Some(b'{') {
            return sc.skip(depth);
        }
        let top = depth == 0;
        members(sc, depth, |sc, key| {
            let inner = depth + 1;
            if found.elements.is_none() && is_key(key, first) {
                return self.at_path(sc, inner, rest, found);
            }
            let envelope = if top { self.envelope_index(key)? } else { None };
            let scalar = !matches!(sc.peek(), Some(b'{' | b'['));
            let start = sc.pos();
            sc.skip(inner)?;
            if let (Some(i), true) = (envelope, scalar) {
                found.envelope.push((i, sc.slice(start, sc.pos())));
            }
            Ok(())
        })
    }

    fn envelope_index(&self, key: Str<'_>) -> Result<Option<usize>, StreamError> {
        if self.envelope.is_empty() {
            return Ok(None);
        }
        let text = key.text()?;
        Ok(self.envelope.iter().position(|name| *name == *text))
    }

    /// The array that starts here: the first `keep` elements' text and subject, and how many
    /// elements it holds.
    fn elements<'a>(
        &self,
        sc: &mut Scanner<'a>,
        depth: usize,
    ) -> Result<(Vec<Element<'a>>, u64), StreamError> {
        let inner = nest(depth)?;
        sc.expect(b'[')?;
        let mut elements = Vec::new();
        let mut count = 0u64;
        if sc.empty(b']') {
            return Ok((elements, count));
        }
        loop {
            count += 1;
            if elements.len() < self.keep {
                sc.peek();
                let start = sc.pos();
                let subject = string_at(sc, inner, self.subject)?;
                elements.push(Element {
                    text: sc.slice(start, sc.pos()),
                    subject,
                });
            } else {
                sc.skip(inner)?;
            }
            if !sc.more(b']')? {
                return Ok((elements, count));
            }
        }
    }
}

/// Validates the value here (at `depth` open containers) and returns the string at `path`
/// inside it, if there is one.
fn string_at<'a>(
    sc: &mut Scanner<'a>,
    depth: usize,
    path: &[String],
) -> Result<Option<Cow<'a, str>>, StreamError> {
    let Some((first, rest)) = path.split_first() else {
        return if sc.peek() == Some(b'"') {
            sc.string()?.text().map(Some)
        } else {
            sc.skip(depth).map(|()| None)
        };
    };
    if sc.peek() != Some(b'{') {
        return sc.skip(depth).map(|()| None);
    }
    let mut found = None;
    members(sc, depth, |sc, key| {
        if found.is_none() && is_key(key, first) {
            found = string_at(sc, depth + 1, rest)?;
            Ok(())
        } else {
            sc.skip(depth + 1)
        }
    })?;
    Ok(found)
}

/// Reads the object that starts here (at `depth` open containers): `member` is called after
/// each key and its `:` and must pass over the value; a key named twice fails.
fn members<'a>(
    sc: &mut Scanner<'a>,
    depth: usize,
    mut member: impl FnMut(&mut Scanner<'a>, Str<'a>) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    nest(depth)?;
    sc.expect(b'{')?;
    sc.open_object();
    if !sc.empty(b'}') {
        loop {
            let key = sc.key()?;
            member(sc, key)?;
            if !sc.more(b'}')? {
                break;
            }
        }
    }
    sc.close_object()
}

/// Whether a scanned key is `name` (escapes decoded).
fn is_key(key: Str<'_>, name: &str) -> bool {
    if key.escaped {
        key.text().is_ok_and(|text| text == name)
    } else {
        key.raw == name.as_bytes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::routing::get_path;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn path(p: &str) -> Vec<String> {
        crate::routing::parse_field_path(p).unwrap()
    }

    /// Small documents over a few keys, so paths often hit.
    fn doc() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(Value::from),
            prop_oneof![Just("c-1"), Just("x"), Just("é\"\\"), Just("")].prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![Just("a"), Just("b"), Just("id"), Just("items")]
                        .prop_map(str::to_owned),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn paths() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("id"), Just("items")].prop_map(str::to_owned),
            0..3,
        )
    }

    /// Writes keys with escapes sometimes, so key matching decodes.
    fn write(doc: &Value, escape_keys: bool) -> Vec<u8> {
        let text = serde_json::to_string(doc).unwrap();
        if escape_keys {
            text.replace("\"a\":", "\"\\u0061\":").into_bytes()
        } else {
            text.into_bytes()
        }
    }

    proptest! {
        /// The oracle: parse the tree, follow the path, take each element's subject.
        #[test]
        fn collection_agrees_with_the_tree(
            doc in doc(), at in paths(), subject in paths(), escape in any::<bool>(),
        ) {
            let text = write(&doc, escape);
            let envelope = vec!["b".to_owned(), "id".to_owned()];
            let found = collection(&text, &at, &subject, &envelope, usize::MAX).unwrap();
            let want = get_path(&doc, &at).and_then(Value::as_array);
            match (found.elements, want) {
                (None, None) => {}
                (Some(got), Some(want)) => {
                    prop_assert_eq!(got.len(), want.len());
                    prop_assert_eq!(found.count, want.len() as u64);
                    for (g, w) in got.iter().zip(want) {
                        let parsed: Value = serde_json::from_slice(g.text).unwrap();
                        prop_assert_eq!(&parsed, w);
                        let s = get_path(w, &subject).and_then(Value::as_str);
                        prop_assert_eq!(g.subject.as_deref(), s);
                    }
                }
                (got, want) => prop_assert!(false, "{got:?} vs {want:?}"),
            }
            let top = doc.as_object().filter(|_| !at.is_empty());
            let mut want_env: Vec<(usize, Value)> = envelope
                .iter()
                .enumerate()
                .filter(|(_, n)| at.first() != Some(*n))
                .filter_map(|(i, n)| Some((i, top?.get(n)?.clone())))
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .collect();
            let mut got_env: Vec<(usize, Value)> = found
                .envelope
                .iter()
                .map(|(i, t)| (*i, serde_json::from_slice(t).unwrap()))
                .collect();
            want_env.sort_by_key(|(i, _)| *i);
            got_env.sort_by_key(|(i, _)| *i);
            prop_assert_eq!(got_env, want_env);
        }

        /// Whatever the bytes, `collection` accepts only what serde_json accepts.
        #[test]
        fn accepts_no_more_than_serde(text in prop::collection::vec(
            prop_oneof![Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b':'),
                        Just(b','), Just(b'a'), Just(b'1'), Just(b' ')], 0..24)) {
            if collection(&text, &[], &[], &[], usize::MAX).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(&text).is_ok());
            }
            if record(&text, &path("a")).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(&text).is_ok());
            }
        }
    }

    #[test]
    fn finds_records_subjects_and_envelope() {
        let text = br#"{"total": 2, "meta": {"x": 1}, "data": {"items": [
            {"id": "c-1", "n": [1, {"id": "no"}]}, 7, {"customer": {"id": "c-2"}}, {"id": 3}
        ]}, "next": "abc"}"#;
        let envelope = vec!["next".to_owned(), "total".to_owned(), "meta".to_owned()];
        let found = collection(
            text,
            &path("data.items"),
            &path("id"),
            &envelope,
            usize::MAX,
        )
        .unwrap();
        let elements = found.elements.unwrap();
        let subjects: Vec<Option<&str>> = elements.iter().map(|e| e.subject.as_deref()).collect();
        assert_eq!(subjects, [Some("c-1"), None, None, None]);
        assert_eq!(found.count, 4);
        let kept = collection(text, &path("data.items"), &path("id"), &envelope, 1).unwrap();
        assert_eq!((kept.elements.unwrap().len(), kept.count), (1, 4));
        assert_eq!(elements[1].text, b"7");
        assert_eq!(found.envelope, vec![(1, &b"2"[..]), (0, &b"\"abc\""[..])]);
    }

    #[test]
    fn refuses_duplicates_and_depth_anywhere() {
        let dup = br#"[{"id": "a"}, {"x": {"k": 1, "k": 2}}]"#;
        assert_eq!(
            collection(dup, &[], &path("id"), &[], usize::MAX),
            Err(StreamError::DuplicateKey)
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            collection(deep.as_bytes(), &[], &[], &[], usize::MAX),
            Err(StreamError::TooDeep)
        );
        assert_eq!(
            collection(b"[1] x", &[], &[], &[], usize::MAX),
            Err(StreamError::Syntax)
        );
        let dup_top = br#"{"items": [], "items": [{"id": "a"}]}"#;
        assert_eq!(
            collection(dup_top, &path("items"), &path("id"), &[], 0),
            Err(StreamError::DuplicateKey)
        );
    }

    #[test]
    fn records_of_ndjson_lines() {
        let id = path("customer.id");
        assert_eq!(
            record(br#"{"customer": {"id": "c\u002d1"}}"#, &id).unwrap(),
            Some(Some(Cow::Borrowed("c-1")))
        );
        assert_eq!(record(br#"{"customer": 1}"#, &id).unwrap(), Some(None));
        assert_eq!(record(b"[1]", &id).unwrap(), None);
        assert!(record(br#"{"customer": {"id": "c-1"}"#, &id).is_err());
        assert!(record(br#"{"a": 1, "a": 2}"#, &id).is_err());
        assert_eq!(
            serde_json::to_vec(&json!({"customer": {"id": "x"}})).unwrap(),
            br#"{"customer":{"id":"x"}}"#
        );
    }
}
