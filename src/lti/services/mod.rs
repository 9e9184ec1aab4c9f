//! The LTI services a registered tool calls: platform configuration and
//! keys, tool registration (by a registrar or by the tool itself), the
//! token endpoint, AGS and NRPS.

use axum::routing::{get, post};
use axum::Router;

use crate::http::SharedState;

pub mod ags;
pub mod bearer;
pub mod nrps;
pub mod platform;
pub mod registration;
pub mod token;
pub mod wire;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/.well-known/jwks.json", get(platform::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(platform::openid_configuration),
        )
        .route(
            "/api/tools",
            get(registration::list_tools).post(registration::create_tool),
        )
        .route(
            "/api/tools/dynamic-registration",
            post(registration::start_dynamic_registration),
        )
        .route(
            "/api/tools/{tool_id}",
            get(registration::get_tool)
                .patch(registration::patch_tool)
                .delete(registration::delete_tool),
        )
        .route("/lti/register", post(registration::register))
        .route("/lti/token", post(token::token))
        .route(
            "/lti/courses/{course_id}/lineitems",
            get(ags::list_line_items).post(ags::create_line_item),
        )
        .route(
            "/lti/courses/{course_id}/lineitems/{line_item_id}",
            get(ags::get_line_item)
                .put(ags::put_line_item)
                .delete(ags::delete_line_item),
        )
        .route(
            "/lti/courses/{course_id}/lineitems/{line_item_id}/scores",
            post(ags::post_score),
        )
        .route(
            "/lti/courses/{course_id}/lineitems/{line_item_id}/results",
            get(ags::results),
        )
        .route(
            "/lti/courses/{course_id}/memberships",
            get(nrps::memberships),
        )
}
