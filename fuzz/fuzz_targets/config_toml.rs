//! `Settings::from_toml` on arbitrary text: never panics; an accepted config has at least one
//! route, and every route is what its `match` text compiles to and obeys the route rules.
#![no_main]

use std::path::Path;

use consentgate::config::{Settings, StoreSettings};
use consentgate::routing::Template;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(settings) = Settings::from_toml(text, Path::new("/tmp")) else {
        return;
    };
    assert!(
        !settings.routes.is_empty(),
        "accepted a config without routes"
    );
    assert!(settings.routes.len() >= 1);

    // Re-read the `[[route]]` tables as plain TOML to get each `match` text back.
    let raw: toml::Table = toml::from_str(text).expect("accepted config must be valid TOML");
    let raw_routes = raw
        .get("route")
        .and_then(toml::Value::as_array)
        .expect("accepted config must have [[route]]");
    assert_eq!(raw_routes.len(), settings.routes.len());

    let mut names = std::collections::HashSet::new();
    for (raw_route, route) in raw_routes.iter().zip(settings.routes.iter()) {
        let pattern = raw_route
            .get("match")
            .and_then(toml::Value::as_str)
            .expect("route has a string match");
        let template = Template::parse(pattern).expect("accepted route template must parse");
        assert_eq!(template, route.template, "template differs from its text");
        assert!(
            names.insert(route.name.clone()),
            "duplicate route name accepted"
        );
        assert!(
            !(route.personal_data && route.public),
            "public personal-data route"
        );
        if route.personal_data {
            assert!(
                route.template.has_subject(),
                "personal-data route without {{subject}}"
            );
        }
        let scheme = route.upstream.scheme.as_str();
        assert!(
            scheme == "http" || scheme == "https",
            "upstream scheme {scheme}"
        );
    }

    let region = &settings.gateway.default_region;
    assert!(!region.is_empty() && region.len() <= 32);
    assert!(
        region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    );
    assert!(settings.gateway.max_body_bytes > 0);
    assert!(settings.gateway.max_connections > 0);
    assert!(!settings.gateway.upstream_timeout.is_zero());
    assert!(!settings.gateway.header_read_timeout.is_zero());
    assert!(!settings.gateway.shutdown_grace.is_zero());
    assert!(settings.auth.jwks.is_some() || settings.auth.hs256_secret_file.is_some());
    assert!(!settings.auth.issuer.is_empty() && !settings.auth.audience.is_empty());
    assert!(settings.audit.segment_bytes >= 4096);
    // Relative paths resolve against the base dir.
    match &settings.store {
        StoreSettings::Sled { path } => assert!(path.is_absolute()),
        StoreSettings::Postgres(pg) => {
            assert!(pg.max_staleness >= consentgate::config::MIN_MAX_STALENESS)
        }
    }
    if let consentgate::config::AuditStorage::Files { dir } = &settings.audit.storage {
        assert!(dir.is_absolute());
    }
    assert!(settings.policies.dir.is_absolute());
});
