//! Signed checkpoints of the chain head, and their verification.
//!
//! A checkpoint signs the canonical JSON `{"hash":…,"seq":…,"ts":…}` of the chain head
//! (`ts` is when the checkpoint was made; with `[audit] backend = "postgres"` also
//! `"replica":…`, the chain's name, so a checkpoint of one chain cannot pass for another's) with a PKCS#8 key: ECDSA P-256 (`ES256`,
//! fixed-size r‖s signature) or Ed25519 (`EdDSA`). `key_id` is the first 16 hex digits of
//! SHA-256 of the raw public key (the 65-byte uncompressed P-256 point, or the 32-byte
//! Ed25519 key). Checkpoints are appended to `<dir>/checkpoints.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::AuditError;
use super::segment::{line_start, read_range};
use crate::canonical_json::to_vec as to_canonical;
use crate::hex::encode as hex;

/// The checkpoint file's name inside the audit directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";

/// A signed statement "the chain head was `seq`/`hash` at `ts`", to keep off-host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Seq of the head record.
    pub seq: u64,
    /// Hash of the head record.
    pub hash: String,
    /// When the checkpoint was made (RFC 3339 UTC).
    pub ts: String,
    /// base64url (no padding) signature over [`Checkpoint::signing_message`].
    pub sig: String,
    /// First 16 hex digits of SHA-256 of the raw public key.
    pub key_id: String,
    /// `ES256` or `EdDSA`.
    pub alg: String,
    /// The chain (replica name) with `[audit] backend = "postgres"`; absent for the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl Checkpoint {
    /// The signed bytes: canonical JSON of `{hash, seq, ts}`, and `replica` when set.
    pub fn signing_message(&self) -> Vec<u8> {
        signing_message(self.seq, &self.hash, &self.ts, self.replica.as_deref())
    }
}

fn signing_message(seq: u64, hash: &str, ts: &str, replica: Option<&str>) -> Vec<u8> {
    match replica {
        None => to_canonical(&json!({"hash": hash, "seq": seq, "ts": ts})),
        Some(r) => to_canonical(&json!({"hash": hash, "replica": r, "seq": seq, "ts": ts})),
    }
}

const ALG_ES256: &str = "ES256";
const ALG_EDDSA: &str = "EdDSA";

/// A checkpoint signing key.
pub(crate) enum Signer {
    Es256(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.alg())
    }
}

impl Signer {
    /// Loads a PKCS#8 PEM private key (P-256 or Ed25519, detected).
    pub(crate) fn from_pem_file(path: &Path) -> Result<Self, AuditError> {
        let pem = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
        let der = pem_decode(&pem, "PRIVATE KEY").ok_or_else(|| {
            AuditError::Key(format!(
                "{} is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)",
                path.display()
            ))
        })?;
        Self::from_pkcs8(&der)
    }

    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, AuditError> {
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(Self::Es256(k, SystemRandom::new()));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8(der) {
            return Ok(Self::Ed25519(k));
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Self::Ed25519)
            .map_err(|_| {
                AuditError::Key("checkpoint key must be a PKCS#8 P-256 or Ed25519 key".to_owned())
            })
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Es256(..) => ALG_ES256,
            Self::Ed25519(_) => ALG_EDDSA,
        }
    }

    fn public_key(&self) -> &[u8] {
        match self {
            Self::Es256(k, _) => k.public_key().as_ref(),
            Self::Ed25519(k) => k.public_key().as_ref(),
        }
    }

    /// The raw public key, SPKI DER, for verifying this signer's checkpoints.
    pub(crate) fn public_key_spki(&self) -> Vec<u8> {
        let mut spki = match self {
            Self::Es256(..) => P256_SPKI_PREFIX.to_vec(),
            Self::Ed25519(_) => ED25519_SPKI_PREFIX.to_vec(),
        };
        spki.extend_from_slice(self.public_key());
        spki
    }

    /// Signs the head `seq`/`hash` of chain `replica` (`None` for the files) at time `ts`.
    pub(crate) fn checkpoint(
        &self,
        seq: u64,
        hash: &str,
        ts: &str,
        replica: Option<String>,
    ) -> Result<Checkpoint, AuditError> {
        let msg = signing_message(seq, hash, ts, replica.as_deref());
        let sig = match self {
            Self::Es256(k, rng) => k
                .sign(rng, &msg)
                .map_err(|_| AuditError::Key("ECDSA signing failed".to_owned()))?
                .as_ref()
                .to_vec(),
            Self::Ed25519(k) => k.sign(&msg).as_ref().to_vec(),
        };
        Ok(Checkpoint {
            seq,
            hash: hash.to_owned(),
            ts: ts.to_owned(),
            sig: URL_SAFE_NO_PAD.encode(sig),
            key_id: key_id(self.public_key()),
            alg: self.alg().to_owned(),
            replica,
        })
    }
}

