//! A tool's public key: configured inline or fetched (and cached) from its
//! JWKS URL.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{Map, Value};

use super::*;

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
