//! Caller authentication: bearer JWTs verified against a JWKS (by `kid`) and/or an HS256 secret.
//!
//! The algorithm is never taken on the token's word alone: an HS256 token is checked only
//! against the HS256 secret, any other token only against the JWKS key its `kid` names, and
//! only with the one algorithm that key is for. `alg: none` is not an algorithm here at all.

mod keys;

mod cache;

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthSettings;
pub use keys::KeyError;
use keys::PublicKey;

/// Longest `Authorization` header accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `sub`: the calling service's name.
    pub name: String,
    /// `purposes`: purposes this caller may declare.
    pub purposes: Vec<String>,
    /// `scope`, split on spaces: admin scopes.
    pub scopes: Vec<String>,
}

impl Caller {
    /// Whether the caller holds an admin scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the caller may declare a purpose.
    pub fn may_declare(&self, purpose: &str) -> bool {
        self.purposes.iter().any(|p| p == purpose)
    }
}

/// Which check a token failed. The messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing Authorization header; send 'Authorization: Bearer <token>'")]
    Missing,
    /// Not `Bearer <token>`, or more than one header.
    #[error("the Authorization header must be exactly one 'Bearer <token>'")]
    NotBearer,
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is too large")]
    TooLarge,
    /// Not three base64url parts with a JSON header.
    #[error("the token is malformed")]
    Malformed,
    /// `none` or an algorithm this gateway does not accept.
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// HS256 token but no secret configured, or a `kid` that is not in the key set.
    #[error("no key is known for this token (check its kid and alg)")]
    UnknownKey,
    /// The token's `alg` is not the algorithm of the key its `kid` names.
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// Wrong `iss`.
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    /// Wrong `aud`.
    #[error("the token's audience is not this gateway")]
    WrongAudience,
    /// A required claim is absent.
    #[error("the token lacks the required claim '{0}'")]
    MissingClaim(String),
    /// The claims are not one JSON object, or name a claim twice.
    #[error("the token's claims must be one JSON object that names each claim once")]
    BadClaims,
    /// A claim has the wrong type or an unusable value.
    #[error("the token's claim '{claim}' must be {expected}")]
    BadClaim {
        /// The claim's name.
        claim: &'static str,
        /// What it must be, in plain words.
        expected: &'static str,
    },
    /// The header is not one JSON object naming each parameter once.
    #[error("the token's header must be one JSON object that names each parameter once")]
    BadHeader,
    /// The header asks for extensions (`crit`, RFC 7515 §4.1.11) or an unencoded payload
    /// (`b64`, RFC 7797), which this gateway does not implement and so must refuse.
    #[error("the token's header uses '{0}', which this gateway does not support; sign without it")]
    Unsupported(&'static str),
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    scope: String,
}

/// Verifies bearer tokens. Built once from `[auth]`; cheap to share.
pub struct Verifier {
    jwks: HashMap<String, PublicKey>,
    hs256: Option<DecodingKey>,
    issuer: String,
    audience: String,
    leeway: u64,
    cache: cache::TokenCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks_keys", &self.jwks.len())
            .field("hs256", &self.hs256.is_some())
            .finish()
    }
}

impl Verifier {
    /// Loads the keys `[auth]` names.
    pub fn from_settings(s: &AuthSettings) -> Result<Verifier, KeyError> {
        let jwks = match &s.jwks {
            Some(path) => keys::load_jwks(path)?,
            None => HashMap::new(),
        };
        let hs256 = s
            .hs256_secret_file
            .as_deref()
            .map(keys::load_hs256)
            .transpose()?;
        Ok(Verifier {
            jwks,
            hs256,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            leeway: s.leeway.as_secs(),
            cache: cache::TokenCache::default(),
        })
    }

