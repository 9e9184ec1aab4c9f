//! The LTI face's part of the OpenAPI document, from its handlers'
//! annotations, with the security schemes a tool uses;
//! `crate::http::openapi` merges it into the served document.

use utoipa::openapi::security::{
    ClientCredentials, Flow, Http, HttpAuthScheme, OAuth2, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use super::launch::{authorize, deep_linking, initiate, links};
use super::services::wire::OAuthErrorBody;
use super::services::{ags, nrps, platform, registration, token};
use crate::services::scope;

#[derive(OpenApi)]
#[openapi(
    paths(
        registration::create_tool, registration::list_tools, registration::get_tool,
        registration::patch_tool, registration::delete_tool,
        registration::start_dynamic_registration,
        initiate::create_launch, links::create_resource_link,
        platform::jwks, platform::openid_configuration,
        registration::register, token::token,
        authorize::authorize_get, authorize::authorize_post,
        deep_linking::deep_linking_return,
        ags::list_line_items, ags::create_line_item, ags::get_line_item, ags::put_line_item,
        ags::delete_line_item, ags::post_score, ags::results,
        nrps::memberships,
    ),
    components(schemas(OAuthErrorBody)),
    modifiers(&ToolSchemes)
)]
pub struct LtiDoc;

/// `lti_access_token`: what a tool gets from `/lti/token`;
/// `registration_token`: the one-time dynamic registration token.
struct ToolSchemes;

impl Modify for ToolSchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
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
