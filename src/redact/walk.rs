//! The single walk over a document that minimises and redacts it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::Value;

use super::matcher::State;
use super::plan::{Explanation, ExplanationKind, FilterKind, Outcome, Plan};

/// Subtrees deeper than this are removed (serde_json's parser stops at 128).
pub(crate) const MAX_DEPTH: usize = 160;

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
            Value::Object(map) => {
                map.retain(|key, child| {
                    let len = self.path.len();
                    if len > 0 {
                        self.path.push('.');
                    }
                    self.path.push_str(key);
                    let keep = self.visit_member(key, child, f, r, depth);
                    self.path.truncate(len);
                    keep
                });
            }
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
