//! `consentgate token`: signs a dev JWT with the dev ES256 key.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::KeyPair;
use serde::Serialize;

use super::certs::{DevKeyError, key_id};

/// What goes into a dev token.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// `sub`.
    pub sub: &'a str,
    /// `purposes`.
    pub purposes: Vec<String>,
    /// `scope` (space-separated).
    pub scope: &'a str,
    /// Lifetime.
    pub ttl: Duration,
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    purposes: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

/// Signs a token with the PKCS#8 PEM ES256 key at `key_path`; the `kid` names that key.
pub fn sign(key_path: &Path, req: &TokenRequest<'_>) -> Result<String, DevKeyError> {
    let pem = std::fs::read_to_string(key_path).map_err(|source| DevKeyError::Io {
        path: key_path.to_path_buf(),
        source,
    })?;
    let pair = KeyPair::from_pem(&pem)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id(&pair));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = Claims {
        sub: req.sub,
        iss: req.issuer,
        aud: req.audience,
        iat: now,
        nbf: now,
        exp: now + req.ttl.as_secs(),
        purposes: &req.purposes,
        scope: req.scope,
    };
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(pem.as_bytes())?,
    )?)
}
