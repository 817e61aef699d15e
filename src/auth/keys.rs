//! Verification keys: a JWKS file (asymmetric keys selected by `kid`) and an HS256 secret file.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JWKS is not valid JSON of the expected shape.
    #[error("{path} is not a valid JWKS file: {message}")]
    Jwks {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A JWKS key cannot be used.
    #[error("{path}: key {kid}: {message}")]
    Key {
        /// The file.
        path: String,
        /// The key's `kid` (or its position).
        kid: String,
        /// What is wrong.
        message: String,
    },
    /// The HS256 secret is too short to be safe.
    #[error("{path}: the HS256 secret must be at least 32 bytes")]
    WeakSecret {
        /// The file.
        path: String,
    },
}

/// One asymmetric verification key and the only algorithm it may verify.
pub(crate) struct PublicKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// Loads a JWKS file into `kid → key`. Every key needs a `kid`; symmetric keys are refused.
pub(crate) fn load_jwks(path: &Path) -> Result<HashMap<String, PublicKey>, KeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| KeyError::Jwks {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let mut keys = HashMap::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let key_err = |kid: &str, message: &str| KeyError::Key {
            path: shown.clone(),
            kid: kid.to_string(),
            message: message.to_string(),
        };
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| key_err(&format!("#{i}"), "has no \"kid\""))?;
        let alg = algorithm_for(jwk).map_err(|m| key_err(&kid, m))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| key_err(&kid, &e.to_string()))?;
        if keys.insert(kid.clone(), PublicKey { alg, key }).is_some() {
            return Err(key_err(&kid, "the kid is used twice"));
        }
    }
    Ok(keys)
}

/// The algorithm a JWK may verify, from its key type and (if given) its `alg`, which must agree.
fn algorithm_for(jwk: &Jwk) -> Result<Algorithm, &'static str> {
    let from_type = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported elliptic curve (use P-256 or P-384)"),
        },
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys do not belong in a JWKS; use auth.hs256_secret_file");
        }
        _ => return Err("unsupported key type"),
    };
    let declared = match jwk.common.key_algorithm {
        None => return Ok(from_type),
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::ES384) => Algorithm::ES384,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::RS384) => Algorithm::RS384,
        Some(KeyAlgorithm::RS512) => Algorithm::RS512,
        Some(KeyAlgorithm::PS256) => Algorithm::PS256,
        Some(KeyAlgorithm::PS384) => Algorithm::PS384,
        Some(KeyAlgorithm::PS512) => Algorithm::PS512,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return Err("its \"alg\" is not a signature algorithm this gateway accepts"),
    };
    let rsa_family = matches!(from_type, Algorithm::RS256);
    let declared_rsa = matches!(
        declared,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    );
    if declared == from_type || (rsa_family && declared_rsa) {
        Ok(declared)
    } else {
        Err("its \"alg\" does not fit its key type")
    }
}

/// Loads the HS256 secret (surrounding whitespace trimmed); at least 32 bytes.
pub(crate) fn load_hs256(path: &Path) -> Result<DecodingKey, KeyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    let secret = bytes.trim_ascii();
    if secret.len() < 32 {
        return Err(KeyError::WeakSecret { path: shown });
    }
    Ok(DecodingKey::from_secret(secret))
}
