//! Signing keys and JWT checks for the LTI 1.3 platform.
//!
//! This module holds:
//! - [`PlatformKey`]: the platform's RSA signing key (generation, PEM import,
//!   public JWK, RS256 signing of launch / service tokens);
//! - [`jwks`]: the public key set the platform publishes for tools;
//! - [`parse_rsa_jwk`], [`ToolKeySource`] and [`JwksCache`]: how a tool's
//!   public key is obtained, either configured inline or fetched (and cached)
//!   from the tool's JWKS URL;
//! - [`verify_tool_jwt`]: verification of JWTs a tool signed (client
//!   assertions at the token endpoint, deep linking responses), returning
//!   the claims or a [`JwtError`] the HTTP layer can map to a response.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Size of generated platform keys, in bits.
pub const RSA_KEY_BITS: usize = 2048;
/// Smallest RSA modulus accepted from PEM imports and tool JWKs, in bits.
pub const MIN_RSA_KEY_BITS: usize = 2048;
/// Default time budget for one JWKS fetch (connect, headers and body).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on a JWKS response body.
pub const DEFAULT_MAX_JWKS_BYTES: usize = 256 * 1024;
/// Default minimum spacing between two fetches of the same JWKS URL.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Default age after which a cached JWKS is fetched again, so that keys a
/// tool withdrew stop being accepted.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Tokens longer than this are refused before any parsing (cheap DoS guard;
/// real client assertions and deep linking responses are far smaller).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Errors from key handling, signing and JWKS fetching.
///
/// Messages are short and never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("key generation failed")]
    KeyGeneration,
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("signing failed: {0}")]
    Signing(&'static str),
    #[error("key set fetch failed: {0}")]
    Fetch(String),
    #[error("key set fetch timed out")]
    Timeout,
    #[error("key set response exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no matching key in the key set")]
    UnknownKey,
}

// ---------------------------------------------------------------------------
// Platform keys
// ---------------------------------------------------------------------------

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
fn rsa_thumbprint(n_b64: &str, e_b64: &str) -> String {
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

// ---------------------------------------------------------------------------
// Tool keys
// ---------------------------------------------------------------------------

/// Turns an RSA public JWK (`kty` = `RSA`, `n`, `e`; other members are
/// ignored) into a verification key. Non-RSA keys, malformed components and
/// moduli under 2048 bits are rejected.
pub fn parse_rsa_jwk(jwk: &Value) -> Result<DecodingKey, CryptoError> {
    let jwk = jwk
        .as_object()
        .ok_or(CryptoError::InvalidKey("JWK must be a JSON object"))?;
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return Err(CryptoError::InvalidKey("only RSA keys are supported"));
    }
    let n = jwk_component(jwk, "n")?;
    let e = jwk_component(jwk, "e")?;
    // The rsa crate checks the exponent range and the upper size bound.
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
        .map_err(|_| CryptoError::InvalidKey("RSA public key is not valid"))?;
    if public.n().bits() < MIN_RSA_KEY_BITS {
        return Err(CryptoError::InvalidKey("RSA key is shorter than 2048 bits"));
    }
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

fn jwk_component(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, CryptoError> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or(CryptoError::InvalidKey("RSA JWK needs string n and e"))?;
    // Some publishers pad base64url; padding carries no information.
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| CryptoError::InvalidKey("RSA JWK n or e is not base64url"))?;
    if bytes.is_empty() {
        return Err(CryptoError::InvalidKey("RSA JWK n or e is empty"));
    }
    Ok(bytes)
}

/// Where a tool's public key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolKeySource {
    /// A public JWK configured for the tool.
    Jwk(Value),
    /// The tool's JWKS URL, fetched through a [`JwksCache`].
    JwksUrl(String),
}

/// Fetches and caches tool key sets, keyed by URL and then by `kid`.
///
/// - A known, fresh `kid` is served from memory without any locking on the
///   network path.
/// - An unknown `kid` (or a set older than the max age) triggers a refetch,
///   but at most one fetch per URL per minimum refresh interval, so tokens
///   with made-up kids cannot make us hammer a tool. Concurrent misses on the
///   same URL share one fetch.
/// - A fetch has a total time budget and a body size cap that is enforced
///   while the body streams in.
/// - If a refetch fails, a previously fetched key is still served, so a
///   tool's JWKS endpoint hiccup does not break launches.
///
/// Cheap to clone (the state is shared behind an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<CacheInner>,
}

#[derive(Clone, Copy)]
struct CacheConfig {
    timeout: Duration,
    max_bytes: usize,
    min_refresh_interval: Duration,
    max_age: Duration,
}

struct CacheInner {
    config: CacheConfig,
    // None only if the HTTP client could not be built; every fetch then fails.
    client: Option<reqwest::Client>,
    slots: Mutex<HashMap<String, Slot>>,
}

