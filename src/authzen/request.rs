//! AuthZEN 1.0 request bodies: the 4-tuple (subject, action, resource, context), batches with
//! default values and `options.evaluations_semantic`. Parsed strictly (a key named twice is
//! refused); in the entities only the keys the standard defines are accepted, so a misspelt
//! key is an error rather than silently ignored.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::GatewayError;

/// Most evaluations one batch may carry.
pub(crate) const MAX_EVALUATIONS: usize = 1000;

/// A subject or resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entity {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) id: String,
    /// Accepted as the standard defines it; consentgate decides without it.
    #[serde(default, rename = "properties")]
    _properties: Option<Map<String, Value>>,
}

/// An action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Action {
    pub(crate) name: String,
    /// Accepted as the standard defines it; consentgate decides without it.
    #[serde(default, rename = "properties")]
    _properties: Option<Map<String, Value>>,
}

/// One evaluation as written: every member optional (a batch entry may take defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tuple {
    pub(crate) subject: Option<Entity>,
    pub(crate) action: Option<Action>,
    pub(crate) resource: Option<Entity>,
    pub(crate) context: Option<Map<String, Value>>,
}

/// `POST /access/v1/evaluations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    pub(crate) subject: Option<Entity>,
    pub(crate) action: Option<Action>,
    pub(crate) resource: Option<Entity>,
    pub(crate) context: Option<Map<String, Value>>,
    pub(crate) evaluations: Option<Vec<Tuple>>,
    pub(crate) options: Option<Map<String, Value>>,
}

/// How a batch runs (AuthZEN §7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Semantic {
    /// Every evaluation, every result (the default).
    ExecuteAll,
    /// Stop after the first `false` (like `&&`).
    DenyOnFirstDeny,
    /// Stop after the first `true` (like `||`).
    PermitOnFirstPermit,
}

/// A complete evaluation after defaults were applied, borrowed from the request (a default
/// is shared by every entry that takes it, not copied).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evaluation<'a> {
    pub(crate) subject: Option<&'a Entity>,
    pub(crate) action: Option<&'a Action>,
    pub(crate) resource: Option<&'a Entity>,
    pub(crate) context: Option<&'a Map<String, Value>>,
}

/// A parsed request: what to evaluate, how, and in which shape to answer.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) evaluations: Vec<Evaluation<'a>>,
    pub(crate) semantic: Semantic,
    /// Answer `{"decision", "context"}` (and refusals as HTTP errors), not `{"evaluations"}`.
    pub(crate) single: bool,
}

fn bad(message: impl Into<String>) -> GatewayError {
    GatewayError::BadRequest(message.into())
}

/// Parses a JSON body strictly into `T`, with a message that names what is wrong.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    crate::json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not a valid AuthZEN request ({e}); send one JSON object with subject, action and resource"
        ))
    })
}

impl Tuple {
    /// A single evaluation (`POST /access/v1/evaluation`): all three entities are required.
    pub(crate) fn single(&self) -> Result<Evaluation<'_>, GatewayError> {
        Evaluation {
            subject: self.subject.as_ref(),
            action: self.action.as_ref(),
            resource: self.resource.as_ref(),
            context: self.context.as_ref(),
        }
        .complete()
    }
}

impl Evaluation<'_> {
    /// The evaluation if it names all three entities (the single endpoint's requirement).
    fn complete(self) -> Result<Self, GatewayError> {
        for (name, present) in [
            ("subject", self.subject.is_some()),
            ("action", self.action.is_some()),
            ("resource", self.resource.is_some()),
        ] {
            if !present {
                return Err(bad(format!("the request has no '{name}'")));
            }
        }
        Ok(self)
    }
}

