//! Route templates: `/api/customers/{subject}/**`.
//!
//! A template is a list of segments: literals (matched exactly, case-sensitively), at most one
//! `{subject}` (exactly one non-empty segment), and an optional final `**` (any rest, may be
//! empty).

/// One template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Subject,
}

/// A compiled route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    rest: bool,
}

/// Why a template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Not starting with `/`.
    #[error("a route template must start with '/'")]
    NotAbsolute,
    /// `**` not at the end, or written inside a segment.
    #[error("'**' may only be the last segment")]
    RestNotLast,
    /// Two `{subject}` placeholders.
    #[error("'{{subject}}' may appear only once")]
    TwoSubjects,
    /// `{other}`, `*`, or braces inside a literal.
    #[error("segment \"{0}\" is not supported: use literals, '{{subject}}' and a final '**'")]
    Unsupported(String),
    /// `//` or a dot segment in the template.
    #[error("the template has an empty or dot segment")]
    EmptySegment,
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'a> {
    /// The `{subject}` segment as it appears in the normalised path (still percent-encoded).
    pub subject: Option<&'a str>,
}

impl Template {
    /// Compiles a template.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let body = text.strip_prefix('/').ok_or(TemplateError::NotAbsolute)?;
        let mut segments = Vec::new();
        let mut rest = false;
        if body.is_empty() {
            return Ok(Template { segments, rest });
        }
        for part in body.split('/') {
            if rest {
                return Err(TemplateError::RestNotLast);
            }
            match part {
                "**" => rest = true,
                "{subject}" => {
                    if segments.contains(&Segment::Subject) {
                        return Err(TemplateError::TwoSubjects);
                    }
                    segments.push(Segment::Subject);
                }
                "" | "." | ".." => return Err(TemplateError::EmptySegment),
                p if p.contains("**") => return Err(TemplateError::RestNotLast),
                p if p.contains(['{', '}', '*', '%', '\\']) => {
                    return Err(TemplateError::Unsupported(p.to_string()));
                }
                p => segments.push(Segment::Literal(p.to_string())),
            }
        }
        Ok(Template { segments, rest })
    }

    /// Whether the template has a `{subject}` placeholder.
    pub fn has_subject(&self) -> bool {
        self.segments.contains(&Segment::Subject)
    }

    /// Matches a normalised path (as produced by [`super::normalize`]).
    pub fn matches<'a>(&self, path: &'a str) -> Option<Match<'a>> {
        let body = path.strip_prefix('/')?;
        let mut parts = if body.is_empty() {
            None
        } else {
            Some(body.split('/'))
        };
        let mut subject = None;
        for seg in &self.segments {
            let part = parts.as_mut().and_then(Iterator::next)?;
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Subject if !part.is_empty() => subject = Some(part),
                _ => return None,
            }
        }
        let mut left = parts.into_iter().flatten();
        match (left.next(), left.next()) {
            (None, _) | (Some(""), None) => Some(Match { subject }),
            _ if self.rest => Some(Match { subject }),
            _ => None,
        }
    }
}

impl Template {
    /// A path that both templates match, if there is one: the witness named when a route
    /// table is refused because one route could capture another's paths.
    pub fn overlap(&self, other: &Template) -> Option<String> {
        let n = self.segments.len().min(other.segments.len());
        let mut path = String::new();
        for (a, b) in self.segments.iter().zip(&other.segments) {
            let seg = match (a, b) {
                (Segment::Literal(x), Segment::Literal(y)) if x == y => x.as_str(),
                (Segment::Literal(_), Segment::Literal(_)) => return None,
                (Segment::Literal(x), Segment::Subject)
                | (Segment::Subject, Segment::Literal(x)) => x.as_str(),
                (Segment::Subject, Segment::Subject) => "x",
            };
            path.push('/');
            path.push_str(seg);
        }
        let tail = match self.segments.len().cmp(&other.segments.len()) {
            std::cmp::Ordering::Equal => &[][..],
            std::cmp::Ordering::Less if self.rest => &other.segments[n..],
            std::cmp::Ordering::Greater if other.rest => &self.segments[n..],
            _ => return None,
        };
        for seg in tail {
            path.push('/');
            path.push_str(match seg {
                Segment::Literal(l) => l,
                Segment::Subject => "x",
            });
        }
        if path.is_empty() {
            path.push('/');
        }
        Some(path)
    }