#[derive(Default)]
struct Slot {
    set: Option<Arc<KeySet>>,
    last_fetch: Option<Instant>,
    // Held across the network fetch only, never while serving cached keys.
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
}

struct KeySet {
    fetched_at: Instant,
    /// Number of entries in the document, usable or not.
    total: usize,
    /// Usable RSA keys with their kid.
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<DecodingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            // Without a kid the choice is only unambiguous for a one-key set.
            None if self.total == 1 => self.keys.first().map(|(_, key)| key.clone()),
            None => None,
        }
    }
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.config;
        f.debug_struct("JwksCache")
            .field("timeout", &c.timeout)
            .field("max_bytes", &c.max_bytes)
            .field("min_refresh_interval", &c.min_refresh_interval)
            .field("max_age", &c.max_age)
            .finish_non_exhaustive()
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new(DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_JWKS_BYTES)
    }
}

impl JwksCache {
    /// A cache whose fetches take at most `timeout` in total and read at
    /// most `max_bytes` of body. Refresh spacing and max age take their
    /// defaults ([`DEFAULT_MIN_REFRESH_INTERVAL`], [`DEFAULT_JWKS_MAX_AGE`]).
    pub fn new(timeout: Duration, max_bytes: usize) -> Self {
        Self::with_config(CacheConfig {
            timeout,
            max_bytes,
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            max_age: DEFAULT_JWKS_MAX_AGE,
        })
    }

    /// Sets the minimum spacing between fetches of one URL. Call while
    /// building the cache: it starts a new, empty cache.
    pub fn with_min_refresh_interval(self, interval: Duration) -> Self {
        Self::with_config(CacheConfig {
            min_refresh_interval: interval,
            ..self.inner.config
        })
    }

    /// Sets the age after which a cached set is fetched again. Call while
    /// building the cache: it starts a new, empty cache.
    pub fn with_max_age(self, max_age: Duration) -> Self {
        Self::with_config(CacheConfig {
            max_age,
            ..self.inner.config
        })
    }

