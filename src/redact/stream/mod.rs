//! Streaming minimisation: one pass over the upstream's bytes, no document tree.
//!
//! [`Plan::minimise_json`] reads the JSON text token by token and writes the released text as
//! it goes. The plan's field paths are compiled once into deterministic automata over object
//! keys (`automaton.rs`), so deciding a member is one table lookup, `**` included. A removed
//! member's value is validated and passed over without being copied or allocated; a subtree
//! that nothing can change (field filter satisfied, no field rule live, no text detector) is
//! validated and copied as written; only kept strings and numbers reach the redactors.
//!
//! The result is the tree walker's ([`Plan::apply`] over a parsed `serde_json::Value`), checked
//! by a property test and a fuzz target: the same JSON value (member order and white space are
//! the upstream's, where the tree sorts keys and writes compactly) and the same [`Outcome`].
//! Input is read as strictly as `serde_json` reads it (grammar, UTF-8, escapes and surrogate
//! pairs, at most 127 nested containers), and more strictly in one way: an object that names a
//! key twice is refused anywhere in the document, removed parts included.
//!
//! The walk covers documents whose visited keys are plain field names (or named by the plan),
//! and plans whose text redactors are built-in detectors: there, no key is redacted and every
//! recorded path names keys as they are. Any other key makes the walk hand the document to the
//! tree walker ([`StreamError::NeedsTree`]), which alone implements key redaction and the `*`
//! paths of map-like objects; plans with `pattern:` text redactors always use the tree.

mod automaton;
pub mod locate;
mod scan;
mod walk;

#[cfg(test)]
mod tests;

use automaton::Dfa;

use super::matcher::PathMatcher;
use super::plan::{Outcome, Plan};

/// Why a document could not be minimised. Messages never quote the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Not JSON (grammar, encoding, escapes, trailing bytes).
    #[error("the document is not valid JSON")]
    Syntax,
    /// An object names the same key twice (its meaning would depend on the reader).
    #[error("an object in the document names the same key twice")]
    DuplicateKey,
    /// More nested containers than the parser accepts.
    #[error(
        "the document nests containers deeper than {} levels",
        scan::MAX_NESTING
    )]
    TooDeep,
    /// An object key that is neither a plain field name nor named by the plan: which of an
    /// object's keys are recorded as `*` and which keys are redacted depend on all its keys,
    /// so the document is minimised through the tree walker. [`Plan::minimise_json`] handles
    /// it itself and never returns it.
    #[error("the document's keys need the tree walker")]
    NeedsTree,
}

/// A plan's field paths compiled for the streaming walk.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    filter: Dfa,
    rules: Dfa,
}

impl Compiled {
    /// `None` when a path list needs more automaton states than allowed (the plan is then
    /// applied to a parsed tree).
    pub(crate) fn new(filter: &PathMatcher, rules: &PathMatcher) -> Option<Self> {
        Some(Self {
            filter: Dfa::new(filter.paths())?,
            rules: Dfa::new(rules.paths())?,
        })
    }
}

impl Plan {
    /// Minimises and redacts the JSON text `input`, appending the released JSON text to `out`.
    ///
    /// Same result as parsing `input`, [`Plan::apply`] and serialising, in one pass; on an
    /// error `out` holds a partial document that must not be released.
    pub fn minimise_json(&self, input: &[u8], out: &mut Vec<u8>) -> Result<Outcome, StreamError> {
        let Some(c) = &self.stream else {
            return self.minimise_tree(input, out);
        };
        let start = out.len();
        match walk::Walk::new(self, &c.filter, &c.rules, input, out).run() {
            Err(StreamError::NeedsTree) => {
                out.truncate(start);
                self.minimise_tree(input, out)
            }
            done => done,
        }
    }

    /// The same through a parsed tree, for plans too large to compile.
    fn minimise_tree(&self, input: &[u8], out: &mut Vec<u8>) -> Result<Outcome, StreamError> {
        let mut sc = scan::Scanner::new(input);
        sc.skip(0)?;
        sc.end()?;
        let mut doc: serde_json::Value =
            serde_json::from_slice(input).map_err(|_| StreamError::Syntax)?;
        let outcome = self.apply(&mut doc);
        serde_json::to_writer(out, &doc).map_err(|_| StreamError::Syntax)?;
        Ok(outcome)
    }
}
