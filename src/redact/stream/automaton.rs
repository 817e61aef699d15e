//! Field paths compiled into a deterministic automaton over object keys.
//!
//! A state of the path automaton is "path `p`, next segment `i`"; the walker of the tree keeps
//! sets of them (see `matcher.rs`). Here every reachable set is computed once, when the plan is
//! built (subset construction), and numbered: a step is then a lookup among the literal keys the
//! set can match, or the set's `other` transition for any other key. `**` costs nothing extra
//! per key, whatever the depth.

use std::collections::HashMap;

use super::super::path::{FieldPath, Segment};

/// Subset construction stops here; a plan whose paths need more states is walked as a tree.
const MAX_STATES: usize = 4096;

/// A state number. State 0 is dead: nothing can match below it.
pub(crate) type StateId = u32;

/// The dead state.
pub(crate) const DEAD: StateId = 0;

#[derive(Debug, Clone)]
struct DState {
    /// Transitions on the literal keys this set can match, sorted by key.
    literal: Box<[(Box<str>, StateId)]>,
    /// Transition on every other key.
    other: StateId,
    /// The lowest index of a path complete in this set.
    completed: Option<usize>,
}

/// A compiled automaton for one list of field paths.
#[derive(Debug, Clone)]
pub(crate) struct Dfa {
    states: Vec<DState>,
    start: StateId,
}

type Set = Vec<(u32, u32)>;

fn segment(paths: &[FieldPath], (p, i): (u32, u32)) -> Option<&Segment> {
    paths
        .get(p as usize)
        .and_then(|path| path.segments().get(i as usize))
}

/// Adds `s` and what `**` reaches from it without consuming a key.
fn closure(paths: &[FieldPath], set: &mut Set, mut s: (u32, u32)) {
    loop {
        set.push(s);
        match segment(paths, s) {
            Some(Segment::AnyDepth) => s.1 += 1,
            _ => return,
        }
    }
}

/// The set reached from `from` by a key: `Some(k)` a literal key, `None` any key not
/// literal in `from`.
fn step(paths: &[FieldPath], from: &Set, key: Option<&str>) -> Set {
    let mut next = Vec::new();
    for &s in from {
        match segment(paths, s) {
            Some(Segment::Key(k)) if Some(k.as_str()) == key => {
                closure(paths, &mut next, (s.0, s.1 + 1))
            }
            Some(Segment::Any) => closure(paths, &mut next, (s.0, s.1 + 1)),
            Some(Segment::AnyDepth) => closure(paths, &mut next, s),
            Some(Segment::Key(_)) | None => {}
        }
    }
    next.sort_unstable();
    next.dedup();
    next
}

impl Dfa {
    /// Compiles `paths`; `None` when the automaton would exceed its size bound.
    pub(crate) fn new(paths: &[FieldPath]) -> Option<Self> {
        let mut root = Vec::new();
        for p in 0..paths.len() {
            closure(paths, &mut root, (u32::try_from(p).ok()?, 0));
        }
        root.sort_unstable();
        root.dedup();
        let mut ids: HashMap<Set, StateId> = HashMap::new();
        let mut sets: Vec<Set> = vec![Vec::new()];
        ids.insert(Vec::new(), DEAD);
        let mut intern = |set: Set, sets: &mut Vec<Set>| -> Option<StateId> {
            if let Some(&id) = ids.get(&set) {
                return Some(id);
            }
            if sets.len() >= MAX_STATES {
                return None;
            }
            let id = StateId::try_from(sets.len()).ok()?;
            ids.insert(set.clone(), id);
            sets.push(set);
            Some(id)
        };
        let start = intern(root, &mut sets)?;
        let mut states = Vec::new();
        let mut next = 0;
        while let Some(set) = sets.get(next).cloned() {
            next += 1;
            let mut keys: Vec<&str> = set
                .iter()
                .filter_map(|&s| match segment(paths, s) {
                    Some(Segment::Key(k)) => Some(k.as_str()),
                    _ => None,
                })
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let mut literal = Vec::with_capacity(keys.len());
            for k in keys {
                let id = intern(step(paths, &set, Some(k)), &mut sets)?;
                literal.push((Box::from(k), id));
            }
            let other = intern(step(paths, &set, None), &mut sets)?;
            let completed = set
                .iter()
                .filter(|&&s| segment(paths, s).is_none())
                .map(|s| s.0 as usize)
                .min();
            states.push(DState {
                literal: literal.into_boxed_slice(),
                other,
                completed,
            });
        }
        Some(Self { states, start })
    }

    /// The state at the document root.
    pub(crate) fn start(&self) -> StateId {
        self.start
    }

    /// The state reached from `s` by the object key `key`.
    #[inline]
    pub(crate) fn step(&self, s: StateId, key: &str) -> StateId {
        let Some(st) = self.states.get(s as usize) else {
            return DEAD;
        };
        // Most states name a handful of keys: a linear scan (`str` equality compares lengths
        // first) beats the binary search's ordered comparisons.
        if st.literal.len() <= 8 {
            return st
                .literal
                .iter()
                .find(|(k, _)| **k == *key)
                .map_or(st.other, |t| t.1);
        }
        match st.literal.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => st.literal.get(i).map_or(DEAD, |t| t.1),
            Err(_) => st.other,
        }
    }

    /// The lowest index of a path complete in `s`.
    #[inline]
    pub(crate) fn completed(&self, s: StateId) -> Option<usize> {
        self.states.get(s as usize).and_then(|st| st.completed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dfa(paths: &[&str]) -> Dfa {
        let paths: Vec<FieldPath> = paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
        Dfa::new(&paths).unwrap()
    }

    fn walk(d: &Dfa, keys: &[&str]) -> (Option<usize>, bool) {
        let s = keys.iter().fold(d.start(), |s, k| d.step(s, k));
        (d.completed(s), s != DEAD)
    }

    #[test]
    fn literal_and_wildcards() {
        let d = dfa(&["a.b", "*.c", "**.email", "payment.**"]);
        assert_eq!(walk(&d, &["a", "b"]).0, Some(0));
        assert_eq!(walk(&d, &["a"]), (None, true));
        assert_eq!(walk(&d, &["x", "c"]).0, Some(1));
        assert_eq!(walk(&d, &["email"]).0, Some(2));
        assert_eq!(walk(&d, &["x", "y", "z", "email"]).0, Some(2));
        assert_eq!(walk(&d, &["payment"]).0, Some(3));
        assert_eq!(walk(&d, &["payment", "card", "x"]).0, Some(3));
        assert_eq!(walk(&d, &["b"]).0, None);
    }

    #[test]
    fn middle_any_depth_and_dead_ends() {
        let d = dfa(&["a.**.z"]);
        assert_eq!(walk(&d, &["a", "z"]).0, Some(0));
        assert_eq!(walk(&d, &["a", "b", "c", "z"]).0, Some(0));
        assert_eq!(walk(&d, &["a", "b"]), (None, true));
        assert_eq!(walk(&d, &["b", "z"]), (None, false));
    }

    #[test]
    fn repeated_any_depth_stays_small() {
        let d = dfa(&["**.a.**.b", "**.c.**.d.**.e"]);
        assert!(d.states.len() < 64, "{}", d.states.len());
    }
}