    fn with_config(config: CacheConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A JWKS URL may legitimately redirect once or twice, not loop.
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent("gradebook-lti-platform")
            .build()
            .ok();
        Self {
            inner: Arc::new(CacheInner {
                config,
                client,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The key for `kid` in the key set at `url`; with no `kid`, the only
    /// key of a one-key set.
    pub async fn key_for(&self, url: &str, kid: Option<&str>) -> Result<DecodingKey, CryptoError> {
        let config = self.inner.config;
        let fetch_lock = {
            let mut slots = self.slots();
            let slot = slots.entry(url.to_owned()).or_default();
            if let Some(key) = fresh_key(slot, kid, config.max_age) {
                return Ok(key);
            }
            Arc::clone(&slot.fetch_lock)
        };

        // One fetch per URL at a time; whoever waited re-checks first, since
        // the fetch they waited for may already have brought the key.
        let _fetching = fetch_lock.lock().await;
        let stale = {
            let mut slots = self.slots();
            let slot = slots.entry(url.to_owned()).or_default();
            if let Some(key) = fresh_key(slot, kid, config.max_age) {
                return Ok(key);
            }
            let stale = slot.set.as_ref().and_then(|set| set.find(kid));
            let now = Instant::now();
            let may_fetch = slot
                .last_fetch
                .is_none_or(|at| now.duration_since(at) >= config.min_refresh_interval);
            if !may_fetch {
                return match (stale, &slot.set) {
                    (Some(key), _) => Ok(key),
                    (None, Some(_)) => Err(CryptoError::UnknownKey),
                    (None, None) => Err(CryptoError::Fetch(
                        "key set unavailable, retry later".to_owned(),
                    )),
                };
            }
            slot.last_fetch = Some(now);
            stale
        };

        match self.fetch(url).await {
            Ok(set) => {
                let set = Arc::new(set);
                let found = set.find(kid);
                if let Some(slot) = self.slots().get_mut(url) {
                    slot.set = Some(set);
                }
                found.ok_or(CryptoError::UnknownKey)
            }
            // Serve what we had rather than fail on a transient error.
            Err(err) => stale.ok_or(err),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // The map stays consistent even if a holder panicked.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch(&self, url: &str) -> Result<KeySet, CryptoError> {
        let config = self.inner.config;
        let client = self
            .inner
            .client
            .as_ref()
            .ok_or_else(|| CryptoError::Fetch("HTTP client unavailable".to_owned()))?;
        let body = async {
            let mut response = client
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(request_error)?;
            if !response.status().is_success() {
                return Err(CryptoError::Fetch(format!(
                    "HTTP status {}",
                    response.status().as_u16()
                )));
            }
            let too_large = CryptoError::TooLarge {
                limit: config.max_bytes,
            };
            if response
                .content_length()
                .is_some_and(|len| len > config.max_bytes as u64)
            {
                return Err(too_large);
            }
            // Count while reading so a lying or absent Content-Length cannot
            // make us buffer more than the cap.
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(request_error)? {
                if body.len() + chunk.len() > config.max_bytes {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        // The client timeout should fire first; this bounds everything else.
        let body = tokio::time::timeout(config.timeout, body)
            .await
            .map_err(|_| CryptoError::Timeout)??;
        parse_key_set(&body)
    }
}

fn fresh_key(slot: &Slot, kid: Option<&str>, max_age: Duration) -> Option<DecodingKey> {
    slot.set
        .as_ref()
        .filter(|set| set.fetched_at.elapsed() < max_age)
        .and_then(|set| set.find(kid))
}

fn request_error(err: reqwest::Error) -> CryptoError {
    if err.is_timeout() {
        CryptoError::Timeout
    } else if err.is_connect() {
        CryptoError::Fetch("could not connect".to_owned())
    } else if err.is_redirect() {
        CryptoError::Fetch("too many redirects".to_owned())
    } else {
        CryptoError::Fetch("request failed".to_owned())
    }
}

fn parse_key_set(body: &[u8]) -> Result<KeySet, CryptoError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| CryptoError::Fetch("response is not JSON".to_owned()))?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| CryptoError::Fetch("response is not a JWK set".to_owned()))?;
    // Keys we cannot use (EC, encryption-only, malformed) are skipped, not
    // fatal: the tool may publish them alongside its RSA signing key.
    let keys = entries
        .iter()
        .filter_map(|jwk| {
            let key = parse_rsa_jwk(jwk).ok()?;
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
            Some((kid, key))
        })
        .collect();
    Ok(KeySet {
        fetched_at: Instant::now(),
        total: entries.len(),
        keys,
    })
}

// ---------------------------------------------------------------------------
// Verifying tool JWTs
// ---------------------------------------------------------------------------

/// What we expect of a JWT a tool signed (client assertion at the token
/// endpoint, deep linking response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// Exact `iss`.
    pub issuer: &'a str,
    /// Must equal `aud`, or be one element of an `aud` array.
    pub audience: &'a str,
    /// Exact `sub`, when given.
    pub subject: Option<&'a str>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 60).
    pub leeway_secs: u64,
    /// If set, `exp - iat` may not exceed it (and `iat` becomes required).
    pub max_lifetime_secs: Option<u64>,
}

impl<'a> Expect<'a> {
    /// Issuer and audience, no subject check, default leeway, no lifetime cap.
    pub fn new(issuer: &'a str, audience: &'a str) -> Self {
        Self {
            issuer,
            audience,
            subject: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_lifetime_secs: None,
        }
    }
}

/// Why a tool JWT was refused. Messages are short, safe to show to the
/// caller, and never include key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token header")]
    BadHeader,
    #[error("unsupported signing algorithm {0:?}; RS256 is required")]
    UnsupportedAlg(String),
    #[error("no key matches the token's key id")]
    UnknownKey,
    #[error("could not obtain the tool's key: {0}")]
    KeyFetch(String),
    #[error("invalid token signature")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token lifetime is too long")]
    LifetimeTooLong,
    #[error("unexpected token issuer")]
    BadIssuer,
    #[error("unexpected token audience")]
    BadAudience,
    #[error("unexpected token subject")]
    BadSubject,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("malformed token")]
    Malformed,
}

/// Verifies a JWT a tool signed and returns its claims.
///
/// The header must say RS256 (anything else, `none` and HS256 included, is
/// refused before any key is touched, which rules out algorithm confusion);
/// the signature must verify with the tool's key (from a JWKS URL, chosen by
/// the header `kid`, or the only key of a one-key set); then `exp`
/// (required), `nbf`, `iat`, the lifetime cap, `iss`, `aud` (string or
/// array) and `sub` are checked against `expect`.
///
/// Replay protection (`jti` tracking) is left to the caller.
pub async fn verify_tool_jwt(
    token: &str,
    source: &ToolKeySource,
    cache: &JwksCache,
    expect: &Expect<'_>,
) -> Result<Map<String, Value>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let kid = check_header(token)?;
    let key = match source {
        // An inline key is the tool's key whatever kid the token names.
        ToolKeySource::Jwk(jwk) => parse_rsa_jwk(jwk),
        ToolKeySource::JwksUrl(url) => cache.key_for(url, kid.as_deref()).await,
    }
    .map_err(|err| match err {
        CryptoError::UnknownKey => JwtError::UnknownKey,
        other => JwtError::KeyFetch(other.to_string()),
    })?;

    // The library checks the signature only; claim rules are ours below, so
    // that each failure maps to its own error.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|err| match err.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                JwtError::UnsupportedAlg("unknown".to_owned())
            }
            _ => JwtError::Malformed,
        })?
        .claims;

    check_claims(&claims, expect, chrono::Utc::now().timestamp())?;
    Ok(claims)
}