impl Batch {
    /// The evaluations with the top-level values as defaults (an entry's own value wins), and
    /// the semantic. Without `evaluations` (absent or `[]`) the request is one evaluation of
    /// the top level, answered in the single endpoint's shape.
    pub(crate) fn evaluations(&self) -> Result<Parsed<'_>, GatewayError> {
        let semantic = match self
            .options
            .as_ref()
            .and_then(|o| o.get("evaluations_semantic"))
        {
            None => Semantic::ExecuteAll,
            Some(Value::String(s)) if s == "execute_all" => Semantic::ExecuteAll,
            Some(Value::String(s)) if s == "deny_on_first_deny" => Semantic::DenyOnFirstDeny,
            Some(Value::String(s)) if s == "permit_on_first_permit" => {
                Semantic::PermitOnFirstPermit
            }
            Some(_) => {
                return Err(bad(
                    "options.evaluations_semantic must be \"execute_all\", \"deny_on_first_deny\" or \"permit_on_first_permit\"",
                ));
            }
        };
        // AuthZEN 1.0 §7.1: without `evaluations` (absent or empty) the request is one
        // evaluation of the top-level values, answered like the single endpoint.
        let entries = match &self.evaluations {
            None => None,
            Some(list) if list.is_empty() => None,
            Some(list) if list.len() > MAX_EVALUATIONS => {
                return Err(bad(format!(
                    "'evaluations' holds {} entries; at most {MAX_EVALUATIONS} are accepted per request",
                    list.len()
                )));
            }
            Some(list) => Some(list),
        };
        let Some(entries) = entries else {
            let single = Evaluation {
                subject: self.subject.as_ref(),
                action: self.action.as_ref(),
                resource: self.resource.as_ref(),
                context: self.context.as_ref(),
            }
            .complete()?;
            return Ok(Parsed {
                evaluations: vec![single],
                semantic,
                single: true,
            });
        };
        let evaluations = entries
            .iter()
            .map(|e| Evaluation {
                subject: e.subject.as_ref().or(self.subject.as_ref()),
                action: e.action.as_ref().or(self.action.as_ref()),
                resource: e.resource.as_ref().or(self.resource.as_ref()),
                context: e.context.as_ref().or(self.context.as_ref()),
            })
            .collect();
        Ok(Parsed {
            evaluations,
            semantic,
            single: false,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_entries_and_entries_win() {
        let b: Batch = parse(
            br#"{"subject":{"type":"service","id":"crm"},"action":{"name":"marketing"},
                "evaluations":[{"resource":{"type":"data_subject","id":"a"}},
                               {"action":{"name":"support"},"resource":{"type":"data_subject","id":"b"}}]}"#,
        )
        .unwrap();
        let Parsed {
            evaluations: evals,
            semantic,
            single,
        } = b.evaluations().unwrap();
        assert_eq!(semantic, Semantic::ExecuteAll);
        assert!(!single);
        assert_eq!(evals[0].action.as_ref().unwrap().name, "marketing");
        assert_eq!(evals[1].action.as_ref().unwrap().name, "support");
        assert_eq!(evals[1].subject.as_ref().unwrap().id, "crm");
    }

    #[test]
    fn malformed_batches_are_refused() {
        for body in [
            &br#"{"evaluations":[]}"#[..],
            br#"{"subject":{"type":"service","id":"a"},"evaluations":[]}"#,
            br#"{"evaluations":[{}],"options":{"evaluations_semantic":"all"}}"#,
            br#"{"subject":{"type":"service","id":"a","idd":"b"}}"#,
            br#"{"subject":{"type":"service","id":"a"},"subject":{"type":"service","id":"b"}}"#,
            br#"{"evaluation":[]}"#,
        ] {
            let r = parse::<Batch>(body).and_then(|b| b.evaluations().map(|_| ()));
            assert!(r.is_err(), "{}", String::from_utf8_lossy(body));
        }
        let many = format!(
            "{{\"evaluations\":[{}]}}",
            vec!["{}"; MAX_EVALUATIONS + 1].join(",")
        );
        assert!(
            parse::<Batch>(many.as_bytes())
                .and_then(|b| b.evaluations().map(|_| ()))
                .is_err()
        );
        assert!(
            parse::<Tuple>(br#"{"subject":{"type":"service","id":"a"}}"#)
                .unwrap()
                .single()
                .is_err()
        );
    }
}