    /// Verifies the `Authorization` header values of a request.
    pub fn verify_header<'a>(
        &self,
        mut values: impl Iterator<Item = &'a HeaderValue>,
    ) -> Result<Arc<Caller>, AuthError> {
        let value = values.next().ok_or(AuthError::Missing)?;
        if values.next().is_some() {
            return Err(AuthError::NotBearer);
        }
        if value.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let text = value.to_str().map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = text.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
            return Err(AuthError::NotBearer);
        }
        self.verify(token)
    }

    /// Verifies a compact JWT. A token that verified before is answered from a cache keyed by
    /// its SHA-256 until its `exp` (plus leeway) passes; failures are never cached.
    pub fn verify(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let key = cache::key(token);
        if let Some(caller) = self.cache.get(&key, cache::now()) {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_uncached(token)?;
        let caller = Arc::new(caller);
        self.cache
            .insert(key, caller.clone(), exp.saturating_add(self.leeway));
        Ok(caller)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        check_shape(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                AuthError::UnsupportedAlgorithm
            }
            // An unknown `alg` string (e.g. "none") fails header parsing as a JSON error.
            ErrorKind::Json(err) if err.to_string().contains("variant") => {
                AuthError::UnsupportedAlgorithm
            }
            _ => AuthError::Malformed,
        })?;
        let (alg, key) = match header.alg {
            Algorithm::HS256 => (
                Algorithm::HS256,
                self.hs256.as_ref().ok_or(AuthError::UnknownKey)?,
            ),
            Algorithm::HS384 | Algorithm::HS512 => return Err(AuthError::UnsupportedAlgorithm),
            alg => {
                let entry = match header.kid.as_deref() {
                    Some(kid) => self.jwks.get(kid).ok_or(AuthError::UnknownKey)?,
                    None => {
                        let mut same_alg = self.jwks.values().filter(|k| k.alg == alg);
                        match (same_alg.next(), same_alg.next()) {
                            (Some(only), None) => only,
                            _ => return Err(AuthError::UnknownKey),
                        }
                    }
                };
                if entry.alg != alg {
                    return Err(AuthError::AlgorithmMismatch);
                }
                (alg, &entry.key)
            }
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::InvalidAlgorithm => AuthError::AlgorithmMismatch,
            ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => AuthError::BadClaims,
            _ => AuthError::Malformed,
        })?;
        let claims = data.claims;
        let sub = claims
            .sub
            .ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
        let caller = Caller {
            name: sub,
            purposes: claims.purposes,
            scopes: claims
                .scope
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect(),
        };
        // `exp` is required by the validation above; without it nothing is cached.
        Ok((caller, claims.exp.unwrap_or(0)))
    }
}

/// Longest `sub` accepted (bytes).
const MAX_SUB_BYTES: usize = 256;

/// What the header and claims must look like before any key is tried: each a JSON object
/// naming every member once, no `crit`/`b64`, and every claim the gateway reads of the right
/// type (RFC 7519 §4.1: `iss`, `sub`, `jti` strings; `aud` a string or array of strings;
/// `exp`, `nbf`, `iat` numbers) — so a wrong-typed claim is refused by name rather than
/// coerced or skipped by the JWT library.
fn check_shape(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| AuthError::Malformed)
    };
    let header: serde_json::Map<String, serde_json::Value> =
        crate::json::from_slice(&decode(header)?).map_err(|_| AuthError::BadHeader)?;
    for param in ["crit", "b64"] {
        if header.contains_key(param) {
            return Err(AuthError::Unsupported(param));
        }
    }
    let claims: serde_json::Map<String, serde_json::Value> =
        crate::json::from_slice(&decode(payload)?).map_err(|_| AuthError::BadClaims)?;
    use serde_json::Value;
    let bad = |claim, expected| Err(AuthError::BadClaim { claim, expected });
    for (claim, value) in &claims {
        match (claim.as_str(), value) {
            ("iss", Value::String(_)) | ("jti", Value::String(_)) | ("scope", Value::String(_)) => {
            }
            ("iss", _) => return bad("iss", "a string"),
            ("jti", _) => return bad("jti", "a string"),
            ("scope", _) => return bad("scope", "a string of space-separated scopes"),
            ("sub", Value::String(s)) if !s.is_empty() && s.len() <= MAX_SUB_BYTES => {}
            ("sub", _) => return bad("sub", "a non-empty string of at most 256 bytes"),
            ("aud", Value::String(_)) => {}
            ("aud", Value::Array(items)) if items.iter().all(Value::is_string) => {}
            ("aud", _) => return bad("aud", "a string or an array of strings"),
            ("exp", v) if numeric_date(v) => {}
            ("exp", _) => return bad("exp", "a non-negative whole number of seconds"),
            ("nbf", v) if numeric_date(v) => {}
            ("nbf", _) => return bad("nbf", "a non-negative whole number of seconds"),
            ("iat", v) if numeric_date(v) => {}
            ("iat", _) => return bad("iat", "a non-negative whole number of seconds"),
            ("purposes", Value::Array(items)) if items.iter().all(Value::is_string) => {}
            ("purposes", _) => return bad("purposes", "an array of purpose names"),
            _ => {}
        }
    }
    Ok(())
}