    /// Whether the template matches `path` when literals are compared without regard to ASCII
    /// case and each segment's `;parameters` are ignored: what a lenient upstream (a
    /// case-insensitive file system, a servlet container stripping matrix parameters) may
    /// take the path to mean.
    pub fn matches_loosely(&self, path: &str) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = body
            .split('/')
            .map(|p| p.split(';').next().unwrap_or(p))
            .filter(|p| !body.is_empty() || !p.is_empty());
        for seg in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match seg {
                Segment::Literal(l) => l.eq_ignore_ascii_case(part),
                Segment::Subject => !part.is_empty(),
            };
            if !ok {
                return false;
            }
        }
        match (parts.next(), parts.next()) {
            (None, _) | (Some(""), None) => true,
            _ => self.rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_errors() {
        assert_eq!(Template::parse("api"), Err(TemplateError::NotAbsolute));
        assert_eq!(Template::parse("/a/**/b"), Err(TemplateError::RestNotLast));
        assert_eq!(Template::parse("/a/x**"), Err(TemplateError::RestNotLast));
        assert_eq!(
            Template::parse("/{subject}/{subject}"),
            Err(TemplateError::TwoSubjects)
        );
        assert!(matches!(
            Template::parse("/{id}"),
            Err(TemplateError::Unsupported(_))
        ));
        assert!(matches!(
            Template::parse("/a/*"),
            Err(TemplateError::Unsupported(_))
        ));
        assert_eq!(Template::parse("/a//b"), Err(TemplateError::EmptySegment));
    }

    #[test]
    fn matching() {
        let t = Template::parse("/api/customers/{subject}/**").unwrap();
        assert_eq!(
            t.matches("/api/customers/c-1").unwrap().subject,
            Some("c-1")
        );
        assert_eq!(
            t.matches("/api/customers/c-1/").unwrap().subject,
            Some("c-1")
        );
        assert_eq!(
            t.matches("/api/customers/c-1/orders/7").unwrap().subject,
            Some("c-1")
        );
        assert!(t.matches("/api/customers").is_none());
        assert!(t.matches("/api/customers/").is_none());
        assert!(t.matches("/API/customers/c-1").is_none(), "case-sensitive");
        assert!(t.matches("/api/customersx/c-1").is_none());

        let exact = Template::parse("/api/status").unwrap();
        assert!(exact.matches("/api/status").is_some());
        assert!(exact.matches("/api/status/").is_some());
        assert!(exact.matches("/api/status/x").is_none());
        let root = Template::parse("/**").unwrap();
        assert!(root.matches("/").is_some());
        assert!(root.matches("/anything/at/all").is_some());
    }

    #[test]
    fn overlap_finds_a_shared_path() {
        let t = |s: &str| Template::parse(s).unwrap();
        let personal = t("/api/customers/{subject}/**");
        assert_eq!(
            t("/api/**").overlap(&personal).as_deref(),
            Some("/api/customers/x")
        );
        assert_eq!(
            t("/**").overlap(&personal).as_deref(),
            Some("/api/customers/x")
        );
        assert_eq!(
            t("/api/{subject}/c-1").overlap(&personal).as_deref(),
            Some("/api/customers/c-1")
        );
        assert_eq!(
            t("/api/customers/c-1/orders").overlap(&personal).as_deref(),
            Some("/api/customers/c-1/orders")
        );
        assert_eq!(t("/api/products/**").overlap(&personal), None);
        assert_eq!(t("/api/customers").overlap(&personal), None);
        assert_eq!(t("/").overlap(&t("/**")).as_deref(), Some("/"));
        let witness = t("/a/{subject}").overlap(&t("/{subject}/b/**")).unwrap();
        assert!(t("/a/{subject}").matches(&witness).is_some());
        assert!(t("/{subject}/b/**").matches(&witness).is_some());
    }

    #[test]
    fn loose_matching_ignores_case_and_parameters() {
        let t = Template::parse("/api/customers/{subject}/**").unwrap();
        assert!(t.matches_loosely("/API/Customers/c-1"));
        assert!(t.matches_loosely("/api/customers;v=1/c-1/profile"));
        assert!(t.matches_loosely("/api/customers/c-1;x"));
        assert!(!t.matches_loosely("/api/products/c-1"));
        assert!(!t.matches_loosely("/api/customers"));
        let exact = Template::parse("/api/status").unwrap();
        assert!(exact.matches_loosely("/API/status/"));
        assert!(!exact.matches_loosely("/api/status/x"));
    }

    proptest! {
        #[test]
        fn overlap_witness_matches_both(
            a in proptest::collection::vec(prop_oneof!["[ab]", Just("{subject}".to_string())], 0..4),
            b in proptest::collection::vec(prop_oneof!["[ab]", Just("{subject}".to_string())], 0..4),
            ra: bool, rb: bool,
        ) {
            let build = |segs: &[String], rest: bool| {
                let mut segs: Vec<String> = segs.to_vec();
                let mut seen = false;
                for s in segs.iter_mut() {
                    if s == "{subject}" {
                        if seen { *s = "a".into(); }
                        seen = true;
                    }
                }
                if rest { segs.push("**".into()); }
                Template::parse(&format!("/{}", segs.join("/"))).unwrap()
            };
            let (ta, tb) = (build(&a, ra), build(&b, rb));
            match ta.overlap(&tb) {
                Some(w) => {
                    prop_assert!(ta.matches(&w).is_some(), "{}", w);
                    prop_assert!(tb.matches(&w).is_some(), "{}", w);
                }
                None => {
                    // No shared path among short paths over the same alphabet.
                    for len in 0..6usize {
                        for bits in 0..(3usize.pow(len as u32)) {
                            let mut p = String::new();
                            let mut x = bits;
                            for _ in 0..len { p.push('/'); p.push(['a','b','c'][x % 3]); x /= 3; }
                            if p.is_empty() { p.push('/'); }
                            prop_assert!(!(ta.matches(&p).is_some() && tb.matches(&p).is_some()), "{}", p);
                        }
                    }
                }
            }
        }

        #[test]
        fn subject_template_matches_exactly_its_shape(
            subject in "[a-zA-Z0-9._~-]{1,12}",
            rest in proptest::collection::vec("[a-z0-9]{1,5}", 0..4),
            prefix in "[a-z]{1,6}",
        ) {
            let t = Template::parse("/api/customers/{subject}/**").unwrap();
            let mut path = format!("/api/customers/{subject}");
            for r in &rest { path.push('/'); path.push_str(r); }
            let m = t.matches(&path);
            prop_assert_eq!(m.map(|m| m.subject), Some(Some(subject.as_str())));
            let other = format!("/{prefix}x/customers/{subject}");
            prop_assert!(t.matches(&other).is_none());
        }

        #[test]
        fn literal_templates_only_match_themselves(a in "[a-z]{1,6}", b in "[a-z]{1,6}") {
            let t = Template::parse(&format!("/{a}")).unwrap();
            prop_assert_eq!(t.matches(&format!("/{b}")).is_some(), a == b);
        }
    }
}
