//! `Template::parse` on arbitrary text and, when accepted, `matches` against paths derived
//! from the template: the template's own shape matches (with the substituted subject), a
//! trailing slash matches too, an extra segment matches only with `**`, a changed literal
//! never matches.
#![no_main]

use consentgate::routing::Template;
use libfuzzer_sys::fuzz_target;

const SUBJECT: &str = "s-1";

fuzz_target!(|input: &str| {
    // `template` or `template\nprobe path`.
    let (text, probe) = input.split_once('\n').unwrap_or((input, "/"));
    let Ok(t) = Template::parse(text) else {
        // Anything else must not be a panic; a probe against nothing is pointless.
        return;
    };
    // Arbitrary probes never panic.
    let _ = t.matches(probe);

    let body = text
        .strip_prefix('/')
        .expect("accepted templates are absolute");
    let mut segs: Vec<&str> = Vec::new();
    let mut rest = false;
    let mut literal_at = None;
    if !body.is_empty() {
        for (i, part) in body.split('/').enumerate() {
            match part {
                "**" => rest = true,
                "{subject}" => segs.push(SUBJECT),
                lit => {
                    assert!(!lit.is_empty() && lit != "." && lit != "..");
                    assert!(
                        !lit.contains(['{', '}', '*', '%', '\\']),
                        "{text:?}: {lit:?}"
                    );
                    literal_at.get_or_insert(i);
                    segs.push(lit);
                }
            }
        }
    }
    let path = format!("/{}", segs.join("/"));
    let m = t
        .matches(&path)
        .unwrap_or_else(|| panic!("{text:?} does not match {path:?}"));
    assert_eq!(m.subject, t.has_subject().then_some(SUBJECT));
    if path != "/" {
        let slash = format!("{path}/");
        assert!(
            t.matches(&slash).is_some(),
            "{text:?} does not match {slash:?}"
        );
        let deeper = format!("{path}/x/y");
        assert_eq!(t.matches(&deeper).is_some(), rest, "{text:?} vs {deeper:?}");
    }
    let longer = format!("{}/extra", path.trim_end_matches('/'));
    assert_eq!(t.matches(&longer).is_some(), rest, "{text:?} vs {longer:?}");
    if let Some(i) = literal_at {
        let mut changed = segs.clone();
        let edited = format!("{}~", changed[i]);
        changed[i] = &edited;
        let other = format!("/{}", changed.join("/"));
        assert!(
            t.matches(&other).is_none(),
            "{text:?} matches changed literal {other:?}"
        );
    }
    if t.has_subject() {
        // An empty subject segment never matches.
        let empty = path.replacen(SUBJECT, "", 1);
        if let Some(m) = t.matches(&empty) {
            assert!(
                m.subject.is_some_and(|s| !s.is_empty()),
                "{text:?} vs {empty:?}"
            );
        }
    }
});
