//! Named redactors: a regex, an optional checksum validator and an action.

use std::fmt;

use aws_lc_rs::hmac;
use regex::{Regex, RegexBuilder};

use super::validate::Validator;

/// Prefix of pseudonyms produced by the `hash` action.
pub const HASH_PREFIX: &str = "h_";
/// Text that replaces a field-scoped value when a `replace` redactor's pattern does not match it.
pub const REDACTED: &str = "[REDACTED]";
/// Upper bound on a compiled pattern's size, so a policy cannot exhaust memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 21;

/// What a redactor does with a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace the match with this text; `$1`, `${name}` refer to capture groups.
    Replace(String),
    /// Replace every character of the match except the last `keep_last` with `*`.
    Mask {
        /// How many trailing characters stay visible.
        keep_last: usize,
    },
    /// Replace the match with a keyed, stable pseudonym: `h_` + the first 16 hex digits of
    /// HMAC-SHA256(key, match).
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

/// A compiled, named redactor.
#[derive(Clone)]
pub struct Redactor {
    name: String,
    regex: Regex,
    action: CompiledAction,
    validator: Option<Validator>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("name", &self.name)
            .field("pattern", &self.regex.as_str())
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// Compiles a redactor. `hash_key` is required when `action` is [`Action::Hash`].
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
        let action = match action {
            Action::Replace(text) => CompiledAction::Replace {
                uses_groups: text.contains('$'),
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
        Ok(Self {
            name: name.to_owned(),
            regex,
            action,
            validator,
        })
    }

    /// The redactor's name (the key of the policy's `redactors` map).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// The validator, if any.
    pub fn validator(&self) -> Option<Validator> {
        self.validator
    }

    /// Whether `text` has a (validated) match of this redactor.
    pub fn detects(&self, text: &str) -> bool {
        self.next_match(text, 0).is_some()
    }

    /// The first validated match at or after byte `pos`. A match that fails its validator may
    /// hide a valid one that starts inside it (`+49 30 1234567 5555 5555 5555 4444`: the
    /// leftmost digit run fails Luhn, the card inside it passes), so the search resumes just
    /// after the failed match's start rather than after its end.
    fn next_match<'t>(&self, text: &'t str, mut pos: usize) -> Option<regex::Match<'t>> {
        while pos <= text.len() {
            let m = self.regex.find_at(text, pos)?;
            if self.validator.is_none_or(|v| v.accepts(m.as_str())) {
                return Some(m);
            }
            pos = next_boundary(text, m.start());
        }
        None
    }

    /// Cheap necessary condition given the number of ASCII digits in the string.
    pub(crate) fn may_occur(&self, digits: usize) -> bool {
        self.validator.is_none_or(|v| v.may_occur_in(digits))
    }

    /// Rewrites every validated match in `text`. `None` when nothing matched (no allocation).
    pub fn redact_text(&self, text: &str) -> Option<(String, u64)> {
        let mut out: Option<String> = None;
        let mut last = 0;
        let mut count = 0u64;
        let mut pos = 0;
        while let Some(m) = self.next_match(text, pos) {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            buf.push_str(text.get(last..m.start()).unwrap_or_default());
            self.rewrite(text, m.start(), m.as_str(), buf);
            last = m.end();
            count += 1;
            pos = if m.end() > m.start() {
                m.end()
            } else {
                next_boundary(text, m.end())
            };
        }
        let mut buf = out?;
        buf.push_str(text.get(last..).unwrap_or_default());
        Some((buf, count))
    }

    /// Redacts a value named by a field rule. Always changes it: matches are rewritten; if
    /// nothing (validated) matches, `mask` and `hash` apply to the whole value and `replace`
    /// yields [`REDACTED`].
    pub fn redact_field(&self, text: &str) -> String {
        if let Some((out, _)) = self.redact_text(text) {
            return out;
        }
        match &self.action {
            CompiledAction::Replace { .. } => REDACTED.to_owned(),
            CompiledAction::Mask { keep_last } => mask(text, *keep_last),
            CompiledAction::Hash(key) => pseudonym(key, text),
        }
    }

    fn rewrite(&self, text: &str, start: usize, matched: &str, buf: &mut String) {
        match &self.action {
            CompiledAction::Replace {
                text: rep,
                uses_groups,
            } => {
                if *uses_groups && let Some(caps) = self.regex.captures_at(text, start) {
                    caps.expand(rep, buf);
                    return;
                }
                buf.push_str(rep);
            }
            CompiledAction::Mask { keep_last } => buf.push_str(&mask(matched, *keep_last)),
            CompiledAction::Hash(key) => buf.push_str(&pseudonym(key, matched)),
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

fn mask(text: &str, keep_last: usize) -> String {
    let n = text.chars().count();
    let hidden = n.saturating_sub(keep_last);
    text.chars()
        .enumerate()
        .map(|(i, c)| if i < hidden { '*' } else { c })
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
        assert_eq!(r.redact_field("12"), "12");
        assert_eq!(r.redact_field("123456"), "**3456");
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
