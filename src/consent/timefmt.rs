//! Serde helpers that write timestamps as RFC 3339 strings (the `time`
//! crate's own serde support is not enabled in this project).

use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// Formats a timestamp as RFC 3339 in UTC.
pub(crate) fn format(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(UtcOffset::UTC).format(&Rfc3339)
}

fn parse(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339).map(|t| t.to_offset(UtcOffset::UTC))
}

/// Serialises an `OffsetDateTime` as an RFC 3339 string.
pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t).map_err(S::Error::custom)?)
}

/// Reads an RFC 3339 string into an `OffsetDateTime` (UTC).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

/// The same for `Option<OffsetDateTime>` (`None` is written as nothing or `null`).
pub(crate) mod option {
    use super::*;

    /// Serialises `Some(t)` as an RFC 3339 string and `None` as `null`.
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional RFC 3339 string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<std::borrow::Cow<str>>::deserialize(d)? {
            Some(text) => parse(&text).map(Some).map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}
