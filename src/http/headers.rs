//! Header rules applied in both directions: hop-by-hop removal, request ids, forwarding headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

mod values;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Purpose`.
pub static X_PURPOSE: HeaderName = HeaderName::from_static("x-purpose");
/// `Sec-GPC`.
pub static SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");
/// `X-Consentgate-Decision` (allow / deny / report-deny).
pub static X_DECISION: HeaderName = HeaderName::from_static("x-consentgate-decision");
/// `X-Consentgate-Region`: the region whose policy decided.
pub static X_REGION: HeaderName = HeaderName::from_static("x-consentgate-region");
/// `X-Consentgate-Caller`: the authenticated caller, told to the upstream.
pub static X_CALLER: HeaderName = HeaderName::from_static("x-consentgate-caller");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers that a `Connection` list can never remove: they carry the meaning of the message
/// (`Content-*` framing and labels) or the person's privacy signal (`Sec-GPC`), and hop-by-hop
/// rules must not change what is inspected, redacted or forwarded.
const NEVER_HOP_BY_HOP: [&str; 4] = [
    "sec-gpc",
    "content-encoding",
    "content-type",
    "content-length",
];

/// Removes the fixed hop-by-hop headers and every header `Connection` names, except the
/// [`NEVER_HOP_BY_HOP`] ones. Run it last on a message, after every decision on its headers.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !NEVER_HOP_BY_HOP.contains(&name.as_str()))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes every `X-Consentgate-*` header, so that no client or upstream can forge the
/// gateway's own statements.
pub fn remove_own_headers(headers: &mut HeaderMap) {
    let own: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-consentgate-"))
        .cloned()
        .collect();
    for name in own {
        headers.remove(name);
    }
}

/// A header value's grammar: the value in canonical form, or `None`.
type Grammar = fn(&str) -> Option<String>;

/// Response headers an upstream may pass to the caller on a personal-data route, each with the
/// grammar its value must have. Anything else (custom headers, `Set-Cookie`,
/// `Content-Disposition`, `Location`, …) could carry personal data past redaction and is
/// dropped, and so is an allowed header whose value is not what it claims to be (an e-mail
/// address in `Retry-After`). `Content-Length` is kept because the gateway sets it for the
/// redacted body before this runs.
const PERSONAL_RESPONSE_HEADERS: [(&str, Grammar); 5] = [
    ("content-type", values::media_type),
    ("content-length", values::content_length),
    ("content-language", values::language_tags),
    ("date", values::http_date),
    ("retry-after", values::retry_after),
];

/// Keeps only [`PERSONAL_RESPONSE_HEADERS`] whose values parse (one value each, rewritten in
/// its canonical form) and marks the response as not storable by any cache
/// (`Cache-Control: no-store, private`): a redacted view is specific to one caller and purpose.
pub fn restrict_personal_response(headers: &mut HeaderMap) {
    let mut kept: Vec<(&'static str, HeaderValue)> = Vec::new();
    for (name, parse) in PERSONAL_RESPONSE_HEADERS {
        let mut values = headers.get_all(name).iter();
        // A repeated header is ambiguous: which one would the caller believe?
        if let (Some(v), None) = (values.next(), values.next())
            && let Some(canonical) = v.to_str().ok().and_then(parse)
            && let Ok(v) = HeaderValue::from_str(&canonical)
        {
            kept.push((name, v));
        }
    }
    headers.clear();
    for (name, v) in kept {
        headers.insert(name, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
}

/// The request id: a valid incoming `X-Request-Id` (1–128 of `A-Z a-z 0-9 . _ -`) is kept,
/// otherwise a new random one is made.
pub fn request_id(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(v), None) = (values.next(), values.next())
        && (1..=128).contains(&v.len())
        && v.as_bytes()
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && let Ok(s) = v.to_str()
    {
        return s.to_string();
    }
    new_request_id()
}

/// A new 128-bit id in hex, unique in the process and random-looking: the first half is a
/// random number drawn once per thread, the second a per-thread counter passed through a
/// keyed bijection (so ids never repeat on a thread, and do not read as a sequence). Drawing
/// 128 fresh random bits per request cost more than the rest of the id's work; an id needs to
/// be unique, not secret.
pub fn new_request_id() -> String {
    thread_local! {
        static IDS: std::cell::Cell<(u64, u64, u64)> = std::cell::Cell::new(id_seed());
    }
    let (prefix, key, counter) = IDS.get();
    IDS.set((prefix, key, counter.wrapping_add(1)));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prefix.to_be_bytes());
    bytes[8..].copy_from_slice(&scramble(counter ^ key).to_be_bytes());
    crate::hex::encode(&bytes)
}

/// A thread's id prefix, counter key and first counter value, from the system RNG (the time
/// and the thread's id if it fails, which leaves ids unique but guessable).
fn id_seed() -> (u64, u64, u64) {
    let mut bytes = [0u8; 24];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        std::time::SystemTime::now().hash(&mut h);
        std::thread::current().id().hash(&mut h);
        bytes[..8].copy_from_slice(&h.finish().to_be_bytes());
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    };
    (word(0), word(1), word(2))
}

/// The splitmix64 finaliser: a bijection on `u64` (each step is invertible), so distinct
/// counters give distinct ids.
fn scramble(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Adds `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    proto: &str,
    host: Option<&HeaderValue>,
) {
    let client_text = client.to_string();
    // `Forwarded` first: it reads `client_text`, which `X-Forwarded-For` then takes.
    let mut forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) => {
            let mut f = String::with_capacity(prev.len() + 64);
            f.push_str(prev);
            f.push_str(", ");
            f
        }
        None => String::with_capacity(64),
    };
    forwarded.push_str("for=");
    match client {
        IpAddr::V4(_) => forwarded.push_str(&client_text),
        IpAddr::V6(_) => {
            forwarded.push_str("\"[");
            forwarded.push_str(&client_text);
            forwarded.push_str("]\"");
        }
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(proto);
    if let Some(host) = host.and_then(|h| h.to_str().ok())
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(&X_FORWARDED_HOST, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert(header::FORWARDED, v);
    }
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {client_text}"),
        None => client_text,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(if proto == "https" { "https" } else { "http" }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_fixed_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn personal_responses_keep_only_safe_headers() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=600"),
        );
        h.insert(
            "x-customer-email",
            HeaderValue::from_static("a@example.com"),
        );
        h.insert("set-cookie", HeaderValue::from_static("sid=1"));
        restrict_personal_response(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["cache-control"], "no-store, private");
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn request_id_kept_only_when_valid() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("bad id!"));
        let id = request_id(&h);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn new_request_ids_are_unique_32_digit_hex() {
        let ids: std::collections::HashSet<String> =
            (0..100_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let other = std::thread::spawn(new_request_id).join().unwrap();
        assert!(!ids.contains(&other));
        // Consecutive ids differ in many bits, not only in the last digit.
        let (a, b) = (new_request_id(), new_request_id());
        let differing = a[16..]
            .bytes()
            .zip(b[16..].bytes())
            .filter(|(x, y)| x != y)
            .count();
        assert!(differing > 4, "{a} {b}");
    }

    #[test]
    fn forwarded_quotes_ipv6_and_appends_to_an_earlier_hop() {
        let mut h = HeaderMap::new();
        h.insert(header::FORWARDED, HeaderValue::from_static("for=10.0.0.1"));
        set_forwarded(&mut h, "::1".parse().unwrap(), "https", None);
        assert_eq!(h["forwarded"], "for=10.0.0.1, for=\"[::1]\";proto=https");
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("x-forwarded-host").is_none());
        // A host that could break out of the quoted string is left out.
        let mut h = HeaderMap::new();
        let evil = HeaderValue::from_static("a\"b");
        set_forwarded(&mut h, "127.0.0.1".parse().unwrap(), "http", Some(&evil));
        assert_eq!(h["forwarded"], "for=127.0.0.1;proto=http");
    }

    #[test]
    fn forwarded_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "http",
            Some(&HeaderValue::from_static("gw.local")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["forwarded"], "for=127.0.0.1;proto=http;host=\"gw.local\"");
        assert_eq!(h["x-forwarded-host"], "gw.local");
    }
}
