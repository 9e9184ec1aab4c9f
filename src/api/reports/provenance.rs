//! `GET /api/courses/{course_id}/students/{user_id}/provenance`: a student's
//! grade and the events behind every number in it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use gradebook_domain::{CourseId, UserId};
use gradebook_projections::reports::audit::read_student_events;
use gradebook_projections::reports::provenance::{knows_student, provenance as build, Provenance};
use gradebook_projections::tables::queries;

use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Path;
use crate::http::SharedState;

/// A student's grade and, for each number in it, the events that produced it.
#[utoipa::path(get, path = "/api/courses/{course_id}/students/{user_id}/provenance", tag = "reports",
    params(("course_id" = String, Path, description = "The SIS course id"),
           ("user_id" = String, Path, description = "The SIS person id")),
    responses((status = 200, description = "The grade with the events behind every number, oldest first", body = Object),
              (status = 400, description = "invalid_id", body = ErrorBody),
              (status = 404, description = "course_not_found or student_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn provenance(
    State(state): State<SharedState>,
    caller: Caller,
    Path((course_id, user_id)): Path<(String, String)>,
) -> ApiResult<Json<Provenance>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    let user_id = UserId::parse(user_id)?;
    let db = &state.engine.db;
    let view = super::report_view(
        &state.engine,
        &course_id,
        queries::People::One(user_id.as_str()),
    )
    .await?;
    let events = read_student_events(db, course_id.as_str(), user_id.as_str()).await?;
    if !knows_student(&events, user_id.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "student_not_found",
            format!("{user_id} was never enrolled in {course_id} and no tool ever posted a score for them"),
        ));
    }
    Ok(Json(build(&view, &events, user_id.as_str())))
}
