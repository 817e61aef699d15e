//! A compiled minimisation-and-redaction plan for one purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::detect::{Engine, Normalized, Scratch, SpanReport, apply, spans};

use super::matcher::PathMatcher;
use super::path::{FieldPath, Segment};
use super::redactor::Redactor;
use super::stream::Compiled;
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

/// Most rounds of detection over one value (see [`Plan::redact_text`]).
const MAX_ROUNDS: usize = 8;

/// The buffers the text detectors work in, shared by the texts of one document: a round's
/// scratch and the text of the last two rounds.
#[derive(Debug, Default)]
pub(crate) struct TextScratch {
    round: Scratch,
    current: String,
    next: String,
}

impl TextScratch {
    /// Calls `hit(redactor name, count)` for each of `plan`'s text detectors that replaced
    /// something since the counts were last taken.
    pub(crate) fn take_counts(&mut self, plan: &Plan, hit: &mut dyn FnMut(&str, u64)) {
        self.round.take_counts(&plan.text, hit);
    }
}

/// A span of free text that the text detectors replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedSpan {
    /// Byte offset of the first replaced byte.
    pub start: usize,
    /// Byte offset just after the last replaced byte.
    pub end: usize,
    /// The redactor that takes the span.
    pub redactor: String,
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
/// - Text detectors run over string values, over numbers (as their decimal text; a number
///   that is redacted becomes a string) and over object keys, whatever the field rules: a key
///   holding personal data is released under its redacted text. Paths are matched on the keys
///   as received. Two keys that redact to the same text (two e-mail addresses both becoming
///   `[EMAIL]`) stay apart: the later ones in document order get `#2`, `#3`, … (never the name
///   of another key), so no entry is merged or dropped.
/// - Recorded paths (`fields_removed`, explanations) never copy data from the document: a key is
///   written as itself only when the policy names it, or when it is a plain field name
///   ([`field_name`](super::walk::field_name)) and so are all its siblings; otherwise as `*`.
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
    /// Text detectors, sorted by name, each once.
    pub(crate) text: Vec<Arc<Redactor>>,
    pub(crate) engine: Engine,
    /// Every literal key of the filter's and the rules' paths (recorded as they are).
    pub(crate) literals: BTreeSet<String>,
    /// The field paths compiled for [`Plan::minimise_json`] (`None`: walk a tree: the paths
    /// need too many states, or a `pattern:` text redactor could rename plain keys).
    pub(crate) stream: Option<Compiled>,
}

