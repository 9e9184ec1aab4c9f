//! The OpenAPI description of the HTTP API, served at
//! `GET /api/openapi.json`: the info, tags, error shape and bearer scheme
//! here, merged with each face's own part (its handlers' annotations), so
//! no face documents another's handlers. Every route the router registers
//! is listed; a test holds the two together.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(title = "gradebook", description = "An event-sourced gradebook reconciliation engine: the SIS side of an LTI 1.3 grade connection."),
    paths(serve),
    components(schemas(ErrorBody)),
    tags(
        (name = "registrar", description = "Courses, people, line items, tools, resource links and launches, with API tokens"),
        (name = "reports", description = "Grades, provenance, reconciliation, the audit log and backfill"),
        (name = "lti", description = "The LTI 1.3 platform a tool talks to: keys, registration, tokens, launches, deep linking, AGS and NRPS"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
    modifiers(&BearerScheme)
)]
struct Plumbing;

/// The whole document: this module's part and each face's.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Plumbing::openapi();
    doc.merge(crate::api::openapi::ApiDoc::openapi());
    doc.merge(crate::lti::openapi::LtiDoc::openapi());
    doc
}

/// `bearer`: the registrar API tokens (the faces add their own schemes).
struct BearerScheme;

impl Modify for BearerScheme {
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
    Json(document())
}
