//! Who is calling AGS or NRPS: an access token from `/lti/token`. An
//! unknown or expired token, or a revoked tool, is 401 (the only answer on
//! which tools fetch a new token); a scope the token or the tool's current
//! settings do not give is 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use gradebook_domain::{CommandMeta, Source};

use crate::engine::EngineError;
use crate::http::error::{current_request_id, ApiError};
use crate::http::SharedState;
use crate::services::lti_state::{check_access_token, Granted};
use crate::services::tools::Tool;

/// A tool calling with a live access token.
pub struct ToolCaller {
    pub tool: Tool,
    scopes: Vec<String>,
}

/// A 401 that tells the tool to fetch a new token.
pub struct Unauthorized(ApiError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let unauthorized = self.0.status == StatusCode::UNAUTHORIZED;
        let mut res = self.0.into_response();
        if unauthorized {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        res
    }
}

impl From<Unauthorized> for ApiError {
    fn from(u: Unauthorized) -> Self {
        u.0
    }
}

fn invalid_token(message: &str) -> Unauthorized {
    Unauthorized(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        message,
    ))
}

impl FromRequestParts<SharedState> for ToolCaller {
    type Rejection = Unauthorized;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.split_once(' '))
            .filter(|(kind, _)| kind.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| {
                invalid_token(
                    "send an access token from the token endpoint as Authorization: Bearer <token>",
                )
            })?;
        match check_access_token(&state.engine.db, token).await {
            Ok(Some(Granted { tool, scopes })) => Ok(ToolCaller { tool, scopes }),
            Ok(None) => Err(invalid_token(
                "the access token is unknown or expired, or the tool was revoked; get a new token",
            )),
            Err(e) => Err(Unauthorized(EngineError::from(e).into())),
        }
    }
}

impl ToolCaller {
    /// Passes when the token was granted one of `scopes` and the tool's
    /// settings still allow it (a registrar may have narrowed them since).
    pub fn require(&self, scopes: &[&str]) -> Result<(), ApiError> {
        let allowed = self.tool.allowed_scopes();
        if scopes
            .iter()
            .any(|s| self.scopes.iter().any(|g| g == s) && allowed.contains(s))
        {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "scope_not_granted",
                format!(
                    "this needs the scope {}; the token or the tool's registration does not grant it",
                    scopes.join(" or ")
                ),
            ))
        }
    }

    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("tool:{}:{}", self.tool.client_id, self.tool.deployment_id)
    }

    pub fn meta(&self) -> CommandMeta {
        CommandMeta::new(self.actor(), Source::Ags, current_request_id(), Utc::now())
    }
}