impl Plan {
    /// Compiles a plan.
    ///
    /// The text detectors all propose candidates over the original text and overlaps are
    /// resolved by a fixed rule (validated, then longer, then priority, then name; see
    /// [`redact_text`](Plan::redact_text)), so their order in the policy does not matter: they
    /// are kept sorted by name, each once.
    pub fn new(
        filter: FieldFilter,
        field_rules: Vec<FieldRule>,
        mut text: Vec<Arc<Redactor>>,
    ) -> Self {
        text.sort_by(|a, b| a.name().cmp(b.name()));
        text.dedup_by(|a, b| a.name() == b.name());
        let engine = Engine::new(&text);
        let mut literals = BTreeSet::new();
        let filter_paths = match &filter {
            FieldFilter::KeepAll => &[][..],
            FieldFilter::Allow(p) | FieldFilter::Deny(p) => &p[..],
        };
        for p in filter_paths
            .iter()
            .chain(field_rules.iter().flat_map(|r| &r.paths))
        {
            for seg in p.segments() {
                if let Segment::Key(k) = seg {
                    literals.insert(k.clone());
                }
            }
        }
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
        let rules = PathMatcher::new(paths);
        // Built-in detectors cannot match a plain field name (they need `@`, `:`, `.` or more
        // than two digits), so on documents whose keys are all plain the streaming walk needs
        // no key redaction; a `pattern:` text redactor could, so such plans walk a tree.
        let stream = if text.iter().all(|r| r.detector().is_some()) {
            Compiled::new(&filter, &rules)
        } else {
            None
        };
        Self {
            filter_kind,
            filter,
            rules,
            rule_of_path,
            rule_redactors,
            text,
            engine,
            literals,
            stream,
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

    /// The text detectors, sorted by name.
    pub fn text_detectors(&self) -> &[Arc<Redactor>] {
        &self.text
    }

    /// Runs the text detectors over one free-text value (a string, a number's text, an object
    /// key) and calls `hit(redactor name, count)` for each redactor that replaced something.
    /// `Some(new text)` only when something was replaced; nothing is allocated otherwise.
    ///
    /// Every detector proposes candidate spans over the text (digits of every script and
    /// full-width forms folded to ASCII); every candidate is hidden, and where candidates
    /// overlap the best one names the replacement: validated beats unvalidated, longer beats
    /// shorter, then detector priority, then redactor name. The parts of a lesser candidate
    /// outside the better one are replaced on their own. Replacements are applied once per
    /// round; a round that replaced something is followed by another over its output (at most
    /// [`MAX_ROUNDS`]), because a replacement can give a neighbour the word boundary it lacked
    /// (`…1111DE89 3704…`: the IBAN glued to a card number stands alone once the card is gone).
    pub(crate) fn redact_text(&self, text: &str, hit: &mut dyn FnMut(&str, u64)) -> Option<String> {
        let mut scratch = TextScratch::default();
        let replaced = self.redact_into(text, &mut scratch).is_some();
        scratch.take_counts(self, hit);
        replaced.then(|| std::mem::take(&mut scratch.current))
    }

    /// [`redact_text`](Plan::redact_text) in `scratch`, whose buffers the texts of one document
    /// share: `Some(new text)`, borrowed from `scratch`, only when something was replaced. The
    /// replacements are added to `scratch`'s counts, not reported.
    pub(crate) fn redact_into<'s>(
        &self,
        text: &str,
        scratch: &'s mut TextScratch,
    ) -> Option<&'s str> {
        if self.engine.is_empty() {
            return None;
        }
        let TextScratch {
            round,
            current,
            next,
        } = scratch;
        let mut replaced = false;
        for _ in 0..MAX_ROUNDS {
            let input: &str = if replaced { current } else { text };
            let norm = Normalized::new(input);
            self.engine.find(&self.text, norm.as_str(), round, None);
            next.clear();
            let Some(again) = apply(&self.text, &norm, input, round, next, None) else {
                break;
            };
            std::mem::swap(current, next);
            replaced = true;
            if !again {
                break;
            }
        }
        replaced.then_some(current.as_str())
    }

    /// The spans of `text` the text detectors replace in their first round, in order, each with
    /// the name of the redactor that takes it (byte offsets into `text`).
    pub fn detect_spans(&self, text: &str) -> Vec<DetectedSpan> {
        if self.engine.is_empty() {
            return Vec::new();
        }
        let norm = Normalized::new(text);
        let mut scratch = Scratch::default();
        self.engine
            .find(&self.text, norm.as_str(), &mut scratch, None);
        spans(&self.text, &norm, &mut scratch)
            .into_iter()
            .filter_map(|p| {
                let r = self.text.get(usize::from(p.member))?;
                Some(DetectedSpan {
                    start: p.start,
                    end: p.end,
                    redactor: r.name().to_owned(),
                })
            })
            .collect()
    }

    /// Like [`redact_text`](Plan::redact_text), and also describes each replaced span: which
    /// redactor took it, and why each overlapping candidate lost or was refused.
    pub(crate) fn explain_text(
        &self,
        text: &str,
        hit: &mut dyn FnMut(&str, u64),
    ) -> (Option<String>, Vec<String>) {
        if self.engine.is_empty() {
            return (None, Vec::new());
        }
        let mut current: Option<String> = None;
        let mut reports: Vec<SpanReport> = Vec::new();
        let mut scratch = Scratch::default();
        for round in 0..MAX_ROUNDS {
            let input = current.as_deref().unwrap_or(text);
            let norm = Normalized::new(input);
            let mut rejected = Vec::new();
            self.engine
                .find(&self.text, norm.as_str(), &mut scratch, Some(&mut rejected));
            let before = reports.len();
            let mut out = String::new();
            let again = apply(
                &self.text,
                &norm,
                input,
                &mut scratch,
                &mut out,
                Some((&rejected, &mut reports)),
            );
            if round > 0 {
                for r in reports.iter_mut().skip(before) {
                    r.text = format!("after round {round}: {}", r.text);
                }
            }
            let Some(again) = again else { break };
            current = Some(out);
            if !again {
                break;
            }
        }
        scratch.take_counts(&self.text, hit);
        let out = current;
        (out, reports.into_iter().map(|r| r.text).collect())
    }
}
