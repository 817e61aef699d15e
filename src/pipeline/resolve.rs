//! Request resolution: the normalised path and its route, the subject, the purpose.

use http::HeaderMap;

use crate::error::GatewayError;
use crate::http::headers::X_PURPOSE;
use crate::routing::{Route, RouteTable, SubjectCase, decode_segment, normalize};

/// The route a request matched, on its normalised path.
pub(crate) struct Resolved<'a> {
    pub(crate) index: usize,
    pub(crate) route: &'a Route,
    pub(crate) path: String,
    pub(crate) subject: Option<String>,
}

/// A [`Resolved`] without its borrow of the route table, to move into a task.
pub(crate) struct Target {
    index: usize,
    path: String,
    subject: Option<String>,
}

impl Resolved<'_> {
    /// Drops the borrow; [`Target::resolve`] takes it again.
    pub(crate) fn into_target(self) -> Target {
        Target {
            index: self.index,
            path: self.path,
            subject: self.subject,
        }
    }
}

impl Target {
    /// The route again, from the same (immutable) table.
    pub(crate) fn resolve(self, table: &RouteTable) -> Result<Resolved<'_>, GatewayError> {
        Ok(Resolved {
            route: table.get(self.index).ok_or(GatewayError::Internal)?,
            index: self.index,
            path: self.path,
            subject: self.subject,
        })
    }
}

/// Normalises the path and finds its route; decodes the `{subject}` segment.
pub(crate) fn route<'a>(
    table: &'a RouteTable,
    raw_path: &str,
) -> Result<Resolved<'a>, GatewayError> {
    let path = normalize(raw_path)
        .map_err(|e| GatewayError::BadPath(format!("{e}; send a plain, normalised path")))?;
    let (index, route, m) = table
        .find(&path)
        .map_err(|e| GatewayError::BadPath(e.to_string()))?
        .ok_or(GatewayError::NoRoute)?;
    let subject = match m.subject {
        Some(raw) if raw.contains(';') => {
            return Err(GatewayError::BadPath(
                "the subject segment carries ';' parameters; send the bare subject id".into(),
            ));
        }
        Some(raw) => {
            let mut subject = decode_segment(raw).ok_or_else(|| {
                GatewayError::BadPath("the subject segment is not valid UTF-8".into())
            })?;
            if route.subject_case == SubjectCase::Lower {
                subject.make_ascii_lowercase();
            }
            Some(subject)
        }
        None => None,
    };
    Ok(Resolved {
        index,
        route,
        path,
        subject,
    })
}

/// The declared purpose: exactly one `X-Purpose` header holding one purpose name (the one
/// grammar of [`crate::consent::validate_purpose`], shared with policy files and the consent
/// API). Lists, whitespace tricks and repeats are refused.
pub(crate) fn purpose(headers: &HeaderMap) -> Result<String, GatewayError> {
    let mut values = headers.get_all(&X_PURPOSE).iter();
    let value = values.next().ok_or_else(|| {
        GatewayError::MissingPurpose(
            "declare the purpose of this request in one X-Purpose header".into(),
        )
    })?;
    if values.next().is_some() {
        return Err(GatewayError::MissingPurpose(
            "send exactly one X-Purpose header; repeated X-Purpose headers are refused".into(),
        ));
    }
    let name = value
        .to_str()
        .ok()
        .filter(|v| crate::consent::validate_purpose(v).is_ok())
        .ok_or_else(|| {
            GatewayError::UnknownPurpose(
                "X-Purpose must be one purpose name (lower-case letters, digits, '_'), not a list"
                    .into(),
            )
        })?;
    Ok(name.to_owned())
}

/// Whether the request carries `Sec-GPC: 1` (W3C GPC: only the exact value `1` counts; any
/// `1` among repeated headers counts, also when a proxy joined them into one comma-separated
/// line, as RFC 9110 §5.3 allows).
pub(crate) fn gpc(headers: &HeaderMap) -> bool {
    headers
        .get_all(&crate::http::headers::SEC_GPC)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|item| item.trim_ascii() == b"1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn purpose_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(purpose(&h).unwrap_err().code(), "missing_purpose");
        h.insert(&X_PURPOSE, HeaderValue::from_static("marketing"));
        assert_eq!(purpose(&h).unwrap(), "marketing");
        for bad in ["marketing, support", " marketing", "Marketing", "a b", ""] {
            h.insert(&X_PURPOSE, HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                purpose(&h).unwrap_err().code(),
                "unknown_purpose",
                "{bad:?}"
            );
        }
        h.insert(&X_PURPOSE, HeaderValue::from_static("marketing"));
        h.append(&X_PURPOSE, HeaderValue::from_static("marketing"));
        assert_eq!(purpose(&h).unwrap_err().code(), "missing_purpose");
    }

    #[test]
    fn gpc_only_exact_one() {
        let mut h = HeaderMap::new();
        assert!(!gpc(&h));
        for v in ["0", "true", "yes", "01", "1.0", "0, 0"] {
            h.insert("sec-gpc", HeaderValue::from_str(v).unwrap());
            assert!(!gpc(&h), "{v:?}");
        }
        h.append("sec-gpc", HeaderValue::from_static("1"));
        assert!(gpc(&h));
        h.insert("sec-gpc", HeaderValue::from_static("0, 1"));
        assert!(gpc(&h), "joined repeats");
    }
}
