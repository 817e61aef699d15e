//! Attack family: forged, stale, malformed and misplaced bearer tokens on a personal-data
//! route. Every attack answers `401 unauthenticated` with no personal data and no token in the
//! answer, never reaches the upstream, and leaves exactly one `deny` audit record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// One attack: the `Authorization`-ish header lines, a query string, and the secrets (token
/// parts) that must never be echoed or logged.
struct Attack {
    name: String,
    lines: String,
    query: String,
    secrets: Vec<String>,
}

impl Attack {
    /// `Authorization: Bearer <token>`.
    fn bearer(name: &str, token: &str) -> Attack {
        Attack::lines(name, &format!("Authorization: Bearer {token}\r\n"), token)
    }

    /// Arbitrary header lines carrying `token`.
    fn lines(name: &str, lines: &str, token: &str) -> Attack {
        Attack {
            name: name.to_string(),
            lines: lines.to_string(),
            query: String::new(),
            secrets: secrets_of(token),
        }
    }
}

/// The parts of a token that must never appear in an answer or a log: the whole token and
/// its payload and signature segments.
fn secrets_of(token: &str) -> Vec<String> {
    let mut out = vec![token.to_string()];
    out.extend(
        token
            .split('.')
            .skip(1)
            .filter(|s| s.len() >= 16)
            .map(str::to_string),
    );
    out
}

fn dev_key_pem() -> String {
    std::fs::read_to_string(dev_dir().join("jwt.key")).unwrap()
}

fn dev_kid() -> String {
    consentgate::devtools::certs::key_id(&rcgen::KeyPair::from_pem(&dev_key_pem()).unwrap())
}

