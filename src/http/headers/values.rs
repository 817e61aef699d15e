//! Grammars of the response header values relayed on personal-data routes. Each parser returns
//! the value in canonical form, or `None` when it is not what the header claims to be.

use std::time::SystemTime;

/// `type/subtype`, with `charset` kept as the only parameter (RFC 9110 §8.3.1). Other
/// parameters are dropped: a quoted-string may say anything.
pub(super) fn media_type(v: &str) -> Option<String> {
    const TOP: [&str; 9] = [
        "application",
        "audio",
        "font",
        "image",
        "message",
        "model",
        "multipart",
        "text",
        "video",
    ];
    let mut parts = v.split(';');
    let (top, sub) = parts.next()?.trim().split_once('/')?;
    let (top, sub) = (top.to_ascii_lowercase(), sub.to_ascii_lowercase());
    if !TOP.contains(&top.as_str()) || !is_token(&sub, 64) {
        return None;
    }
    let mut out = format!("{top}/{sub}");
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"').to_ascii_lowercase();
            if !is_charset(&value) {
                return None;
            }
            out.push_str("; charset=");
            out.push_str(&value);
        }
    }
    Some(out)
}

/// `1*DIGIT`.
pub(super) fn content_length(v: &str) -> Option<String> {
    let n: u64 = v.parse().ok()?;
    (v.bytes().all(|b| b.is_ascii_digit())).then(|| n.to_string())
}

/// A comma-separated list of BCP 47 language tags made of a language, script, region and
/// variants (RFC 5646 §2.1; extensions and private use are refused: they may say anything).
pub(super) fn language_tags(v: &str) -> Option<String> {
    let tags: Vec<&str> = v.split(',').map(str::trim).collect();
    if tags.len() > 8 || !tags.iter().all(|t| language_tag(t)) {
        return None;
    }
    Some(tags.join(", "))
}

fn language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let Some(language) = subtags.next() else {
        return false;
    };
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    // Script, then region, then variants, each optional but in this order.
    let mut stage = 0;
    for s in subtags {
        let alpha = s.bytes().all(|b| b.is_ascii_alphabetic());
        let digit = s.bytes().all(|b| b.is_ascii_digit());
        let alnum = s.bytes().all(|b| b.is_ascii_alphanumeric());
        let next = if stage < 1 && s.len() == 4 && alpha {
            1
        } else if stage < 2 && ((s.len() == 2 && alpha) || (s.len() == 3 && digit)) {
            2
        } else if alnum
            && ((5..=8).contains(&s.len())
                || (s.len() == 4 && s.as_bytes().first().is_some_and(u8::is_ascii_digit)))
        {
            3
        } else {
            return false;
        };
        stage = next;
    }
    true
}

/// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime forms),
/// rewritten as IMF-fixdate.
pub(super) fn http_date(v: &str) -> Option<String> {
    let t: SystemTime = httpdate::parse_http_date(v.trim()).ok()?;
    Some(httpdate::fmt_http_date(t))
}

/// `Retry-After`: an HTTP-date or delta-seconds (RFC 9110 §10.2.3).
pub(super) fn retry_after(v: &str) -> Option<String> {
    let v = v.trim();
    if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(|n| n.to_string());
    }
    http_date(v)
}

fn is_token(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
}

fn is_charset(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            media_type("Application/JSON; charset=\"UTF-8\"").as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            media_type("text/plain; name=\"kim@example.com\"").as_deref(),
            Some("text/plain")
        );
        assert_eq!(
            media_type("application/vnd.api+json").as_deref(),
            Some("application/vnd.api+json")
        );
        for bad in [
            "kim@example.com",
            "text/kim@example.com",
            "secret/plain",
            "text/plain; charset=kim@example.com",
            "text/plain; broken",
            "",
        ] {
            assert_eq!(media_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn lengths_and_retry_after() {
        assert_eq!(content_length("42").as_deref(), Some("42"));
        assert_eq!(content_length("+42"), None);
        assert_eq!(retry_after("120").as_deref(), Some("120"));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT").as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            http_date("Sunday, 06-Nov-94 08:49:37 GMT").as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        for bad in [
            "kim@example.com",
            "-1",
            "1.5",
            "12345678901",
            "Sun, 06 Nov 1994 kim",
        ] {
            assert_eq!(retry_after(bad), None, "{bad}");
        }
        assert_eq!(http_date("+49 30 1234567"), None);
    }

    #[test]
    fn language_tag_lists() {
        assert_eq!(language_tags("de-DE, en").as_deref(), Some("de-DE, en"));
        for ok in ["en", "zh-Hant-TW", "es-419", "sl-rozaj", "de-1996", "pt-BR"] {
            assert!(language_tag(ok), "{ok}");
        }
        for bad in [
            "kim@example.com",
            "en-x-c1001",
            "en-u-kim",
            "",
            "e",
            "english",
            "en--US",
            "4111-1111",
            "en-US-DE",
        ] {
            assert_eq!(language_tags(bad), None, "{bad}");
        }
    }
}
