//! What a tool reads about the platform: the public signing keys and the
//! OpenID configuration dynamic registration starts from.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::http::error::{ApiError, ApiResult};
use crate::http::SharedState;
use crate::services::urls::Urls;
use crate::services::{platform_keys, scope};

pub(crate) fn key_error(e: platform_keys::KeyError) -> ApiError {
    match e {
        platform_keys::KeyError::Db(e) => crate::engine::EngineError::from(e).into(),
        other => ApiError::internal(other),
    }
}

/// The platform's public signing keys (RS256, `kid` on each).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "lti",
    responses((status = 200, description = "A JWK set", body = Object, content_type = "application/json")))]
pub async fn jwks(State(state): State<SharedState>) -> ApiResult<Json<Value>> {
    let db = &state.engine.db;
    // The first request on a fresh store makes the key, so the set is never empty.
    platform_keys::signing_key(db).await.map_err(key_error)?;
    let set = platform_keys::jwks(db, chrono::Utc::now())
        .await
        .map_err(key_error)?;
    Ok(Json(set))
}

/// The platform configuration dynamic registration starts from.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "lti",
    responses((status = 200, description = "OpenID configuration with the `https://purl.imsglobal.org/spec/lti-platform-configuration` claim", body = Object, content_type = "application/json")))]
pub async fn openid_configuration(State(state): State<SharedState>) -> Json<Value> {
    Json(configuration(&Urls::of(&state.settings)))
}

pub fn configuration(urls: &Urls) -> Value {
    json!({
        "issuer": urls.issuer,
        "authorization_endpoint": urls.authorization(),
        "token_endpoint": urls.token(),
        "jwks_uri": urls.jwks(),
        "registration_endpoint": urls.registration(),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": [
            "openid",
            scope::LINEITEM,
            scope::LINEITEM_READONLY,
            scope::RESULT_READONLY,
            scope::SCORE,
            scope::NRPS,
        ],
        "response_types_supported": ["id_token"],
        "response_modes_supported": ["form_post"],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["client_credentials", "implicit"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "name", "given_name", "family_name", "email"],
        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
            "product_family_code": "gradebook",
            "version": env!("CARGO_PKG_VERSION"),
            "messages_supported": [
                {"type": "LtiResourceLinkRequest"},
                {"type": "LtiDeepLinkingRequest", "placements": ["ContentArea"]},
            ],
            "variables": ["Context.id", "ResourceLink.id", "User.id"],
        },
    })
}
