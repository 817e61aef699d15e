//! The decision API's answer written straight into one byte buffer, without building a
//! `serde_json::Value` tree per evaluation. The bytes are exactly what serialising the
//! equivalent `Value` gives (serde_json's escaping, object members in `Value`'s sorted key
//! order, no whitespace); the tests hold the `Value`-built answer as the oracle.
//!
//! - decided: `{"context":{"consent","fields","policy","reason","region","verdict"},"decision"}`
//! - refused: `{"context":{"error":{"code","message","status"}},"decision":false}`
//! - a batch: `{"evaluations":[…]}`; a single evaluation: its one object.
//!
//! A purpose's `fields` (its field rules and redaction rules: what the caller may keep) and
//! its policy's label change only on a policy reload, so they are serialised once per
//! (policy, purpose) and request, then copied.

use std::sync::Arc;

use serde_json::Value;

use crate::canonical_json::write_str;
use crate::error::GatewayError;
use crate::policy::{Policy, Purpose};

/// A (policy, purpose)'s parts of every decided answer.
pub(crate) struct Rules {
    policy: Arc<Policy>,
    purpose: Arc<Purpose>,
    /// [`Policy::label`], as the answer and the record name the policy.
    pub(crate) label: String,
    /// `context.fields` as JSON text.
    fields: Vec<u8>,
}

/// Each (policy, purpose)'s [`Rules`], computed on first use; lives for one request (the
/// request's policy snapshot keeps the pairs it compares by identity alive).
#[derive(Default)]
pub(crate) struct RulesCache {
    rules: Vec<Rules>,
}

impl RulesCache {
    /// The rules of `purpose` under `policy`.
    pub(crate) fn get(&mut self, policy: &Arc<Policy>, purpose: &Arc<Purpose>) -> &Rules {
        // A few (region, purpose) pairs per request: a linear search beats hashing.
        let found = self
            .rules
            .iter()
            .position(|r| Arc::ptr_eq(&r.policy, policy) && Arc::ptr_eq(&r.purpose, purpose));
        let i = match found {
            Some(i) => i,
            None => {
                self.rules.push(Rules {
                    policy: Arc::clone(policy),
                    purpose: Arc::clone(purpose),
                    label: policy.label(),
                    fields: fields_json(purpose),
                });
                self.rules.len() - 1
            }
        };
        // `i` is a position found or just pushed.
        &self.rules[i]
    }
}

/// What one decided evaluation's answer says besides its purpose's [`Rules`].
pub(crate) struct Decided<'a> {
    pub(crate) decision: bool,
    pub(crate) reason: &'a str,
    pub(crate) verdict: &'a str,
    pub(crate) region: &'a str,
    pub(crate) consent: &'a str,
}

/// A request's answer being written, evaluation by evaluation.
pub(crate) struct Answers {
    out: Vec<u8>,
    single: bool,
    written: usize,
}

impl Answers {
    /// An empty answer for `count` evaluations: a batch's `{"evaluations":[…]}`, or
    /// (`single`) one evaluation's object.
    pub(crate) fn new(single: bool, count: usize) -> Self {
        // About 300 bytes per decided evaluation with a short field list.
        let mut out = Vec::with_capacity(32 + 320 * count);
        if !single {
            out.extend_from_slice(b"{\"evaluations\":[");
        }
        Answers {
            out,
            single,
            written: 0,
        }
    }

    /// Appends a decided evaluation.
    pub(crate) fn decided(&mut self, rules: &Rules, d: &Decided<'_>) {
        self.separate();
        let out = &mut self.out;
        out.extend_from_slice(b"{\"context\":{\"consent\":");
        write_str(d.consent, out);
        out.extend_from_slice(b",\"fields\":");
        out.extend_from_slice(&rules.fields);
        out.extend_from_slice(b",\"policy\":");
        write_str(&rules.label, out);
        out.extend_from_slice(b",\"reason\":");
        write_str(d.reason, out);
        out.extend_from_slice(b",\"region\":");
        write_str(d.region, out);
        out.extend_from_slice(b",\"verdict\":");
        write_str(d.verdict, out);
        out.extend_from_slice(b"},\"decision\":");
        out.extend_from_slice(if d.decision { b"true}" } else { b"false}" });
    }

    /// Appends a refused evaluation: `decision: false` with the error in `context`.
    pub(crate) fn refused(&mut self, err: &GatewayError) {
        self.separate();
        let out = &mut self.out;
        out.extend_from_slice(b"{\"context\":{\"error\":{\"code\":");
        write_str(err.code(), out);
        out.extend_from_slice(b",\"message\":");
        write_str(&err.to_string(), out);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(err.status().as_u16().to_string().as_bytes());
        out.extend_from_slice(b"}},\"decision\":false}");
    }

    /// The finished JSON text.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if !self.single {
            self.out.extend_from_slice(b"]}");
        }
        self.out
    }

    fn separate(&mut self) {
        if self.written > 0 {
            self.out.push(b',');
        }
        self.written += 1;
    }
}

