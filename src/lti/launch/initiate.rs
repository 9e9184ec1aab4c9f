//! `POST /api/launches`: the SIS asks to launch a tool for one person in one
//! course and gets the tool's login initiation URL (third-party initiated
//! login) carrying a single-use, short-lived message hint.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use gradebook_domain::course::Course;
use gradebook_domain::enrollment::{EnrollmentStatus, Person};
use gradebook_domain::ids::ResourceLinkId;
use gradebook_domain::{CourseId, ToolId, UserId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{course_not_found, live_tool};
use crate::engine::EngineError;
use crate::http::auth::SisCaller;
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Json;
use crate::http::SharedState;
use crate::services::lti_state::{self, LaunchHint};
use crate::services::tools::Tool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[schema(as = LaunchKind)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ResourceLink,
    DeepLinking,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ResourceLink => "resource_link",
            Kind::DeepLinking => "deep_linking",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "resource_link" => Some(Kind::ResourceLink),
            "deep_linking" => Some(Kind::DeepLinking),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    pub tool_id: String,
    pub course_id: String,
    pub user_id: String,
    pub kind: Kind,
    /// A link made by deep linking or by the SIS; not needed for deep linking.
    #[serde(default)]
    pub resource_link_id: Option<String>,
}

/// The tool's login initiation URL for one person in one course, carrying
/// a signed, single-use, short-lived message hint.
#[utoipa::path(post, path = "/api/launches", tag = "registrar", request_body = LaunchRequest,
    responses((status = 200, description = "`{\"login_initiation_url\"}`", body = Object),
              (status = 400, description = "invalid_id", body = ErrorBody),
              (status = 403, description = "the person may not make this kind of launch", body = ErrorBody),
              (status = 404, description = "course, tool, enrollment or resource link not found", body = ErrorBody),
              (status = 422, description = "tool_revoked, tool_not_launchable or another refusal saying why", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_launch(
    State(state): State<SharedState>,
    // Only the role matters here: a launch records nothing of the caller.
    _sis: SisCaller,
    Json(req): Json<LaunchRequest>,
) -> ApiResult<axum::Json<Value>> {
    let course_id = CourseId::parse(req.course_id.clone())?;
    let user_id = UserId::parse(req.user_id.clone())?;
    ToolId::parse(req.tool_id.clone())?;
    let link_id = req
        .resource_link_id
        .clone()
        .map(ResourceLinkId::parse)
        .transpose()?;

    let tool = live_tool(&state, &req.tool_id).await?;
    let target = checked_target(
        &state,
        &tool,
        &course_id,
        &user_id,
        req.kind,
        link_id.as_ref(),
    )
    .await?
    .target;
    let login_url = tool.login_url.as_deref().ok_or_else(|| {
        ApiError::unprocessable(
            "tool_not_launchable",
            "the tool's registration has no login_url; set one to launch it",
        )
    })?;
    let mut url = reqwest::Url::parse(login_url).map_err(|_| {
        ApiError::unprocessable(
            "tool_not_launchable",
            "the tool's registered login_url is not a valid URL",
        )
    })?;

    let now = Utc::now();
    let hint = LaunchHint {
        hint: lti_state::random_token(),
        // The person's SIS id: tools pass it back unchanged, and it is the
        // `sub` the id_token will carry.
        login_hint: user_id.as_str().to_string(),
        tool_id: tool.tool_id.clone(),
        course_id: course_id.as_str().to_string(),
        user_id: user_id.as_str().to_string(),
        kind: req.kind.as_str().to_string(),
        resource_link_id: link_id.as_ref().map(|l| l.as_str().to_string()),
        expires_at: lti_state::expiry(now, lti_state::HINT_LIFETIME),
        used_at: None,
    };
    lti_state::insert_hint(&state.engine.db, &hint, now)
        .await
        .map_err(EngineError::from)?;

    url.query_pairs_mut()
        .append_pair("iss", &state.settings.public_url())
        .append_pair("login_hint", &hint.login_hint)
        .append_pair("lti_message_hint", &hint.hint)
        .append_pair("target_link_uri", &target)
        .append_pair("client_id", &tool.client_id)
        .append_pair("lti_deployment_id", &tool.deployment_id);
    Ok(axum::Json(json!({ "login_initiation_url": url.as_str() })))
}

/// What a launch that may go ahead is made of.
pub(crate) struct Launchable {
    /// The `target_link_uri`: a link's own URL, else the URI the
    /// registration gave for this kind.
    pub target: String,
    pub course: Course,
    pub person: Person,
}

/// Checks that this person may launch this tool in this course, now, and
/// returns what the launch needs. Used when the SIS asks
/// and again when the tool comes back, since things may change in between.
pub(crate) async fn checked_target(
    state: &SharedState,
    tool: &Tool,
    course_id: &CourseId,
    user_id: &UserId,
    kind: Kind,
    link_id: Option<&ResourceLinkId>,
) -> Result<Launchable, ApiError> {
    let course = state
        .engine
        .course(course_id)
        .await?
        .ok_or_else(|| course_not_found(course_id.as_str()))?;
    let tool_id = ToolId::parse(tool.tool_id.clone())?;
    if !tool.reaches(course_id.as_str(), course.tools.contains(&tool_id)) {
        return Err(course_not_found(course_id.as_str()));
    }
    let person = active_person(state, course_id, user_id).await?;
    let target = match kind {
        Kind::ResourceLink => {
            let link_id = link_id.ok_or_else(|| {
                ApiError::unprocessable(
                    "resource_link_required",
                    "a resource_link launch names the resource_link_id to open",
                )
            })?;
            let link = match course.resource_links.get(link_id) {
                Some(link) if link.tool_id == tool_id => link,
                _ => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "resource_link_not_found",
                        format!(
                            "course {} has no resource link {:?} for this tool",
                            course_id,
                            link_id.as_str()
                        ),
                    ))
                }
            };
            // A link with a URL of its own (a deep-linked item's `url`)
            // launches there (Deep Linking 2.0): a tool that routes on it
            // opens that activity, not its front page.
            link.url
                .clone()
                .or_else(|| tool.launch_url.clone())
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "tool_not_launchable",
                        "the link has no url and the tool's registration has no launch_url",
                    )
                })?
        }
        Kind::DeepLinking => {
            if !person.role.may_author() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "deep_linking_not_allowed",
                    format!(
                        "deep linking is offered to instructors and course designers; {} is a {}",
                        user_id,
                        person.role.name()
                    ),
                ));
            }
            tool.deep_linking_url.clone().ok_or_else(|| {
                ApiError::unprocessable(
                    "deep_linking_not_supported",
                    "the tool's registration has no deep_linking_url",
                )
            })?
        }
    };
    Ok(Launchable {
        target,
        course,
        person,
    })
}

/// The person's enrollment, unless they are not enrolled or were dropped.
pub(crate) async fn active_person(
    state: &SharedState,
    course_id: &CourseId,
    user_id: &UserId,
) -> Result<Person, ApiError> {
    let enrollment = state.engine.enrollment(course_id, user_id).await?;
    let person = enrollment.person.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_enrolled",
            format!("{user_id} is not enrolled in {course_id}; enroll them first"),
        )
    })?;
    if person.status == EnrollmentStatus::Dropped {
        return Err(ApiError::unprocessable(
            "enrollment_dropped",
            format!("{user_id} was dropped from {course_id}; a dropped person cannot launch tools"),
        ));
    }
    Ok(person)
}
