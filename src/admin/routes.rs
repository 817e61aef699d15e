//! The admin API as one table of (method, path, scope, handler). Every admin request is
//! matched here and the scope is checked here, before any handler runs, so an endpoint
//! cannot forget its check: adding a row is the only way to add an endpoint.

use http::Method;

/// Which handler serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Healthz,
    Readyz,
    Metrics,
    PutRegion,
    CurrentConsents,
    History,
    PutConsent,
    Withdraw,
    Import,
    Report,
    AuditList,
    AuditVerify,
    AuditCheckpoint,
    Policies,
    PolicyReload,
    /// `GET /v1/stats`: the compliance figures over a window.
    Stats,
    /// `GET /dashboard`: the compliance officer's page.
    Dashboard,
}

/// One admin endpoint.
#[derive(Debug, Clone)]
pub struct AdminRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern: literal segments and `{name}` for one path parameter.
    pub path: &'static str,
    /// The JWT scope a caller needs; `None` for the unauthenticated health and metrics routes.
    pub scope: Option<&'static str>,
    pub(crate) handler: Handler,
}

const fn route(
    method: Method,
    path: &'static str,
    scope: Option<&'static str>,
    handler: Handler,
) -> AdminRoute {
    AdminRoute {
        method,
        path,
        scope,
        handler,
    }
}

const CONSENT_READ: Option<&str> = Some("consent:read");
const CONSENT_WRITE: Option<&str> = Some("consent:write");
const AUDIT_READ: Option<&str> = Some("audit:read");

/// Every admin endpoint.
static ROUTES: [AdminRoute; 17] = [
    route(Method::GET, "/healthz", None, Handler::Healthz),
    route(Method::GET, "/readyz", None, Handler::Readyz),
    route(Method::GET, "/metrics", None, Handler::Metrics),
    // The page itself holds no data; it asks for an `audit:read` token and calls /v1/stats.
    route(Method::GET, "/dashboard", None, Handler::Dashboard),
    route(Method::GET, "/v1/stats", AUDIT_READ, Handler::Stats),
    route(
        Method::PUT,
        "/v1/subjects/{subject}",
        CONSENT_WRITE,
        Handler::PutRegion,
    ),
    route(
        Method::GET,
        "/v1/subjects/{subject}/consents",
        CONSENT_READ,
        Handler::CurrentConsents,
    ),
    route(
        Method::GET,
        "/v1/subjects/{subject}/consents/history",
        CONSENT_READ,
        Handler::History,
    ),
    route(
        Method::PUT,
        "/v1/subjects/{subject}/consents/{purpose}",
        CONSENT_WRITE,
        Handler::PutConsent,
    ),
    route(
        Method::DELETE,
        "/v1/subjects/{subject}/consents/{purpose}",
        CONSENT_WRITE,
        Handler::Withdraw,
    ),
    route(
        Method::POST,
        "/v1/consents/import",
        CONSENT_WRITE,
        Handler::Import,
    ),
    route(
        Method::GET,
        "/v1/subjects/{subject}/report",
        AUDIT_READ,
        Handler::Report,
    ),
    route(Method::GET, "/v1/audit", AUDIT_READ, Handler::AuditList),
    route(
        Method::GET,
        "/v1/audit/verify",
        AUDIT_READ,
        Handler::AuditVerify,
    ),
    route(
        Method::GET,
        "/v1/audit/checkpoint",
        AUDIT_READ,
        Handler::AuditCheckpoint,
    ),
    route(
        Method::GET,
        "/v1/policies",
        Some("policy:read"),
        Handler::Policies,
    ),
    route(
        Method::POST,
        "/v1/policies/reload",
        Some("policy:admin"),
        Handler::PolicyReload,
    ),
];

/// Every admin endpoint, in table order.
pub fn routes() -> &'static [AdminRoute] {
    &ROUTES
}

/// What the table says about a request path.
#[derive(Debug)]
pub(crate) enum Match<'a> {
    /// A route, with its path parameters in order.
    Found(&'static AdminRoute, Vec<&'a str>),
    /// The path exists, but not for this method.
    WrongMethod,
    /// No route has this path.
    NotFound,
}

/// The path parameters if `segments` fit `pattern`.
fn params<'a>(pattern: &str, segments: &[&'a str]) -> Option<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut parts = pattern.split('/').filter(|s| !s.is_empty());
    for seg in segments {
        let part = parts.next()?;
        if part.starts_with('{') {
            out.push(*seg);
        } else if part != *seg {
            return None;
        }
    }
    parts.next().is_none().then_some(out)
}

/// Finds the route for `method` and the decoded path `segments`. A literal segment is
/// preferred to a parameter at the same place (`/v1/audit/verify` is not `/v1/audit/{x}`):
/// the table has no such overlap, and a test keeps it so.
pub(crate) fn find<'a>(method: &Method, segments: &[&'a str]) -> Match<'a> {
    let mut path_known = false;
    for r in &ROUTES {
        if let Some(p) = params(r.path, segments) {
            if r.method == *method {
                return Match::Found(r, p);
            }
            path_known = true;
        }
    }
    if path_known {
        Match::WrongMethod
    } else {
        Match::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literals_and_parameters() {
        let Match::Found(r, p) = find(
            &Method::PUT,
            &["v1", "subjects", "c-1", "consents", "marketing"],
        ) else {
            panic!("no match");
        };
        assert_eq!(r.handler, Handler::PutConsent);
        assert_eq!(p, ["c-1", "marketing"]);
        assert!(
            matches!(find(&Method::GET, &["v1", "audit", "verify"]), Match::Found(r, _) if r.handler == Handler::AuditVerify)
        );
        assert!(matches!(
            find(&Method::POST, &["v1", "audit"]),
            Match::WrongMethod
        ));
        assert!(matches!(
            find(&Method::GET, &["v1", "nothing"]),
            Match::NotFound
        ));
        assert!(matches!(
            find(&Method::GET, &["v1", "subjects"]),
            Match::NotFound
        ));
        assert!(matches!(find(&Method::GET, &[]), Match::NotFound));
    }

    #[test]
    fn no_two_rows_overlap() {
        // A concrete path for each row matches only that row (per method).
        for r in &ROUTES {
            let concrete: Vec<&str> = r
                .path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect();
            let rows: Vec<&AdminRoute> = ROUTES
                .iter()
                .filter(|o| o.method == r.method && params(o.path, &concrete).is_some())
                .collect();
            assert_eq!(rows.len(), 1, "{} {} overlaps", r.method, r.path);
        }
    }
}
