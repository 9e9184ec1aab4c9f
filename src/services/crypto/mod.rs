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

mod jwt;
mod platform_key;
#[cfg(test)]
mod tests;
mod tool_keys;

pub use jwt::{verify_tool_jwt, Expect, JwtError};
pub use platform_key::{jwks, PlatformKey};
pub use tool_keys::{parse_rsa_jwk, JwksCache, ToolKeySource};

use std::time::Duration;

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