/// `header.payload` (raw JSON texts) signed with HMAC-SHA256 under `secret`.
fn hs256_raw(header: &str, payload: &str, secret: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// `header.payload` (raw JSON texts) signed with ECDSA P-256 under the PEM key `pem`.
fn es256_raw_with(pem: &str, header: &str, payload: &str) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let der = rcgen::KeyPair::from_pem(pem).unwrap().serialize_der();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = pair
        .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

/// Signed with the dev ES256 key whatever the header says.
fn es256_raw(header: &str, payload: &str) -> String {
    es256_raw_with(&dev_key_pem(), header, payload)
}

fn hs_secret() -> Vec<u8> {
    std::fs::read(dev_dir().join("hs256.secret"))
        .unwrap()
        .trim_ascii()
        .to_vec()
}

/// Valid claims for the crm caller that may declare `marketing`.
fn good_claims() -> Value {
    consentgate::install_crypto_provider();
    claims("crm", &["marketing"], "")
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn es_header() -> String {
    json!({"alg": "ES256", "typ": "JWT", "kid": dev_kid()}).to_string()
}

/// Sends `a` to the personal route with `X-Purpose: marketing` and request id `rid`.
async fn send_attack(addr: std::net::SocketAddr, a: &Attack, rid: &str) -> String {
    let req = format!(
        "GET {ADV_PROFILE}{q} HTTP/1.1\r\nHost: gw\r\n{lines}X-Purpose: marketing\r\nX-Request-Id: {rid}\r\nConnection: close\r\n\r\n",
        q = a.query,
        lines = a.lines,
    );
    raw_exchange(addr, req.as_bytes(), std::time::Duration::from_secs(5)).await
}

/// Runs every attack against an in-process gateway and checks the full contract.
async fn run(family: &str, attacks: Vec<Attack>) {
    let (up, gw) = marker_gateway("").await;
    // Control: the genuine token is served, so each refusal below is the attack's doing.
    let good = sign_es256(&good_claims());
    let ok = get_personal(&gw, ADV_PROFILE, Some(&good), Some("marketing"), &[]).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    assert_reply_clean("control", &ok, PII_MARKERS);
    let before = up.count();
    for (i, a) in attacks.iter().enumerate() {
        let rid = format!("{family}-{i}");
        let text = send_attack(gw.addr, a, &rid).await;
        let r = assert_raw(&a.name, &text, 401, "unauthenticated");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("bearer"),
            "{}",
            a.name
        );
        assert_eq!(r.header("x-consentgate-decision").as_deref(), Some("deny"));
        let secrets: Vec<&str> = a.secrets.iter().map(String::as_str).collect();
        assert_no_markers(&a.name, &text, &secrets);
        assert_eq!(up.count(), before, "{}: the upstream was contacted", a.name);
        let rec = assert_one_audit(&gw, &rid, "deny", 401);
        assert_eq!(rec["reason"], "unauthenticated", "{}", a.name);
        // Refused before authentication: not attributed to the person named in the path, so
        // anyone without a token cannot write into that person's access report.
        assert_eq!(rec["subject"], Value::Null, "{}", a.name);
        assert_eq!(rec["caller"], Value::Null, "{}", a.name);
        let line = serde_json::to_string(&rec).unwrap();
        assert_no_markers(&a.name, &line, &secrets);
    }
    gw.shutdown().await;
}

fn forged_algorithm_attacks() -> Vec<Attack> {
    let payload = good_claims().to_string();
    let kid = dev_kid();
    let public_pem = rcgen::KeyPair::from_pem(&dev_key_pem())
        .unwrap()
        .public_key_pem();
    let jwks = std::fs::read(dev_dir().join("jwks.json")).unwrap();
    let none = |h: Value| {
        format!(
            "{}.{}.",
            b64(h.to_string().as_bytes()),
            b64(payload.as_bytes())
        )
    };
    let mut out = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        out.push(Attack::bearer(
            &format!("alg {alg}"),
            &none(json!({"alg": alg, "typ": "JWT"})),
        ));
    }
    out.push(Attack::bearer(
        "alg none with the real kid",
        &none(json!({"alg": "none", "kid": kid})),
    ));
    // alg none with a real signature appended.
    let signed = sign_es256(&good_claims());
    let sig = signed.rsplit('.').next().unwrap();
    out.push(Attack::bearer(
        "alg none with a signature",
        &format!("{}{sig}", none(json!({"alg": "none"}))),
    ));
    // HS/EC confusion: HMAC keyed with the public key material.
    for (name, secret) in [
        ("public PEM", public_pem.as_bytes().to_vec()),
        ("public PEM trimmed", public_pem.trim().as_bytes().to_vec()),
        ("JWKS file", jwks.clone()),
    ] {
        out.push(Attack::bearer(
            &format!("HS256 keyed with the {name}"),
            &hs256_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, &secret),
        ));
        out.push(Attack::bearer(
            &format!("HS256 keyed with the {name}, EC kid"),
            &hs256_raw(
                &json!({"alg": "HS256", "kid": kid}).to_string(),
                &payload,
                &secret,
            ),
        ));
    }
    // An EC kid with another algorithm.
    for alg in ["ES384", "RS256", "PS256", "EdDSA", "HS384", "HS512"] {
        out.push(Attack::bearer(
            &format!("{alg} under the ES256 kid"),
            &es256_raw(&json!({"alg": alg, "kid": kid}).to_string(), &payload),
        ));
    }
    // The right alg and kid, but signed by an attacker's key that the header carries inline.
    let evil = rcgen::KeyPair::generate().unwrap();
    let evil_pem = evil.serialize_pem();
    let evil_raw = evil.public_key_raw();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&evil_raw[1..33]), "y": b64(&evil_raw[33..65])});
    for (name, header) in [
        ("embedded jwk", json!({"alg": "ES256", "jwk": jwk})),
        (
            "embedded jwk, real kid",
            json!({"alg": "ES256", "kid": kid, "jwk": jwk}),
        ),
        (
            "jku",
            json!({"alg": "ES256", "jku": "http://127.0.0.1:1/jwks.json"}),
        ),
        (
            "x5u",
            json!({"alg": "ES256", "kid": kid, "x5u": "http://127.0.0.1:1/c.pem"}),
        ),
    ] {
        out.push(Attack::bearer(
            &format!("attacker-signed, {name}"),
            &es256_raw_with(&evil_pem, &header.to_string(), &payload),
        ));
    }
    // A valid token with one signature byte flipped, and with the signature removed.
    let mut bytes = signed.clone().into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    out.push(Attack::bearer(
        "signature flipped",
        &String::from_utf8(bytes).unwrap(),
    ));
    let unsigned = &signed[..signed.rfind('.').unwrap() + 1];
    out.push(Attack::bearer("signature removed", unsigned));
    out
}

