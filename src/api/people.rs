//! Enrollments: put a person in a course (or replace what the SIS said
//! about them), drop them (kept in history), list and read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use gradebook_domain::enrollment::{EnrollmentStatus, Person, Role};
use gradebook_domain::{CourseId, Source, UserId};
use gradebook_projections::tables::management::{self, EnrollmentEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::meta;
use super::courses::detail_of;
use crate::http::auth::{Caller, SisCaller};
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Json, Path};
use crate::http::SharedState;

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Inactive,
    Dropped,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonBody {
    /// `Learner`, `Instructor`, `TeachingAssistant`, `ContentDeveloper`,
    /// `Mentor`, `Administrator` or a full LTI role URI.
    #[schema(example = "Learner")]
    pub role: String,
    /// Defaults to `active`.
    pub status: Option<Status>,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Serialize)]
pub struct EnrollmentList {
    pub course_id: String,
    pub enrollments: Vec<EnrollmentEntry>,
}

async fn entry(
    state: &SharedState,
    course_id: &CourseId,
    user_id: &UserId,
) -> ApiResult<EnrollmentEntry> {
    management::enrollment(&state.engine.db, course_id.as_str(), user_id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_enrolled",
                format!("{user_id} is not enrolled in {course_id}"),
            )
        })
}

/// Enrolls a person, or replaces their enrollment.
#[utoipa::path(put, path = "/api/courses/{course_id}/enrollments/{user_id}", tag = "registrar", request_body = PersonBody,
    params(("course_id" = String, Path, description = "The SIS course id"), ("user_id" = String, Path, description = "The SIS person id; also the LTI `sub`")),
    responses((status = 201, description = "Newly enrolled", body = Object), (status = 200, description = "Replaced", body = Object),
              (status = 404, description = "course_not_found", body = ErrorBody), (status = 422, description = "invalid_enrollment", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet in force", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path((course_id, user_id)): Path<(String, String)>,
    Json(body): Json<PersonBody>,
) -> ApiResult<(StatusCode, JsonOut<EnrollmentEntry>)> {
    let course_id = CourseId::parse(course_id)?;
    let user_id = UserId::parse(user_id)?;
    let person = Person {
        role: Role::parse(body.role.trim())?,
        status: match body.status.unwrap_or(Status::Active) {
            Status::Active => EnrollmentStatus::Active,
            Status::Inactive => EnrollmentStatus::Inactive,
            Status::Dropped => EnrollmentStatus::Dropped,
        },
        name: body.name,
        email: body.email,
    };
    let new = state
        .engine
        .put_enrollment(&course_id, &user_id, person, &meta(&caller, Source::Sis))
        .await?;
    let entry = entry(&state, &course_id, &user_id).await?;
    let code = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, JsonOut(entry)))
}

/// Drops a person: their status becomes `dropped`; history is kept.
#[utoipa::path(delete, path = "/api/courses/{course_id}/enrollments/{user_id}", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id"), ("user_id" = String, Path, description = "The SIS person id")),
    responses((status = 200, description = "The dropped enrollment", body = Object), (status = 404, description = "course_not_found or not_enrolled", body = ErrorBody),
              (status = 503, description = "not_yet_visible: recorded, not yet in force", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn drop(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path((course_id, user_id)): Path<(String, String)>,
) -> ApiResult<JsonOut<EnrollmentEntry>> {
    let course_id = CourseId::parse(course_id)?;
    let user_id = UserId::parse(user_id)?;
    state
        .engine
        .drop_enrollment(&course_id, &user_id, &meta(&caller, Source::Sis))
        .await?;
    Ok(JsonOut(entry(&state, &course_id, &user_id).await?))
}

/// Everyone in a course, dropped people included with their status.
#[utoipa::path(get, path = "/api/courses/{course_id}/enrollments", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 200, description = "Enrollments", body = Object), (status = 404, description = "course_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Path(course_id): Path<String>,
) -> ApiResult<JsonOut<EnrollmentList>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    detail_of(&state, &course_id).await?;
    let people = management::enrollments(&state.engine.db, course_id.as_str()).await?;
    Ok(JsonOut(EnrollmentList {
        course_id: course_id.to_string(),
        enrollments: people,
    }))
}

/// One person's enrollment.
#[utoipa::path(get, path = "/api/courses/{course_id}/enrollments/{user_id}", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id"), ("user_id" = String, Path, description = "The SIS person id")),
    responses((status = 200, description = "The enrollment", body = Object), (status = 404, description = "course_not_found or not_enrolled", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path((course_id, user_id)): Path<(String, String)>,
) -> ApiResult<JsonOut<EnrollmentEntry>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    let user_id = UserId::parse(user_id)?;
    detail_of(&state, &course_id).await?;
    Ok(JsonOut(entry(&state, &course_id, &user_id).await?))
}
