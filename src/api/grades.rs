//! Course grades, live or as of a moment.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use gradebook_domain::CourseId;
use gradebook_projections::reports::grades::{course_grades as report, CourseGrades};
use gradebook_projections::tables::queries;
use serde::Deserialize;

use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Path, Query};
use crate::http::SharedState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradesQuery {
    /// RFC 3339; the grades as the engine held them then.
    pub as_of: Option<String>,
}

/// An `as_of` within what the engine's times can be (see
/// [`gradebook_domain::time`]), or 400 `invalid_as_of`.
pub fn parse_as_of(s: &str) -> Result<DateTime<Utc>, ApiError> {
    gradebook_domain::time::parse_utc(s)
        .map_err(|e| ApiError::bad_request("invalid_as_of", format!("as_of {e}")))
}

/// One row per learner: points, percent, letter and each item's state.
#[utoipa::path(get, path = "/api/courses/{course_id}/grades", tag = "reports",
    params(("course_id" = String, Path, description = "The SIS course id"),
           ("as_of" = Option<String>, Query, description = "RFC 3339; the grades as the engine held them then")),
    responses((status = 200, description = "The course grades", body = Object),
              (status = 400, description = "invalid_id or invalid_as_of", body = crate::http::error::ErrorBody),
              (status = 404, description = "course_not_found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn course_grades(
    State(state): State<SharedState>,
    caller: Caller,
    Path(course_id): Path<String>,
    Query(q): Query<GradesQuery>,
) -> ApiResult<Json<CourseGrades>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    let db = &state.engine.db;
    let (view, as_of) = match q.as_of.as_deref().map(parse_as_of).transpose()? {
        // A future moment is the current state.
        Some(t) if t < Utc::now() => (
            queries::course_view_as_of(db, course_id.as_str(), t).await?,
            Some(t),
        ),
        Some(t) => (
            queries::load_report_view(db, course_id.as_str(), queries::People::All).await?,
            Some(t),
        ),
        None => (
            queries::load_report_view(db, course_id.as_str(), queries::People::All).await?,
            None,
        ),
    };
    let view = view.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "course_not_found",
            format!(
                "course {course_id} does not exist{}",
                if as_of.is_some() {
                    " at that moment"
                } else {
                    ""
                }
            ),
        )
    })?;
    Ok(Json(report(&view, as_of)))
}
