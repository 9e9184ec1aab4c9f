//! The OpenAPI description of the HTTP API, generated from the handlers'
//! annotations and served at `GET /api/openapi.json`. Every route the
//! router registers is listed here; a test holds the two together.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{
    ClientCredentials, Flow, Http, HttpAuthScheme, OAuth2, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{courses, line_items, metrics, people};
use crate::http::reports::{audit, backfill, provenance, reconciliation};
use crate::lti::launch::{authorize, deep_linking, initiate, links};
use crate::lti::services::{ags, nrps, platform, registration, token};
use crate::services::scope;

#[derive(OpenApi)]
#[openapi(
    info(title = "gradebook", description = "An event-sourced gradebook reconciliation engine: the SIS side of an LTI 1.3 grade connection."),
    paths(
        courses::create, courses::list, courses::detail, courses::set_grading, courses::add_tools,
        courses::lock, courses::unlock,
        people::put, people::drop, people::list, people::get,
        line_items::create, line_items::update, line_items::delete, line_items::list, line_items::get,
        registration::create_tool, registration::list_tools, registration::get_tool,
        registration::patch_tool, registration::delete_tool,
        registration::start_dynamic_registration,
        initiate::create_launch, links::create_resource_link,
        crate::http::grades::course_grades,
        provenance::provenance, reconciliation::reconciliation, audit::audit, backfill::backfill,
        platform::jwks, platform::openid_configuration,
        registration::register, token::token,
        authorize::authorize_get, authorize::authorize_post,
        deep_linking::deep_linking_return,
        ags::list_line_items, ags::create_line_item, ags::get_line_item, ags::put_line_item,
        ags::delete_line_item, ags::post_score, ags::results,
        nrps::memberships,
        crate::http::health::healthz, crate::http::health::readyz,
        metrics::render, serve,
    ),
    components(schemas(ErrorBody, OAuthErrorBody)),
    tags(
        (name = "registrar", description = "Courses, people, line items, tools, resource links and launches, with API tokens"),
        (name = "reports", description = "Grades, provenance, reconciliation, the audit log and backfill"),
        (name = "lti", description = "The LTI 1.3 platform a tool talks to: keys, registration, tokens, launches, deep linking, AGS and NRPS"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The error every `/api` endpoint (and AGS, NRPS, launches) answers with.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code.
    #[schema(example = "course_locked")]
    pub error: String,
    /// What to do about it.
    pub message: String,
    pub request_id: String,
}

/// The RFC 6749 error of the OAuth endpoints (`/lti/token`, `/lti/register`).
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    #[schema(example = "invalid_client")]
    pub error: String,
    pub error_description: String,
}

/// `bearer`: the registrar API tokens; `lti_access_token`: what a tool gets
/// from `/lti/token`; `registration_token`: the one-time dynamic
/// registration token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let scopes = Scopes::from_iter([
            (scope::LINEITEM, "manage line items"),
            (scope::LINEITEM_READONLY, "read line items"),
            (scope::RESULT_READONLY, "read results"),
            (scope::SCORE, "publish scores"),
            (scope::NRPS, "read the course roster"),
        ]);
        components.add_security_scheme(
            "lti_access_token",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/lti/token",
                    scopes,
                ))],
                "Client credentials with a JWT client assertion (LTI Advantage security)",
            )),
        );
        components.add_security_scheme(
            "registration_token",
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
