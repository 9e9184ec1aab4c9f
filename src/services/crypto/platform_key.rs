//! The platform's signing key and the key set it publishes.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::*;

/// A platform signing key.
///
/// `kid` is the RFC 7638 JWK thumbprint (base64url SHA-256) of the public
/// key, so it is stable across restarts and re-imports of the same key.
#[derive(Clone)]
pub struct PlatformKey {
    pub kid: String,
    pub private_pkcs8_pem: String,
    /// `{"kty":"RSA","alg":"RS256","use":"sig","kid","n","e"}`
    pub public_jwk: Value,
    // Parsed once so signing does not re-read the PEM every time.
    encoding_key: EncodingKey,
}

// Hand-written so that logging a key never prints the private half.
impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKey")
            .field("kid", &self.kid)
            .field("private_pkcs8_pem", &"[redacted]")
            .field("public_jwk", &self.public_jwk)
            .finish()
    }
}

impl PlatformKey {
    /// Generates a fresh RSA 2048 key from the OS random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_KEY_BITS)
            .map_err(|_| CryptoError::KeyGeneration)?;
        Self::from_rsa(key)
    }

    /// Loads a key from PEM (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE
    /// KEY` as older key generators write it) and recomputes kid and JWK.
    /// `private_pkcs8_pem` is always normalised to PKCS#8.
    pub fn from_private_pem(pem: &str) -> Result<Self, CryptoError> {
        let pem = pem.trim();
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| CryptoError::InvalidKey("expected an RSA private key in PEM"))?;
        Self::from_rsa(key)
    }

    fn from_rsa(key: RsaPrivateKey) -> Result<Self, CryptoError> {
        if key.n().bits() < MIN_RSA_KEY_BITS {
            return Err(CryptoError::InvalidKey("RSA key is shorter than 2048 bits"));
        }
        key.validate()
            .map_err(|_| CryptoError::InvalidKey("RSA key is inconsistent"))?;
        let private_pkcs8_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CryptoError::InvalidKey("cannot encode key as PKCS#8"))?
            .to_string();
        let pkcs1_der = key
            .to_pkcs1_der()
            .map_err(|_| CryptoError::InvalidKey("cannot encode key as PKCS#1"))?;
        let encoding_key = EncodingKey::from_rsa_der(pkcs1_der.as_bytes());

        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = rsa_thumbprint(&n, &e);
        let public_jwk = json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": n,
            "e": e,
        });
        Ok(Self {
            kid,
            private_pkcs8_pem,
            public_jwk,
            encoding_key,
        })
    }

    /// Signs `claims` (a JSON object) as an RS256 JWT whose header carries
    /// this key's `kid` and `typ: "JWT"`.
    pub fn sign(&self, claims: &Value) -> Result<String, CryptoError> {
        if !claims.is_object() {
            return Err(CryptoError::Signing("claims must be a JSON object"));
        }
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key)
            .map_err(|_| CryptoError::Signing("RS256 signature could not be made"))
    }
}

/// RFC 7638 thumbprint of an RSA public key: SHA-256 over the canonical
/// `{"e","kty","n"}` JSON, base64url without padding.
pub(super) fn rsa_thumbprint(n_b64: &str, e_b64: &str) -> String {
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Builds the platform's published key set `{"keys":[...]}`.
///
/// Only public members are copied from each input, whatever it holds, so a
/// private JWK passed by mistake cannot leak `d`, `p`, `q`, `dp`, `dq`,
/// `qi`, `oth` or a symmetric `k`. Entries that are not asymmetric keys are
/// dropped.
pub fn jwks(keys: &[Value]) -> Value {
    const PUBLIC_MEMBERS: &[&str] = &[
        "kty", "kid", "alg", "use", "key_ops", "n", "e", "crv", "x", "y",
    ];
    let keys: Vec<Value> = keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|jwk| {
            matches!(
                jwk.get("kty").and_then(Value::as_str),
                Some("RSA" | "EC" | "OKP")
            )
        })
        .map(|jwk| {
            Value::Object(
                jwk.iter()
                    .filter(|(name, _)| PUBLIC_MEMBERS.contains(&name.as_str()))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            )
        })
        .collect();
    json!({ "keys": keys })
}
