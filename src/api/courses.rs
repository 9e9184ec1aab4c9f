//! Courses: open, list, read, set grading, deploy tools, lock and unlock.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json as JsonOut;
use gradebook_domain::policy::{Category, MissingPolicy, ScaleEntry, Scheme};
use gradebook_domain::{CourseId, DomainError, Source, ToolId};
use gradebook_projections::tables::management::{CourseDetail, CourseSummary};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{meta, optional_json, Dec};
use crate::engine::EngineError;
use crate::http::auth::{Caller, RegistrarCaller, SisCaller, SisOrRegistrarCaller};
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Json, Path, Query};
use crate::http::SharedState;
use crate::services::api_tokens::ApiRole;
use crate::services::tools::Courses;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCourse {
    #[schema(example = "HIST-101-2026FA")]
    pub course_id: String,
    pub title: String,
    #[schema(example = "2026FA")]
    pub term: String,
    /// Tools deployed in the course (registered through `/api/tools`).
    #[serde(default)]
    pub tool_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolIds {
    pub tool_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SchemeName {
    Points,
    Weighted,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Missing and not-counted items are left out of earned and possible.
    Exclude,
    /// Anything not counted is 0 of its maximum.
    Zero,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    pub name: String,
    #[schema(value_type = String, example = "60")]
    pub weight: Dec,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleBody {
    pub letter: String,
    #[schema(value_type = String, example = "93")]
    pub min_percent: Dec,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GradingBody {
    pub scheme: SchemeName,
    /// Required for `weighted`, refused for `points`.
    pub categories: Option<Vec<CategoryBody>>,
    /// Letter cut-offs; left out keeps the current scale.
    pub scale: Option<Vec<ScaleBody>>,
    /// Left out keeps the current setting.
    pub missing: Option<Missing>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockBody {
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LockState {
    pub course_id: String,
    pub locked: bool,
    /// Whether this call changed the state (false for a repeat).
    pub changed: bool,
    pub locked_at: Option<String>,
}

#[derive(Serialize)]
pub struct CourseList {
    pub courses: Vec<CourseSummary>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only courses of this term.
    pub term: Option<String>,
}

fn course_not_found(course_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "course_not_found",
        format!("course {course_id} does not exist; create it with POST /api/courses"),
    )
}

pub(super) async fn detail_of(
    state: &SharedState,
    course_id: &CourseId,
) -> ApiResult<CourseDetail> {
    match state.engine.course_detail(course_id).await {
        Err(EngineError::Domain(DomainError::CourseNotFound)) => {
            Err(course_not_found(course_id.as_str()))
        }
        other => Ok(other?),
    }
}

/// Refuses tool ids that are not registered or were revoked, and tools a
/// registrar limited to a list of courses without this one (deploying them
/// here would not let them in).
async fn known_tools(
    state: &SharedState,
    course_id: &CourseId,
    ids: Vec<String>,
) -> ApiResult<Vec<ToolId>> {
    let mut tools = Vec::with_capacity(ids.len());
    for id in ids {
        let id = ToolId::parse(id)?;
        match crate::services::tools::get(&state.engine.db, id.as_str()).await {
            Ok(Some(t)) if t.is_live() => {
                if let Courses::Only(listed) = &t.courses {
                    if !listed.iter().any(|c| c == course_id.as_str()) {
                        return Err(ApiError::unprocessable(
                            "tool_not_available",
                            format!(
                                "tool {id} is limited by its registration to a list of courses without {course_id}; \
                                 a registrar adds the course to the tool's courses with PATCH /api/tools/{id}"
                            ),
                        ));
                    }
                }
                tools.push(id)
            }
            Ok(_) => {
                return Err(ApiError::unprocessable(
                    "tool_not_found",
                    format!(
                    "tool {id} is not registered or was revoked; register it with POST /api/tools"
                ),
                ))
            }
            Err(e) => return Err(crate::engine::EngineError::from(e).into()),
        }
    }
    Ok(tools)
}

/// Opens a course.
#[utoipa::path(post, path = "/api/courses", tag = "registrar", request_body = NewCourse,
    responses((status = 201, description = "The course", body = Object),
              (status = 409, description = "course_exists", body = ErrorBody), (status = 422, description = "invalid input, unknown tool (tool_not_found) or a tool limited to other courses (tool_not_available)", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet readable", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Json(body): Json<NewCourse>,
) -> ApiResult<(StatusCode, JsonOut<CourseDetail>)> {
    let course_id = CourseId::parse(body.course_id)?;
    let tools = known_tools(&state, &course_id, body.tool_ids).await?;
    state
        .engine
        .open_course(
            &course_id,
            body.title,
            body.term,
            tools,
            &meta(&caller, Source::Sis),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(detail_of(&state, &course_id).await?),
    ))
}

/// Lists courses with their term, lock state and counts.
#[utoipa::path(get, path = "/api/courses", tag = "registrar", params(ListQuery),
    responses((status = 200, description = "Courses", body = Object)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonOut<CourseList>> {
    caller.require_read()?;
    let courses = state.engine.courses(q.term.as_deref()).await?;
    Ok(JsonOut(CourseList { courses }))
}

/// One course: policy, tools, lock state and counts.
#[utoipa::path(get, path = "/api/courses/{course_id}", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 200, description = "The course", body = Object), (status = 404, description = "course_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn detail(
    State(state): State<SharedState>,
    caller: Caller,
    Path(course_id): Path<String>,
) -> ApiResult<JsonOut<CourseDetail>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    Ok(JsonOut(detail_of(&state, &course_id).await?))
}

fn scheme_of(body_scheme: SchemeName, categories: Option<Vec<CategoryBody>>) -> ApiResult<Scheme> {
    match (body_scheme, categories) {
        (SchemeName::Points, None) => Ok(Scheme::Points),
        (SchemeName::Points, Some(_)) => Err(DomainError::InvalidGrading(
            "the points scheme takes no categories; use \"scheme\": \"weighted\" for categories".into(),
        )
        .into()),
        (SchemeName::Weighted, Some(c)) if !c.is_empty() => Ok(Scheme::Weighted {
            categories: c
                .into_iter()
                .map(|c| Category {
                    name: c.name.trim().to_string(),
                    weight: c.weight.0,
                })
                .collect(),
        }),
        (SchemeName::Weighted, _) => Err(DomainError::InvalidGrading(
            "a weighted scheme needs at least one category: \"categories\": [{\"name\": \"Exams\", \"weight\": \"60\"}]".into(),
        )
        .into()),
    }
}

/// Sets the grading scheme, and optionally the letter scale and what a
/// missing score means.
#[utoipa::path(put, path = "/api/courses/{course_id}/grading", tag = "registrar", request_body = GradingBody,
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 200, description = "The course with its new policy", body = Object),
              (status = 404, description = "course_not_found", body = ErrorBody), (status = 422, description = "invalid_grading", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet in force", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_grading(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path(course_id): Path<String>,
    Json(body): Json<GradingBody>,
) -> ApiResult<JsonOut<CourseDetail>> {
    let course_id = CourseId::parse(course_id)?;
    let current = detail_of(&state, &course_id).await?;
    let scheme = scheme_of(body.scheme, body.categories)?;
    let scale = body.scale.map(|s| {
        s.into_iter()
            .map(|e| ScaleEntry {
                letter: e.letter.trim().to_string(),
                min_percent: e.min_percent.0,
            })
            .collect()
    });
    let missing = match body.missing {
        None => current.grading.missing,
        Some(Missing::Exclude) => MissingPolicy::Exclude,
        Some(Missing::Zero) => MissingPolicy::Zero,
    };
    state
        .engine
        .set_grading(
            &course_id,
            scheme,
            scale,
            missing,
            &meta(&caller, Source::Sis),
        )
        .await?;
    Ok(JsonOut(detail_of(&state, &course_id).await?))
}

/// Deploys more tools in a course.
#[utoipa::path(post, path = "/api/courses/{course_id}/tools", tag = "registrar", request_body = ToolIds,
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 200, description = "The course", body = Object),
              (status = 404, description = "course_not_found", body = ErrorBody), (status = 422, description = "tool_not_found or tool_not_available", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet in force", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_tools(
    State(state): State<SharedState>,
    SisOrRegistrarCaller(caller): SisOrRegistrarCaller,
    Path(course_id): Path<String>,
    Json(body): Json<ToolIds>,
) -> ApiResult<JsonOut<CourseDetail>> {
    let course_id = CourseId::parse(course_id)?;
    detail_of(&state, &course_id).await?;
    let tools = known_tools(&state, &course_id, body.tool_ids).await?;
    let source = if caller.role == ApiRole::Registrar {
        Source::Registrar
    } else {
        Source::Sis
    };
    state
        .engine
        .allow_tools(&course_id, tools, &meta(&caller, source))
        .await?;
    Ok(JsonOut(detail_of(&state, &course_id).await?))
}

async fn set_lock(
    state: SharedState,
    caller: Caller,
    course_id: String,
    headers: HeaderMap,
    body: Bytes,
    lock: bool,
) -> ApiResult<JsonOut<LockState>> {
    let course_id = CourseId::parse(course_id)?;
    let LockBody { reason } = optional_json(&headers, &body)?;
    let meta = meta(&caller, Source::Registrar);
    let changed = if lock {
        state.engine.lock_course(&course_id, reason, &meta).await?
    } else {
        state
            .engine
            .unlock_course(&course_id, reason, &meta)
            .await?
    };
    let now = detail_of(&state, &course_id).await?;
    Ok(JsonOut(LockState {
        course_id: course_id.to_string(),
        locked: now.summary.locked,
        changed,
        locked_at: now.summary.locked_at,
    }))
}

/// Locks a course: every grade change is then refused and recorded.
/// Locking a locked course changes nothing.
#[utoipa::path(post, path = "/api/courses/{course_id}/lock", tag = "registrar", request_body(content = LockBody, description = "optional"),
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 200, description = "The lock state", body = LockState), (status = 404, description = "course_not_found", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet in force", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lock(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Path(course_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<JsonOut<LockState>> {
    set_lock(state, caller, course_id, headers, body, true).await
}

/// Unlocks a course. Unlocking an unlocked course changes nothing.
#[utoipa::path(post, path = "/api/courses/{course_id}/unlock", tag = "registrar", request_body(content = LockBody, description = "optional"),
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 200, description = "The lock state", body = LockState), (status = 404, description = "course_not_found", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet in force", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unlock(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Path(course_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<JsonOut<LockState>> {
    set_lock(state, caller, course_id, headers, body, false).await
}
