//! Named redactors: what finds the text (a built-in detector, or a regex with an optional
//! validator) and what replaces it (an action).

use std::fmt;

use aws_lc_rs::hmac;
use regex::{Regex, RegexBuilder};

use super::detect::{Detector, Engine, Normalized, Scratch, Sink, apply};
use super::validate::Validator;

/// Prefix of pseudonyms produced by the `hash` action.
pub const HASH_PREFIX: &str = "h_";
/// Text that replaces a field-scoped value when a `replace` redactor's pattern does not match it.
pub const REDACTED: &str = "[REDACTED]";
/// Upper bound on a compiled pattern's size, so a policy cannot exhaust memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 21;
/// Matches refused by a validator after which a pattern stops retrying inside each refused
/// match (so a pattern like `\d+` over a long digit run stays linear).
const RETRY_BUDGET: usize = 256;

/// What a redactor does with a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace the match with this text; with a pattern, `$1`, `${name}` refer to capture
    /// groups (a built-in detector's replacement is literal).
    Replace(String),
    /// Replace the match with `*`s except its last `keep_last` letters or digits. Never shows
    /// more than half of the match's letters and digits, and nothing of a match that has no
    /// more than `keep_last` of them (a CVV under a card mask is fully masked).
    Mask {
        /// How many trailing letters or digits stay visible (at most).
        keep_last: usize,
    },
    /// Replace the match with a keyed, stable pseudonym: `h_` + the first 16 hex digits of
    /// HMAC-SHA256(key, match), the match read with digits and full-width forms folded to ASCII.
    Hash,
}

/// Why a redactor could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactorError {
    /// The regex does not compile.
    #[error("redactor \"{name}\" has a pattern that is not a valid regular expression: {reason}")]
    Pattern {
        /// Redactor name.
        name: String,
        /// The regex engine's explanation (first line).
        reason: String,
    },
    /// A `hash` redactor without a key.
    #[error(
        "redactor \"{name}\" uses hash, which needs a secret key: set [policies] hash_secret_file in the config"
    )]
    MissingHashKey {
        /// Redactor name.
        name: String,
    },
}

#[derive(Clone)]
enum CompiledAction {
    Replace { text: String, uses_groups: bool },
    Mask { keep_last: usize },
    Hash(Box<hmac::Key>),
}

#[derive(Clone)]
enum Matcher {
    Pattern {
        regex: Regex,
        validator: Option<Validator>,
    },
    Builtin(Detector),
}

/// A compiled, named redactor.
#[derive(Clone)]
pub struct Redactor {
    name: String,
    matcher: Matcher,
    action: CompiledAction,
    /// The engine with this redactor alone (field rules, [`Redactor::redact_text`]).
    solo: Engine,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Redactor");
        d.field("name", &self.name);
        match &self.matcher {
            Matcher::Pattern { regex, validator } => d
                .field("pattern", &regex.as_str())
                .field("validator", validator),
            Matcher::Builtin(det) => d.field("detector", det),
        };
        d.finish_non_exhaustive()
    }
}

