//! `route.collection`: raw keys → [`Collection`], with messages naming the key to change.

use super::raw::RawCollection;
use super::{ConfigError, invalid};
use crate::routing::{Collection, CollectionFormat, DEFAULT_MAX_ELEMENTS, parse_field_path};

/// Validates one route's `collection` table; `key` is `route[i].collection`.
pub(crate) fn build(raw: RawCollection, key: &str) -> Result<Collection, ConfigError> {
    let subject =
        parse_field_path(&raw.subject).map_err(|e| invalid(format!("{key}.subject"), e))?;
    if subject.is_empty() {
        return Err(invalid(
            format!("{key}.subject"),
            "name the field inside each record that holds its data subject, like \"id\" or \"customer.id\"",
        ));
    }
    if raw.max_elements == Some(0) {
        return Err(invalid(
            format!("{key}.max_elements"),
            "must be at least 1 (leave it out for the default)",
        ));
    }
    let format = match raw.format.as_deref() {
        None | Some("json") => {
            let path = parse_field_path(raw.path.as_deref().unwrap_or(""))
                .map_err(|e| invalid(format!("{key}.path"), e))?;
            let envelope = raw.envelope.unwrap_or_default();
            for (i, name) in envelope.iter().enumerate() {
                let at = format!("{key}.envelope[{i}]");
                if path.is_empty() {
                    return Err(invalid(
                        at,
                        "the body is the array (path = \"\"), so there is no envelope around it; remove envelope",
                    ));
                }
                if name.is_empty() || name.contains('.') || name.contains('*') {
                    return Err(invalid(
                        at,
                        format!("\"{name}\" is not a top-level field name (no dots or wildcards)"),
                    ));
                }
                if path.first() == Some(name) {
                    return Err(invalid(
                        at,
                        format!(
                            "\"{name}\" holds the records (collection.path); it cannot also pass as an envelope field"
                        ),
                    ));
                }
                if envelope[..i].contains(name) {
                    return Err(invalid(at, format!("\"{name}\" is listed twice")));
                }
            }
            CollectionFormat::Json { path, envelope }
        }
        Some("ndjson") => {
            for (given, what) in [
                (raw.path.is_some(), "path"),
                (raw.envelope.is_some(), "envelope"),
            ] {
                if given {
                    return Err(invalid(
                        format!("{key}.{what}"),
                        format!(
                            "an NDJSON collection has one record per line, so it has no {what}; remove it"
                        ),
                    ));
                }
            }
            CollectionFormat::Ndjson
        }
        Some(other) => {
            return Err(invalid(
                format!("{key}.format"),
                format!(
                    "\"{other}\" is not a collection format; use \"json\" (the default) or \"ndjson\""
                ),
            ));
        }
    };
    let max_elements = match format {
        CollectionFormat::Json { .. } => Some(raw.max_elements.unwrap_or(DEFAULT_MAX_ELEMENTS)),
        CollectionFormat::Ndjson => raw.max_elements,
    };
    Ok(Collection {
        format,
        subject,
        max_elements,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use crate::config::Settings;
    use crate::routing::{CollectionFormat, DEFAULT_MAX_ELEMENTS};

    fn config(route: &str) -> String {
        format!(
            r#"
[gateway]
listen = "127.0.0.1:8080"
default_region = "default"
[admin]
listen = "127.0.0.1:8081"
[auth]
issuer = "i"
audience = "a"
jwks = "jwks.json"
[store]
path = "data/consent"
[audit]
dir = "data/audit"
[policies]
dir = "policies"
[[route]]
name = "search"
upstream = "http://127.0.0.1:9000"
{route}
"#
        )
    }

    fn error(route: &str) -> String {
        Settings::from_toml(&config(route), Path::new("."))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn json_and_ndjson_collections_load() {
        let s = Settings::from_toml(
            &config(
                "match = \"/api/customers\"\npersonal_data = true\ncollection = { path = \"data.items\", subject = \"customer.id\", envelope = [\"total\"] }",
            ),
            Path::new("."),
        )
        .unwrap();
        let c = s.routes.get(0).unwrap().collection.clone().unwrap();
        assert_eq!(c.subject, ["customer", "id"]);
        assert_eq!(c.max_elements, Some(DEFAULT_MAX_ELEMENTS));
        assert_eq!(
            c.format,
            CollectionFormat::Json {
                path: vec!["data".into(), "items".into()],
                envelope: vec!["total".into()]
            }
        );
        let s = Settings::from_toml(
            &config("match = \"/api/export\"\npersonal_data = true\ncollection = { format = \"ndjson\", subject = \"id\" }"),
            Path::new("."),
        )
        .unwrap();
        let c = s.routes.get(0).unwrap().collection.clone().unwrap();
        assert_eq!((c.format, c.max_elements), (CollectionFormat::Ndjson, None));
    }

    #[test]
    fn bad_collections_name_the_key() {
        let cases = [
            (
                "match = \"/api/customers\"\npersonal_data = true",
                "route[0].personal_data",
            ),
            (
                "match = \"/api/customers/{subject}\"\npersonal_data = true\ncollection = { subject = \"id\" }",
                "route[0].collection",
            ),
            (
                "match = \"/api/customers\"\npersonal_data = false\ncollection = { subject = \"id\" }",
                "route[0].collection",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { subject = \"\" }",
                "route[0].collection.subject",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { subject = \"**.id\" }",
                "route[0].collection.subject",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { path = \"items.\", subject = \"id\" }",
                "route[0].collection.path",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { subject = \"id\", envelope = [\"total\"] }",
                "route[0].collection.envelope[0]",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { path = \"items\", subject = \"id\", envelope = [\"items\"] }",
                "route[0].collection.envelope[0]",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { path = \"items\", subject = \"id\", envelope = [\"a.b\"] }",
                "route[0].collection.envelope[0]",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { subject = \"id\", max_elements = 0 }",
                "route[0].collection.max_elements",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { format = \"ndjson\", path = \"x\", subject = \"id\" }",
                "route[0].collection.path",
            ),
            (
                "match = \"/a\"\npersonal_data = true\ncollection = { format = \"csv\", subject = \"id\" }",
                "route[0].collection.format",
            ),
        ];
        for (route, key) in cases {
            let err = error(route);
            assert!(err.starts_with(key), "{key}: {err}");
        }
        assert!(
            error(
                "match = \"/a\"\npersonal_data = true\ncollection = { subject = \"id\", typo = 1 }"
            )
            .contains("typo")
        );
    }
}
