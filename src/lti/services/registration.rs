//! Tool registration: the registrar's `/api/tools` (manual registration,
//! settings, revocation), the one-time link for dynamic registration, and
//! `/lti/register` where a tool registers itself with that link's token.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as AxumJson;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::wire::OAuthError;
use super::wire::OAuthErrorBody;
use crate::http::auth::{Caller, RegistrarCaller};
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Json, Path};
use crate::http::SharedState;
use crate::services::api_tokens::sha256_hex;
use crate::services::crypto;
use crate::services::lti_state;
use crate::services::tool_settings::{self, http_url, view, StartRegistration, ToolPatch};
use crate::services::tools::{self, Courses, Grading, Roster, Tool, TOOL_CONFIG};
use crate::services::urls::Urls;

/// What a tool admin copies into the tool (Moodle's "Platform details").
fn platform_details(urls: &Urls, t: &Tool) -> Value {
    json!({
        "issuer": urls.issuer,
        "client_id": t.client_id,
        "deployment_id": t.deployment_id,
        "authorization_url": urls.authorization(),
        "jwks_url": urls.jwks(),
        "token_url": urls.token(),
        "registration_url": urls.registration(),
        "openid_configuration_url": urls.openid_configuration(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTool {
    name: String,
    issuer: Option<String>,
    launch_url: Option<String>,
    login_url: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    jwks_url: Option<String>,
    /// One RSA public JWK; give this or `jwks_url`.
    #[schema(value_type = Option<Object>)]
    public_jwk: Option<Value>,
    deep_linking_url: Option<String>,
    grading: Option<Grading>,
    roster: Option<Roster>,
    /// `"all"` (every course, those opened later included), a list of
    /// course ids (exactly those), or `null`, the default: the courses
    /// that deploy the tool themselves.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    courses: Option<Value>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_tool", message)
}

fn opt_url(what: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| http_url(what, &s).map_err(invalid))
        .transpose()
}

/// Registers a tool by hand; one deployment per registration.
#[utoipa::path(post, path = "/api/tools", tag = "registrar", request_body = NewTool,
    responses((status = 201, description = "The tool, with the platform details a tool admin copies into the tool", body = Object),
              (status = 400, description = "invalid_json", body = ErrorBody),
              (status = 422, description = "invalid_tool", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_tool(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Json(body): Json<NewTool>,
) -> ApiResult<Response> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name must be 1 to 200 characters"));
    }
    let jwks_url = opt_url("jwks_url", body.jwks_url)?;
    let public_jwk = body.public_jwk.filter(|v| !v.is_null());
    match (&jwks_url, &public_jwk) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(invalid(
                "give exactly one of jwks_url (the tool's key set URL) or public_jwk (one RSA public JWK)",
            ))
        }
        (None, Some(jwk)) => {
            crypto::parse_rsa_jwk(jwk).map_err(|e| invalid(format!("public_jwk: {e}")))?;
            if jwk.get("d").is_some() {
                return Err(invalid("public_jwk holds a private key; send only the public half"));
            }
        }
        _ => {}
    }
    let mut redirect_uris = Vec::new();
    for u in &body.redirect_uris {
        redirect_uris.push(http_url("every redirect_uris entry", u).map_err(invalid)?);
    }
    let launch_url = opt_url("launch_url", body.launch_url)?;
    let deep_linking_url = opt_url("deep_linking_url", body.deep_linking_url.clone())?;
    if redirect_uris.is_empty() {
        // A tool answers launches and deep-linking requests at these.
        redirect_uris.extend(launch_url.clone());
        redirect_uris.extend(deep_linking_url.filter(|u| Some(u) != launch_url.as_ref()));
    }
    let courses = match &body.courses {
        Some(v) => tool_settings::checked_courses(&state.engine.db, v).await?,
        None => Courses::Deployed,
    };
    let mut t = tools::new_tool(
        name,
        body.grading.unwrap_or(Grading::Off),
        body.roster.unwrap_or(Roster {
            access: false,
            hide_names: false,
            hide_emails: false,
        }),
        "manual",
    );
    t.issuer = body
        .issuer
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    t.launch_url = launch_url;
    t.login_url = opt_url("login_url", body.login_url)?;
    t.redirect_uris = redirect_uris;
    t.jwks_url = jwks_url;
    t.public_jwk = public_jwk;
    t.deep_linking_url = opt_url("deep_linking_url", body.deep_linking_url)?;
    t.courses = courses;
    tools::insert(&state.engine.db, &t).await?;
    tracing::info!(tool_id = %t.tool_id, actor = %caller.actor(), "tool registered by hand");
    let urls = Urls::of(&state.settings);
    let answer = json!({
        "tool_id": t.tool_id,
        "client_id": t.client_id,
        "deployment_id": t.deployment_id,
        "platform": platform_details(&urls, &t),
        "tool": view(&t),
    });
    Ok((StatusCode::CREATED, AxumJson(answer)).into_response())
}

/// Every registered tool, revoked ones included.
#[utoipa::path(get, path = "/api/tools", tag = "registrar",
    responses((status = 200, description = "The tools with their allowed scopes", body = Object)),
    security(("bearer" = [])))]