impl Redactor {
    /// Compiles a regex redactor. `hash_key` is required when `action` is [`Action::Hash`].
    pub fn new(
        name: &str,
        pattern: &str,
        action: &Action,
        validator: Option<Validator>,
        hash_key: Option<&[u8]>,
    ) -> Result<Self, RedactorError> {
        let regex = RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| RedactorError::Pattern {
                name: name.to_owned(),
                reason: regex_reason(&e),
            })?;
        Self::build(
            name,
            Matcher::Pattern { regex, validator },
            action,
            hash_key,
        )
    }

    /// A redactor backed by a built-in detector. A `replace` text is inserted literally.
    pub fn builtin(
        name: &str,
        detector: Detector,
        action: &Action,
        hash_key: Option<&[u8]>,
    ) -> Result<Self, RedactorError> {
        Self::build(name, Matcher::Builtin(detector), action, hash_key)
    }

    fn build(
        name: &str,
        matcher: Matcher,
        action: &Action,
        hash_key: Option<&[u8]>,
    ) -> Result<Self, RedactorError> {
        let action = match action {
            Action::Replace(text) => CompiledAction::Replace {
                uses_groups: matches!(matcher, Matcher::Pattern { .. }) && text.contains('$'),
                text: text.clone(),
            },
            Action::Mask { keep_last } => CompiledAction::Mask {
                keep_last: *keep_last,
            },
            Action::Hash => {
                let key = hash_key.ok_or_else(|| RedactorError::MissingHashKey {
                    name: name.to_owned(),
                })?;
                CompiledAction::Hash(Box::new(hmac::Key::new(hmac::HMAC_SHA256, key)))
            }
        };
        let mut r = Self {
            name: name.to_owned(),
            matcher,
            action,
            solo: Engine::new::<&Redactor>(&[]),
        };
        r.solo = Engine::new(std::slice::from_ref(&&r));
        Ok(r)
    }

    /// The redactor's name (the key of the policy's `redactors` map).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pattern as written (`None` for a built-in detector).
    pub fn pattern(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Pattern { regex, .. } => Some(regex.as_str()),
            Matcher::Builtin(_) => None,
        }
    }

    /// The pattern's validator, if any.
    pub fn validator(&self) -> Option<Validator> {
        match &self.matcher {
            Matcher::Pattern { validator, .. } => *validator,
            Matcher::Builtin(_) => None,
        }
    }

    /// The built-in detector, if this redactor is one.
    pub fn detector(&self) -> Option<Detector> {
        match &self.matcher {
            Matcher::Builtin(d) => Some(*d),
            Matcher::Pattern { .. } => None,
        }
    }

    /// Rank among candidates of the same length: built-ins in [`Detector`] order, then patterns.
    pub(crate) fn priority(&self) -> u8 {
        match &self.matcher {
            Matcher::Builtin(d) => *d as u8,
            Matcher::Pattern { .. } => u8::MAX,
        }
    }

    /// Whether `text` has a (validated) match of this redactor.
    pub fn detects(&self, text: &str) -> bool {
        let norm = Normalized::new(text);
        let mut scratch = Scratch::default();
        self.solo.find(
            std::slice::from_ref(&self),
            norm.as_str(),
            &mut scratch,
            None,
        );
        !scratch.cands.is_empty()
    }

    /// Adds this pattern's matches in the folded `text` as candidates. A match that fails its
    /// validator may hide a valid one that starts inside it (`+49 30 1234567 5555 5555 5555
    /// 4444`: the leftmost digit run fails Luhn, the card inside it passes), so the search
    /// resumes just after the failed match's start rather than after its end.
    pub(crate) fn pattern_candidates(&self, text: &str, member: u16, sink: &mut Sink<'_>) {
        let Matcher::Pattern { regex, validator } = &self.matcher else {
            return;
        };
        let mut pos = 0;
        let mut refused = 0;
        while pos <= text.len() {
            let Some(m) = regex.find_at(text, pos) else {
                break;
            };
            if m.is_empty() {
                pos = next_boundary(text, m.end());
                continue;
            }
            match validator {
                Some(v) if !v.accepts(m.as_str()) => {
                    sink.reject_pattern(member, m.start(), m.end(), v.failure());
                    refused += 1;
                    pos = if refused < RETRY_BUDGET {
                        next_boundary(text, m.start())
                    } else {
                        m.end()
                    };
                }
                _ => {
                    sink.push_pattern(member, m.start(), m.end(), validator.is_some());
                    pos = m.end();
                }
            }
        }
    }

    /// Rewrites every match in `text`. `None` when nothing matched (no allocation).
    pub fn redact_text(&self, text: &str) -> Option<(String, u64)> {
        let norm = Normalized::new(text);
        let mut scratch = Scratch::default();
        let members = std::slice::from_ref(&self);
        self.solo.find(members, norm.as_str(), &mut scratch, None);
        let mut out = String::new();
        apply(members, &norm, text, &mut scratch, &mut out, None)?;
        Some((out, scratch.counts.first().copied().unwrap_or(0)))
    }

    /// Redacts a value named by a field rule. Always changes it: matches are rewritten; if
    /// nothing matches (or the rewrite gives the value back unchanged), `mask` and `hash` apply
    /// to the whole value and `replace` yields [`REDACTED`].
    pub fn redact_field(&self, text: &str) -> String {
        if let Some((out, _)) = self.redact_text(text)
            && out != text
        {
            return out;
        }
        match &self.action {
            CompiledAction::Replace { .. } => REDACTED.to_owned(),
            CompiledAction::Mask { keep_last } => mask(text, *keep_last),
            CompiledAction::Hash(key) => pseudonym(key, Normalized::new(text).as_str()),
        }
    }

    /// Appends the replacement of one placed span: `original` is its text as sent, `folded`
    /// the whole folded text and `start..end` the span in it; `whole` is false for the part of
    /// a candidate that a better one overlapped (its capture groups are then not used).
    pub(crate) fn replace_into(
        &self,
        original: &str,
        folded: &str,
        start: usize,
        end: usize,
        whole: bool,
        out: &mut String,
    ) {
        match &self.action {
            CompiledAction::Replace { text, uses_groups } => {
                if !*uses_groups {
                    out.push_str(text);
                    return;
                }
                if whole
                    && let Matcher::Pattern { regex, .. } = &self.matcher
                    && let Some(caps) = regex.captures_at(folded, start)
                    && caps
                        .get(0)
                        .is_some_and(|m| m.start() == start && m.end() == end)
                {
                    caps.expand(text, out);
                    return;
                }
                out.push_str(REDACTED);
            }
            CompiledAction::Mask { keep_last } => out.push_str(&mask(original, *keep_last)),
            CompiledAction::Hash(key) => {
                out.push_str(&pseudonym(key, folded.get(start..end).unwrap_or(original)));
            }
        }
    }
}

