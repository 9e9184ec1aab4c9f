//! Verifying JWTs a tool signed: client assertions at the token endpoint
//! and deep-linking responses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::*;

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
