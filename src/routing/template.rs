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

    proptest! {
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