fn key_id(raw_public_key: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, raw_public_key);
    let mut id = hex(d.as_ref());
    id.truncate(16);
    id
}

/// Decodes the first PEM block labelled `label`.
fn pem_decode(pem: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let after = text.split_once(&begin)?.1;
    let body = after.split_once(&end)?.0;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(b64).ok()
}

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, 66-byte bit string).
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (id-Ed25519, 33-byte bit string).
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw public key in a PEM (`PUBLIC KEY`) or DER SPKI, or a raw key as is.
///
/// For these two key types the SPKI DER is a fixed prefix followed by the raw key:
/// the last 65 bytes (P-256 uncompressed point) or 32 bytes (Ed25519). The prefix is
/// checked exactly, so another key type or curve is rejected.
fn raw_public_key(alg: &str, key: &[u8]) -> Result<Vec<u8>, AuditError> {
    let der = if key.starts_with(b"-----BEGIN") {
        pem_decode(key, "PUBLIC KEY").ok_or_else(|| {
            AuditError::Key("public key PEM must be -----BEGIN PUBLIC KEY----- (SPKI)".to_owned())
        })?
    } else {
        key.to_vec()
    };
    let (prefix, raw_len) = match alg {
        ALG_ES256 => (P256_SPKI_PREFIX, 65),
        ALG_EDDSA => (ED25519_SPKI_PREFIX, 32),
        _ => return Err(AuditError::BadSignature(format!("unsupported alg {alg:?}"))),
    };
    if der.len() == raw_len {
        return Ok(der);
    }
    match der.strip_prefix(prefix) {
        Some(raw) if raw.len() == raw_len => Ok(raw.to_vec()),
        _ => Err(AuditError::Key(format!(
            "public key is not an {alg} SubjectPublicKeyInfo"
        ))),
    }
}

/// Verifies `cp`'s signature with a public key given as SPKI PEM, SPKI DER, or raw
/// key bytes. Also checks that `cp.key_id` names that key.
pub fn verify_checkpoint_signature(cp: &Checkpoint, public_key: &[u8]) -> Result<(), AuditError> {
    let raw = raw_public_key(&cp.alg, public_key)?;
    if key_id(&raw) != cp.key_id {
        return Err(AuditError::BadSignature(
            "key_id does not match the given public key".to_owned(),
        ));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(&cp.sig)
        .map_err(|_| AuditError::BadSignature("sig is not base64url".to_owned()))?;
    let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = if cp.alg == ALG_ES256 {
        &ECDSA_P256_SHA256_FIXED
    } else {
        &ED25519
    };
    UnparsedPublicKey::new(alg, &raw)
        .verify(&cp.signing_message(), &sig)
        .map_err(|_| AuditError::BadSignature("signature does not verify".to_owned()))
}

/// Appends `cp` to `<dir>/checkpoints.jsonl` and fsyncs it.
pub(crate) fn append_checkpoint(dir: &Path, cp: &Checkpoint) -> Result<(), AuditError> {
    let path = dir.join(CHECKPOINT_FILE);
    let io = |e| AuditError::io(&path, e);
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    let mut line = serde_json::to_vec(cp).map_err(|e| AuditError::BadCheckpoint(e.to_string()))?;
    line.push(b'\n');
    file.write_all(&line).map_err(io)?;
    file.sync_data().map_err(io)?;
    if !existed {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(dir, e))?;
    }
    Ok(())
}