/// Checks the header on its own (before the library parses it) so that
/// `alg: none` and unknown algorithms get a precise error. Returns the kid.
fn check_header(token: &str) -> Result<Option<String>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::BadHeader)?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) => return Err(JwtError::UnsupportedAlg(printable(alg))),
        _ => return Err(JwtError::BadHeader),
    }
    // We implement no JWS extensions, and RFC 7515 says unknown critical
    // ones must be refused.
    if header.contains_key("crit") {
        return Err(JwtError::BadHeader);
    }
    match header.get("kid") {
        None => Ok(None),
        Some(Value::String(kid)) => Ok(Some(kid.clone())),
        Some(_) => Err(JwtError::BadHeader),
    }
}

/// A bounded, printable copy of an attacker-chosen string for an error.
fn printable(text: &str) -> String {
    text.chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
    now: i64,
) -> Result<(), JwtError> {
    let leeway = i64::try_from(expect.leeway_secs).unwrap_or(i64::MAX);
    let exp = numeric_date(claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;

    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(JwtError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(JwtError::IssuedInFuture);
    }
    if let Some(max) = expect.max_lifetime_secs {
        let iat = iat.ok_or(JwtError::MissingClaim("iat"))?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        if exp.saturating_sub(iat) > max {
            return Err(JwtError::LifetimeTooLong);
        }
    }

    match claims.get("iss") {
        None => return Err(JwtError::MissingClaim("iss")),
        Some(Value::String(iss)) if iss == expect.issuer => {}
        Some(_) => return Err(JwtError::BadIssuer),
    }

    // Tools send both forms; RFC 7519 allows both.
    let audience_ok = match claims.get("aud") {
        None => return Err(JwtError::MissingClaim("aud")),
        Some(Value::String(aud)) => aud == expect.audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(expect.audience)),
        Some(_) => false,
    };
    if !audience_ok {
        return Err(JwtError::BadAudience);
    }

    if let Some(expected) = expect.subject {
        match claims.get("sub") {
            None => return Err(JwtError::MissingClaim("sub")),
            Some(Value::String(sub)) if sub == expected => {}
            Some(_) => return Err(JwtError::BadSubject),
        }
    }
    Ok(())
}

