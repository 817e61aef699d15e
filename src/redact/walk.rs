//! The single walk over a document that minimises and redacts it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::{Map, Value};

use super::matcher::State;
use super::plan::{Explanation, ExplanationKind, FilterKind, Outcome, Plan};

/// Subtrees deeper than this are removed (serde_json's parser stops at 128).
pub(crate) const MAX_DEPTH: usize = 160;

/// Whether `key` reads as a field name of a schema rather than as data: 1–64 characters of
/// ASCII letters, `_` and `-` (not first), with at most two digits.
pub(crate) fn field_name(key: &str) -> bool {
    let bytes = key.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        && bytes.iter().filter(|b| b.is_ascii_digit()).count() <= 2
}

/// A key's released text and the hits per redactor that made it.
type RenamedKey = (String, Vec<(String, u64)>);

/// `text`, or when another key of the object already has that name, `text#2`, `text#3`, …:
/// two keys that redact to the same text never merge, and a suffixed name never takes another
/// key's name.
pub(crate) fn unique_key(text: String, taken: &mut BTreeSet<String>) -> String {
    let name = if taken.contains(&text) {
        (2u64..)
            .map(|i| format!("{text}#{i}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_default()
    } else {
        text
    };
    taken.insert(name.clone());
    name
}

#[derive(Debug, Clone, Copy)]
enum Filter {
    /// Nothing below can be removed by the field filter.
    Keep,
    /// Some filter paths are still live (arena range).
    Live(usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum Rules {
    Off,
    Live(usize, usize),
    /// Field rule `rule` applies to this subtree, through rule path `path`.
    Apply {
        rule: usize,
        path: usize,
    },
}

pub(crate) struct Walker<'p> {
    plan: &'p Plan,
    filter_arena: Vec<State>,
    rule_arena: Vec<State>,
    path: String,
    removed: BTreeSet<String>,
    redactions: BTreeMap<String, u64>,
    explain: Option<BTreeSet<Explanation>>,
}

fn range(r: Range<usize>) -> (usize, usize) {
    (r.start, r.end)
}

impl<'p> Walker<'p> {
    pub(crate) fn new(plan: &'p Plan, explain: bool) -> Self {
        Self {
            plan,
            filter_arena: Vec::new(),
            rule_arena: Vec::new(),
            path: String::new(),
            removed: BTreeSet::new(),
            redactions: BTreeMap::new(),
            explain: explain.then(BTreeSet::new),
        }
    }

    pub(crate) fn run(&mut self, doc: &mut Value) {
        let f = match self.plan.filter_kind {
            FilterKind::KeepAll => Filter::Keep,
            FilterKind::Allow | FilterKind::Deny => {
                let (a, b) = range(self.plan.filter.start(&mut self.filter_arena));
                Filter::Live(a, b)
            }
        };
        let r = if self.plan.rules.is_empty() {
            Rules::Off
        } else {
            let (a, b) = range(self.plan.rules.start(&mut self.rule_arena));
            Rules::Live(a, b)
        };
        if !self.visit_value(doc, f, r, 0) {
            *doc = Value::Null;
        }
    }

    pub(crate) fn finish(self) -> (Outcome, Vec<Explanation>) {
        let outcome = Outcome {
            fields_removed: self.removed.into_iter().collect(),
            redactions: self.redactions,
        };
        (
            outcome,
            self.explain.unwrap_or_default().into_iter().collect(),
        )
    }

    fn current_path(&self) -> String {
        if self.path.is_empty() {
            "(document)".to_owned()
        } else {
            self.path.clone()
        }
    }

    fn remove(&mut self, rule: impl FnOnce() -> String) {
        let path = self.current_path();
        if let Some(ex) = &mut self.explain {
            ex.insert(Explanation {
                kind: ExplanationKind::Removed,
                path: path.clone(),
                rule: rule(),
            });
        }
        self.removed.insert(path);
    }

    fn count(&mut self, name: &str, n: u64, rule: impl FnOnce() -> String) {
        if let Some(c) = self.redactions.get_mut(name) {
            *c += n;
        } else {
            self.redactions.insert(name.to_owned(), n);
        }
        if self.explain.is_some() {
            let path = self.current_path();
            if let Some(ex) = &mut self.explain {
                ex.insert(Explanation {
                    kind: ExplanationKind::Redacted,
                    path,
                    rule: rule(),
                });
            }
        }
    }

    /// Returns `false` when the value must be removed from its parent.
    fn visit_value(&mut self, v: &mut Value, f: Filter, r: Rules, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            self.remove(|| format!("nested deeper than {MAX_DEPTH} levels"));
            return false;
        }
        let is_container = matches!(v, Value::Object(_) | Value::Array(_));
        if !is_container
            && matches!(f, Filter::Live(..))
            && self.plan.filter_kind == FilterKind::Allow
        {
            self.remove(|| "not in the allow list".to_owned());
            return false;
        }
        match v {
            Value::Object(map) => self.visit_object(map, f, r, depth),
            Value::Array(items) => {
                items.retain_mut(|item| self.visit_value(item, f, r, depth + 1));
            }
            Value::String(s) => self.leaf_string(s, r),
            Value::Number(n) => {
                let text = n.to_string();
                if let Some(out) = self.leaf_number(&text, r) {
                    *v = Value::String(out);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
        true
    }

    /// Walks an object's members. Keys are inspected by the text detectors like values
    /// ([`Walker::redact_keys`]), and recorded paths name data keys as `*`
    /// ([`Walker::recorded_key`]).
    fn visit_object(&mut self, map: &mut Map<String, Value>, f: Filter, r: Rules, depth: usize) {
        let renamed = self.redact_keys(map);
        let map_like = map
            .keys()
            .zip(&renamed)
            .any(|(k, new)| !self.plan.literals.contains(k) && (new.is_some() || !field_name(k)));
        if renamed.iter().all(Option::is_none) {
            map.retain(|key, child| self.visit_entry(key, child, map_like, f, r, depth));
            return;
        }
        // Some keys are personal data: the object is rebuilt with their released names.
        let mut taken: BTreeSet<String> = map
            .keys()
            .zip(&renamed)
            .filter(|(_, new)| new.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let entries = std::mem::take(map);
        for ((key, mut child), new) in entries.into_iter().zip(renamed) {
            if !self.visit_entry(&key, &mut child, map_like, f, r, depth) {
                continue;
            }
            let name = match new {
                None => key,
                Some((text, hits)) => {
                    for (name, n) in hits {
                        self.count(&name, n, || {
                            format!("redactor {name} (text detector, object key)")
                        });
                    }
                    unique_key(text, &mut taken)
                }
            };
            map.insert(name, child);
        }
    }

    /// Visits one member under its recorded path segment; `false` removes it.
    fn visit_entry(
        &mut self,
        key: &str,
        child: &mut Value,
        map_like: bool,
        f: Filter,
        r: Rules,
        depth: usize,
    ) -> bool {
        let len = self.path.len();
        if len > 0 {
            self.path.push('.');
        }
        let segment = self.recorded_key(key, map_like);
        self.path.push_str(segment);
        let keep = self.visit_member(key, child, f, r, depth);
        self.path.truncate(len);
        keep
    }

    /// The text detectors over every key of `map`: for each key, `Some((released key, hits per
    /// redactor))` when the key holds something they replace. Counted only for members kept.
    fn redact_keys(&self, map: &Map<String, Value>) -> Vec<Option<RenamedKey>> {
        map.keys()
            .map(|k| {
                let mut hits = Vec::new();
                self.plan
                    .redact_text(k, &mut |name, n| hits.push((name.to_owned(), n)))
                    .map(|text| (text, hits))
            })
            .collect()
    }

    /// A key as a recorded path (`fields_removed`, explanations) names it: itself when the
    /// policy names it (a literal segment of one of the plan's paths), or when it is a plain
    /// field name in an object whose keys are all plain field names; otherwise `*`, because it
    /// is data (an e-mail address, an id, anything a detector finds).
    fn recorded_key<'k>(&self, key: &'k str, map_like: bool) -> &'k str {
        if self.plan.literals.contains(key) || (!map_like && field_name(key)) {
            key
        } else {
            "*"
        }
    }

    fn visit_member(
        &mut self,
        key: &str,
        child: &mut Value,
        f: Filter,
        r: Rules,
        depth: usize,
    ) -> bool {
        let marks = (self.filter_arena.len(), self.rule_arena.len());
        let keep = self
            .member_states(key, f, r)
            .is_some_and(|(cf, cr)| self.visit_value(child, cf, cr, depth + 1));
        self.filter_arena.truncate(marks.0);
        self.rule_arena.truncate(marks.1);
        keep
    }

    /// The child's filter and rule states; `None` when the field filter removes the child.
    fn member_states(&mut self, key: &str, f: Filter, r: Rules) -> Option<(Filter, Rules)> {
        let plan = self.plan;
        let cf = match f {
            Filter::Keep => Filter::Keep,
            Filter::Live(a, b) => {
                let next = plan.filter.step(&mut self.filter_arena, a..b, key);
                let done = plan.filter.completed(&self.filter_arena, next.clone());
                match (plan.filter_kind, done) {
                    (FilterKind::Deny, Some(p)) => {
                        let entry = plan.filter.paths().get(p).map(|p| p.to_string());
                        self.remove(|| {
                            format!("deny list entry \"{}\"", entry.unwrap_or_default())
                        });
                        return None;
                    }
                    (_, Some(_)) => Filter::Keep,
                    (FilterKind::Allow, None) if next.is_empty() => {
                        self.remove(|| "not in the allow list".to_owned());
                        return None;
                    }
                    (_, None) if next.is_empty() => Filter::Keep,
                    (_, None) => Filter::Live(next.start, next.end),
                }
            }
        };
        let cr = match r {
            Rules::Off => Rules::Off,
            Rules::Apply { .. } => r,
            Rules::Live(a, b) => {
                let next = plan.rules.step(&mut self.rule_arena, a..b, key);
                match plan.rules.completed(&self.rule_arena, next.clone()) {
                    Some(path) => Rules::Apply {
                        rule: plan.rule_of_path.get(path).copied().unwrap_or(0),
                        path,
                    },
                    None if next.is_empty() => Rules::Off,
                    None => Rules::Live(next.start, next.end),
                }
            }
        };
        Some((cf, cr))
    }

    fn field_redact(&mut self, text: &str, rule: usize, path: usize) -> Option<String> {
        let plan = self.plan;
        let red = plan.rule_redactors.get(rule)?;
        let out = red.redact_field(text);
        let entry = plan.rules.paths().get(path);
        self.count(red.name(), 1, || {
            format!(
                "redactor {} (field rule \"{}\")",
                red.name(),
                entry.map(|p| p.as_str()).unwrap_or_default()
            )
        });
        Some(out)
    }

    fn leaf_string(&mut self, s: &mut String, r: Rules) {
        if let Rules::Apply { rule, path } = r {
            if let Some(out) = self.field_redact(s, rule, path) {
                *s = out;
            }
            return;
        }
        if let Some(out) = self.detect(s) {
            *s = out;
        }
    }

    fn leaf_number(&mut self, text: &str, r: Rules) -> Option<String> {
        if let Rules::Apply { rule, path } = r {
            return self.field_redact(text, rule, path);
        }
        self.detect(text)
    }

    /// Runs the text detectors; `Some(new text)` only when something was redacted.
    fn detect(&mut self, text: &str) -> Option<String> {
        let plan = self.plan;
        if self.explain.is_none() {
            return plan.redact_text(text, &mut |name, n| self.count(name, n, String::new));
        }
        let mut hits = Vec::new();
        let (out, spans) = plan.explain_text(text, &mut |name, n| hits.push((name.to_owned(), n)));
        for (name, n) in hits {
            self.count(&name, n, || format!("redactor {name} (text detector)"));
        }
        for span in spans {
            self.count_span(span);
        }
        out
    }

    /// Records, in explain mode, how one replaced span was decided.
    fn count_span(&mut self, rule: String) {
        let path = self.current_path();
        if let Some(ex) = &mut self.explain {
            ex.insert(Explanation {
                kind: ExplanationKind::Redacted,
                path,
                rule: format!("  {rule}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use serde_json::json;

    use crate::redact::{Action, Detector, FieldFilter, FieldPath, Plan, Redactor};

    fn plan_with(filter: FieldFilter) -> Plan {
        let email = Redactor::builtin(
            "email",
            Detector::Email,
            &Action::Replace("[EMAIL]".into()),
            None,
        );
        let phone = Redactor::builtin(
            "phone",
            Detector::Phone,
            &Action::Replace("[PHONE]".into()),
            None,
        );
        Plan::new(
            filter,
            vec![],
            vec![Arc::new(email.unwrap()), Arc::new(phone.unwrap())],
        )
    }

    fn paths(ps: &[&str]) -> Vec<FieldPath> {
        ps.iter().map(|p| FieldPath::parse(p).unwrap()).collect()
    }

    #[test]
    fn personal_keys_are_replaced_and_never_merge() {
        let plan = plan_with(FieldFilter::KeepAll);
        let mut doc = json!({"contacts": {
            "kim@example.com": {"n": 1},
            "bob@example.com": {"n": 2},
            "[EMAIL]#2": {"n": 3},
            "+49 30 1234567": {"n": 4},
            "plain": {"n": 5}
        }});
        let out = plan.apply(&mut doc);
        let contacts = doc["contacts"].as_object().unwrap();
        assert_eq!(contacts.len(), 5, "{doc}");
        let text = doc.to_string();
        for marker in ["kim@", "bob@", "1234567"] {
            assert!(!text.contains(marker), "{marker} in {text}");
        }
        let mut ns: Vec<u64> = contacts
            .values()
            .map(|v| v["n"].as_u64().unwrap())
            .collect();
        ns.sort_unstable();
        assert_eq!(ns, [1, 2, 3, 4, 5]);
        // The key that already was `[EMAIL]#2` keeps its name; the suffixes step around it.
        assert_eq!(contacts["[EMAIL]#2"]["n"], 3);
        assert!(contacts.contains_key("[EMAIL]") && contacts.contains_key("[EMAIL]#3"));
        assert_eq!(out.redactions["email"], 2);
        assert_eq!(out.redactions["phone"], 1);
    }

    #[test]
    fn recorded_paths_name_data_keys_as_stars() {
        let plan = plan_with(FieldFilter::Allow(paths(&["id", "contacts.*.name"])));
        let mut doc = json!({"id": 1, "last_name": "S",
            "contacts": {"kim@example.com": {"name": "Kim", "secret": "s"}, "bob": {"secret": 2}},
            "history": {"c-1001": 1, "x": 2}});
        let out = plan.apply(&mut doc);
        assert!(!doc.to_string().contains("kim@"), "{doc}");
        assert_eq!(
            out.fields_removed,
            ["contacts.*.secret", "history", "last_name"]
        );
        let (_, explained) = plan.apply_explain(&mut json!({"contacts": {"kim@example.com": 1}}));
        assert!(
            explained.iter().all(|e| !e.path.contains("kim")),
            "{explained:?}"
        );
        // A deny list: the rule's literal keys are kept, data keys are `*`.
        let plan = plan_with(FieldFilter::Deny(paths(&["**.secret", "orders.*.c-1001"])));
        let mut doc = json!({"orders": {"A1B2C3D4": {"secret": 1, "c-1001": 2}}});
        let out = plan.apply(&mut doc);
        assert_eq!(out.fields_removed, ["orders.*.c-1001", "orders.*.secret"]);
    }

    proptest::proptest! {
        /// Oracle: under `KeepAll` with the e-mail detector, an object keeps every entry (none
        /// merged or dropped), no released key holds an address, and recorded paths hold no
        /// key that is neither named by the policy nor a plain field name.
        #[test]
        fn keys_never_merge_and_paths_copy_no_data(
            keys in proptest::collection::btree_set(
                proptest::prop_oneof![
                    "[a-z]{1,6}@example\\.com",
                    "[a-z_]{1,8}",
                    proptest::strategy::Just("[EMAIL]".to_owned()),
                    proptest::strategy::Just("[EMAIL]#2".to_owned()),
                    "c-[0-9]{4}",
                ],
                0..8,
            )
        ) {
            let plan = plan_with(FieldFilter::KeepAll);
            let map: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), json!({"n": i, "secret": 1})))
                .collect();
            let mut doc = json!({ "m": map });
            plan.apply(&mut doc);
            let out = doc["m"].as_object().unwrap();
            proptest::prop_assert_eq!(out.len(), keys.len());
            let mut ns: Vec<u64> = out.values().map(|v| v["n"].as_u64().unwrap()).collect();
            ns.sort_unstable();
            proptest::prop_assert_eq!(ns, (0..keys.len() as u64).collect::<Vec<_>>());
            proptest::prop_assert!(out.keys().all(|k| !k.contains("@example.com")));

            let deny = plan_with(FieldFilter::Deny(paths(&["m.*.secret"])));
            let mut doc = json!({ "m": map_of(&keys) });
            let removed = deny.apply(&mut doc).fields_removed;
            let literal = |k: &str| k == "m" || k == "secret";
            let map_like = keys.iter().any(|k| !literal(k) && !super::field_name(k));
            proptest::prop_assert_eq!(removed.is_empty(), keys.is_empty());
            for path in &removed {
                let segs: Vec<&str> = path.split('.').collect();
                proptest::prop_assert_eq!(segs.len(), 3, "{:?}", removed);
                proptest::prop_assert!(segs[0] == "m" && segs[2] == "secret");
                let key = segs[1];
                if map_like {
                    proptest::prop_assert!(key == "*" || literal(key), "{:?}", removed);
                } else {
                    proptest::prop_assert!(key == "*" || literal(key) || super::field_name(key));
                }
            }
        }
    }

    fn map_of(keys: &std::collections::BTreeSet<String>) -> serde_json::Value {
        keys.iter()
            .map(|k| (k.clone(), json!({"secret": 1})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}
