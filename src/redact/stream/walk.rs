//! The one pass: read a token, decide with the automata, write or skip.
//!
//! The decisions are those of the tree walker (`redact/walk.rs`), made on the token stream:
//! a member is removed before its value is read (the value is then only validated), a subtree
//! nothing can touch is validated and copied as it stands, and only kept strings and numbers
//! reach the redactors.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::super::plan::{FilterKind, Outcome, Plan, TextScratch};
use super::StreamError;
use super::automaton::{DEAD, Dfa, StateId};
use super::scan::{Scanner, Str, needs_escape, nest};

#[derive(Debug, Clone, Copy)]
enum Filter {
    /// Nothing below can be removed by the field filter.
    Keep,
    /// Filter paths are still live.
    Live(StateId),
}

#[derive(Debug, Clone, Copy)]
enum Rules {
    Off,
    Live(StateId),
    /// Field rule `rule` applies to this whole subtree.
    Apply(usize),
}

pub(crate) struct Walk<'p, 'a, 'o> {
    plan: &'p Plan,
    filter: &'p Dfa,
    rules: &'p Dfa,
    sc: Scanner<'a>,
    out: &'o mut Vec<u8>,
    /// Keys from the root to the current member (decoded).
    keys: Vec<Cow<'a, str>>,
    removed: BTreeSet<String>,
    redactions: BTreeMap<String, u64>,
    /// Whether any text detector is configured (else kept strings are copied untouched).
    detect: bool,
    /// The text detectors' buffers and counts, shared by every string of the document.
    scratch: TextScratch,
}

fn is_container(b: u8) -> bool {
    b == b'{' || b == b'['
}

impl<'p, 'a, 'o> Walk<'p, 'a, 'o> {
    pub(crate) fn new(
        plan: &'p Plan,
        filter: &'p Dfa,
        rules: &'p Dfa,
        input: &'a [u8],
        out: &'o mut Vec<u8>,
    ) -> Self {
        Self {
            plan,
            filter,
            rules,
            sc: Scanner::new(input),
            out,
            keys: Vec::new(),
            removed: BTreeSet::new(),
            redactions: BTreeMap::new(),
            detect: !plan.text.is_empty(),
            scratch: TextScratch::default(),
        }
    }

    pub(crate) fn run(mut self) -> Result<Outcome, StreamError> {
        let f = match self.plan.filter_kind {
            FilterKind::KeepAll => Filter::Keep,
            FilterKind::Allow | FilterKind::Deny => Filter::Live(self.filter.start()),
        };
        let r = if self.plan.rules.is_empty() {
            Rules::Off
        } else {
            Rules::Live(self.rules.start())
        };
        let first = self.sc.peek().ok_or(StreamError::Syntax)?;
        if self.removes_scalar(first, f) {
            self.remove();
            self.sc.skip(0)?;
            self.out.extend_from_slice(b"null");
        } else {
            self.value(f, r, 0)?;
        }
        self.sc.end()?;
        let counts = &mut self.redactions;
        self.scratch
            .take_counts(self.plan, &mut |name, n| count(counts, name, n));
        Ok(Outcome {
            fields_removed: self.removed.into_iter().collect(),
            redactions: self.redactions,
        })
    }

    /// Under a live allow-list a scalar stands where only an ancestor (a container) may.
    fn removes_scalar(&self, first: u8, f: Filter) -> bool {
        !is_container(first)
            && matches!(f, Filter::Live(_))
            && self.plan.filter_kind == FilterKind::Allow
    }

    /// Records the current path as removed.
    fn remove(&mut self) {
        // Built as the tree walker builds it: a dot only after a non-empty prefix.
        let mut path = String::new();
        for k in &self.keys {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
        }
        if path.is_empty() {
            path.push_str("(document)");
        }
        if !self.removed.contains(&path) {
            self.removed.insert(path);
        }
    }

    fn count(&mut self, name: &str, n: u64) {
        count(&mut self.redactions, name, n);
    }

    /// Writes the value that starts here, at `depth` open containers.
    fn value(&mut self, f: Filter, r: Rules, depth: usize) -> Result<(), StreamError> {
        let b = self.sc.peek().ok_or(StreamError::Syntax)?;
        if let (Filter::Keep, Rules::Off, false) = (f, r, self.detect) {
            // Nothing below can change: validate and copy as written.
            let start = self.sc.pos();
            self.sc.skip(depth)?;
            let raw = self.sc.slice(start, self.sc.pos());
            self.out.extend_from_slice(raw);
            return Ok(());
        }
        match b {
            b'{' => self.object(f, r, depth),
            b'[' => self.array(f, r, depth),
            b'"' => {
                let s = self.sc.string()?;
                self.string(s, r)
            }
            b'-' | b'0'..=b'9' => {
                let n = self.sc.number()?;
                self.number(n, r)
            }
            _ => {
                let start = self.sc.pos();
                self.sc.literal()?;
                let raw = self.sc.slice(start, self.sc.pos());
                self.out.extend_from_slice(raw);
                Ok(())
            }
        }
    }

    fn object(&mut self, f: Filter, r: Rules, depth: usize) -> Result<(), StreamError> {
        let depth = nest(depth)?;
        self.sc.expect(b'{')?;
        self.out.push(b'{');
        self.sc.open_object();
        let mut first = true;
        if !self.sc.empty(b'}') {
            loop {
                let key = self.sc.key()?;
                self.member(key, f, r, depth, &mut first)?;
                if !self.sc.more(b'}')? {
                    break;
                }
            }
        }
        self.sc.close_object()?;
        self.out.push(b'}');
        Ok(())
    }

