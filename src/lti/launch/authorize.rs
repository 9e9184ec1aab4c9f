//! `GET|POST /lti/authorize`: the OIDC authorization endpoint of a
//! third-party initiated login. The tool sends back the hints we issued;
//! we answer with a page that posts the signed id_token (or an OIDC error)
//! to the tool's registered redirect URI. A request whose client or
//! redirect URI we cannot trust gets a plain JSON 400 instead, since
//! posting anything to an unregistered URI would leak it.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use gradebook_domain::enrollment::LaunchKind;
use gradebook_domain::ids::ResourceLinkId;
use gradebook_domain::{CourseId, Source, ToolId, UserId};

use super::claims::{self, LaunchFacts, Message};
use super::html;
use super::initiate::{checked_target, Kind};
use super::tool_meta;
use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::http::error::ErrorBody;
use crate::http::SharedState;
use crate::services::lti_state::{self, DeepLinkRequest};
use crate::services::platform_keys;
use crate::services::tools::{self, Tool};

type Params = HashMap<String, String>;

/// The OIDC authentication request, as documented; the handlers read it as
/// a map so that each missing field gets its own OIDC error.
#[derive(utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuthRequest {
    /// `openid`
    scope: String,
    /// `id_token`
    response_type: String,
    /// `form_post`
    response_mode: String,
    /// `none`
    prompt: Option<String>,
    client_id: String,
    /// One of the tool's registered redirect URIs.
    redirect_uri: String,
    /// The `login_hint` from the login initiation.
    login_hint: String,
    /// The `lti_message_hint` from the login initiation.
    lti_message_hint: String,
    state: Option<String>,
    nonce: String,
}

/// The OIDC authorization endpoint (query parameters).
#[utoipa::path(get, path = "/lti/authorize", tag = "lti", params(AuthRequest),
    responses((status = 200, description = "A page that posts `id_token` and `state` to the redirect URI", content_type = "text/html", body = String),
              (status = 400, description = "An OIDC error posted to the redirect URI as a page (`error`, `error_description`, `state`); a JSON error when the client or redirect URI is not one to trust",
               content((String = "text/html"), (ErrorBody = "application/json")))))]
pub async fn authorize_get(
    State(state): State<SharedState>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(p)) => authorize(&state, p).await,
        Err(r) => ApiError::bad_request("invalid_request", r.body_text()).into_response(),
    }
}

/// The OIDC authorization endpoint (form post).
#[utoipa::path(post, path = "/lti/authorize", tag = "lti",
    request_body(content = AuthRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "A page that posts `id_token` and `state` to the redirect URI", content_type = "text/html", body = String),
              (status = 400, description = "An OIDC error posted to the redirect URI as a page (`error`, `error_description`, `state`); a JSON error when the client or redirect URI is not one to trust",
               content((String = "text/html"), (ErrorBody = "application/json")))))]
pub async fn authorize_post(
    State(state): State<SharedState>,
    form: Result<Form<Params>, axum::extract::rejection::FormRejection>,
) -> Response {
    match form {
        Ok(Form(p)) => authorize(&state, p).await,
        Err(r) => ApiError::bad_request("invalid_request", r.body_text()).into_response(),
    }
}

/// An OIDC error sent back to a trusted redirect URI.
struct OidcError {
    code: &'static str,
    description: String,
}

fn oidc(code: &'static str, description: impl Into<String>) -> OidcError {
    OidcError {
        code,
        description: description.into(),
    }
}

