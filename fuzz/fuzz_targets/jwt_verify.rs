//! `auth::Verifier` against tokens an attacker can build: arbitrary text, tokens assembled
//! from fuzzed header/claims JSON and signature bytes, edits of genuinely signed tokens, and
//! arbitrary `Authorization` header values. The verifier never panics and never accepts a
//! token whose signed part (header and claims) the fuzzer changed.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use consentgate::auth::{AuthError, Caller, Verifier};
use consentgate::config::AuthSettings;
use consentgate::devtools::{certs, token};
use http::HeaderValue;
use jsonwebtoken::{EncodingKey, Header};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "fuzz-iss";
const AUDIENCE: &str = "fuzz-aud";
const SUB: &str = "fuzz-caller";

struct Fixture {
    verifier: Verifier,
    /// Genuine tokens: ES256 (JWKS key) and HS256 (shared secret).
    genuine: [String; 2],
    kid: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        consentgate::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        certs::generate(dir.path()).expect("dev keys");
        let settings = AuthSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks: Some(dir.path().join("jwks.json")),
            hs256_secret_file: Some(dir.path().join("hs256.secret")),
            leeway: Duration::from_secs(30),
        };
        let verifier = Verifier::from_settings(&settings).expect("verifier");
        let es256 = token::sign(
            &dir.path().join("jwt.key"),
            &token::TokenRequest {
                sub: SUB,
                purposes: vec!["support".into()],
                scope: "consent:read audit:read",
                ttl: Duration::from_secs(7 * 24 * 3600),
                issuer: ISSUER,
                audience: AUDIENCE,
            },
        )
        .expect("sign es256");
        let secret = std::fs::read(dir.path().join("hs256.secret")).expect("secret");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({
            "sub": SUB, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now,
            "exp": now + 7 * 24 * 3600, "purposes": ["support"], "scope": "consent:read audit:read",
        });
        let hs256 = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.trim_ascii()),
        )
        .expect("sign hs256");
        let kid = serde_json::from_slice::<serde_json::Value>(
            &B64.decode(es256.split('.').next().expect("header"))
                .expect("b64"),
        )
        .expect("header json")["kid"]
            .as_str()
            .expect("kid")
            .to_owned();
        for t in [&es256, &hs256] {
            assert_eq!(
                verifier.verify(t),
                Ok(Arc::new(expected_caller())),
                "fixture token rejected"
            );
        }
        // Keys are in memory now; the files are not needed any more.
        drop(dir);
        Fixture {
            verifier,
            genuine: [es256, hs256],
            kid,
        }
    })
}

fn expected_caller() -> Caller {
    Caller {
        name: SUB.into(),
        purposes: vec!["support".into()],
        scopes: vec!["consent:read".into(), "audit:read".into()],
    }
}