/// Every checkpoint in `<dir>/checkpoints.jsonl`, oldest first (none if there is no file).
/// Blank lines and a torn last line (no newline, does not parse) are skipped; any other line
/// that is not a checkpoint is an error.
pub(crate) fn load_all_checkpoints(dir: &Path) -> Result<Vec<Checkpoint>, AuditError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(&path, e)),
    };
    let complete = text.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let n = lines.len();
    let mut out = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Checkpoint>(line) {
            Ok(cp) => out.push(cp),
            Err(_) if i + 1 == n && !complete => {}
            Err(_) => {
                return Err(AuditError::BadCheckpoint(format!(
                    "line {} of {} is not a checkpoint",
                    i + 1,
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

/// The newest checkpoint in `<dir>/checkpoints.jsonl`, if any (reads only the tail).
pub fn read_latest_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let path = dir.join(CHECKPOINT_FILE);
    match File::open(&path) {
        Ok(mut f) => last_checkpoint_in(&mut f, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::io(&path, e)),
    }
}

/// Reads a checkpoint kept off-host: a file holding one checkpoint JSON object
/// (pretty-printed or not), or a JSON-lines file such as `checkpoints.jsonl`
/// (its last checkpoint is used).
pub fn load_checkpoint_file(path: &Path) -> Result<Checkpoint, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size <= 1024 * 1024 {
        let text = read_range(&mut file, 0, size).map_err(io)?;
        if let Ok(cp) = serde_json::from_slice::<Checkpoint>(&text) {
            return Ok(cp);
        }
    }
    last_checkpoint_in(&mut file, path)?
        .ok_or_else(|| AuditError::BadCheckpoint(format!("{} holds no checkpoint", path.display())))
}

/// The last checkpoint line of a JSON-lines file, skipping blank lines and a torn
/// last line (one without a newline that does not parse).
fn last_checkpoint_in(file: &mut File, path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut end = file.metadata().map_err(io)?.len();
    let mut last = true;
    while end > 0 {
        let start = line_start(file, end).map_err(io)?;
        let line = read_range(file, start, end).map_err(io)?;
        let torn = last && line.last() != Some(&b'\n');
        last = false;
        end = start;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Checkpoint>(&line) {
            Ok(cp) => return Ok(Some(cp)),
            Err(_) if torn => continue,
            Err(_) => {
                return Err(AuditError::BadCheckpoint(format!(
                    "{} does not end with a checkpoint line",
                    path.display()
                )));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pem(label: &str, der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let mut s = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    }

    /// (private PKCS#8 PEM, public SPKI PEM) for ES256 (`ec = true`) or Ed25519.
    pub(crate) fn test_keys(ec: bool) -> (String, String) {
        let rng = SystemRandom::new();
        let (pkcs8, raw) = if ec {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let kp =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
            (doc.as_ref().to_vec(), kp.public_key().as_ref().to_vec())
        } else {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
            (doc.as_ref().to_vec(), kp.public_key().as_ref().to_vec())
        };
        let mut spki = if ec {
            P256_SPKI_PREFIX.to_vec()
        } else {
            ED25519_SPKI_PREFIX.to_vec()
        };
        spki.extend_from_slice(&raw);
        (pem("PRIVATE KEY", &pkcs8), pem("PUBLIC KEY", &spki))
    }

    fn sign_and_verify(ec: bool) {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = test_keys(ec);
        let key_path = dir.path().join("audit.key");
        std::fs::write(&key_path, private).unwrap();
        let signer = Signer::from_pem_file(&key_path).unwrap();
        let cp = signer
            .checkpoint(42, &"ab".repeat(32), "2026-11-23T21:55:44.123Z", None)
            .unwrap();
        assert_eq!(cp.alg, if ec { "ES256" } else { "EdDSA" });
        assert_eq!(cp.key_id.len(), 16);
        verify_checkpoint_signature(&cp, public.as_bytes()).unwrap();
        // DER works too.
        let der = pem_decode(public.as_bytes(), "PUBLIC KEY").unwrap();
        verify_checkpoint_signature(&cp, &der).unwrap();
        // A changed field, a wrong key, a wrong alg are all rejected.
        let mut forged = cp.clone();
        forged.seq = 43;
        assert!(matches!(
            verify_checkpoint_signature(&forged, public.as_bytes()),
            Err(AuditError::BadSignature(_))
        ));
        let (_, other_public) = test_keys(ec);
        assert!(verify_checkpoint_signature(&cp, other_public.as_bytes()).is_err());
        let (_, wrong_type) = test_keys(!ec);
        assert!(verify_checkpoint_signature(&cp, wrong_type.as_bytes()).is_err());
        // Round trip through the checkpoint file.
        append_checkpoint(dir.path(), &cp).unwrap();
        let cp2 = signer
            .checkpoint(50, &"cd".repeat(32), "2026-11-23T21:56:00.000Z", None)
            .unwrap();
        append_checkpoint(dir.path(), &cp2).unwrap();
        assert_eq!(
            read_latest_checkpoint(dir.path()).unwrap(),
            Some(cp2.clone())
        );
        let cp_file = dir.path().join(CHECKPOINT_FILE);
        assert_eq!(load_checkpoint_file(&cp_file).unwrap(), cp2);
        let single = dir.path().join("cp.json");
        std::fs::write(&single, serde_json::to_string_pretty(&cp).unwrap()).unwrap();
        assert_eq!(load_checkpoint_file(&single).unwrap(), cp);
    }

    #[test]
    fn es256_checkpoints_sign_and_verify() {
        sign_and_verify(true);
    }

    #[test]
    fn ed25519_checkpoints_sign_and_verify() {
        sign_and_verify(false);
    }

    #[test]
    fn rejects_non_pkcs8_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(
            &p,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(Signer::from_pem_file(&p), Err(AuditError::Key(_))));
        std::fs::write(&p, pem("PRIVATE KEY", b"garbage")).unwrap();
        assert!(matches!(Signer::from_pem_file(&p), Err(AuditError::Key(_))));
    }

    #[test]
    fn signing_message_is_canonical() {
        let cp = Checkpoint {
            seq: 7,
            hash: "h".into(),
            ts: "t".into(),
            sig: String::new(),
            key_id: String::new(),
            alg: "ES256".into(),
            replica: None,
        };
        assert_eq!(
            cp.signing_message(),
            br#"{"hash":"h","seq":7,"ts":"t"}"#.to_vec()
        );
        let named = Checkpoint {
            replica: Some("gw-1".into()),
            ..cp
        };
        assert_eq!(
            named.signing_message(),
            br#"{"hash":"h","replica":"gw-1","seq":7,"ts":"t"}"#.to_vec()
        );
    }

    #[test]
    fn a_chain_checkpoint_does_not_pass_for_another_chain() {
        let key =
            aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let signer = Signer::from_pkcs8(key.as_ref()).unwrap();
        let cp = signer
            .checkpoint(3, &"ab".repeat(32), "t", Some("gw-1".into()))
            .unwrap();
        let spki = signer.public_key_spki();
        assert!(verify_checkpoint_signature(&cp, &spki).is_ok());
        let moved = Checkpoint {
            replica: Some("gw-2".into()),
            ..cp.clone()
        };
        assert!(verify_checkpoint_signature(&moved, &spki).is_err());
        let unnamed = Checkpoint {
            replica: None,
            ..cp
        };
        assert!(verify_checkpoint_signature(&unnamed, &spki).is_err());
    }
}