async fn authorize(state: &SharedState, p: Params) -> Response {
    let param = |k: &str| p.get(k).map(String::as_str).filter(|s| !s.is_empty());

    // Until client and redirect URI are known to belong together, nothing
    // is sent to the redirect URI.
    let Some(client_id) = param("client_id") else {
        return ApiError::bad_request("invalid_request", "client_id is missing").into_response();
    };
    let tool = match tools::by_client_id(&state.engine.db, client_id).await {
        Ok(Some(t)) if t.is_live() => t,
        Ok(_) => {
            return ApiError::bad_request(
                "unauthorized_client",
                "client_id does not name a registered, live tool",
            )
            .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(redirect_uri) = param("redirect_uri") else {
        return ApiError::bad_request("invalid_request", "redirect_uri is missing").into_response();
    };
    if !tool.redirect_uris.iter().any(|u| u == redirect_uri) {
        return ApiError::bad_request(
            "invalid_redirect_uri",
            "redirect_uri is not one of the tool's registered redirect URIs",
        )
        .into_response();
    }
    let oidc_state = p.get("state").cloned().unwrap_or_default();

    match issue(state, &tool, &p).await {
        Ok(id_token) => html::auto_post(
            StatusCode::OK,
            redirect_uri,
            &[("id_token", &id_token), ("state", &oidc_state)],
        ),
        Err(Outcome::Oidc(e)) => {
            let mut fields = vec![
                ("error", e.code),
                ("error_description", e.description.as_str()),
            ];
            if !oidc_state.is_empty() {
                fields.push(("state", &oidc_state));
            }
            html::auto_post(StatusCode::BAD_REQUEST, redirect_uri, &fields)
        }
        Err(Outcome::Api(e)) => e.into_response(),
    }
}

enum Outcome {
    Oidc(OidcError),
    /// The store failed: not the tool's fault, answered as such.
    Api(ApiError),
}

impl From<OidcError> for Outcome {
    fn from(e: OidcError) -> Self {
        Outcome::Oidc(e)
    }
}

impl From<EngineError> for Outcome {
    fn from(e: EngineError) -> Self {
        Outcome::Api(e.into())
    }
}

impl From<sqlx::Error> for Outcome {
    fn from(e: sqlx::Error) -> Self {
        EngineError::from(e).into()
    }
}

/// A refusal of the launch itself (not enrolled any more, link gone) is
/// told to the tool; a store failure is not.
fn refusal(e: ApiError) -> Outcome {
    if e.status.is_client_error() {
        Outcome::Oidc(oidc("access_denied", e.message))
    } else {
        Outcome::Api(e)
    }
}

/// Checks the authentication request, consumes the message hint and
/// returns the signed id_token.
async fn issue(state: &SharedState, tool: &Tool, p: &Params) -> Result<String, Outcome> {
    let param = |k: &str| p.get(k).map(String::as_str).filter(|s| !s.is_empty());
    if param("scope").is_none_or(|s| !s.split(' ').any(|s| s == "openid")) {
        return Err(oidc("invalid_scope", "scope must be openid").into());
    }
    if param("response_type") != Some("id_token") {
        return Err(oidc(
            "unsupported_response_type",
            "response_type must be id_token",
        )
        .into());
    }
    if param("response_mode") != Some("form_post") {
        return Err(oidc("invalid_request", "response_mode must be form_post").into());
    }
    let Some(nonce) = param("nonce") else {
        return Err(oidc("invalid_request", "nonce is missing").into());
    };
    if nonce.len() > 512 {
        return Err(oidc("invalid_request", "nonce is too long").into());
    }
    // We never show a login page, so `none` is what a tool should ask for;
    // other prompts are answered the same way.
    let Some(message_hint) = param("lti_message_hint") else {
        return Err(oidc("invalid_request", "lti_message_hint is missing").into());
    };
    let Some(login_hint) = param("login_hint") else {
        return Err(oidc("login_required", "login_hint is missing").into());
    };
    let now = Utc::now();
    let hint = lti_state::hint(&state.engine.db, message_hint)
        .await?
        .filter(|h| h.tool_id == tool.tool_id)
        .ok_or_else(|| {
            oidc(
                "invalid_request",
                "lti_message_hint is not one we issued to this tool",
            )
        })?;
    if hint.login_hint != login_hint {
        return Err(oidc("login_required", "login_hint does not match the launch").into());
    }
    if hint.used_at.is_some() {
        return Err(oidc(
            "invalid_request",
            "this launch was already used; start a new one",
        )
        .into());
    }
    if !lti_state::consume_hint(&state.engine.db, &hint.hint, now).await? {
        return Err(oidc(
            "invalid_request",
            "this launch has expired or was already used; start a new one",
        )
        .into());
    }

    // The stored hint holds ids we validated when we issued it.
    let kind =
        Kind::parse(&hint.kind).ok_or_else(|| oidc("invalid_request", "unknown launch kind"))?;
    let ids = (|| {
        Ok::<_, gradebook_domain::DomainError>((
            CourseId::parse(hint.course_id.clone())?,
            UserId::parse(hint.user_id.clone())?,
            ToolId::parse(hint.tool_id.clone())?,
            hint.resource_link_id
                .clone()
                .map(ResourceLinkId::parse)
                .transpose()?,
        ))
    })();
    let (course_id, user_id, tool_id, link_id) =
        ids.map_err(|e| oidc("invalid_request", e.to_string()))?;

    // Things may have changed since the SIS asked: check again.
    let super::initiate::Launchable {
        target,
        course,
        person,
    } = checked_target(state, tool, &course_id, &user_id, kind, link_id.as_ref())
        .await
        .map_err(refusal)?;

    let issuer = state.settings.public_url();
    let data = lti_state::random_token();
    let message = match (kind, &link_id) {
        (Kind::ResourceLink, Some(id)) => Message::ResourceLink(
            course
                .resource_links
                .get(id)
                .ok_or_else(|| oidc("access_denied", "the resource link no longer exists"))?,
        ),
        _ => Message::DeepLinking { data: &data },
    };
    let facts = LaunchFacts {
        issuer: &issuer,
        tool,
        course_id: course_id.as_str(),
        course_title: &course.title,
        user_id: user_id.as_str(),
        person: &person,
        message,
        target_link_uri: &target,
        nonce,
        now: now.timestamp(),
    };
    let key = platform_keys::signing_key(&state.engine.db)
        .await
        .map_err(|e| Outcome::Api(ApiError::internal(e)))?;
    let id_token = key
        .sign(&claims::id_token(&facts))
        .map_err(|e| Outcome::Api(ApiError::internal(e)))?;

    if kind == Kind::DeepLinking {
        let request = DeepLinkRequest {
            data: data.clone(),
            tool_id: tool.tool_id.clone(),
            course_id: course_id.as_str().to_string(),
            user_id: user_id.as_str().to_string(),
            nonce: nonce.to_string(),
            expires_at: lti_state::expiry(now, lti_state::DEEP_LINK_LIFETIME),
            used_at: None,
        };
        lti_state::insert_deep_link_request(&state.engine.db, &request, now).await?;
    }
    let launch_kind = match kind {
        Kind::ResourceLink => LaunchKind::ResourceLink,
        Kind::DeepLinking => LaunchKind::DeepLinking,
    };
    state
        .engine
        .record_launch(
            &course_id,
            &user_id,
            tool_id,
            launch_kind,
            link_id,
            &tool_meta(tool, Source::Launch),
        )
        .await?;
    Ok(id_token)
}
