//! The registrar reports: provenance, reconciliation, the audit log, and backfill.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

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
