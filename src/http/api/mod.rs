//! The registrar API for managing courses, people and line items, and the
//! operations endpoints `/metrics` and `/api/openapi.json`.

use axum::routing::{get, post, put};
use axum::Router;

use crate::http::SharedState;

mod body;
pub mod courses;
pub mod line_items;
pub mod metrics;
pub mod openapi;
pub mod people;

pub fn routes() -> Router<SharedState> {
    crate::metrics::install();
    Router::new()
        .route("/api/courses", post(courses::create).get(courses::list))
        .route("/api/courses/{course_id}", get(courses::detail))
        .route(
            "/api/courses/{course_id}/grading",
            put(courses::set_grading),
        )
        .route("/api/courses/{course_id}/tools", post(courses::add_tools))
        .route("/api/courses/{course_id}/lock", post(courses::lock))
        .route("/api/courses/{course_id}/unlock", post(courses::unlock))
        .route("/api/courses/{course_id}/enrollments", get(people::list))
        .route(
            "/api/courses/{course_id}/enrollments/{user_id}",
            put(people::put).delete(people::drop).get(people::get),
        )
        .route(
            "/api/courses/{course_id}/line-items",
            post(line_items::create).get(line_items::list),
        )
        .route(
            "/api/courses/{course_id}/line-items/{line_item_id}",
            get(line_items::get)
                .patch(line_items::update)
                .delete(line_items::delete),
        )
        .route("/metrics", get(metrics::render))
        .route("/api/openapi.json", get(openapi::serve))
}
