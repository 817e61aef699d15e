//! Routing: path normalisation, route templates, and the ordered route table.

mod normalize;
mod template;

pub use normalize::{PathError, decode_segment, normalize};
pub use template::{Match, Template, TemplateError};

use http::Uri;

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's name (metrics, logs, audit).
    pub name: String,
    /// Compiled `match` template.
    pub template: Template,
    /// Upstream base: scheme and authority.
    pub upstream: Upstream,
    /// Personal-data route: consent, minimisation and audit apply.
    pub personal_data: bool,
    /// No authentication (only for routes without personal data).
    pub public: bool,
}

/// Where a route forwards to.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port`.
    pub authority: http::uri::Authority,
}

/// Why a `[[route]]` was rejected; [`RouteError::key`] names the key.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Bad `match`.
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// Bad `upstream`.
    #[error("{0}")]
    Upstream(String),
    /// Flags that contradict each other or the template.
    #[error("{0}")]
    Flags(String),
}

impl RouteError {
    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Template(_) => "match",
            Self::Upstream(_) => "upstream",
            Self::Flags(_) => "personal_data",
        }
    }
}

impl Route {
    /// Builds and validates a route.
    pub fn new(
        name: String,
        pattern: &str,
        upstream: &str,
        personal_data: bool,
        public: bool,
    ) -> Result<Route, RouteError> {
        let template = Template::parse(pattern)?;
        let uri: Uri = upstream.parse().map_err(|_| {
            RouteError::Upstream(format!(
                "\"{upstream}\" is not a URL like \"http://127.0.0.1:9000\""
            ))
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") | Some("https") => uri.scheme().cloned(),
            _ => None,
        }
        .ok_or_else(|| {
            RouteError::Upstream(format!(
                "\"{upstream}\" must start with http:// or https://"
            ))
        })?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| RouteError::Upstream(format!("\"{upstream}\" has no host")))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(RouteError::Upstream(format!(
                "\"{upstream}\" has a path or query; give only scheme, host and port (the request path is forwarded as is)"
            )));
        }
        if personal_data && public {
            return Err(RouteError::Flags(
                "a personal-data route cannot be public".into(),
            ));
        }
        if personal_data && !template.has_subject() {
            return Err(RouteError::Flags(
                "a personal-data route needs '{subject}' in its match template".into(),
            ));
        }
        Ok(Route {
            name,
            template,
            upstream: Upstream { scheme, authority },
            personal_data,
            public,
        })
    }
}

/// The ordered routes; the first whose template matches wins.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Wraps routes in config order.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        RouteTable { routes }
    }

    /// The first route matching a normalised path, with its index.
    pub fn find<'a, 'p>(&'a self, path: &'p str) -> Option<(usize, &'a Route, Match<'p>)> {
        self.routes
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.template.matches(path).map(|m| (i, r, m)))
    }

    /// All routes.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
