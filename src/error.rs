//! The gateway's error type: every failure a request can meet, mapped to an HTTP status and the
//! SPEC's JSON error code in one place.

use http::StatusCode;

/// Why a request was refused or failed. Each variant maps to one SPEC error code.
///
/// Messages are written for the caller: they say what was wrong and what to do, and never
/// contain a token, a secret or personal data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// No valid bearer token, or a token that failed a check.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's token lacks the declared purpose, or an admin scope.
    #[error("{0}")]
    ForbiddenPurpose(String),
    /// The token is valid but lacks the admin scope the endpoint needs.
    #[error("{0}")]
    ForbiddenScope(String),
    /// The subject's consent does not allow this purpose.
    #[error("{0}")]
    ConsentRequired(String),
    /// No `X-Purpose` header, or more than one.
    #[error("{0}")]
    MissingPurpose(String),
    /// The declared purpose is not defined by the subject's region policy.
    #[error("{0}")]
    UnknownPurpose(String),
    /// The request path is malformed or ambiguous.
    #[error("{0}")]
    BadPath(String),
    /// The request is malformed in another way (admin API input validation).
    #[error("{0}")]
    BadRequest(String),
    /// No route matches the path.
    #[error("no route matches this path; check the URL against the gateway's routes")]
    NoRoute,
    /// An admin resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The method is not supported on this admin resource.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// The request body exceeds `max_body_bytes`.
    #[error("request body exceeds the {limit}-byte limit")]
    RequestTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The upstream response body exceeds `max_body_bytes` and cannot be redacted.
    #[error("upstream response exceeds the {limit}-byte limit and was not released")]
    ResponseTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The upstream could not be reached or broke the connection.
    #[error("the upstream service could not be reached; retry later")]
    UpstreamUnavailable,
    /// The upstream answered something that cannot be minimised safely.
    #[error("{0}")]
    UnprocessableUpstreamBody(String),
    /// A collection response holds more records than the route's `max_elements`.
    #[error(
        "the upstream's list holds more than the {limit} records this route may release at once; ask for a smaller page"
    )]
    CollectionTooLarge {
        /// The route's `collection.max_elements`.
        limit: u64,
    },
    /// The upstream did not answer within `upstream_timeout`.
    #[error("the upstream service did not answer in time")]
    UpstreamTimeout,
    /// The audit record could not be made durable, so nothing is released.
    #[error("the audit log cannot be written; nothing was released, retry later")]
    AuditUnavailable,
    /// The consent store cannot be reached, or cannot show its cached state is fresh enough,
    /// so nothing is decided from it. Details go to the log only.
    #[error("the consent store is unavailable; nothing was decided or changed, retry later")]
    StoreUnavailable,
    /// A failure inside the gateway (store error, bug). Details go to the log only.
    #[error("internal error; the request was denied")]
    Internal,
    /// More requests are in flight than `gateway.max_in_flight` (shed before any work), or a
    /// buffered answer does not fit in `gateway.max_buffered_bytes`.
    #[error(
        "the gateway is at its limit of requests in flight or of buffered bytes; retry after a second"
    )]
    Overloaded,
}

impl GatewayError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::ForbiddenPurpose(_) | Self::ForbiddenScope(_) | Self::ConsentRequired(_) => {
                StatusCode::FORBIDDEN
            }
            Self::MissingPurpose(_)
            | Self::UnknownPurpose(_)
            | Self::BadPath(_)
            | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoRoute | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ResponseTooLarge { .. }
            | Self::UpstreamUnavailable
            | Self::UnprocessableUpstreamBody(_)
            | Self::CollectionTooLarge { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::AuditUnavailable | Self::Overloaded | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The SPEC's machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::ForbiddenPurpose(_) => "forbidden_purpose",
            Self::ForbiddenScope(_) => "forbidden_purpose",
            Self::ConsentRequired(_) => "consent_required",
            Self::MissingPurpose(_) => "missing_purpose",
            Self::UnknownPurpose(_) => "unknown_purpose",
            Self::BadPath(_) => "bad_path",
            Self::BadRequest(_) => "bad_request",
            Self::NoRoute => "no_route",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTooLarge { .. } | Self::ResponseTooLarge { .. } => "payload_too_large",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UnprocessableUpstreamBody(_) => "unprocessable_upstream_body",
            Self::CollectionTooLarge { .. } => "collection_too_large",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::AuditUnavailable => "audit_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::Internal => "internal",
            Self::Overloaded => "overloaded",
        }
    }

    /// The JSON error body: `{"error":{"code","message","request_id"}}`.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let body = serde_json::json!({
            "error": {
                "code": self.code(),
                "message": self.to_string(),
                "request_id": request_id,
            }
        });
        // Serialising a `Value` of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_message_and_request_id() {
        let err = GatewayError::ConsentRequired("no consent for marketing".into());
        let v: serde_json::Value = serde_json::from_slice(&err.body("rid-1")).unwrap();
        assert_eq!(v["error"]["code"], "consent_required");
        assert_eq!(v["error"]["message"], "no consent for marketing");
        assert_eq!(v["error"]["request_id"], "rid-1");
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn store_unavailable_is_503() {
        assert_eq!(GatewayError::StoreUnavailable.status(), 503);
        assert_eq!(GatewayError::StoreUnavailable.code(), "store_unavailable");
    }

    #[test]
    fn collection_too_large_is_502() {
        let err = GatewayError::CollectionTooLarge { limit: 10 };
        assert_eq!(
            (err.status(), err.code()),
            (StatusCode::BAD_GATEWAY, "collection_too_large")
        );
    }

    #[test]
    fn payload_too_large_differs_by_direction() {
        assert_eq!(GatewayError::RequestTooLarge { limit: 1 }.status(), 413);
        assert_eq!(GatewayError::ResponseTooLarge { limit: 1 }.status(), 502);
        assert_eq!(
            GatewayError::ResponseTooLarge { limit: 1 }.code(),
            "payload_too_large"
        );
    }
}
