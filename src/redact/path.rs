//! Field paths: `orders.items.sku`, `*.email`, `**.date_of_birth`.

use std::fmt;
use std::str::FromStr;

/// One segment of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A literal object key.
    Key(String),
    /// `*`: any one key.
    Any,
    /// `**`: any number of keys, including none.
    AnyDepth,
}

/// A parsed field path.
///
/// Keys are separated by `.`; arrays are transparent (a path walks through every element
/// of an array it meets); `*` matches any one key and `**` any number of keys, including none.
/// A key that itself contains a `.` can only be reached with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

/// Why a field path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("the field path is empty")]
    Empty,
    /// Two dots in a row, or a leading/trailing dot.
    #[error(
        "field path \"{0}\" has an empty part (two dots in a row, or a dot at the start or end)"
    )]
    EmptySegment(String),
    /// A segment mixes `*` with other characters.
    #[error(
        "field path \"{path}\" has the part \"{segment}\"; `*` and `**` must stand alone between dots"
    )]
    PartialWildcard {
        /// The whole path.
        path: String,
        /// The offending segment.
        segment: String,
    },
    /// `**.**`.
    #[error("field path \"{0}\" has `**` twice in a row; one `**` already matches any depth")]
    RepeatedAnyDepth(String),
    /// The path is only `**`, which would match the whole document.
    #[error("field path \"{0}\" matches the whole document; name at least one key or use `*`")]
    WholeDocument(String),
    /// Surrounding white space.
    #[error("field path \"{0}\" has spaces at the start or end")]
    Whitespace(String),
}

impl FieldPath {
    /// Parses a dotted field path.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.trim() != text {
            return Err(PathError::Whitespace(text.to_owned()));
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let segment = match part {
                "" => return Err(PathError::EmptySegment(text.to_owned())),
                "*" => Segment::Any,
                "**" => {
                    if segments.last() == Some(&Segment::AnyDepth) {
                        return Err(PathError::RepeatedAnyDepth(text.to_owned()));
                    }
                    Segment::AnyDepth
                }
                p if p.contains('*') => {
                    return Err(PathError::PartialWildcard {
                        path: text.to_owned(),
                        segment: p.to_owned(),
                    });
                }
                p => Segment::Key(p.to_owned()),
            };
            segments.push(segment);
        }
        if segments.iter().all(|s| *s == Segment::AnyDepth) {
            return Err(PathError::WholeDocument(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl FromStr for FieldPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_wildcards() {
        let p = FieldPath::parse("orders.*.sku").unwrap();
        assert_eq!(
            p.segments(),
            &[
                Segment::Key("orders".into()),
                Segment::Any,
                Segment::Key("sku".into())
            ]
        );
        assert_eq!(p.as_str(), "orders.*.sku");
        let p = FieldPath::parse("**.email").unwrap();
        assert_eq!(p.segments()[0], Segment::AnyDepth);
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(FieldPath::parse(""), Err(PathError::Empty));
        assert!(matches!(
            FieldPath::parse("a..b"),
            Err(PathError::EmptySegment(_))
        ));
        assert!(matches!(
            FieldPath::parse(".a"),
            Err(PathError::EmptySegment(_))
        ));
        assert!(matches!(
            FieldPath::parse("a.b*"),
            Err(PathError::PartialWildcard { .. })
        ));
        assert!(matches!(
            FieldPath::parse("a.**.**"),
            Err(PathError::RepeatedAnyDepth(_))
        ));
        assert!(matches!(
            FieldPath::parse("**"),
            Err(PathError::WholeDocument(_))
        ));
        assert!(matches!(
            FieldPath::parse(" a"),
            Err(PathError::Whitespace(_))
        ));
        assert_eq!(
            FieldPath::parse("a..b").unwrap_err().to_string(),
            "field path \"a..b\" has an empty part (two dots in a row, or a dot at the start or end)"
        );
    }
}
