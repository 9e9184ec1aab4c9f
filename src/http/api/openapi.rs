//! The OpenAPI description of the HTTP API, generated from the handlers'
//! annotations and served at `GET /api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{courses, line_items, metrics, people};

#[derive(OpenApi)]
#[openapi(
    info(title = "gradebook", description = "An event-sourced gradebook reconciliation engine: the SIS side of an LTI 1.3 grade connection."),
    paths(
        courses::create, courses::list, courses::detail, courses::set_grading, courses::add_tools,
        courses::lock, courses::unlock,
        people::put, people::drop, people::list, people::get,
        line_items::create, line_items::update, line_items::delete, line_items::list, line_items::get,
        crate::http::grades::course_grades,
        crate::http::health::healthz, crate::http::health::readyz,
        metrics::render, serve,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
