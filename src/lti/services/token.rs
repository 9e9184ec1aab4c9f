//! `POST /lti/token`: OAuth 2.0 client credentials with a JWT client
//! assertion (LTI Advantage security). Issues opaque access tokens, stored
//! hashed with the tool, the granted scopes and the expiry.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration as StdDuration, Instant};

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{Duration, Utc};
use gradebook_projections::db::Db;
use serde_json::{json, Map, Value};

use super::wire::OAuthError;
use super::wire::OAuthErrorBody;
use crate::http::SharedState;
use crate::services::api_tokens::secret;
use crate::services::crypto::{self, Expect, JwksCache, JwtError};
use crate::services::lti_state;
use crate::services::tools::{self, Tool};
use crate::services::urls::Urls;

/// How long an access token works.
pub const ACCESS_TOKEN_TTL: Duration = Duration::hours(1);
/// The longest client assertion accepted (`exp - iat`).
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 3600;
/// Token requests per client (or per unknown caller) per window.
pub const RATE_LIMIT: u32 = 60;
pub const RATE_WINDOW: StdDuration = StdDuration::from_secs(60);

/// The token request form, as documented; the handler reads it as a map so
/// that every refusal is an OAuth error.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `client_credentials`
    grant_type: String,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
    client_assertion_type: String,
    /// A JWT signed with the tool's key: `iss` and `sub` its client id, `aud` this token endpoint.
    client_assertion: String,
    /// Space-separated AGS and NRPS scopes.
    scope: String,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// One key-set cache for every tool, shared by all requests of this node.
pub fn jwks_cache() -> &'static JwksCache {
    static CACHE: OnceLock<JwksCache> = OnceLock::new();
    CACHE.get_or_init(JwksCache::default)
}

/// A fixed-window counter per key; per node, which is enough to stop a
/// tool stuck in a loop from hammering the store.
fn rate_limited(key: &str) -> bool {
    static WINDOWS: OnceLock<Mutex<HashMap<String, (Instant, u32)>>> = OnceLock::new();
    let mut map = WINDOWS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if map.len() > 10_000 {
        map.retain(|_, (start, _)| now.duration_since(*start) < RATE_WINDOW);
    }
    let entry = map.entry(key.to_string()).or_insert((now, 0));
    if now.duration_since(entry.0) >= RATE_WINDOW {
        *entry = (now, 0);
    }
    entry.1 += 1;
    entry.1 > RATE_LIMIT
}

/// Reads the unverified `iss` of a JWT, only to find whose key checks it.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// OAuth 2.0 client credentials with a JWT client assertion.
#[utoipa::path(post, path = "/lti/token", tag = "lti",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{\"access_token\", \"token_type\": \"Bearer\", \"expires_in\", \"scope\"}`; the scopes granted are those asked for that the registration allows", body = Object),
              (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = OAuthErrorBody),
              (status = 401, description = "invalid_client: the assertion does not verify or names no live tool", body = OAuthErrorBody),
              (status = 429, description = "slow_down: too many token requests", body = OAuthErrorBody)))]
pub async fn token(State(state): State<SharedState>, req: Request) -> Response {
    let form = match axum::extract::Form::<HashMap<String, String>>::from_request(req, &state).await
    {
        Ok(f) => f.0,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!(
                    "the token request is larger than {} bytes",
                    crate::http::MAX_BODY_BYTES
                ),
            )
            .into_response()
        }
        Err(r) => {
            return OAuthError::bad(
                "invalid_request",
                format!("send the token request form-encoded: {}", r.body_text()),
            )
            .into_response()
        }
    };
    match issue(&state, &form).await {
        Ok(v) => {
            let mut res = (StatusCode::OK, Json(v)).into_response();
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn issue(state: &SharedState, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let field = |k: &str| form.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let assertion = field("client_assertion");
    let client_hint = field("client_id")
        .map(str::to_string)
        .or_else(|| assertion.and_then(unverified_issuer))
        .unwrap_or_else(|| "-".to_string());
    if rate_limited(&client_hint) {
        return Err(OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!("more than {RATE_LIMIT} token requests a minute; cache the token you have (it lasts an hour)"),
        ));
    }
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::bad(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ))
        }
        None => {
            return Err(OAuthError::bad(
                "invalid_request",
                "grant_type is required (client_credentials)",
            ))
        }
    }
    if field("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::bad(
            "invalid_request",
            format!("client_assertion_type must be {JWT_BEARER}"),
        ));
    }
    let assertion = assertion
        .ok_or_else(|| OAuthError::bad("invalid_request", "client_assertion is required"))?;
    let client_id = unverified_issuer(assertion).ok_or_else(|| {
        OAuthError::invalid_client("the client assertion is not a JWT with an iss claim")
    })?;
    let db = &state.engine.db;
    let tool = tools::by_client_id(db, &client_id)
        .await
        .map_err(OAuthError::server)?
        .filter(Tool::is_live)
        .ok_or_else(|| OAuthError::invalid_client("unknown or revoked client"))?;
    let source = tool
        .key_source()
        .ok_or_else(|| OAuthError::invalid_client("the registration has no public key"))?;

    let urls = Urls::of(&state.settings);
    let token_url = urls.token();
    let mut expect = Expect::new(&client_id, &token_url);
    expect.subject = Some(&client_id);
    expect.max_lifetime_secs = Some(MAX_ASSERTION_LIFETIME_SECS);
    let claims = match crypto::verify_tool_jwt(assertion, &source, jwks_cache(), &expect).await {
        // Some tools name the issuer rather than the token URL as audience.
        Err(JwtError::BadAudience) => {
            expect.audience = &urls.issuer;
            crypto::verify_tool_jwt(assertion, &source, jwks_cache(), &expect).await
        }
        other => other,
    }
    .map_err(|e| OAuthError::invalid_client(format!("client assertion refused: {e}")))?;

    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 256 && !s.contains('\0'))
        .ok_or_else(|| {
            OAuthError::invalid_client("client assertion refused: a jti claim is required")
        })?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    if !remember_jti(db, &client_id, jti, exp)
        .await
        .map_err(OAuthError::server)?
    {
        return Err(OAuthError::invalid_client(
            "client assertion refused: this jti was already used",
        ));
    }

    let allowed = tool.allowed_scopes();
    let granted: Vec<&str> = match field("scope") {
        // No scope asked: everything the registration allows.
        None => allowed.clone(),
        Some(s) => {
            let mut g: Vec<&str> = Vec::new();
            for want in s.split_whitespace() {
                if let Some(a) = allowed.iter().find(|a| **a == want) {
                    if !g.contains(a) {
                        g.push(a);
                    }
                }
            }
            g
        }
    };
    if granted.is_empty() {
        return Err(OAuthError::bad(
            "invalid_scope",
            "none of the requested scopes is allowed for this tool; a registrar sets its grading and roster access",
        ));
    }
    let token = secret();
    let now = Utc::now();
    let scopes = granted.join(" ");
    lti_state::insert_access_token(
        db,
        &token,
        &tool.tool_id,
        &scopes,
        now,
        now + ACCESS_TOKEN_TTL,
    )
    .await
    .map_err(OAuthError::server)?;
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL.num_seconds(),
        "scope": scopes,
    }))
}

/// Records a used jti until its assertion expires (with the leeway); false
/// when it was already there (a replay).
async fn remember_jti(db: &Db, client_id: &str, jti: &str, exp: i64) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let until = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap_or(now)
        .max(now)
        + Duration::seconds(crypto::DEFAULT_LEEWAY_SECS as i64);
    lti_state::remember_jti(db, client_id, jti, now, until).await
}
