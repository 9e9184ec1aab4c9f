//! Course grades, live or as of a moment.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use gradebook_domain::CourseId;
use gradebook_projections::reports::grades::CourseGrades;
use gradebook_projections::tables::kept::{ChangeScope, GradeChange, StudentCourseGrade};
use serde::{Deserialize, Serialize};

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
    parse_moment("as_of", "invalid_as_of", s)
}

/// A moment parameter: RFC 3339, or a date alone for the end of that day
/// in UTC; otherwise 400 with `code`.
pub fn parse_moment(name: &str, code: &'static str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    gradebook_domain::time::parse_moment(s).map_err(|e| {
        ApiError::bad_request(
            code,
            match e {
                gradebook_domain::time::TimeError::NotRfc3339 => format!(
                    "{name} is neither an RFC 3339 date-time with an offset, such as 2026-05-01T10:00:00Z, nor a date such as 2026-05-01 (the end of that day, UTC)"
                ),
                e => format!("{name} {e}"),
            },
        )
    })
}

/// One row per learner: points, percent, letter and each item's state.
#[utoipa::path(get, path = "/api/courses/{course_id}/grades", tag = "reports",
    params(("course_id" = String, Path, description = "The SIS course id"),
           ("as_of" = Option<String>, Query, description = "RFC 3339, or a date alone for the end of that day (UTC); the grades as the engine held them then")),
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
    let as_of = q.as_of.as_deref().map(parse_as_of).transpose()?;
    let grades = state.engine.grades(&course_id, as_of).await?;
    let grades = grades.ok_or_else(|| {
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
    Ok(Json(grades))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseChangesQuery {
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermChangesQuery {
    pub term: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// What a grade-changes report answers.
#[derive(Serialize)]
pub struct GradeChanges {
    pub course_id: Option<String>,
    pub term: Option<String>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub changes: Vec<GradeChangeOut>,
}

#[derive(Serialize)]
pub struct GradeChangeOut {
    #[serde(flatten)]
    pub change: GradeChange,
    /// The learner's provenance in the course.
    pub provenance: String,
}

/// `since` (required) and `until` (now if absent), in order.
fn window(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let since = since
        .ok_or_else(|| ApiError::bad_request("missing_since", "since is required: the moment to compare with, such as the day transcripts were issued"))
        .and_then(|s| parse_moment("since", "invalid_since", s))?;
    let until = match until {
        Some(s) => parse_moment("until", "invalid_until", s)?,
        None => Utc::now(),
    };
    if since > until {
        return Err(ApiError::bad_request(
            "invalid_window",
            format!(
                "since ({}) is after until ({})",
                since.to_rfc3339(),
                until.to_rfc3339()
            ),
        ));
    }
    Ok((since, until))
}

fn with_links(changes: Vec<GradeChange>) -> Vec<GradeChangeOut> {
    changes
        .into_iter()
        .map(|change| GradeChangeOut {
            provenance: format!(
                "/api/courses/{}/students/{}/provenance",
                crate::http::path_segment(&change.course_id),
                crate::http::path_segment(&change.user_id)
            ),
            change,
        })
        .collect()
}

/// The learners of a course whose grade changed after `since`.
#[utoipa::path(get, path = "/api/courses/{course_id}/grade-changes", tag = "reports",
    params(("course_id" = String, Path, description = "The SIS course id"),
           ("since" = String, Query, description = "RFC 3339, or a date alone for the end of that day (UTC)"),
           ("until" = Option<String>, Query, description = "The same; now if absent")),
    responses((status = 200, description = "Each learner whose course grade at `until` differs from the one at `since`: the grade then and now, and the events that changed it", body = Object),
              (status = 400, description = "invalid_id, missing_since, invalid_since, invalid_until or invalid_window", body = crate::http::error::ErrorBody),
              (status = 404, description = "course_not_found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn course_grade_changes(
    State(state): State<SharedState>,
    caller: Caller,
    Path(course_id): Path<String>,
    Query(q): Query<CourseChangesQuery>,
) -> ApiResult<Json<GradeChanges>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    let (since, until) = window(q.since.as_deref(), q.until.as_deref())?;
    let changes = state
        .engine
        .grade_changes(ChangeScope::Course(course_id.as_str()), since, until)
        .await?;
    Ok(Json(GradeChanges {
        course_id: Some(course_id.to_string()),
        term: None,
        since,
        until,
        changes: with_links(changes),
    }))
}

/// The learners of a whole term whose grade changed after `since`.
#[utoipa::path(get, path = "/api/grade-changes", tag = "reports",
    params(("term" = String, Query, description = "The term, such as 2026FA"),
           ("since" = String, Query, description = "RFC 3339, or a date alone for the end of that day (UTC)"),
           ("until" = Option<String>, Query, description = "The same; now if absent")),
    responses((status = 200, description = "Each learner, in every course of the term, whose course grade at `until` differs from the one at `since`", body = Object),
              (status = 400, description = "missing_term, missing_since, invalid_since, invalid_until or invalid_window", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn term_grade_changes(
    State(state): State<SharedState>,
    caller: Caller,
    Query(q): Query<TermChangesQuery>,
) -> ApiResult<Json<GradeChanges>> {
    caller.require_read()?;
    let term = q.term.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("missing_term", "term is required, such as term=2026FA")
    })?;
    let (since, until) = window(q.since.as_deref(), q.until.as_deref())?;
    let changes = state
        .engine
        .grade_changes(ChangeScope::Term(&term), since, until)
        .await?;
    Ok(Json(GradeChanges {
        course_id: None,
        term: Some(term),
        since,
        until,
        changes: with_links(changes),
    }))
}

#[derive(Serialize)]
pub struct StudentGrades {
    pub user_id: String,
    pub courses: Vec<StudentCourseGrade>,
}

/// Every course of one person, with the kept grade and the lock state.
#[utoipa::path(get, path = "/api/students/{user_id}/grades", tag = "reports",
    params(("user_id" = String, Path, description = "The SIS user id")),
    responses((status = 200, description = "Each course the person is enrolled in (any role or status), by term then course id, with the course grade as the grade report shows it (null when the report has no row for them: dropped, or not a learner) and whether the course is locked", body = Object),
              (status = 404, description = "student_not_found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn student_grades(
    State(state): State<SharedState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<StudentGrades>> {
    caller.require_read()?;
    let courses = state.engine.student_grades(&user_id).await?;
    if courses.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "student_not_found",
            format!("no course has a person with user id {user_id}"),
        ));
    }
    Ok(Json(StudentGrades { user_id, courses }))
}