/// A NumericDate claim as whole seconds: absent is `None`, a non-number is
/// malformed, fractions are truncated (RFC 7519 allows them).
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(JwtError::Malformed),
        Some(_) => Err(JwtError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const TOOL: &str = "tool-client-id";
    const PLATFORM: &str = "https://gradebook.example/lti";

    // Key generation is the slow part; share two keys across tests.
    fn tool_key() -> &'static PlatformKey {
        static KEY: OnceLock<PlatformKey> = OnceLock::new();
        KEY.get_or_init(|| PlatformKey::generate().expect("generate"))
    }

    fn other_key() -> &'static PlatformKey {
        static KEY: OnceLock<PlatformKey> = OnceLock::new();
        KEY.get_or_init(|| PlatformKey::generate().expect("generate"))
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({
            "iss": TOOL,
            "sub": TOOL,
            "aud": PLATFORM,
            "iat": now(),
            "exp": now() + 300,
            "jti": "abc",
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn expect() -> Expect<'static> {
        Expect {
            subject: Some(TOOL),
            ..Expect::new(TOOL, PLATFORM)
        }
    }

    fn inline_source() -> ToolKeySource {
        ToolKeySource::Jwk(tool_key().public_jwk.clone())
    }

    async fn verify(token: &str) -> Result<Map<String, Value>, JwtError> {
        verify_tool_jwt(token, &inline_source(), &JwksCache::default(), &expect()).await
    }

    async fn verify_claims(claims: &Value) -> Result<Map<String, Value>, JwtError> {
        verify(&tool_key().sign(claims).unwrap()).await
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    // --- platform keys ---------------------------------------------------

    #[tokio::test]
    async fn generate_sign_verify_with_public_jwk() {
        let key = tool_key();
        let token = key.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));

        let got = verify(&token).await.unwrap();
        assert_eq!(got["jti"], "abc");
        assert_eq!(key.public_jwk["kty"], "RSA");
        assert_eq!(key.public_jwk["alg"], "RS256");
        assert_eq!(key.public_jwk["use"], "sig");
        assert_eq!(key.public_jwk["kid"], key.kid.as_str());
    }

    #[test]
    fn from_private_pem_round_trip_keeps_kid() {
        let key = tool_key();
        let again = PlatformKey::from_private_pem(&key.private_pkcs8_pem).unwrap();
        assert_eq!(again.kid, key.kid);
        assert_eq!(again.public_jwk, key.public_jwk);
        assert!(key
            .private_pkcs8_pem
            .starts_with("-----BEGIN PRIVATE KEY-----"));

        // PKCS#1 input is accepted and normalised to PKCS#8.
        let rsa = RsaPrivateKey::from_pkcs8_pem(&key.private_pkcs8_pem).unwrap();
        let pkcs1 = rsa.to_pkcs1_pem(LineEnding::LF).unwrap();
        let from_pkcs1 = PlatformKey::from_private_pem(&pkcs1).unwrap();
        assert_eq!(from_pkcs1.kid, key.kid);
        assert_eq!(from_pkcs1.private_pkcs8_pem, key.private_pkcs8_pem);

        assert!(matches!(
            PlatformKey::from_private_pem("not a key"),
            Err(CryptoError::InvalidKey(_))
        ));
    }

    #[test]
    fn kid_is_rfc7638_thumbprint() {
        // Example from RFC 7638, section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn debug_output_hides_private_key() {
        let shown = format!("{:?}", tool_key());
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(shown.contains(&tool_key().kid));
    }

    #[test]
    fn sign_refuses_non_object_claims() {
        assert!(matches!(
            tool_key().sign(&json!("nope")),
            Err(CryptoError::Signing(_))
        ));
    }

    #[test]
    fn jwks_never_contains_private_parts() {
        let mut leaky = tool_key().public_jwk.clone();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            leaky[private] = json!("secret");
        }
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        let set = jwks(&[leaky, other_key().public_jwk.clone(), oct]);

        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], tool_key().public_jwk);
        for key in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(key.get(private).is_none(), "{private} leaked");
            }
        }
        assert!(!set.to_string().contains("secret"));
    }

    #[test]
    fn parse_rsa_jwk_rejects_non_rsa_and_weak_keys() {
        assert!(parse_rsa_jwk(&tool_key().public_jwk).is_ok());
        let ec = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
        assert_eq!(
            parse_rsa_jwk(&ec).unwrap_err(),
            CryptoError::InvalidKey("only RSA keys are supported")
        );
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(parse_rsa_jwk(&oct).is_err());
        let weak = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        assert!(parse_rsa_jwk(&weak).is_err());
        let no_n = json!({"kty": "RSA", "e": "AQAB"});
        assert!(parse_rsa_jwk(&no_n).is_err());
        assert!(parse_rsa_jwk(&json!([])).is_err());
    }

    // --- rejections ------------------------------------------------------

    #[tokio::test]
    async fn rejects_signature_from_other_key() {
        let token = other_key().sign(&claims()).unwrap();
        assert_eq!(verify(&token).await.unwrap_err(), JwtError::BadSignature);
    }

    #[tokio::test]
    async fn rejects_tampered_payload() {
        let token = tool_key().sign(&claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&with(claims(), "sub", json!("someone-else")));
        let token = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert_eq!(verify(&token).await.unwrap_err(), JwtError::BadSignature);
    }

    #[tokio::test]
    async fn rejects_alg_none() {
        let header = b64(&json!({"alg": "none", "typ": "JWT"}));
        let token = format!("{header}.{}.", b64(&claims()));
        assert_eq!(
            verify(&token).await.unwrap_err(),
            JwtError::UnsupportedAlg("none".to_owned())
        );
    }

    #[tokio::test]
    async fn rejects_hs256_with_public_key_as_secret() {
        use rsa::pkcs8::EncodePublicKey;
        let rsa = RsaPrivateKey::from_pkcs8_pem(&tool_key().private_pkcs8_pem).unwrap();
        let public_pem = rsa
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let n = tool_key().public_jwk["n"].as_str().unwrap().to_owned();
        let jwk_text = tool_key().public_jwk.to_string();

        for secret in [public_pem.as_bytes(), n.as_bytes(), jwk_text.as_bytes()] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(tool_key().kid.clone());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            assert_eq!(
                verify(&token).await.unwrap_err(),
                JwtError::UnsupportedAlg("HS256".to_owned())
            );
        }
    }

    #[tokio::test]
    async fn rejects_other_rsa_algorithms() {
        let rsa = RsaPrivateKey::from_pkcs8_pem(&tool_key().private_pkcs8_pem).unwrap();
        let der = rsa.to_pkcs1_der().unwrap();
        for alg in [Algorithm::RS512, Algorithm::PS256] {
            let token = jsonwebtoken::encode(
                &Header::new(alg),
                &claims(),
                &EncodingKey::from_rsa_der(der.as_bytes()),
            )
            .unwrap();
            assert!(matches!(
                verify(&token).await.unwrap_err(),
                JwtError::UnsupportedAlg(_)
            ));
        }
    }

    #[tokio::test]
    async fn rejects_malformed_tokens() {
        assert_eq!(verify("").await.unwrap_err(), JwtError::Malformed);
        assert_eq!(verify("a.b").await.unwrap_err(), JwtError::Malformed);
        assert_eq!(verify("a.b.c.d").await.unwrap_err(), JwtError::Malformed);
        assert_eq!(verify("%%%.b.c").await.unwrap_err(), JwtError::BadHeader);
        let header = b64(&json!({"alg": "RS256", "crit": ["exp"]}));
        assert_eq!(
            verify(&format!("{header}.e30.sig")).await.unwrap_err(),
            JwtError::BadHeader
        );
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verify(&huge).await.unwrap_err(), JwtError::Malformed);
        let token = tool_key()
            .sign(&with(claims(), "exp", json!("soon")))
            .unwrap();
        assert_eq!(verify(&token).await.unwrap_err(), JwtError::Malformed);
    }

    #[tokio::test]
    async fn rejects_expired() {
        let c = with(claims(), "exp", json!(now() - 120));
        assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::Expired);
        // Within the leeway it still passes.
        let c = with(claims(), "exp", json!(now() - 30));
        assert!(verify_claims(&c).await.is_ok());
    }

    #[tokio::test]
    async fn rejects_iat_in_future() {
        let c = with(claims(), "iat", json!(now() + 600));
        assert_eq!(
            verify_claims(&c).await.unwrap_err(),
            JwtError::IssuedInFuture
        );
    }

    #[tokio::test]
    async fn rejects_nbf_in_future() {
        let c = with(claims(), "nbf", json!(now() + 600));
        assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::NotYetValid);
        let c = with(claims(), "nbf", json!(now() - 10));
        assert!(verify_claims(&c).await.is_ok());
    }

    #[tokio::test]
    async fn rejects_wrong_iss() {
        let c = with(claims(), "iss", json!("someone-else"));
        assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadIssuer);
        let c = without(claims(), "iss");
        assert_eq!(
            verify_claims(&c).await.unwrap_err(),
            JwtError::MissingClaim("iss")
        );
    }

    #[tokio::test]
    async fn rejects_wrong_aud() {
        let c = with(claims(), "aud", json!("https://other.example"));
        assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadAudience);
        let c = with(claims(), "aud", json!(["https://other.example"]));
        assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadAudience);
        let c = without(claims(), "aud");
        assert_eq!(
            verify_claims(&c).await.unwrap_err(),
            JwtError::MissingClaim("aud")
        );
    }

    #[tokio::test]
    async fn accepts_aud_as_array() {
        let c = with(claims(), "aud", json!(["https://other.example", PLATFORM]));
        assert!(verify_claims(&c).await.is_ok());
    }

    #[tokio::test]
    async fn accepts_aud_as_string() {
        let c = with(claims(), "aud", json!(PLATFORM));
        assert!(verify_claims(&c).await.is_ok());
    }

    #[tokio::test]
    async fn rejects_wrong_sub() {
        let c = with(claims(), "sub", json!("someone-else"));
        assert_eq!(verify_claims(&c).await.unwrap_err(), JwtError::BadSubject);
        let c = without(claims(), "sub");
        assert_eq!(
            verify_claims(&c).await.unwrap_err(),
            JwtError::MissingClaim("sub")
        );
        // No subject expectation: any sub passes.
        let token = tool_key().sign(&with(claims(), "sub", json!("x"))).unwrap();
        let lax = Expect::new(TOOL, PLATFORM);
        let cache = JwksCache::default();
        assert!(verify_tool_jwt(&token, &inline_source(), &cache, &lax)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn rejects_missing_exp() {
        let c = without(claims(), "exp");
        assert_eq!(
            verify_claims(&c).await.unwrap_err(),
            JwtError::MissingClaim("exp")
        );
    }

    #[tokio::test]
    async fn enforces_max_lifetime() {
        let cache = JwksCache::default();
        let capped = Expect {
            max_lifetime_secs: Some(600),
            ..expect()
        };
        let long = with(claims(), "exp", json!(now() + 3600));
        let token = tool_key().sign(&long).unwrap();
        assert_eq!(
            verify_tool_jwt(&token, &inline_source(), &cache, &capped)
                .await
                .unwrap_err(),
            JwtError::LifetimeTooLong
        );
        let token = tool_key().sign(&without(claims(), "iat")).unwrap();
        assert_eq!(
            verify_tool_jwt(&token, &inline_source(), &cache, &capped)
                .await
                .unwrap_err(),
            JwtError::MissingClaim("iat")
        );
        let token = tool_key().sign(&claims()).unwrap();
        assert!(verify_tool_jwt(&token, &inline_source(), &cache, &capped)
            .await
            .is_ok());
    }

    #[test]
    fn error_messages_hold_no_key_material() {
        let n = tool_key().public_jwk["n"].as_str().unwrap();
        let errors = [
            JwtError::BadHeader,
            JwtError::UnsupportedAlg("HS256".into()),
            JwtError::UnknownKey,
            JwtError::KeyFetch(CryptoError::Timeout.to_string()),
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::IssuedInFuture,
            JwtError::LifetimeTooLong,
            JwtError::BadIssuer,
            JwtError::BadAudience,
            JwtError::BadSubject,
            JwtError::MissingClaim("exp"),
            JwtError::Malformed,
        ];
        for err in errors {
            let text = err.to_string();
            assert!(text.len() < 80 && !text.contains(n), "{text}");
        }
    }

    // --- JWKS cache against a loopback server ----------------------------

    #[derive(Clone)]
    enum Reply {
        /// 200 with this JSON body (the body can be swapped mid-test).
        Json(Arc<Mutex<String>>),
        /// Read the request, then say nothing.
        Hang,
        /// Send these bytes, then keep the connection open without closing.
        PartialThenHang(Vec<u8>),
        /// Send these raw bytes and close.
        Raw(Vec<u8>),
    }

    struct TestServer {
        url: String,
        hits: Arc<AtomicUsize>,
    }

    impl TestServer {
        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    async fn serve(reply: Reply) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        // Runs until the test's runtime is dropped.
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = reply.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(answer(stream, reply, counter));
            }
        });
        TestServer { url, hits }
    }

    async fn answer(mut stream: TcpStream, reply: Reply, hits: Arc<AtomicUsize>) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let bytes = match reply {
            Reply::Json(body) => {
                let body = body.lock().unwrap().clone();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            Reply::Raw(bytes) => bytes,
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Reply::PartialThenHang(bytes) => {
                let _ = stream.write_all(&bytes).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        };
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    }

    fn set_of(keys: &[&PlatformKey]) -> String {
        let jwks: Vec<Value> = keys.iter().map(|k| k.public_jwk.clone()).collect();
        jwks_json(&jwks)
    }

    fn jwks_json(keys: &[Value]) -> String {
        jwks(keys).to_string()
    }

    #[tokio::test]
    async fn cache_fetches_by_kid_and_caches() {
        let body = Arc::new(Mutex::new(set_of(&[tool_key(), other_key()])));
        let server = serve(Reply::Json(body)).await;
        let cache = JwksCache::default();
        let source = ToolKeySource::JwksUrl(server.url.clone());

        let token = tool_key().sign(&claims()).unwrap();
        assert!(verify_tool_jwt(&token, &source, &cache, &expect())
            .await
            .is_ok());
        assert_eq!(server.hits(), 1);

        // Same kid, other kid of the same set, and a clone of the cache:
        // all served from memory.
        assert!(verify_tool_jwt(&token, &source, &cache, &expect())
            .await
            .is_ok());
        let other = other_key().sign(&claims()).unwrap();
        let clone = cache.clone();
        assert!(verify_tool_jwt(&other, &source, &clone, &expect())
            .await
            .is_ok());
        assert!(cache
            .key_for(&server.url, Some(&tool_key().kid))
            .await
            .is_ok());
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn cache_uses_single_key_when_header_has_no_kid() {
        let body = Arc::new(Mutex::new(set_of(&[tool_key()])));
        let server = serve(Reply::Json(body)).await;
        let cache = JwksCache::default();
        let source = ToolKeySource::JwksUrl(server.url.clone());

        let rsa = RsaPrivateKey::from_pkcs8_pem(&tool_key().private_pkcs8_pem).unwrap();
        let der = rsa.to_pkcs1_der().unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims(),
            &EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap();
        assert!(verify_tool_jwt(&token, &source, &cache, &expect())
            .await
            .is_ok());

        // With two keys and no kid the choice would be a guess: refused.
        let two = serve(Reply::Json(Arc::new(Mutex::new(set_of(&[
            tool_key(),
            other_key(),
        ])))))
        .await;
        let source = ToolKeySource::JwksUrl(two.url.clone());
        assert_eq!(
            verify_tool_jwt(&token, &source, &cache, &expect())
                .await
                .unwrap_err(),
            JwtError::UnknownKey
        );
    }

    #[tokio::test]
    async fn cache_unknown_kid_triggers_one_refresh() {
        let body = Arc::new(Mutex::new(set_of(&[tool_key()])));
        let server = serve(Reply::Json(Arc::clone(&body))).await;
        let interval = Duration::from_millis(200);
        let cache = JwksCache::default().with_min_refresh_interval(interval);
        let url = server.url.as_str();

        cache.key_for(url, Some(&tool_key().kid)).await.unwrap();
        assert_eq!(server.hits(), 1);

        // The tool rotates in a new key; a token with its kid refetches once.
        *body.lock().unwrap() = set_of(&[tool_key(), other_key()]);
        tokio::time::sleep(interval + Duration::from_millis(50)).await;
        cache.key_for(url, Some(&other_key().kid)).await.unwrap();
        assert_eq!(server.hits(), 2);

        // A made-up kid right after that does not reach the server again.
        assert_eq!(
            cache.key_for(url, Some("made-up")).await.unwrap_err(),
            CryptoError::UnknownKey
        );
        assert_eq!(
            cache.key_for(url, Some("made-up")).await.unwrap_err(),
            CryptoError::UnknownKey
        );
        assert_eq!(server.hits(), 2);

        // Once the interval has passed, it may look once more.
        tokio::time::sleep(interval + Duration::from_millis(50)).await;
        assert_eq!(
            cache.key_for(url, Some("made-up")).await.unwrap_err(),
            CryptoError::UnknownKey
        );
        assert_eq!(server.hits(), 3);
        // Known keys are still served from memory.
        cache.key_for(url, Some(&tool_key().kid)).await.unwrap();
        assert_eq!(server.hits(), 3);
    }

    #[tokio::test]
    async fn cache_refetches_after_max_age_and_drops_withdrawn_keys() {
        let body = Arc::new(Mutex::new(set_of(&[tool_key(), other_key()])));
        let server = serve(Reply::Json(Arc::clone(&body))).await;
        let cache = JwksCache::default()
            .with_min_refresh_interval(Duration::ZERO)
            .with_max_age(Duration::from_millis(100));
        let url = server.url.as_str();

        cache.key_for(url, Some(&other_key().kid)).await.unwrap();
        *body.lock().unwrap() = set_of(&[tool_key()]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            cache
                .key_for(url, Some(&other_key().kid))
                .await
                .unwrap_err(),
            CryptoError::UnknownKey
        );
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn cache_times_out_on_silent_server() {
        let server = serve(Reply::Hang).await;
        let cache = JwksCache::new(Duration::from_millis(300), DEFAULT_MAX_JWKS_BYTES);
        let started = Instant::now();
        let err = cache.key_for(&server.url, Some("k")).await.unwrap_err();
        assert_eq!(err, CryptoError::Timeout);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(server.hits(), 1);

        // Through the verifier it is a key fetch failure.
        let source = ToolKeySource::JwksUrl(server.url.clone());
        let token = tool_key().sign(&claims()).unwrap();
        let fresh = JwksCache::new(Duration::from_millis(300), DEFAULT_MAX_JWKS_BYTES);
        assert!(matches!(
            verify_tool_jwt(&token, &source, &fresh, &expect()).await,
            Err(JwtError::KeyFetch(_))
        ));
    }

    #[tokio::test]
    async fn cache_refuses_oversized_response() {
        let limit = 256;
        // Declared too large up front.
        let big = jwks_json(&[tool_key().public_jwk.clone()]);
        assert!(big.len() > limit);
        let server = serve(Reply::Json(Arc::new(Mutex::new(big)))).await;
        let cache = JwksCache::new(Duration::from_secs(2), limit);
        assert_eq!(
            cache.key_for(&server.url, None).await.unwrap_err(),
            CryptoError::TooLarge { limit }
        );

        // No length given and the body never ends: only a cap enforced
        // while streaming answers before the timeout.
        let mut raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b' ', limit * 4));
        let server = serve(Reply::PartialThenHang(raw)).await;
        let cache = JwksCache::new(Duration::from_secs(5), limit);
        let started = Instant::now();
        assert_eq!(
            cache.key_for(&server.url, None).await.unwrap_err(),
            CryptoError::TooLarge { limit }
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn cache_reports_http_errors_and_garbage() {
        let server = serve(Reply::Raw(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
        ))
        .await;
        let cache = JwksCache::default();
        assert_eq!(
            cache.key_for(&server.url, None).await.unwrap_err(),
            CryptoError::Fetch("HTTP status 404".to_owned())
        );

        let server = serve(Reply::Json(Arc::new(Mutex::new("<html>".to_owned())))).await;
        assert!(matches!(
            cache.key_for(&server.url, None).await.unwrap_err(),
            CryptoError::Fetch(_)
        ));

        // Within the refresh interval a failed URL is not retried.
        let hits = server.hits();
        assert!(cache.key_for(&server.url, None).await.is_err());
        assert_eq!(server.hits(), hits);
    }

    #[test]
    fn cache_and_futures_are_send() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        fn assert_send<T: Send>(_: &T) {}
        assert_send_sync::<JwksCache>();
        // Handlers hold these futures across awaits on a multi-threaded runtime.
        let cache = JwksCache::default();
        let source = ToolKeySource::JwksUrl("http://127.0.0.1:9/".to_owned());
        let expect = expect();
        assert_send(&cache.key_for("http://127.0.0.1:9/", None));
        assert_send(&verify_tool_jwt("a.b.c", &source, &cache, &expect));
    }
}
