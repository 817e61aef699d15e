//! Engine tests: every detector's forms, whole spans, overlaps, folding.
#![allow(clippy::unwrap_used)]
