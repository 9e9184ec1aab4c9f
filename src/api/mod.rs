//! The JSON API face: the registrar API for courses, people and line
//! items, the grade report and the registrar reports (`reports/`), and the
//! operations endpoints `/healthz`, `/readyz` and `/metrics`. Tools,
//! launches and resource links are the LTI face's (`src/lti/`).

use axum::routing::{get, post, put};
use axum::Router;

use crate::http::SharedState;

mod body;
pub mod courses;
pub mod grades;
pub mod health;
pub mod line_items;
pub mod metrics;
pub mod openapi;
pub mod people;
pub mod reports;

pub fn routes() -> Router<SharedState> {
    crate::metrics::install();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
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
        .route(
            "/api/courses/{course_id}/grades",
            get(grades::course_grades),
        )
        .route(
            "/api/courses/{course_id}/grade-changes",
            get(grades::course_grade_changes),
        )
        .route("/api/grade-changes", get(grades::term_grade_changes))
        .route(
            "/api/students/{user_id}/grades",
            get(grades::student_grades),
        )
        .route("/metrics", get(metrics::render))
        .merge(reports::routes())
}