    fn member(
        &mut self,
        key: Str<'a>,
        f: Filter,
        r: Rules,
        depth: usize,
        first: &mut bool,
    ) -> Result<(), StreamError> {
        let text = key.text()?;
        if !(super::super::walk::field_name(&text) || self.plan.literals.contains(text.as_ref())) {
            return Err(StreamError::NeedsTree);
        }
        let states = self.member_states(&text, f, r);
        self.keys.push(text);
        let result = match states {
            None => self.sc.skip(depth),
            Some((cf, cr)) => {
                let b = self.sc.peek().ok_or(StreamError::Syntax)?;
                if self.removes_scalar(b, cf) {
                    self.remove();
                    self.sc.skip(depth)
                } else {
                    if !*first {
                        self.out.push(b',');
                    }
                    *first = false;
                    self.out.push(b'"');
                    self.out.extend_from_slice(key.raw);
                    self.out.extend_from_slice(b"\":");
                    self.value(cf, cr, depth)
                }
            }
        };
        self.keys.pop();
        result
    }

    /// The member's filter and rule states; `None` when the field filter removes it (the
    /// removal already recorded).
    fn member_states(&mut self, key: &str, f: Filter, r: Rules) -> Option<(Filter, Rules)> {
        let cf = match f {
            Filter::Keep => Filter::Keep,
            Filter::Live(s) => {
                let next = self.filter.step(s, key);
                match (self.plan.filter_kind, self.filter.completed(next)) {
                    (FilterKind::Deny, Some(_)) => {
                        self.remove_member(key);
                        return None;
                    }
                    (_, Some(_)) => Filter::Keep,
                    (FilterKind::Allow, None) if next == DEAD => {
                        self.remove_member(key);
                        return None;
                    }
                    (_, None) if next == DEAD => Filter::Keep,
                    (_, None) => Filter::Live(next),
                }
            }
        };
        let cr = match r {
            Rules::Off | Rules::Apply(_) => r,
            Rules::Live(s) => {
                let next = self.rules.step(s, key);
                match self.rules.completed(next) {
                    Some(path) => {
                        Rules::Apply(self.plan.rule_of_path.get(path).copied().unwrap_or(0))
                    }
                    None if next == DEAD => Rules::Off,
                    None => Rules::Live(next),
                }
            }
        };
        Some((cf, cr))
    }

    /// Records the removal of the member `key` of the current object.
    fn remove_member(&mut self, key: &str) {
        self.keys.push(Cow::Owned(key.to_owned()));
        self.remove();
        self.keys.pop();
    }

    fn array(&mut self, f: Filter, r: Rules, depth: usize) -> Result<(), StreamError> {
        let depth = nest(depth)?;
        self.sc.expect(b'[')?;
        self.out.push(b'[');
        let mut first = true;
        if !self.sc.empty(b']') {
            loop {
                let b = self.sc.peek().ok_or(StreamError::Syntax)?;
                if self.removes_scalar(b, f) {
                    self.remove();
                    self.sc.skip(depth)?;
                } else {
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    self.value(f, r, depth)?;
                }
                if !self.sc.more(b']')? {
                    break;
                }
            }
        }
        self.out.push(b']');
        Ok(())
    }

    /// The redactor of field rule `rule` over `text`; always rewrites.
    fn field_redact(&mut self, text: &str, rule: usize) {
        let plan = self.plan;
        match plan.rule_redactors.get(rule) {
            Some(red) => {
                let out = red.redact_field(text);
                self.count(red.name(), 1);
                write_str(self.out, &out);
            }
            // Not reachable for a compiled plan; fail closed all the same.
            None => write_str(self.out, super::super::REDACTED),
        }
    }

    /// Runs the text detectors over `text` and writes it as a JSON string if they replaced
    /// something; `false` (nothing written) otherwise.
    fn detect(&mut self, text: &str) -> bool {
        match self.plan.redact_into(text, &mut self.scratch) {
            Some(out) => {
                write_str(self.out, out);
                true
            }
            None => false,
        }
    }

    fn string(&mut self, s: Str<'a>, r: Rules) -> Result<(), StreamError> {
        if let Rules::Apply(rule) = r {
            let text = s.text()?;
            self.field_redact(&text, rule);
            return Ok(());
        }
        if self.detect && self.detect(&s.text()?) {
            return Ok(());
        }
        self.out.push(b'"');
        self.out.extend_from_slice(s.raw);
        self.out.push(b'"');
        Ok(())
    }

    fn number(&mut self, raw: &[u8], r: Rules) -> Result<(), StreamError> {
        let text = std::str::from_utf8(raw).map_err(|_| StreamError::Syntax)?;
        if let Rules::Apply(rule) = r {
            self.field_redact(text, rule);
            return Ok(());
        }
        if self.detect && self.detect(text) {
            return Ok(());
        }
        self.out.extend_from_slice(raw);
        Ok(())
    }
}

fn count(redactions: &mut BTreeMap<String, u64>, name: &str, n: u64) {
    if let Some(c) = redactions.get_mut(name) {
        *c += n;
    } else {
        redactions.insert(name.to_owned(), n);
    }
}

/// Writes `s` as a JSON string (escaping as serde_json does).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        // Eight bytes at a time while none of them needs escaping.
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !needs_escape(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        i += 1;
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i - 1).unwrap_or_default());
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}