pub async fn list_tools(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<AxumJson<Value>> {
    caller.require_read()?;
    let all = tool_settings::views(&state.engine.db).await?;
    Ok(AxumJson(json!({"tools": all})))
}

async fn load(state: &SharedState, tool_id: &str) -> ApiResult<Tool> {
    Ok(tool_settings::load(&state.engine.db, tool_id).await?)
}

/// One tool, with the platform details.
#[utoipa::path(get, path = "/api/tools/{tool_id}", tag = "registrar",
    params(("tool_id" = String, Path, description = "The tool id")),
    responses((status = 200, description = "The tool", body = Object),
              (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_tool(
    State(state): State<SharedState>,
    caller: Caller,
    Path(tool_id): Path<String>,
) -> ApiResult<AxumJson<Value>> {
    caller.require_read()?;
    let t = load(&state, &tool_id).await?;
    let mut v = view(&t);
    v["platform"] = platform_details(&Urls::of(&state.settings), &t);
    Ok(AxumJson(v))
}

/// Changes a tool's grading and roster settings and the courses it
/// reaches; tokens and launches already issued follow them at once.
#[utoipa::path(patch, path = "/api/tools/{tool_id}", tag = "registrar", request_body = ToolPatch,
    params(("tool_id" = String, Path, description = "The tool id")),
    responses((status = 200, description = "The tool with its new settings", body = Object),
              (status = 404, description = "not_found", body = ErrorBody),
              (status = 409, description = "tool_revoked", body = ErrorBody),
              (status = 422, description = "invalid_body or invalid_courses", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_tool(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Path(tool_id): Path<String>,
    Json(patch): Json<ToolPatch>,
) -> ApiResult<AxumJson<Value>> {
    let t =
        tool_settings::change_settings(&state.engine.db, &tool_id, patch, &caller.actor()).await?;
    Ok(AxumJson(view(&t)))
}

/// Revokes a tool: its access tokens stop working at once.
#[utoipa::path(delete, path = "/api/tools/{tool_id}", tag = "registrar",
    params(("tool_id" = String, Path, description = "The tool id")),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_tool(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Path(tool_id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&state, &tool_id).await?;
    tools::revoke(&state.engine.db, &tool_id).await?;
    tracing::info!(tool_id, actor = %caller.actor(), "tool revoked");
    Ok(StatusCode::NO_CONTENT)
}

// ---- dynamic registration ----

/// A one-time link for LTI dynamic registration: the tool's registration
/// URL with `openid_configuration` and `registration_token` added.
#[utoipa::path(post, path = "/api/tools/dynamic-registration", tag = "registrar", request_body = StartRegistration,
    responses((status = 200, description = "`{\"url\", \"expires_at\"}`: the URL to open", body = Object),
              (status = 422, description = "invalid_registration_url or invalid_courses", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start_dynamic_registration(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Json(body): Json<StartRegistration>,
) -> ApiResult<AxumJson<Value>> {
    let started = tool_settings::start_dynamic_registration(
        &state.engine.db,
        &Urls::of(&state.settings),
        body,
        &caller.actor(),
    )
    .await?;
    Ok(AxumJson(started))
}

fn reg_error(description: impl Into<String>) -> OAuthError {
    OAuthError::bad("invalid_client_metadata", description)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (kind, token) = h.split_once(' ')?;
    kind.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The scopes a registration asks for: the spec's space-separated `scope`
/// and Moodle's `scopes` array inside the tool configuration.
pub fn requested_scopes(reg: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let spec = reg.get("scope").and_then(Value::as_str).unwrap_or_default();
    let moodle = reg
        .get(TOOL_CONFIG)
        .and_then(|c| c.get("scopes"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    for s in spec.split_whitespace().chain(moodle) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// `POST /lti/register`: the tool registers itself with a one-time token.
#[utoipa::path(post, path = "/lti/register", tag = "lti",
    request_body(content = Object, content_type = "application/json",
        description = "An OpenID client registration with the `https://purl.imsglobal.org/spec/lti-tool-configuration` claim"),
    responses((status = 200, description = "The registration, with client_id and the deployment id", body = Object),
              (status = 400, description = "invalid_client_metadata", body = OAuthErrorBody),
              (status = 401, description = "invalid_token: the registration token is missing, unknown, used or expired", body = OAuthErrorBody)),
    security(("registration_token" = [])))]
pub async fn register(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match register_inner(&state, &headers, &body).await {
        Ok(v) => (StatusCode::OK, AxumJson(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn register_inner(
    state: &SharedState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let token = bearer(headers).ok_or_else(|| {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send the registration token as Authorization: Bearer <registration_token>",
        )
    })?;
    let hash = sha256_hex(token);
    let db = &state.engine.db;
    let unusable = || {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the registration token is unknown, used or expired; ask the registrar for a new registration link")
    };
    let courses = lti_state::registration_token_courses(db, &hash)
        .await
        .map_err(OAuthError::server)?
        .ok_or_else(unusable)?;
    // Moodle sends JSON with no JSON Content-Type: read it whatever the header says.
    let reg: Value = serde_json::from_slice(body)
        .map_err(|e| reg_error(format!("the body is not JSON: {e}")))?;
    if !reg.is_object() {
        return Err(reg_error("the registration must be a JSON object"));
    }
    let config = reg
        .get(TOOL_CONFIG)
        .filter(|c| c.is_object())
        .ok_or_else(|| reg_error(format!("{TOOL_CONFIG} is required")))?;
    let jwks_uri = str_field(&reg, "jwks_uri").ok_or_else(|| reg_error("jwks_uri is required"))?;
    let jwks_uri = http_url("jwks_uri", jwks_uri).map_err(reg_error)?;
    let login = str_field(&reg, "initiate_login_uri")
        .ok_or_else(|| reg_error("initiate_login_uri is required"))?;
    let login = http_url("initiate_login_uri", login).map_err(reg_error)?;
    let redirect_uris: Vec<String> = reg
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(reg_error("redirect_uris must list at least one URL"));
    }
    for u in &redirect_uris {
        http_url("every redirect_uris entry", u).map_err(reg_error)?;
    }
    if let Some(method) = str_field(&reg, "token_endpoint_auth_method") {
        if method != "private_key_jwt" {
            return Err(reg_error(
                "token_endpoint_auth_method must be private_key_jwt",
            ));
        }
    }
    let launch_url = str_field(config, "target_link_uri")
        .map(|u| http_url("target_link_uri", u))
        .transpose()
        .map_err(reg_error)?;
    // A tool offers deep linking by listing the message; one without its
    // own target_link_uri (ltijs sends none) goes to the tool's
    // target_link_uri, the default of LTI Dynamic Registration.
    let deep_linking = config
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter()
                .find(|m| m.get("type").and_then(Value::as_str) == Some("LtiDeepLinkingRequest"))
        });
    let deep_linking_url = match deep_linking.and_then(|m| str_field(m, "target_link_uri")) {
        Some(u) => {
            Some(http_url("the deep-linking message's target_link_uri", u).map_err(reg_error)?)
        }
        None => deep_linking.and(launch_url.clone()),
    };
    let domain = str_field(config, "domain");
    let name = str_field(&reg, "client_name")
        .unwrap_or("LTI tool")
        .chars()
        .take(200)
        .collect::<String>();

    let off = Roster {
        access: false,
        hide_names: false,
        hide_emails: false,
    };
    // A registrar turns grading and roster on once they have looked at the tool.
    let mut t = tools::new_tool(name, Grading::Off, off, "dynamic");
    t.issuer = launch_url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .or_else(|| domain.map(|d| format!("https://{d}")));
    t.launch_url = launch_url;
    t.login_url = Some(login);
    t.redirect_uris = redirect_uris;
    t.jwks_url = Some(jwks_uri);
    t.deep_linking_url = deep_linking_url;
    t.courses = courses;
    t.registration = Some(reg.clone());

    if !lti_state::use_registration_token(db, &hash, &t.tool_id)
        .await
        .map_err(OAuthError::server)?
    {
        return Err(unusable());
    }
    tools::insert(db, &t).await.map_err(OAuthError::server)?;
    tracing::info!(tool_id = %t.tool_id, scopes = ?requested_scopes(&reg), "tool registered itself");

    let mut answer = reg;
    answer["client_id"] = json!(t.client_id);
    answer[TOOL_CONFIG]["deployment_id"] = json!(t.deployment_id);
    Ok(answer)
}
