//! The registrar reports: provenance, reconciliation, the audit log, and backfill.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use gradebook_domain::CourseId;
use gradebook_projections::tables::queries::People;
use gradebook_projections::tables::view::CourseView;

use crate::http::error::{ApiError, ApiResult};
use crate::http::SharedState;

pub mod audit;
pub mod backfill;
pub mod provenance;
pub mod reconciliation;

pub use backfill::MAX_BACKFILL_BYTES;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/api/courses/{course_id}/students/{user_id}/provenance",
            get(provenance::provenance),
        )
        .route(
            "/api/courses/{course_id}/reconciliation",
            get(reconciliation::reconciliation),
        )
        .route("/api/audit", get(audit::audit))
        .route(
            "/api/courses/{course_id}/backfill",
            // Past grades come as whole files: this route alone takes large bodies.
            post(backfill::backfill).layer(DefaultBodyLimit::max(MAX_BACKFILL_BYTES)),
        )
}

/// The course as a report reads it (all people, or one), or 404
/// `course_not_found`.
async fn report_view(
    engine: &crate::engine::Engine,
    course_id: &CourseId,
    people: People<'_>,
) -> ApiResult<CourseView> {
    engine
        .report_view(course_id, people)
        .await
        .map_err(|e| not_found_as(e, course_id))
}

/// A report's answer for a course that does not exist names it.
fn not_found_as(e: crate::engine::EngineError, course_id: &CourseId) -> ApiError {
    match e {
        crate::engine::EngineError::Domain(gradebook_domain::DomainError::CourseNotFound) => {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "course_not_found",
                format!("course {course_id} does not exist"),
            )
        }
        e => e.into(),
    }
}
