//! Routing: path normalisation, route templates, and the ordered route table.

mod collection;
mod normalize;
mod template;

pub use collection::{
    Collection, CollectionFormat, DEFAULT_MAX_ELEMENTS, get_path, parse_field_path,
};
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
    /// How the `{subject}` segment becomes a subject id.
    pub subject_case: SubjectCase,
    /// What a subject with no stored region gets.
    pub unknown_subject: UnknownSubject,
    /// A list, search or export route: where its records and their subjects are.
    pub collection: Option<Collection>,
}

/// `route.subject_case`: how the `{subject}` segment is turned into the subject id used for
/// the consent lookup and the audit record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SubjectCase {
    /// As sent (after percent-decoding): `C-1001` and `c-1001` are different subjects.
    #[default]
    Exact,
    /// ASCII-lower-cased: for upstreams whose ids are case-insensitive.
    Lower,
}

/// `route.unknown_subject`: the decision basis for a subject the store has no region for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownSubject {
    /// The SPEC's default: the subject is in `gateway.default_region`.
    #[default]
    DefaultRegion,
    /// Refused (`403 consent_required`, reason `unknown_subject`): an id the consent system has
    /// never seen (a typo, an alias) is not decided under the default region's opt-out rules.
    Deny,
}

/// A route's flags, as configured.
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// `personal_data`.
    pub personal_data: bool,
    /// `public`.
    pub public: bool,
    /// `subject_case`.
    pub subject_case: SubjectCase,
    /// `unknown_subject`.
    pub unknown_subject: UnknownSubject,
    /// `collection`.
    pub collection: Option<Collection>,
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
    /// A `collection` that contradicts the route.
    #[error("{0}")]
    Collection(String),
}

impl RouteError {
    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Template(_) => "match",
            Self::Upstream(_) => "upstream",
            Self::Flags(_) => "personal_data",
            Self::Collection(_) => "collection",
        }
    }
}

impl Route {
    /// Builds and validates a route.
    pub fn new(
        name: String,
        pattern: &str,
        upstream: &str,
        options: RouteOptions,
    ) -> Result<Route, RouteError> {
        let RouteOptions {
            personal_data,
            public,
            subject_case,
            unknown_subject,
            collection,
        } = options;
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
        match (&collection, template.has_subject()) {
            (Some(_), _) if !personal_data => {
                return Err(RouteError::Collection(
                    "a collection route carries personal data: set personal_data = true".into(),
                ));
            }
            (Some(_), true) => {
                return Err(RouteError::Collection(
                    "a collection route has no '{subject}' in its match template: each record names its own subject (collection.subject)".into(),
                ));
            }
            (None, false) if personal_data => {
                return Err(RouteError::Flags(
                    "a personal-data route needs '{subject}' in its match template, or a collection = { path, subject } naming where its records and their subjects are".into(),
                ));
            }
            _ => {}
        }
        Ok(Route {
            name,
            template,
            upstream: Upstream { scheme, authority },
            personal_data,
            public,
            subject_case,
            unknown_subject,
            collection,
        })
    }
}

/// A path that a non-personal route matched but that a personal-data route matches too once
/// case and `;parameters` are disregarded: ambiguous, so refused rather than guessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the path differs from a personal-data route's only by letter case or ';' parameters; send it exactly as that route is written"
)]
pub struct AmbiguousPath;

/// Two routes in an order that would let a non-personal route serve personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowing {
    /// Index of the earlier, non-personal route.
    pub earlier: usize,
    /// Index of the personal-data route it would shadow.
    pub later: usize,
    /// A path both match.
    pub witness: String,
}

/// The ordered routes; the first whose template matches wins.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Whether any route is a personal-data route.
    personal: bool,
}

impl RouteTable {
    /// Wraps routes in config order. Refused when a route without personal data is listed
    /// before a personal-data route and could match one of its paths: first-match-wins would
    /// serve that person's data unchecked, unredacted and unaudited.
    pub fn new(routes: Vec<Route>) -> Result<RouteTable, Shadowing> {
        for (later, p) in routes.iter().enumerate().filter(|(_, r)| r.personal_data) {
            for (earlier, np) in routes[..later].iter().enumerate() {
                if np.personal_data {
                    continue;
                }
                if let Some(witness) = np.template.overlap(&p.template) {
                    return Err(Shadowing {
                        earlier,
                        later,
                        witness,
                    });
                }
            }
        }
        let personal = routes.iter().any(|r| r.personal_data);
        Ok(RouteTable { routes, personal })
    }

    /// The first route matching a normalised path, with its index. A path that only a
    /// non-personal route matches, but that a personal-data route matches when case and
    /// `;parameters` are disregarded, is [`AmbiguousPath`].
    pub fn find<'a, 'p>(
        &'a self,
        path: &'p str,
    ) -> Result<Option<(usize, &'a Route, Match<'p>)>, AmbiguousPath> {
        let found = self
            .routes
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.template.matches(path).map(|m| (i, r, m)));
        let exposed = matches!(&found, Some((_, r, _)) if !r.personal_data);
        if exposed
            && self.personal
            && path.bytes().any(|b| b == b';' || b.is_ascii_uppercase())
            && self
                .routes
                .iter()
                .any(|r| r.personal_data && r.template.matches_loosely(path))
        {
            return Err(AmbiguousPath);
        }
        Ok(found)
    }

    /// The route at `index`.
    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
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