#[tokio::test]
async fn forged_algorithms_and_keys_are_unauthenticated() {
    run("alg", forged_algorithm_attacks()).await;
}

fn kid_attacks() -> Vec<Attack> {
    let payload = good_claims().to_string();
    let long = "k".repeat(2000);
    let kids: [&str; 10] = [
        "unknown-kid",
        "",
        "../../../../../../dev/null",
        "/dev/null",
        "x' OR '1'='1",
        "hs256",
        "*",
        "\u{0000}",
        "0000000000000000",
        &long,
    ];
    let mut out: Vec<Attack> = kids
        .iter()
        .map(|kid| {
            Attack::bearer(
                &format!("kid {:?}", kid.chars().take(30).collect::<String>()),
                &es256_raw(&json!({"alg": "ES256", "kid": kid}).to_string(), &payload),
            )
        })
        .collect();
    for (name, kid) in [
        ("kid number", json!(1)),
        ("kid array", json!([dev_kid()])),
        ("kid object", json!({"kid": dev_kid()})),
    ] {
        out.push(Attack::bearer(
            name,
            &es256_raw(&json!({"alg": "ES256", "kid": kid}).to_string(), &payload),
        ));
    }
    // The HS256 secret's file name or content as a kid on an HS256 token signed with nothing.
    out.push(Attack::bearer(
        "HS256 with a kid naming the secret file",
        &hs256_raw(
            &json!({"alg": "HS256", "kid": "hs256.secret"}).to_string(),
            &payload,
            b"",
        ),
    ));
    out
}

#[tokio::test]
async fn key_id_injection_and_unknown_kids_are_unauthenticated() {
    run("kid", kid_attacks()).await;
}

fn stale_and_foreign_attacks() -> Vec<Attack> {
    let t = now() as i64;
    let c = good_claims();
    let cases: Vec<(&str, Value)> = vec![
        (
            "expired an hour ago",
            with(c.clone(), "exp", json!(t - 3600)),
        ),
        (
            "expired beyond the leeway",
            with(c.clone(), "exp", json!(t - 30)),
        ),
        ("exp zero", with(c.clone(), "exp", json!(0))),
        ("exp negative", with(c.clone(), "exp", json!(-1))),
        (
            "exp as string",
            with(c.clone(), "exp", json!((t + 600).to_string())),
        ),
        ("exp missing", without(c.clone(), "exp")),
        ("not yet valid", with(c.clone(), "nbf", json!(t + 3600))),
        ("nbf as string", with(c.clone(), "nbf", json!("0"))),
        ("wrong issuer", with(c.clone(), "iss", json!("evil-issuer"))),
        (
            "issuer prefix",
            with(c.clone(), "iss", json!("consentgate-dev-evil")),
        ),
        (
            "issuer case",
            with(c.clone(), "iss", json!("Consentgate-Dev")),
        ),
        ("issuer missing", without(c.clone(), "iss")),
        (
            "wrong audience",
            with(c.clone(), "aud", json!("someone-else")),
        ),
        (
            "audience list without us",
            with(c.clone(), "aud", json!(["a", "b"])),
        ),
        ("audience missing", without(c.clone(), "aud")),
        ("sub missing", without(c.clone(), "sub")),
    ];
    let mut out = Vec::new();
    for (name, claims) in cases {
        out.push(Attack::bearer(
            &format!("{name} (ES256)"),
            &sign_es256(&claims),
        ));
        out.push(Attack::bearer(
            &format!("{name} (HS256)"),
            &sign_hs256(&claims),
        ));
    }
    out
}

#[tokio::test]
async fn expired_premature_and_foreign_tokens_are_unauthenticated() {
    run("stale", stale_and_foreign_attacks()).await;
}

