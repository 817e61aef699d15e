//! Small request helpers for the admin API: scope checks, query strings, capped bodies.

use std::sync::Arc;

use http::HeaderMap;
use hyper::body::Incoming;

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::State;

/// Authenticates the admin caller and checks it holds `scope`.
///
/// No or bad token: `401 unauthenticated`. A valid token without the scope:
/// `403 forbidden_purpose` (the SPEC's code for "this caller may not do this").
pub(crate) fn require(
    state: &State,
    headers: &HeaderMap,
    scope: &str,
) -> Result<Arc<Caller>, GatewayError> {
    let caller = state
        .verifier
        .verify_header(headers.get_all(http::header::AUTHORIZATION).iter())
        .map_err(|e| GatewayError::Unauthenticated(e.to_string()))?;
    if caller.has_scope(scope) {
        Ok(caller)
    } else {
        Err(GatewayError::ForbiddenScope(format!(
            "this endpoint needs the scope '{scope}', which the token does not grant"
        )))
    }
}

/// Parses `a=1&b=2` (form encoding: `+` is a space). Unknown or repeated keys are refused.
pub(crate) fn query<'a>(
    raw: Option<&str>,
    allowed: &[&'a str],
) -> Result<Vec<(&'a str, String)>, GatewayError> {
    let mut out: Vec<(&'a str, String)> = Vec::new();
    let Some(raw) = raw else { return Ok(out) };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = allowed.iter().find(|a| **a == k).ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "unknown query parameter; allowed: {}",
                allowed.join(", ")
            ))
        })?;
        if out.iter().any(|(seen, _)| seen == key) {
            return Err(GatewayError::BadRequest(format!(
                "query parameter '{key}' is given twice"
            )));
        }
        let value = crate::routing::decode_segment(&v.replace('+', " ")).ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "query parameter '{key}' is not valid percent-encoded UTF-8"
            ))
        })?;
        out.push((key, value));
    }
    Ok(out)
}

/// Reads a request body of at most `limit` bytes.
pub(crate) async fn body(body: Incoming, limit: u64) -> Result<bytes::Bytes, GatewayError> {
    crate::http::body::read_capped(body, limit)
        .await
        .map_err(|e| match e {
            crate::http::body::ReadError::TooLarge(limit) => {
                GatewayError::RequestTooLarge { limit }
            }
            // (`read_capped` admits every byte: `Refused` is for budgeted reads.)
            crate::http::body::ReadError::Stream(_) | crate::http::body::ReadError::Refused => {
                GatewayError::BadRequest("the request body could not be read".into())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = query(
            Some("subject=c%2D1&limit=5&from=2026-01-01T00%3A00%3A00Z"),
            &["subject", "limit", "from"],
        )
        .unwrap();
        assert_eq!(
            q,
            vec![
                ("subject", "c-1".into()),
                ("limit", "5".into()),
                ("from", "2026-01-01T00:00:00Z".into())
            ]
        );
        assert!(query(Some("nope=1"), &["subject"]).is_err());
        assert!(query(Some("subject=a&subject=b"), &["subject"]).is_err());
        assert!(query(None, &["subject"]).unwrap().is_empty());
    }
}
