//! The JSON API's part of the OpenAPI document, from its handlers'
//! annotations; `crate::http::openapi` merges it into the served document.

use utoipa::OpenApi;

use super::reports::{audit, backfill, provenance, reconciliation};
use super::{courses, grades, health, line_items, metrics, people};

#[derive(OpenApi)]
#[openapi(paths(
    courses::create,
    courses::list,
    courses::detail,
    courses::set_grading,
    courses::add_tools,
    courses::lock,
    courses::unlock,
    people::put,
    people::drop,
    people::list,
    people::get,
    line_items::create,
    line_items::update,
    line_items::delete,
    line_items::list,
    line_items::get,
    grades::course_grades,
    grades::course_grade_changes,
    grades::term_grade_changes,
    grades::student_grades,
    provenance::provenance,
    reconciliation::reconciliation,
    audit::audit,
    backfill::backfill,
    health::healthz,
    health::readyz,
    metrics::render,
))]
pub struct ApiDoc;