/// `context.fields`: the purpose's field filter (`{"allow": […]}` or `{"deny": […]}`) with its
/// redaction rules under `redact`.
fn fields_json(purpose: &Purpose) -> Vec<u8> {
    let mut fields = serde_json::to_value(&purpose.fields).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut fields {
        map.insert(
            "redact".to_owned(),
            serde_json::to_value(&purpose.redact).unwrap_or(Value::Null),
        );
    }
    serde_json::to_vec(&fields).unwrap_or_else(|_| b"null".to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::OnceLock;

    use crate::policy::{LoadOptions, PolicySet};
    use proptest::prelude::*;
    use serde_json::json;

    /// The shipped policies (`policies/`), loaded once.
    fn policies() -> &'static PolicySet {
        static SET: OnceLock<PolicySet> = OnceLock::new();
        SET.get_or_init(|| {
            let opts = LoadOptions {
                hash_key: Some(b"k".to_vec()),
                ..Default::default()
            };
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
            PolicySet::load_dir(&dir, &opts).unwrap()
        })
    }

    /// The answer as it was built before: a `Value` tree per evaluation.
    fn oracle_decided(policy: &Policy, purpose: &Purpose, d: &Decided<'_>) -> Value {
        let mut fields = serde_json::to_value(&purpose.fields).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut fields {
            map.insert(
                "redact".to_owned(),
                serde_json::to_value(&purpose.redact).unwrap_or(Value::Null),
            );
        }
        json!({
            "decision": d.decision,
            "context": {
                "reason": d.reason,
                "verdict": d.verdict,
                "region": d.region,
                "policy": policy.label(),
                "consent": d.consent,
                "fields": fields,
            },
        })
    }

    fn oracle_refused(err: &GatewayError) -> Value {
        json!({
            "decision": false,
            "context": {"error": {
                "status": err.status().as_u16(),
                "code": err.code(),
                "message": err.to_string(),
            }},
        })
    }

    #[test]
    fn every_shipped_purpose_answers_as_the_value_tree_did() {
        let set = policies();
        let mut cache = RulesCache::default();
        let mut n = 0;
        for policy in set.iter() {
            for purpose in policy.purposes.values() {
                for decision in [true, false] {
                    let d = Decided {
                        decision,
                        reason: "opt_in_consent_granted",
                        verdict: "allow",
                        region: &policy.region,
                        consent: "granted",
                    };
                    let mut answers = Answers::new(true, 1);
                    answers.decided(cache.get(policy, purpose), &d);
                    let want = serde_json::to_vec(&oracle_decided(policy, purpose, &d)).unwrap();
                    assert_eq!(
                        String::from_utf8(answers.finish()).unwrap(),
                        String::from_utf8(want).unwrap()
                    );
                    n += 1;
                }
            }
        }
        assert!(n >= 4, "the shipped policies define purposes");
    }

    #[derive(Debug, Clone)]
    enum Item {
        Decided(bool, String, String, String, String),
        Refused(u8, String),
    }

    /// Any text, with the characters JSON escapes (quotes, backslashes, control characters)
    /// far more often than chance would bring them.
    fn text() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            any::<char>(),
            prop::sample::select(vec!['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', '/', 'é']),
        ];
        prop::collection::vec(ch, 0..12).prop_map(String::from_iter)
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            (any::<bool>(), text(), text(), text(), text())
                .prop_map(|(b, r, v, g, c)| Item::Decided(b, r, v, g, c)),
            (0u8..4, text()).prop_map(|(k, m)| Item::Refused(k, m)),
        ]
    }

    fn error(kind: u8, message: String) -> GatewayError {
        match kind {
            0 => GatewayError::BadRequest(message),
            1 => GatewayError::ForbiddenPurpose(message),
            2 => GatewayError::UnknownPurpose(message),
            _ => GatewayError::Internal,
        }
    }

    proptest! {
        #[test]
        fn answers_are_the_value_trees_bytes(items in proptest::collection::vec(item(), 0..6), single in any::<bool>()) {
            let set = policies();
            let purposes: Vec<(&Arc<Policy>, &Arc<Purpose>)> = set
                .iter()
                .flat_map(|p| p.purposes.values().map(move |u| (p, u)))
                .collect();
            let items = if single { items.into_iter().take(1).collect() } else { items };
            let mut cache = RulesCache::default();
            let mut answers = Answers::new(single, items.len());
            let mut want = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Item::Decided(decision, reason, verdict, region, consent) => {
                        let (policy, purpose) = purposes[i % purposes.len()];
                        let d = Decided { decision: *decision, reason, verdict, region, consent };
                        answers.decided(cache.get(policy, purpose), &d);
                        want.push(oracle_decided(policy, purpose, &d));
                    }
                    Item::Refused(kind, message) => {
                        let err = error(*kind, message.clone());
                        answers.refused(&err);
                        want.push(oracle_refused(&err));
                    }
                }
            }
            let want = if single {
                want.pop().unwrap_or(Value::Null)
            } else {
                json!({ "evaluations": want })
            };
            let got = answers.finish();
            if single && items.is_empty() {
                prop_assert!(got.is_empty());
            } else {
                prop_assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(serde_json::to_vec(&want).unwrap()).unwrap()
                );
            }
        }
    }
}
