//! `consentgate certs dev`: dev-only key material under `certs/dev/`. Never production keys.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why dev material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate generation.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// JWT key handling.
    #[error("JWT key: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The system RNG.
    #[error("the system random number generator failed")]
    Rng,
}

/// The files `certs dev` writes, relative to its folder.
pub const FILES: [&str; 14] = [
    "ca.crt",
    "ca.key",
    "gateway.crt",
    "gateway.key",
    "client.crt",
    "client.key",
    "jwt.key",
    "jwks.json",
    "hs256.secret",
    "audit.key",
    "audit.pub",
    "hash.secret",
    "upstream.crt",
    "upstream.key",
];

fn write(dir: &Path, name: &str, contents: &[u8]) -> Result<(), DevKeyError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|source| DevKeyError::Io { path, source })
}

/// The `kid` of a dev JWT key: the first 16 hex digits of SHA-256 of its public key.
pub fn key_id(key: &KeyPair) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.public_key_raw());
    crate::hex::encode(digest.as_ref().get(..8).unwrap_or_default())
}

fn random_secret() -> Result<String, DevKeyError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| DevKeyError::Rng)?;
    Ok(crate::hex::encode(&bytes))
}

/// Whether `dir` already holds a complete set.
pub fn complete(dir: &Path) -> bool {
    FILES.iter().all(|f| dir.join(f).is_file())
}

/// Generates the whole dev set into `dir` (created if needed), replacing what is there.
///
/// A CA; a gateway and an upstream certificate for `localhost`, `127.0.0.1` and `::1`; a client
/// certificate for mTLS; an ES256 JWT key with its `jwks.json`; an HS256 secret; a P-256 audit
/// checkpoint key with its public half; a secret for the `hash` redactor.
pub fn generate(dir: &Path) -> Result<(), DevKeyError> {
    std::fs::create_dir_all(dir).map_err(|source| DevKeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(
        DnType::CommonName,
        "consentgate dev CA (not for production)",
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    write(dir, "ca.crt", ca_cert.pem().as_bytes())?;
    write(dir, "ca.key", ca_key.serialize_pem().as_bytes())?;
    let issuer = Issuer::new(ca, ca_key);

    let hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for (name, cn, eku, sans) in [
        (
            "gateway",
            "consentgate dev gateway",
            ExtendedKeyUsagePurpose::ServerAuth,
            hosts.clone(),
        ),
        (
            "upstream",
            "consentgate dev upstream",
            ExtendedKeyUsagePurpose::ServerAuth,
            hosts.clone(),
        ),
        (
            "client",
            "consentgate dev client",
            ExtendedKeyUsagePurpose::ClientAuth,
            vec!["dev-client".to_string()],
        ),
    ] {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &issuer)?;
        write(dir, &format!("{name}.crt"), cert.pem().as_bytes())?;
        write(dir, &format!("{name}.key"), key.serialize_pem().as_bytes())?;
    }

    let jwt_key = KeyPair::generate()?;
    let jwt_pem = jwt_key.serialize_pem();
    let mut jwk = Jwk::from_encoding_key(
        &EncodingKey::from_ec_pem(jwt_pem.as_bytes())?,
        Algorithm::ES256,
    )?;
    jwk.common.key_id = Some(key_id(&jwt_key));
    jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
    let jwks = serde_json::to_vec_pretty(&JwkSet { keys: vec![jwk] }).unwrap_or_default();
    write(dir, "jwt.key", jwt_pem.as_bytes())?;
    write(dir, "jwks.json", &jwks)?;

    let audit_key = KeyPair::generate()?;
    write(dir, "audit.key", audit_key.serialize_pem().as_bytes())?;
    write(dir, "audit.pub", audit_key.public_key_pem().as_bytes())?;

    write(dir, "hs256.secret", random_secret()?.as_bytes())?;
    write(dir, "hash.secret", random_secret()?.as_bytes())?;
    Ok(())
}