/// The byte index just after the character at `i` (past the end when `i` is the end).
fn next_boundary(text: &str, i: usize) -> usize {
    i + text
        .get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8)
}

fn regex_reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .map_or_else(
                || s.clone(),
                |l| l.trim_start_matches("error:").trim().to_owned(),
            ),
        regex::Error::CompiledTooBig(_) => "the pattern is too large".to_owned(),
        other => other.to_string(),
    }
}

/// Masks `text` with `*`, leaving visible its last `keep_last` letters or digits (and what
/// lies between them), but never more than half of its letters and digits, and none when it
/// has no more than `keep_last` of them. Separators count for nothing, so they cannot make a
/// short value look long enough to show.
pub(crate) fn mask(text: &str, keep_last: usize) -> String {
    let alnum = text.chars().filter(|c| c.is_alphanumeric()).count();
    let visible = if alnum <= keep_last {
        0
    } else {
        keep_last.min(alnum / 2)
    };
    // Index (in characters) where the visible tail starts.
    let mut seen = 0;
    let mut tail_from = text.chars().count();
    if visible > 0 {
        for (i, c) in text.chars().collect::<Vec<_>>().iter().enumerate().rev() {
            if c.is_alphanumeric() {
                seen += 1;
                if seen == visible {
                    tail_from = i;
                    break;
                }
            }
        }
    }
    text.chars()
        .enumerate()
        .map(|(i, c)| if i < tail_from { '*' } else { c })
        .collect()
}