#[derive(Arbitrary, Debug)]
enum Alg {
    Hs256,
    Hs384,
    Es256,
    Es384,
    Rs256,
    Ps256,
    EdDsa,
    None,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Kid {
    Absent,
    Real,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Sig {
    Bytes(Vec<u8>),
    /// The signature of a genuine token, replayed over other content.
    Genuine(bool),
    Empty,
}

#[derive(Arbitrary, Debug)]
enum Purposes {
    Strings(Vec<String>),
    Text(String),
    Number(i64),
    Null,
}

impl Purposes {
    fn json(self) -> serde_json::Value {
        match self {
            Self::Strings(v) => v.into(),
            Self::Text(s) => s.into(),
            Self::Number(n) => n.into(),
            Self::Null => serde_json::Value::Null,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set {
        pos: u16,
        byte: u8,
    },
    Insert {
        pos: u16,
        byte: u8,
    },
    Delete {
        pos: u16,
    },
    /// Swap the token's header or claims part with base64url of other text.
    ReplacePart {
        part: u8,
        text: String,
    },
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(&'a str),
    Parts {
        header: &'a [u8],
        claims: &'a [u8],
        sig: Sig,
    },
    Shaped {
        alg: Alg,
        kid: Kid,
        good_iss: bool,
        good_aud: bool,
        exp_offset: i32,
        sub: Option<String>,
        purposes: Purposes,
        extra: Vec<(String, String)>,
        sig: Sig,
    },
    Edited {
        hs256: bool,
        edits: Vec<Edit>,
    },
    Headers(Vec<&'a [u8]>),
}

fn sig_text(sig: &Sig, f: &Fixture) -> String {
    match sig {
        Sig::Bytes(b) => B64.encode(b),
        Sig::Genuine(hs) => f.genuine[usize::from(*hs)]
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned(),
        Sig::Empty => String::new(),
    }
}

fn signing_input(token: &str) -> Option<&str> {
    token.rsplit_once('.').map(|(input, _)| input)
}

/// `verify` must refuse unless the signed part is exactly a genuine token's.
fn check(f: &Fixture, token: &str) -> Result<Arc<Caller>, AuthError> {
    let result = f.verifier.verify(token);
    if let Ok(caller) = &result {
        let genuine = f
            .genuine
            .iter()
            .any(|g| signing_input(g) == signing_input(token));
        assert!(genuine, "forged token accepted: {token:?}");
        assert_eq!(**caller, expected_caller());
    }
    // The header path gives the same answer for a well-formed bearer header.
    if !token.is_empty()
        && !token.contains(' ')
        && token.len() + 7 <= consentgate::auth::MAX_TOKEN_BYTES
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}"))
        && v.to_str().is_ok()
    {
        assert_eq!(f.verifier.verify_header(std::iter::once(&v)), result);
    }
    result
}

fuzz_target!(|input: Input<'_>| {
    let f = fixture();
    match input {
        Input::Raw(token) => {
            assert!(check(f, token).is_err(), "arbitrary text accepted");
        }
        Input::Parts {
            header,
            claims,
            sig,
        } => {
            let token = format!(
                "{}.{}.{}",
                B64.encode(header),
                B64.encode(claims),
                sig_text(&sig, f)
            );
            assert!(check(f, &token).is_err());
        }
        Input::Shaped {
            alg,
            kid,
            good_iss,
            good_aud,
            exp_offset,
            sub,
            purposes,
            extra,
            sig,
        } => {
            let alg_text = match &alg {
                Alg::Hs256 => "HS256",
                Alg::Hs384 => "HS384",
                Alg::Es256 => "ES256",
                Alg::Es384 => "ES384",
                Alg::Rs256 => "RS256",
                Alg::Ps256 => "PS256",
                Alg::EdDsa => "EdDSA",
                Alg::None => "none",
                Alg::Other(s) => s.as_str(),
            };
            let mut header = serde_json::json!({"typ": "JWT", "alg": alg_text});
            match &kid {
                Kid::Absent => {}
                Kid::Real => header["kid"] = f.kid.clone().into(),
                Kid::Other(k) => header["kid"] = k.clone().into(),
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            let mut claims = serde_json::json!({
                "iss": if good_iss { ISSUER } else { "other-iss" },
                "aud": if good_aud { AUDIENCE } else { "other-aud" },
                "exp": now + i64::from(exp_offset),
                "purposes": purposes.json(),
            });
            if let Some(sub) = sub {
                claims["sub"] = sub.into();
            }
            for (k, v) in extra.into_iter().take(4) {
                claims[k] = v.into();
            }
            let token = format!(
                "{}.{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string()),
                sig_text(&sig, f)
            );
            let result = check(f, &token);
            assert!(result.is_err(), "forged token accepted");
            if matches!(alg, Alg::None) {
                assert_eq!(result, Err(AuthError::UnsupportedAlgorithm));
            }
        }
        Input::Edited { hs256, edits } => {
            let mut bytes = f.genuine[usize::from(hs256)].clone().into_bytes();
            for edit in edits.into_iter().take(8) {
                let at = |pos: u16, len: usize| usize::from(pos) % len.max(1);
                match edit {
                    Edit::Set { pos, byte } if !bytes.is_empty() => {
                        let i = at(pos, bytes.len());
                        bytes[i] = byte;
                    }
                    Edit::Insert { pos, byte } => {
                        let i = at(pos, bytes.len() + 1);
                        bytes.insert(i, byte);
                    }
                    Edit::Delete { pos } if !bytes.is_empty() => {
                        let i = at(pos, bytes.len());
                        bytes.remove(i);
                    }
                    Edit::ReplacePart { part, text } => {
                        let s = String::from_utf8_lossy(&bytes).into_owned();
                        let mut parts: Vec<String> = s.split('.').map(str::to_owned).collect();
                        let i = usize::from(part % 2);
                        if i < parts.len() {
                            parts[i] = B64.encode(text);
                        }
                        bytes = parts.join(".").into_bytes();
                    }
                    _ => {}
                }
            }
            let token = String::from_utf8_lossy(&bytes);
            let _ = check(f, &token);
        }
        Input::Headers(values) => {
            let values: Vec<HeaderValue> = values
                .into_iter()
                .take(3)
                .filter_map(|v| HeaderValue::from_bytes(v).ok())
                .collect();
            let result = f.verifier.verify_header(values.iter());
            assert!(result.is_err(), "arbitrary header accepted");
            if values.is_empty() {
                assert_eq!(result, Err(AuthError::Missing));
            }
            if values.len() > 1 {
                assert_eq!(result, Err(AuthError::NotBearer));
            }
        }
    }
});
