//! LTI launches: the SIS starts them, the OIDC authorization answers them, and deep-linking responses come back here.
//!
//! - [`initiate`]: `POST /api/launches` hands the SIS a login initiation URL;
//! - [`links`]: `POST /api/courses/{course_id}/resource-links`, links the SIS makes;
//! - [`authorize`]: `GET|POST /lti/authorize`, the OIDC answer carrying the id_token;
//! - [`claims`]: what that id_token says;
//! - [`deep_linking`]: `POST /lti/deep-linking/return`, content items becoming links and line items;
//!
//! Their single-use hints, pending deep-linking requests and used nonces are kept by `crate::services::lti_state`.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use gradebook_domain::{CommandMeta, Source};

use crate::http::error::{current_request_id, ApiError};
use crate::http::SharedState;
use crate::services::tools::{self, Tool};

pub mod authorize;
pub mod claims;
pub mod deep_linking;
mod html;
pub mod initiate;
pub mod links;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/launches", post(initiate::create_launch))
        .route(
            "/api/courses/{course_id}/resource-links",
            post(links::create_resource_link),
        )
        .route(
            "/lti/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(
            "/lti/deep-linking/return",
            post(deep_linking::deep_linking_return),
        )
}

/// A registered tool that has not been revoked, or the error that says why not.
pub(crate) async fn live_tool(state: &SharedState, tool_id: &str) -> Result<Tool, ApiError> {
    let tool = tools::get(&state.engine.db, tool_id)
        .await
        .map_err(crate::engine::EngineError::from)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "tool_not_found",
                format!("no tool is registered with id {tool_id:?}"),
            )
        })?;
    if !tool.is_live() {
        return Err(ApiError::unprocessable(
            "tool_revoked",
            format!("tool {tool_id:?} was revoked; register it again to launch it"),
        ));
    }
    Ok(tool)
}

/// Metadata for what a tool caused (a launch, a deep-linking response).
pub(crate) fn tool_meta(tool: &Tool, source: Source) -> CommandMeta {
    CommandMeta::new(
        format!("tool:{}:{}", tool.client_id, tool.deployment_id),
        source,
        current_request_id(),
        Utc::now(),
    )
}

/// The "this course does not exist" answer, also given to a tool that is
/// not deployed in an existing course.
pub(crate) fn course_not_found(course_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "course_not_found",
        format!("course {course_id:?} does not exist"),
    )
}

/// Metadata for what an API caller asked for.
pub(crate) fn sis_meta(caller: &crate::http::auth::Caller, source: Source) -> CommandMeta {
    CommandMeta::new(caller.actor(), source, current_request_id(), Utc::now())
}