/// An RFC 7519 NumericDate the JWT library can compare: a non-negative integer.
fn numeric_date(v: &serde_json::Value) -> bool {
    v.as_u64().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine;
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{EncodingKey, Header};
    use std::time::Duration;

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn claims() -> serde_json::Value {
        let now = cache::now();
        serde_json::json!({"sub": "svc", "iss": "i", "aud": "a", "exp": now + 600, "purposes": ["support"]})
    }

    #[test]
    fn rs256_and_eddsa_jwks_keys_verify_only_with_their_own_algorithm() {
        crate::install_crypto_provider();
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_key = EncodingKey::from_rsa_pem(
            pem("PRIVATE KEY", rsa.as_der().unwrap().as_ref()).as_bytes(),
        )
        .unwrap();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed_key = EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap();
        let mut rsa_jwk = Jwk::from_encoding_key(&rsa_key, Algorithm::RS256).unwrap();
        rsa_jwk.common.key_id = Some("rsa-1".into());
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed.public_key_raw());
        let ed_jwk: Jwk = serde_json::from_value(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed-1"}),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            serde_json::to_vec(&JwkSet {
                keys: vec![rsa_jwk, ed_jwk],
            })
            .unwrap(),
        )
        .unwrap();
        let v = Verifier::from_settings(&AuthSettings {
            issuer: "i".into(),
            audience: "a".into(),
            jwks: Some(jwks),
            hs256_secret_file: None,
            leeway: Duration::from_secs(5),
        })
        .unwrap();
        let sign = |alg, kid: &str, key: &EncodingKey| {
            let mut h = Header::new(alg);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(&h, &claims(), key).unwrap()
        };
        assert_eq!(
            v.verify(&sign(Algorithm::RS256, "rsa-1", &rsa_key))
                .unwrap()
                .name,
            "svc"
        );
        assert_eq!(
            v.verify(&sign(Algorithm::EdDSA, "ed-1", &ed_key))
                .unwrap()
                .name,
            "svc"
        );
        // The key's algorithm decides: PS256 with the RS256 key, EdDSA naming the RSA key.
        assert_eq!(
            v.verify(&sign(Algorithm::PS256, "rsa-1", &rsa_key))
                .unwrap_err(),
            AuthError::AlgorithmMismatch
        );
        assert_eq!(
            v.verify(&sign(Algorithm::EdDSA, "rsa-1", &ed_key))
                .unwrap_err(),
            AuthError::AlgorithmMismatch
        );
        // An EdDSA signature over another token's payload fails.
        let t = sign(Algorithm::EdDSA, "ed-1", &ed_key);
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut forged = claims();
        forged["sub"] = "admin".into();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
        parts[1] = &forged;
        assert_eq!(
            v.verify(&parts.join(".")).unwrap_err(),
            AuthError::BadSignature
        );
    }
}
