//! JWT authentication through real sockets: every rejection case answers
//! `401 unauthenticated`, says which check failed, and never echoes the token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;
use serde_json::{Value, json};

/// Signs `header.payload` (given as raw JSON text) with the dev HS256 secret.
fn hs256_raw(header: &str, payload: &str) -> String {
    let secret = std::fs::read(dev_dir().join("hs256.secret")).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.trim_ascii());
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

fn es256_kid() -> String {
    let pem = std::fs::read_to_string(dev_dir().join("jwt.key")).unwrap();
    consentgate::devtools::certs::key_id(&rcgen::KeyPair::from_pem(&pem).unwrap())
}

async fn expect_401(gw: &TestGateway, token: &str, message_part: &str) {
    let r = get(&gw.url("/api/products/1"), Some(token), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(r.code(), "unauthenticated");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains(message_part),
        "message {msg:?} should mention {message_part:?}"
    );
    if token.len() > 10 {
        assert!(!r.text().contains(token), "the token is echoed");
        let sig = token.rsplit('.').next().unwrap_or("");
        assert!(
            sig.len() < 8 || !r.text().contains(sig),
            "the signature is echoed"
        );
    }
    assert_eq!(r.headers["www-authenticate"], "Bearer");
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

#[tokio::test]
async fn valid_es256_and_hs256_tokens_pass() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    consentgate::install_crypto_provider();
    let base = claims("crm", &["marketing"], "");
    for t in [sign_es256(&base), sign_hs256(&base)] {
        let r = get(&gw.url("/api/products/1"), Some(&t), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    // Within the 5 s leeway.
    let t = sign_es256(&with(base.clone(), "exp", json!(now() - 2)));
    assert_eq!(
        get(&gw.url("/api/products/1"), Some(&t), &[]).await.status,
        StatusCode::OK
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn every_rejection_names_its_check() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    consentgate::install_crypto_provider();
    let base = claims("crm", &["marketing"], "");
    let now = now();

    // Missing / malformed header.
    let r = get(&gw.url("/api/products/1"), None, &[]).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let r = get(
        &gw.url("/api/products/1"),
        None,
        &[("authorization", "Basic Y3JtOnB3")],
    )
    .await;
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );
    expect_401(&gw, "not-a-jwt", "malformed").await;

    // alg: none, unsigned.
    let payload = serde_json::to_string(&base).unwrap();
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(payload.as_bytes())
    );
    expect_401(&gw, &none, "algorithm is not accepted").await;

    // Alg confusion: HS256 "signed" with the ES256 public key (JWKS) as the secret, naming its kid.
    let jwks = std::fs::read(dev_dir().join("jwks.json")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(es256_kid());
    let confused = jsonwebtoken::encode(
        &header,
        &base,
        &jsonwebtoken::EncodingKey::from_secret(&jwks),
    )
    .unwrap();
    expect_401(&gw, &confused, "signature is invalid").await;

    // An ES256 kid with RS256 in the header: the key's algorithm decides.
    let es = sign_es256(&base);
    let mut parts: Vec<String> = es.split('.').map(str::to_string).collect();
    parts[0] = b64(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, es256_kid()).as_bytes());
    expect_401(&gw, &parts.join("."), "does not match its key").await;

    // Unknown kid, and a kid that tries path injection.
    for kid in ["no-such-key", "../../../../etc/passwd", "' OR 1=1 --"] {
        let mut parts: Vec<String> = es.split('.').map(str::to_string).collect();
        parts[0] = b64(
            serde_json::to_string(&json!({"alg": "ES256", "typ": "JWT", "kid": kid}))
                .unwrap()
                .as_bytes(),
        );
        expect_401(&gw, &parts.join("."), "no key is known").await;
    }

    // Tampered payload.
    let mut parts: Vec<String> = es.split('.').map(str::to_string).collect();
    parts[1] = b64(
        serde_json::to_string(&with(base.clone(), "sub", json!("admin")))
            .unwrap()
            .as_bytes(),
    );
    expect_401(&gw, &parts.join("."), "signature is invalid").await;

    // Time checks (leeway is 5 s).
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "exp", json!(now - 60))),
        "expired",
    )
    .await;
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "nbf", json!(now + 60))),
        "not valid yet",
    )
    .await;
    expect_401(&gw, &sign_es256(&without(base.clone(), "exp")), "'exp'").await;

    // Issuer and audience.
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "iss", json!("someone-else"))),
        "issuer",
    )
    .await;
    expect_401(&gw, &sign_es256(&without(base.clone(), "iss")), "'iss'").await;
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "aud", json!("other-api"))),
        "audience",
    )
    .await;
    expect_401(&gw, &sign_es256(&without(base.clone(), "aud")), "'aud'").await;

    // Claim shapes.
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "purposes", json!("marketing"))),
        "'purposes'",
    )
    .await;
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "purposes", json!([1, 2]))),
        "'purposes'",
    )
    .await;
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "scope", json!(["a"]))),
        "'scope'",
    )
    .await;
    expect_401(
        &gw,
        &sign_es256(&with(base.clone(), "sub", json!(""))),
        "'sub'",
    )
    .await;
    expect_401(&gw, &sign_es256(&without(base.clone(), "sub")), "'sub'").await;

    // Duplicate keys in the claims JSON (a parser-differential trick).
    let dup = format!(
        r#"{{"sub":"crm","sub":"admin","iss":"consentgate-dev","aud":"consentgate","exp":{},"purposes":[]}}"#,
        now + 600
    );
    expect_401(
        &gw,
        &hs256_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &dup),
        "names each claim once",
    )
    .await;

    // Oversized.
    let big = sign_es256(&with(base.clone(), "padding", json!("x".repeat(9000))));
    expect_401(&gw, &big, "too large").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn hs256_needs_a_configured_secret() {
    let up = Upstream::json(json!({"ok": true})).await;
    let config = config_text(up.addr, "").replace("hs256_secret_file", "# hs256_secret_file");
    let gw = TestGateway::start(&config).await;
    consentgate::install_crypto_provider();
    expect_401(&gw, &sign_hs256(&claims("crm", &[], "")), "no key is known").await;
    gw.shutdown().await;
}
