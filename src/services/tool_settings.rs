//! What a registrar does with registered tools, for the JSON API and the
//! pages alike: their JSON view, the courses a request names, changing a
//! tool's settings and starting a dynamic registration.

use chrono::Utc;
use gradebook_projections::db::{ts, Db};
use gradebook_projections::tables::tool_reads;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::api_tokens::secret;
use super::lti_state;
use super::tools::{self, Courses, Grading, Tool};
use super::urls::Urls;
use crate::engine::EngineError;

/// How long a dynamic-registration link works.
pub const REGISTRATION_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(1);

/// Why a registrar's request about a tool was refused.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("no such tool")]
    NotFound,
    #[error("the tool is revoked; register it again")]
    Revoked,
    #[error("{0}")]
    InvalidCourses(String),
    #[error("registration_url must be the tool's absolute http(s) registration URL")]
    InvalidRegistrationUrl,
    #[error(transparent)]
    Store(#[from] EngineError),
}

impl From<sqlx::Error> for ToolError {
    fn from(e: sqlx::Error) -> Self {
        ToolError::Store(e.into())
    }
}

impl From<gradebook_projections::tables::queries::QueryError> for ToolError {
    fn from(e: gradebook_projections::tables::queries::QueryError) -> Self {
        ToolError::Store(e.into())
    }
}

/// An absolute http(s) URL, else a message saying what is wrong.
pub fn http_url(what: &str, s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(s.trim().to_string())
        }
        _ => Err(format!("{what} must be an absolute http(s) URL")),
    }
}

/// A tool as the registrar API shows it (no secrets exist to hide: the
/// platform keeps only public tool keys).
pub fn view(t: &Tool) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("allowed_scopes".into(), json!(t.allowed_scopes()));
    }
    v
}

/// Every registered tool, revoked ones included, as the API shows them.
pub async fn views(db: &Db) -> Result<Vec<Value>, ToolError> {
    Ok(tools::list(db).await?.iter().map(view).collect())
}

/// One registered tool.
pub async fn load(db: &Db, tool_id: &str) -> Result<Tool, ToolError> {
    tools::get(db, tool_id).await?.ok_or(ToolError::NotFound)
}

/// A `courses` value from a request: `"all"`, a list of existing course
/// ids, or null; else 422 `invalid_courses`, naming the field.
pub async fn checked_courses(db: &Db, v: &Value) -> Result<Courses, ToolError> {
    let invalid = ToolError::InvalidCourses;
    let courses = Courses::parse(v).map_err(invalid)?;
    if let Courses::Only(ids) = &courses {
        let found: std::collections::HashSet<String> = tool_reads::existing_courses(db, ids)
            .await?
            .into_iter()
            .collect();
        let missing: Vec<&str> = ids
            .iter()
            .filter(|c| !found.contains(*c))
            .map(String::as_str)
            .take(10)
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "courses: no course {} exists; list only courses opened with POST /api/courses",
                missing.join(", ")
            )));
        }
    }
    Ok(courses)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterPatch {
    access: Option<bool>,
    hide_names: Option<bool>,
    hide_emails: Option<bool>,
}

/// A field that is present, `null` included, versus absent (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPatch {
    grading: Option<Grading>,
    roster: Option<RosterPatch>,
    /// `"all"`, a list of course ids, or `null` (the courses that deploy
    /// the tool themselves); left out keeps the tool's courses.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    courses: Option<Value>,
}

/// Changes a live tool's grading and roster settings and the courses it
/// reaches; returns the tool as it now is.
pub async fn change_settings(
    db: &Db,
    tool_id: &str,
    patch: ToolPatch,
    actor: &str,
) -> Result<Tool, ToolError> {
    let t = load(db, tool_id).await?;
    if !t.is_live() {
        return Err(ToolError::Revoked);
    }
    let mut roster = t.roster;
    if let Some(r) = patch.roster {
        roster.access = r.access.unwrap_or(roster.access);
        roster.hide_names = r.hide_names.unwrap_or(roster.hide_names);
        roster.hide_emails = r.hide_emails.unwrap_or(roster.hide_emails);
    }
    let grading = patch.grading.unwrap_or(t.grading);
    let courses = match &patch.courses {
        Some(v) => checked_courses(db, v).await?,
        None => t.courses.clone(),
    };
    tools::update_settings(db, tool_id, grading, roster, &courses).await?;
    tracing::info!(tool_id, actor = %actor, grading = grading.as_str(), courses = %courses.to_json(), "tool settings changed");
    load(db, tool_id).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRegistration {
    registration_url: String,
    /// The courses the tool that registers with this link reaches: as for
    /// `POST /api/tools`; left out or `null`, the courses that deploy it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    courses: Option<Value>,
}

/// Keeps a one-time registration token and answers
/// `{"url", "expires_at"}`: the tool's registration URL with
/// `openid_configuration` and `registration_token` added.
pub async fn start_dynamic_registration(
    db: &Db,
    urls: &Urls,
    body: StartRegistration,
    actor: &str,
) -> Result<Value, ToolError> {
    let mut url = http_url("registration_url", &body.registration_url)
        .ok()
        .and_then(|s| reqwest::Url::parse(&s).ok())
        .ok_or(ToolError::InvalidRegistrationUrl)?;
    let courses = match &body.courses {
        Some(v) => checked_courses(db, v).await?,
        None => Courses::Deployed,
    };
    let token = secret();
    let now = Utc::now();
    lti_state::insert_registration_token(
        db,
        &token,
        actor,
        now,
        now + REGISTRATION_TOKEN_TTL,
        &courses,
    )
    .await?;
    // Appending keeps the tool's own query (Moodle's `?token=...`).
    url.query_pairs_mut()
        .append_pair("openid_configuration", &urls.openid_configuration())
        .append_pair("registration_token", &token);
    Ok(json!({
        "url": url.to_string(),
        "expires_at": ts(now + REGISTRATION_TOKEN_TTL),
    }))
}
