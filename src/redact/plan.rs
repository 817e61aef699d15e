//! A compiled minimisation-and-redaction plan for one purpose.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::RegexSet;
use serde_json::Value;

use super::matcher::PathMatcher;
use super::path::FieldPath;
use super::redactor::Redactor;
use super::walk::Walker;

/// Which fields a purpose may see.
#[derive(Debug, Clone)]
pub enum FieldFilter {
    /// No minimisation (only redaction).
    KeepAll,
    /// Keep only these paths (with their subtrees and, as containers, their ancestors).
    Allow(Vec<FieldPath>),
    /// Remove these paths (with their subtrees).
    Deny(Vec<FieldPath>),
}

/// A field-scoped redaction: the redactor applies to every string (and number) at these paths.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// Paths the rule covers.
    pub paths: Vec<FieldPath>,
    /// The redactor to apply.
    pub redactor: Arc<Redactor>,
}

/// What applying a plan did, without any personal values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Removed field paths: dotted, without array indices, deduplicated and sorted.
    pub fields_removed: Vec<String>,
    /// Number of redactions per redactor name.
    pub redactions: BTreeMap<String, u64>,
}

/// One removed or redacted path and the rule responsible.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Explanation {
    /// Whether the path was removed or redacted.
    pub kind: ExplanationKind,
    /// Dotted path without array indices.
    pub path: String,
    /// What removed or redacted it, e.g. `deny list entry "payment.**"`.
    pub rule: String,
}

/// What happened to an explained path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExplanationKind {
    /// The field was removed by the field filter.
    Removed,
    /// A value was rewritten by a redactor.
    Redacted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKind {
    KeepAll,
    Allow,
    Deny,
}

/// A compiled plan: minimise with the field filter, then apply field rules, then run the text
/// detectors over every remaining string. The document is walked once.
///
/// Choices, for the record:
/// - A value covered by a field rule is always changed (fail-closed): see
///   [`Redactor::redact_field`]. Numbers become strings; `true`/`false`/`null` are kept.
///   When several rules cover one value, the first rule listed wins for its whole subtree.
/// - Values rewritten by a field rule are not scanned again by the text detectors (so
///   `a***@example.eu` from a mask is not turned into `[EMAIL]`).
/// - Text detectors run over string values and over numbers (as their decimal text; a number
///   that is redacted becomes a string). Object keys are not scanned.
/// - Under an allow-list, a scalar where a container was expected (an ancestor of an allowed
///   path) is removed.
/// - Subtrees nested deeper than 160 levels are removed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) filter_kind: FilterKind,
    pub(crate) filter: PathMatcher,
    pub(crate) rules: PathMatcher,
    pub(crate) rule_of_path: Vec<usize>,
    pub(crate) rule_redactors: Vec<Arc<Redactor>>,
    pub(crate) text: Vec<Arc<Redactor>>,
    pub(crate) text_set: Option<RegexSet>,
}

impl Plan {
    /// Compiles a plan.
    ///
    /// Text detectors with a checksum validator (cards, IBANs, CPFs) run before the others,
    /// whatever their order in the policy: a looser pattern (a phone number) must not swallow
    /// the first digits of a card number and leave the rest unredacted. The order is otherwise kept.
    pub fn new(
        filter: FieldFilter,
        field_rules: Vec<FieldRule>,
        mut text: Vec<Arc<Redactor>>,
    ) -> Self {
        text.sort_by_key(|r| r.validator().is_none());
        let (filter_kind, filter) = match filter {
            FieldFilter::KeepAll => (FilterKind::KeepAll, PathMatcher::new(Vec::new())),
            FieldFilter::Allow(p) => (FilterKind::Allow, PathMatcher::new(p)),
            FieldFilter::Deny(p) => (FilterKind::Deny, PathMatcher::new(p)),
        };
        let mut paths = Vec::new();
        let mut rule_of_path = Vec::new();
        let mut rule_redactors = Vec::new();
        for (i, rule) in field_rules.into_iter().enumerate() {
            for p in rule.paths {
                paths.push(p);
                rule_of_path.push(i);
            }
            rule_redactors.push(rule.redactor);
        }
        // The set is only a prefilter: if it cannot be built, every detector simply runs.
        let text_set = if text.len() > 1 {
            RegexSet::new(text.iter().map(|r| r.pattern())).ok()
        } else {
            None
        };
        Self {
            filter_kind,
            filter,
            rules: PathMatcher::new(paths),
            rule_of_path,
            rule_redactors,
            text,
            text_set,
        }
    }

    /// Minimises and redacts `doc` in place.
    pub fn apply(&self, doc: &mut Value) -> Outcome {
        let mut w = Walker::new(self, false);
        w.run(doc);
        w.finish().0
    }

    /// Like [`Plan::apply`], and also says which rule removed or redacted each path.
    pub fn apply_explain(&self, doc: &mut Value) -> (Outcome, Vec<Explanation>) {
        let mut w = Walker::new(self, true);
        w.run(doc);
        w.finish()
    }

    /// The text detectors, in order.
    pub fn text_detectors(&self) -> &[Arc<Redactor>] {
        &self.text
    }

    /// Runs the text detectors over one free-text value (a string, a number's text, an object
    /// key) and calls `hit(redactor name, count)` for each redactor that replaced something.
    /// `Some(new text)` only when something was replaced; nothing is allocated otherwise.
    ///
    /// Detectors run to a fixed point (at most [`MAX_DETECTOR_ROUNDS`] rounds): a replacement
    /// adds word boundaries (`[CARD]`), which can expose a number that was hidden inside a longer
    /// digit run, so a round that changed anything is followed by another.
    pub(crate) fn redact_text(&self, text: &str, hit: &mut dyn FnMut(&str, u64)) -> Option<String> {
        if self.text.is_empty() {
            return None;
        }
        let mut current: Option<String> = None;
        for _ in 0..MAX_DETECTOR_ROUNDS {
            let input = current.as_deref().unwrap_or(text);
            let mut digits = count_digits(input);
            let mut candidates = match &self.text_set {
                Some(set) => {
                    let m = set.matches(input);
                    if !m.matched_any() {
                        break;
                    }
                    Some(m)
                }
                None => None,
            };
            let mut changed = false;
            for (i, red) in self.text.iter().enumerate() {
                if !red.may_occur(digits) || candidates.as_ref().is_some_and(|m| !m.matched(i)) {
                    continue;
                }
                let input = current.as_deref().unwrap_or(text);
                if let Some((out, n)) = red.redact_text(input) {
                    hit(red.name(), n);
                    // A replacement may create text another detector should see: re-filter.
                    candidates = self.text_set.as_ref().map(|set| set.matches(&out));
                    digits = count_digits(&out);
                    current = Some(out);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        current
    }
}

/// Most rounds of text detection over one string (see [`Plan::redact_text`]).
const MAX_DETECTOR_ROUNDS: usize = 4;

fn count_digits(text: &str) -> usize {
    text.bytes().filter(u8::is_ascii_digit).count()
}
