//! `POST /api/courses/{course_id}/resource-links`: a resource link the SIS
//! makes by hand rather than by deep linking, launching at the tool's
//! launch URL or at a `url` of its own, optionally with the line item
//! (gradebook column) bound to it: a new one (`line_item`), or a column the
//! SIS already made (`line_item_id`), which the tool may then grade.

use axum::extract::State;
use axum::http::StatusCode;
use gradebook_domain::course::ResourceLink;
use gradebook_domain::ids::ResourceLinkId;
use gradebook_domain::line_item::{LineItemPatch, LineItemSpec};
use gradebook_domain::{clean_text, CourseId, DomainError, LineItemId, Source, ToolId};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::{course_not_found, live_tool};
use crate::http::auth::SisCaller;
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Json, Path};
use crate::http::SharedState;
use crate::json;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResourceLink {
    pub resource_link_id: String,
    pub tool_id: String,
    pub title: String,
    /// Where the link launches, when not at the tool's `launch_url`: a URL
    /// on one of the tool's registered hosts.
    #[serde(default)]
    pub url: Option<String>,
    /// Custom parameters sent with every launch of the link.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom: Option<Map<String, Value>>,
    #[serde(default)]
    pub line_item: Option<NewLineItem>,
    /// An existing column of the SIS's to bind to this link instead.
    #[serde(default)]
    pub line_item_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ResourceLinkLineItem)]
#[serde(deny_unknown_fields)]
pub struct NewLineItem {
    pub label: String,
    /// A JSON number or a numeric string, read from the digits sent.
    #[schema(value_type = String, example = "50")]
    pub score_maximum: Box<RawValue>,
}

/// A resource link made by the SIS rather than by deep linking, optionally
/// with the line item bound to it.
#[utoipa::path(post, path = "/api/courses/{course_id}/resource-links", tag = "registrar", request_body = NewResourceLink,
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 201, description = "The link, with the id of its line item if one was made", body = Object),
              (status = 400, description = "invalid_id", body = ErrorBody),
              (status = 404, description = "course_not_found or tool_not_found", body = ErrorBody),
              (status = 409, description = "the resource link exists", body = ErrorBody),
              (status = 422, description = "tool_revoked, tool_not_deployed, invalid_body (a url not on the tool's registered hosts) or an invalid line item", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_resource_link(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path(course_id): Path<String>,
    Json(req): Json<NewResourceLink>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let course_id = CourseId::parse(course_id)?;
    let link_id = ResourceLinkId::parse(req.resource_link_id)?;
    let tool_id = ToolId::parse(req.tool_id)?;
    let title = clean_text(&req.title, "title", 300)?;
    let custom = req.custom.unwrap_or_default();
    if req.line_item.is_some() && req.line_item_id.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "send either line_item (a new column) or line_item_id (an existing one), not both",
        ));
    }
    let existing = req.line_item_id.map(LineItemId::parse).transpose()?;

    // Everything is checked before anything is written, so a refusal
    // leaves no half-made link or column behind.
    let spec = match &req.line_item {
        Some(li) => {
            // Kept only exactly, like every maximum.
            let max = match json::decimal(&li.score_maximum) {
                Ok(Some(n)) if n.read.is_exact() => n.value(),
                Ok(Some(_)) => {
                    return Err(ApiError::unprocessable(
                        "invalid_body",
                        json::too_many_digits("line_item.score_maximum"),
                    ))
                }
                Ok(None) | Err(_) => return Err(DomainError::InvalidScoreMaximum.into()),
            };
            let mut spec = LineItemSpec::new(li.label.clone(), max);
            spec.resource_link_id = Some(link_id.as_str().to_string());
            spec.tool_id = Some(tool_id.clone());
            Some(spec.validated()?)
        }
        None => None,
    };
    let tool = live_tool(&state, tool_id.as_str()).await?;
    let url = req.url.map(|u| u.trim().to_string());
    if let Some(u) = &url {
        tool.check_link_url(u)
            .map_err(|e| ApiError::unprocessable("invalid_body", e))?;
    }
    let course = state
        .engine
        .course(&course_id)
        .await?
        .ok_or_else(|| course_not_found(course_id.as_str()))?;
    if !tool.reaches(course_id.as_str(), course.tools.contains(&tool_id)) {
        return Err(ApiError::unprocessable(
            "tool_not_deployed",
            format!(
                "tool {:?} does not reach {course_id}; deploy it in the course, or add the course to the tool's courses",
                tool.tool_id
            ),
        ));
    }
    if course.resource_links.contains_key(&link_id) {
        return Err(DomainError::DuplicateResourceLink.into());
    }
    if let Some(id) = &existing {
        // Only a live column that no tool owns yet (or this tool already
        // owns) and that no other link carries can be handed over.
        let item = state.engine.line_item(&course_id, id).await?;
        let spec = match (&item.spec, item.deleted) {
            (None, _) => return Err(DomainError::LineItemNotFound.into()),
            (Some(_), true) => return Err(DomainError::LineItemDeleted.into()),
            (Some(spec), false) => spec,
        };
        let owned_elsewhere = spec.tool_id.as_ref().is_some_and(|t| *t != tool_id);
        let bound_elsewhere = spec
            .resource_link_id
            .as_deref()
            .is_some_and(|l| l != link_id.as_str());
        if owned_elsewhere || bound_elsewhere {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "line_item_taken",
                format!("line item {id} already belongs to another tool or link"),
            ));
        }
    }

    let meta = super::sis_meta(&caller, Source::Sis);
    let line_item_id = match (spec, existing) {
        (Some(spec), _) => Some(
            state
                .engine
                .create_line_item(&course_id, None, spec, &meta)
                .await?,
        ),
        (None, Some(id)) => {
            let patch = LineItemPatch {
                resource_link_id: Some(Some(link_id.as_str().to_string())),
                tool_id: Some(Some(tool_id.clone())),
                ..LineItemPatch::default()
            };
            state
                .engine
                .update_line_item(&course_id, &id, patch, &meta)
                .await?;
            Some(id)
        }
        (None, None) => None,
    };
    let link = ResourceLink {
        resource_link_id: link_id,
        tool_id,
        title,
        url,
        custom,
        line_item_id,
    };
    state
        .engine
        .add_resource_link(&course_id, link.clone(), &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "course_id": course_id.as_str(),
            "resource_link_id": link.resource_link_id.as_str(),
            "tool_id": link.tool_id.as_str(),
            "title": link.title,
            "url": link.url,
            "custom": link.custom,
            "line_item_id": link.line_item_id.as_ref().map(|l| l.as_str()),
        })),
    ))
}