fn pseudonym(key: &hmac::Key, text: &str) -> String {
    let tag = hmac::sign(key, text.as_bytes());
    let mut out = String::with_capacity(HASH_PREFIX.len() + 16);
    out.push_str(HASH_PREFIX);
    out.push_str(&crate::hex::encode(
        tag.as_ref().get(..8).unwrap_or_default(),
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CARD: &str = r"\b(?:\d[ -]?){12,18}\d\b";

    #[test]
    fn replace_with_groups() {
        let r = Redactor::new(
            "mask_email",
            r"^(.)[^@]*(@.*)$",
            &Action::Replace("$1***$2".into()),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            r.redact_text("anna@example.eu"),
            Some(("a***@example.eu".into(), 1))
        );
        assert_eq!(r.redact_text("no email"), None);
        assert_eq!(r.redact_field("no email"), REDACTED);
    }

    #[test]
    fn luhn_gates_detection() {
        let r = Redactor::new(
            "card",
            CARD,
            &Action::Replace("[CARD]".into()),
            Some(Validator::Luhn),
            None,
        )
        .unwrap();
        assert_eq!(
            r.redact_text("card 4111 1111 1111 1111 ok"),
            Some(("card [CARD] ok".into(), 1))
        );
        assert_eq!(r.redact_text("order 4111 1111 1111 1112"), None);
    }

    #[test]
    fn mask_keeps_last() {
        let r = Redactor::new(
            "m",
            CARD,
            &Action::Mask { keep_last: 4 },
            Some(Validator::Luhn),
            None,
        )
        .unwrap();
        assert_eq!(
            r.redact_text("4111 1111 1111 1111").unwrap().0,
            "***************1111"
        );
        // A field rule always changes the value: a CVV under a card mask is fully masked, and
        // no more than half of a short value shows.
        assert_eq!(r.redact_field("12"), "**");
        assert_eq!(r.redact_field("737"), "***");
        assert_eq!(r.redact_field("1234"), "****");
        assert_eq!(r.redact_field("123456"), "***456");
        // Separators do not count: `1-2-3` has three digits, fewer than keep_last.
        assert_eq!(r.redact_field("1-2-3"), "*****");
        assert_eq!(
            mask("DE89 3704 0044 0532 0130 00", 4),
            "**********************30 00"
        );
        assert_eq!(mask("", 4), "");
    }

    #[test]
    fn a_rewrite_that_changes_nothing_falls_back() {
        let r = Redactor::new("same", "^(.+)$", &Action::Replace("$1".into()), None, None).unwrap();
        assert_eq!(r.redact_field("c-1001"), REDACTED);
    }

    #[test]
    fn builtin_replace_is_literal_and_unicode_digits_are_found() {
        let r = Redactor::builtin(
            "card_number",
            Detector::CardNumber,
            &Action::Replace("[$1]".into()),
            None,
        )
        .unwrap();
        assert_eq!(
            r.redact_text("pay ４１１１ １１１１ １１１１ １１１１ now"),
            Some(("pay [$1] now".into(), 1))
        );
    }

    #[test]
    fn hash_is_stable_and_keyed() {
        let a = Redactor::new("h", ".+", &Action::Hash, None, Some(b"k1")).unwrap();
        let b = Redactor::new("h", ".+", &Action::Hash, None, Some(b"k1")).unwrap();
        let c = Redactor::new("h", ".+", &Action::Hash, None, Some(b"k2")).unwrap();
        let x = a.redact_field("c-1001");
        assert_eq!(x, b.redact_field("c-1001"));
        assert_ne!(x, c.redact_field("c-1001"));
        assert!(x.starts_with("h_") && x.len() == 18);
    }

    #[test]
    fn hash_needs_key_and_bad_pattern_is_named() {
        let e = Redactor::new("h", ".+", &Action::Hash, None, None).unwrap_err();
        assert!(e.to_string().contains("hash_secret_file"));
        let e = Redactor::new("bad", "(", &Action::Replace(String::new()), None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "redactor \"bad\" has a pattern that is not a valid regular expression: unclosed group"
        );
    }
}