fn malformed_claim_attacks() -> Vec<Attack> {
    let t = now();
    let base = format!(
        r#""iss":"consentgate-dev","aud":"consentgate","iat":{t},"nbf":{t},"exp":{}"#,
        t + 600
    );
    // Duplicate keys: a lenient parser would keep one of them.
    let dup_payloads = [
        (
            "duplicate purposes",
            format!(r#"{{"sub":"crm",{base},"purposes":[],"purposes":["marketing"]}}"#),
        ),
        (
            "duplicate sub",
            format!(r#"{{"sub":"nobody","sub":"crm",{base},"purposes":["marketing"]}}"#),
        ),
        (
            "duplicate exp",
            format!(r#"{{"sub":"crm",{base},"exp":1,"purposes":["marketing"]}}"#),
        ),
        (
            "duplicate aud",
            format!(r#"{{"sub":"crm",{base},"aud":"evil","purposes":["marketing"]}}"#),
        ),
        (
            "duplicate iss",
            format!(r#"{{"sub":"crm","iss":"evil",{base},"purposes":["marketing"]}}"#),
        ),
    ];
    let mut out = Vec::new();
    for (name, payload) in &dup_payloads {
        out.push(Attack::bearer(
            &format!("{name} (ES256)"),
            &es256_raw(&es_header(), payload),
        ));
        out.push(Attack::bearer(
            &format!("{name} (HS256)"),
            &hs256_raw(r#"{"alg":"HS256","typ":"JWT"}"#, payload, &hs_secret()),
        ));
    }
    let good_payload = good_claims().to_string();
    out.push(Attack::bearer(
        "duplicate alg in the header",
        &hs256_raw(
            r#"{"alg":"HS256","alg":"none","typ":"JWT"}"#,
            &good_payload,
            &hs_secret(),
        ),
    ));
    out.push(Attack::bearer(
        "duplicate kid in the header",
        &es256_raw(
            &format!(r#"{{"alg":"ES256","kid":"unknown","kid":"{}"}}"#, dev_kid()),
            &good_payload,
        ),
    ));
    // Claims of the wrong type.
    let c = good_claims();
    for (name, key, value) in [
        ("purposes string", "purposes", json!("marketing")),
        ("purposes object", "purposes", json!({"marketing": true})),
        ("purposes numbers", "purposes", json!([1, 2])),
        ("purposes nested", "purposes", json!([["marketing"]])),
        ("purposes null", "purposes", Value::Null),
        ("purposes bool", "purposes", json!(true)),
        ("sub number", "sub", json!(42)),
        ("sub empty", "sub", json!("")),
        ("sub object", "sub", json!({"name": "crm"})),
        ("scope array", "scope", json!(["consent:write"])),
    ] {
        let claims = with(c.clone(), key, value);
        out.push(Attack::bearer(
            &format!("{name} (ES256)"),
            &sign_es256(&claims),
        ));
        out.push(Attack::bearer(
            &format!("{name} (HS256)"),
            &sign_hs256(&claims),
        ));
    }
    // Not JSON, not three parts, not base64.
    let not_json = format!("{}.{}.", b64(b"{\"alg\":\"HS256\"}"), b64(b"not json"));
    for (name, token) in [
        (
            "payload not JSON",
            hs256_raw(r#"{"alg":"HS256"}"#, "not json", &hs_secret()),
        ),
        (
            "payload an array",
            hs256_raw(r#"{"alg":"HS256"}"#, "[1,2]", &hs_secret()),
        ),
        ("unsigned not JSON", not_json),
        ("two parts", format!("{}.{}", b64(b"{}"), b64(b"{}"))),
        ("four parts", format!("{}.x", sign_es256(&c))),
        ("not base64", "@@@.@@@.@@@".to_string()),
    ] {
        out.push(Attack::bearer(name, &token));
    }
    // Oversized: a genuinely signed token whose header line passes 8 KiB.
    for (name, pad) in [("token just over 8 KiB", 6200), ("token of 40 KiB", 30_000)] {
        let big = with(c.clone(), "pad", json!("x".repeat(pad)));
        let token = sign_es256(&big);
        assert!(token.len() > 8 * 1024, "{}", token.len());
        out.push(Attack::bearer(name, &token));
    }
    out
}

#[tokio::test]
async fn duplicate_keys_wrong_types_and_oversized_tokens_are_unauthenticated() {
    run("claims", malformed_claim_attacks()).await;
}

fn misplaced_token_attacks() -> Vec<Attack> {
    let good = sign_es256(&good_claims());
    let other = sign_hs256(&good_claims());
    let mut out = Vec::new();
    for q in [
        format!("?access_token={good}"),
        format!("?token={good}"),
        format!("?authorization=Bearer%20{good}"),
        format!("?jwt={good}&x-purpose=marketing"),
    ] {
        out.push(Attack {
            name: format!("token in query {}", &q[..q.find('=').unwrap()]),
            lines: String::new(),
            query: q,
            secrets: secrets_of(&good),
        });
    }
    for (name, lines) in [
        (
            "cookie",
            format!("Cookie: token={good}; access_token={good}\r\n"),
        ),
        (
            "X-Authorization",
            format!("X-Authorization: Bearer {good}\r\n"),
        ),
        (
            "Proxy-Authorization",
            format!("Proxy-Authorization: Bearer {good}\r\n"),
        ),
        (
            "X-Forwarded-Authorization",
            format!("X-Forwarded-Authorization: Bearer {good}\r\n"),
        ),
        (
            "Authorization without scheme",
            format!("Authorization: {good}\r\n"),
        ),
        (
            "Authorization Basic",
            format!("Authorization: Basic {good}\r\n"),
        ),
        (
            "Authorization Token scheme",
            format!("Authorization: Token {good}\r\n"),
        ),
        ("scheme glued", format!("Authorization: Bearer{good}\r\n")),
        ("two spaces", format!("Authorization: Bearer  {good}\r\n")),
        (
            "tab separator",
            format!("Authorization: Bearer\t{good}\r\n"),
        ),
        (
            "two tokens in one header",
            format!("Authorization: Bearer {good}, Bearer {other}\r\n"),
        ),
        (
            "two tokens, space",
            format!("Authorization: Bearer {good} {other}\r\n"),
        ),
        ("empty bearer", "Authorization: Bearer\r\n".to_string()),
        ("empty header", "Authorization:\r\n".to_string()),
    ] {
        out.push(Attack::lines(name, &lines, &good));
    }
    // Two Authorization headers, whatever their order and validity.
    for (name, lines) in [
        (
            "two valid headers",
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer {other}\r\n"),
        ),
        (
            "the same header twice",
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer {good}\r\n"),
        ),
        (
            "valid then garbage",
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer garbage\r\n"),
        ),
        (
            "garbage then valid",
            format!("Authorization: Bearer garbage\r\nAuthorization: Bearer {good}\r\n"),
        ),
        (
            "empty then valid",
            format!("Authorization:\r\nAuthorization: Bearer {good}\r\n"),
        ),
        (
            "Basic then valid",
            format!("Authorization: Basic dXNlcjpwYXNz\r\nAuthorization: Bearer {good}\r\n"),
        ),
    ] {
        let mut a = Attack::lines(name, &lines, &good);
        a.secrets.extend(secrets_of(&other));
        out.push(a);
    }
    out
}

#[tokio::test]
async fn tokens_outside_one_authorization_header_do_not_authenticate() {
    run("where", misplaced_token_attacks()).await;
}

/// The real binary at debug level: after every attack of this family and a served request, its
/// JSON log holds no token and no personal value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_attacks_leave_no_token_or_personal_data_in_the_logs() {
    let up = marker_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (gw_port, admin_port) = (free_port(), free_port());
    let config = binary_config(up.addr, gw_port, admin_port, "");
    let bin = start_logged_binary(work.path(), &config, gw_port, admin_port).await;
    prepare_subject(bin.admin, ADV_SUBJECT, "eu", &["marketing"]).await;
    let good = sign_es256(&good_claims());
    let ok = get(
        &bin.url(ADV_PROFILE),
        Some(&good),
        &[("x-purpose", "marketing")],
    )
    .await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    let mut forbidden: Vec<String> = PII_MARKERS.iter().map(|s| s.to_string()).collect();
    forbidden.extend(secrets_of(&good));
    let families = [
        forged_algorithm_attacks(),
        kid_attacks(),
        stale_and_foreign_attacks(),
        malformed_claim_attacks(),
        misplaced_token_attacks(),
    ];
    let mut n = 0;
    for a in families.iter().flatten() {
        let text = send_attack(bin.gw, a, &format!("log-{n}")).await;
        assert_eq!(RawReply::parse(&text).status, 401, "{}: {text}", a.name);
        forbidden.extend(a.secrets.iter().cloned());
        n += 1;
    }
    assert_eq!(
        up.count(),
        1,
        "only the genuine request reached the upstream"
    );
    let forbidden: Vec<&str> = forbidden.iter().map(String::as_str).collect();
    let log = assert_log_clean(bin, work.path(), &forbidden);
    let denials = log
        .lines()
        .filter(|l| l.contains("\"message\":\"request\"") && l.contains("\"status\":401"))
        .count();
    assert_eq!(denials, n, "one request line per attack");
}

/// RFC 7515 §4.1.11: a recipient that does not understand a `crit` extension must refuse the
/// token; `b64` (RFC 7797) changes what is signed. Claims of the wrong type are refused with a
/// message that names the claim (an `iss` array must not pass as one of its members).
#[tokio::test]
async fn critical_headers_and_wrong_typed_claims_are_refused_by_name() {
    let (_up, gw) = marker_gateway("").await;
    let payload = good_claims().to_string();
    let kid = dev_kid();
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for header in [
        json!({"alg": "ES256", "kid": kid, "crit": ["exp"]}),
        json!({"alg": "ES256", "kid": kid, "crit": ["b64"], "b64": false}),
        json!({"alg": "ES256", "kid": kid, "crit": []}),
        json!({"alg": "ES256", "kid": kid, "b64": true}),
    ] {
        let name = header.to_string();
        let expect = if header.get("crit").is_some() {
            "'crit'"
        } else {
            "'b64'"
        };
        cases.push((name, es256_raw(&header.to_string(), &payload), expect));
    }
    let hs = json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}).to_string();
    cases.push((
        "HS256 crit".into(),
        hs256_raw(&hs, &payload, &hs_secret()),
        "'crit'",
    ));
    let c = good_claims();
    for (key, value, expect) in [
        ("iss", json!(["consentgate-dev"]), "'iss'"),
        ("iss", json!(["consentgate-dev", "evil"]), "'iss'"),
        ("iss", json!(7), "'iss'"),
        ("aud", json!(42), "'aud'"),
        ("aud", json!(["consentgate", 1]), "'aud'"),
        ("exp", json!("9999999999"), "'exp'"),
        ("exp", json!(-1), "'exp'"),
        ("nbf", json!("0"), "'nbf'"),
        ("iat", json!({"t": 1}), "'iat'"),
        ("jti", json!(1), "'jti'"),
        ("sub", json!(["crm"]), "'sub'"),
        ("purposes", json!("marketing"), "'purposes'"),
        ("scope", json!(["consent:write"]), "'scope'"),
    ] {
        let claims = with(c.clone(), key, value.clone());
        cases.push((
            format!("{key}={value} (ES256)"),
            sign_es256(&claims),
            expect,
        ));
        cases.push((
            format!("{key}={value} (HS256)"),
            sign_hs256(&claims),
            expect,
        ));
    }
    for (name, token, expect) in cases {
        let r = get_personal(&gw, ADV_PROFILE, Some(&token), Some("marketing"), &[]).await;
        assert_eq!(r.status.as_u16(), 401, "{name}: {}", r.text());
        assert_eq!(r.code(), "unauthenticated", "{name}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(expect), "{name}: {message}");
    }
    // An audience array holding this gateway is standard (RFC 7519 §4.1.3) and accepted.
    let ok = with(c, "aud", json!(["other", "consentgate"]));
    let r = get_personal(
        &gw,
        ADV_PROFILE,
        Some(&sign_es256(&ok)),
        Some("marketing"),
        &[],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
}
