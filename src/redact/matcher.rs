//! A compiled set of field paths, matched while walking a document once.
//!
//! Each path is a small automaton; a state is "path `p`, next segment `pos`". The walker keeps
//! the live states of every open node in one arena (`Vec<State>`): a node's states are a range of
//! the arena, its children's states are appended after it and truncated when the child is done, so
//! matching allocates nothing once the arena has grown.

use std::ops::Range;

use super::path::{FieldPath, Segment};

/// One automaton state: path index and the index of the next segment to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    path: u32,
    pos: u32,
}

/// A list of field paths compiled for matching.
#[derive(Debug, Clone)]
pub(crate) struct PathMatcher {
    paths: Vec<FieldPath>,
}

impl PathMatcher {
    pub(crate) fn new(paths: Vec<FieldPath>) -> Self {
        Self { paths }
    }

    pub(crate) fn paths(&self) -> &[FieldPath] {
        &self.paths
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    fn segment(&self, s: State) -> Option<&Segment> {
        self.paths
            .get(s.path as usize)
            .and_then(|p| p.segments().get(s.pos as usize))
    }

    /// Adds `s` and, through `**` (which may match zero keys), the states it reaches for free.
    fn add_closure(&self, arena: &mut Vec<State>, start: usize, mut s: State) {
        loop {
            if !arena.get(start..).is_some_and(|seen| seen.contains(&s)) {
                arena.push(s);
            }
            match self.segment(s) {
                Some(Segment::AnyDepth) => s.pos += 1,
                _ => return,
            }
        }
    }

    /// Appends the states at the document root; returns their range.
    pub(crate) fn start(&self, arena: &mut Vec<State>) -> Range<usize> {
        let start = arena.len();
        for p in 0..self.paths.len() {
            let path = u32::try_from(p).unwrap_or(u32::MAX);
            self.add_closure(arena, start, State { path, pos: 0 });
        }
        start..arena.len()
    }

    /// Appends the states reached from `from` by the object key `key`; returns their range.
    pub(crate) fn step(
        &self,
        arena: &mut Vec<State>,
        from: Range<usize>,
        key: &str,
    ) -> Range<usize> {
        let start = arena.len();
        for i in from {
            let Some(&s) = arena.get(i) else { break };
            match self.segment(s) {
                Some(Segment::Key(k)) if k == key => {
                    self.add_closure(
                        arena,
                        start,
                        State {
                            pos: s.pos + 1,
                            ..s
                        },
                    );
                }
                Some(Segment::Any) => {
                    self.add_closure(
                        arena,
                        start,
                        State {
                            pos: s.pos + 1,
                            ..s
                        },
                    );
                }
                Some(Segment::AnyDepth) => {
                    // Consume the key and stay on `**`; the closure already tried skipping it.
                    self.add_closure(arena, start, s);
                }
                Some(Segment::Key(_)) | None => {}
            }
        }
        start..arena.len()
    }

    /// The first path (lowest index) that is complete among `states`.
    pub(crate) fn completed(&self, arena: &[State], states: Range<usize>) -> Option<usize> {
        arena
            .get(states)?
            .iter()
            .filter(|s| self.segment(**s).is_none())
            .map(|s| s.path as usize)
            .min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn matcher(paths: &[&str]) -> PathMatcher {
        PathMatcher::new(paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect())
    }

    fn walk(m: &PathMatcher, keys: &[&str]) -> (Option<usize>, bool) {
        let mut arena = Vec::new();
        let mut r = m.start(&mut arena);
        for k in keys {
            r = m.step(&mut arena, r, k);
        }
        let live = !r.is_empty();
        (m.completed(&arena, r), live)
    }

    #[test]
    fn literal_and_wildcards() {
        let m = matcher(&["a.b", "*.c", "**.email", "payment.**"]);
        assert_eq!(walk(&m, &["a", "b"]).0, Some(0));
        assert_eq!(walk(&m, &["a"]), (None, true));
        assert_eq!(walk(&m, &["x", "c"]).0, Some(1));
        assert_eq!(walk(&m, &["email"]).0, Some(2));
        assert_eq!(walk(&m, &["x", "y", "z", "email"]).0, Some(2));
        assert_eq!(walk(&m, &["payment"]).0, Some(3));
        assert_eq!(walk(&m, &["payment", "card", "x"]).0, Some(3));
        assert_eq!(walk(&m, &["b"]).0, None);
    }

    #[test]
    fn middle_any_depth() {
        let m = matcher(&["a.**.z"]);
        assert_eq!(walk(&m, &["a", "z"]).0, Some(0));
        assert_eq!(walk(&m, &["a", "b", "c", "z"]).0, Some(0));
        assert_eq!(walk(&m, &["a", "b"]), (None, true));
        assert_eq!(walk(&m, &["b", "z"]), (None, false));
    }

    #[test]
    fn states_do_not_grow_under_repeated_keys() {
        let m = matcher(&["**.a.**.b"]);
        let mut arena = Vec::new();
        let mut r = m.start(&mut arena);
        for _ in 0..50 {
            r = m.step(&mut arena, r, "a");
        }
        assert!(r.len() <= 4);
    }
}
