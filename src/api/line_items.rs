//! Line items made or changed by the SIS: create, change, list, read and
//! delete (the column goes; its history stays in the log).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use gradebook_domain::line_item::{LineItemPatch, LineItemSpec};
use gradebook_domain::{CourseId, DomainError, LineItemId, Source};
use gradebook_projections::tables::management;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{meta, nullable, Dec};
use super::courses::detail_of;
use crate::http::auth::{Caller, SisCaller};
use crate::http::error::ApiResult;
use crate::http::error::ErrorBody;
use crate::http::extract::{Json, Path, Query};
use crate::http::SharedState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLineItem {
    /// The id to use (the last segment of its AGS URL); made up when left out.
    pub line_item_id: Option<String>,
    pub label: String,
    #[schema(value_type = String, example = "100")]
    pub score_maximum: Dec,
    /// The weighted scheme's category it counts in.
    pub category: Option<String>,
    /// Its own weight in a weighted scheme, instead of a category.
    #[schema(value_type = Option<String>)]
    pub weight: Option<Dec>,
    /// It stands for a whole tool course (one grade for the course).
    #[serde(default)]
    pub course_total: bool,
    /// Only a Completed + FullyGraded score counts.
    #[serde(default)]
    pub completion_only: bool,
}

/// Any of the fields; `null` clears `category` and `weight`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LineItemChange {
    #[serde(default, deserialize_with = "nullable")]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub score_maximum: Option<Option<Dec>>,
    #[serde(default, deserialize_with = "nullable")]
    pub category: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub weight: Option<Option<Dec>>,
    #[serde(default, deserialize_with = "nullable")]
    pub course_total: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub completion_only: Option<Option<bool>>,
}

#[derive(Serialize, ToSchema)]
pub struct LineItemOut {
    /// The AGS URL of the line item, as tools see it.
    pub id: String,
    pub line_item_id: String,
    pub label: String,
    #[schema(value_type = String)]
    pub score_maximum: rust_decimal::Decimal,
    pub category: Option<String>,
    #[schema(value_type = Option<String>)]
    pub weight: Option<rust_decimal::Decimal>,
    pub course_total: bool,
    pub completion_only: bool,
    pub tag: Option<String>,
    pub resource_link_id: Option<String>,
    #[schema(value_type = Object)]
    pub resource_id: Option<serde_json::Value>,
    pub tool_id: Option<String>,
    pub deleted: bool,
}

#[derive(Serialize)]
pub struct LineItemList {
    pub course_id: String,
    pub line_items: Vec<LineItemOut>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Also list deleted line items.
    #[serde(default)]
    pub include_deleted: bool,
}

fn out(
    state: &SharedState,
    course_id: &str,
    line_item_id: &str,
    spec: LineItemSpec,
    deleted: bool,
) -> LineItemOut {
    LineItemOut {
        id: format!(
            "{}/lti/courses/{course_id}/lineitems/{line_item_id}",
            state.settings.public_url()
        ),
        line_item_id: line_item_id.to_string(),
        label: spec.label,
        score_maximum: spec.score_maximum,
        category: spec.category,
        weight: spec.weight,
        course_total: spec.course_total,
        completion_only: spec.completion_only,
        tag: spec.tag,
        resource_link_id: spec.resource_link_id,
        resource_id: spec.resource_id,
        tool_id: spec.tool_id.map(String::from),
        deleted,
    }
}

async fn read(
    state: &SharedState,
    course_id: &CourseId,
    line_item_id: &LineItemId,
) -> ApiResult<LineItemOut> {
    let item = state.engine.line_item(course_id, line_item_id).await?;
    let spec = item.spec.ok_or(DomainError::LineItemNotFound)?;
    Ok(out(
        state,
        course_id.as_str(),
        line_item_id.as_str(),
        spec,
        item.deleted,
    ))
}

fn not_null<T>(field: &str, v: Option<Option<T>>) -> ApiResult<Option<T>> {
    match v {
        Some(None) => Err(DomainError::InvalidLineItem(format!(
            "{field} cannot be cleared; leave it out to keep it"
        ))
        .into()),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// Creates a line item.
#[utoipa::path(post, path = "/api/courses/{course_id}/line-items", tag = "registrar", request_body = NewLineItem,
    params(("course_id" = String, Path, description = "The SIS course id")),
    responses((status = 201, description = "The line item", body = LineItemOut),
              (status = 404, description = "course_not_found", body = ErrorBody), (status = 409, description = "line_item_exists", body = ErrorBody),
              (status = 422, description = "invalid line item", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path(course_id): Path<String>,
    Json(body): Json<NewLineItem>,
) -> ApiResult<(StatusCode, JsonOut<LineItemOut>)> {
    let course_id = CourseId::parse(course_id)?;
    let line_item_id = body.line_item_id.map(LineItemId::parse).transpose()?;
    let mut spec = LineItemSpec::new(body.label, body.score_maximum.0);
    spec.category = body.category;
    spec.weight = body.weight.map(|w| w.0);
    spec.course_total = body.course_total;
    spec.completion_only = body.completion_only;
    let id = state
        .engine
        .create_line_item(&course_id, line_item_id, spec, &meta(&caller, Source::Sis))
        .await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(read(&state, &course_id, &id).await?),
    ))
}

/// Changes a line item.
#[utoipa::path(patch, path = "/api/courses/{course_id}/line-items/{line_item_id}", tag = "registrar", request_body = LineItemChange,
    params(("course_id" = String, Path, description = "The SIS course id"), ("line_item_id" = String, Path, description = "The last segment of the AGS URL")),
    responses((status = 200, description = "The line item", body = LineItemOut),
              (status = 404, description = "course_not_found, line_item_not_found or line_item_deleted", body = ErrorBody),
              (status = 422, description = "invalid line item", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
    Json(body): Json<LineItemChange>,
) -> ApiResult<JsonOut<LineItemOut>> {
    let course_id = CourseId::parse(course_id)?;
    let line_item_id = LineItemId::parse(line_item_id)?;
    let patch = LineItemPatch {
        label: not_null("label", body.label)?,
        score_maximum: not_null("score_maximum", body.score_maximum)?.map(|d| d.0),
        category: body.category,
        weight: body.weight.map(|w| w.map(|d| d.0)),
        course_total: not_null("course_total", body.course_total)?,
        completion_only: not_null("completion_only", body.completion_only)?,
        ..LineItemPatch::default()
    };
    state
        .engine
        .update_line_item(
            &course_id,
            &line_item_id,
            patch,
            &meta(&caller, Source::Sis),
        )
        .await?;
    Ok(JsonOut(read(&state, &course_id, &line_item_id).await?))
}

/// Deletes a line item; its scores stay in the history.
#[utoipa::path(delete, path = "/api/courses/{course_id}/line-items/{line_item_id}", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id"), ("line_item_id" = String, Path, description = "The last segment of the AGS URL")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "course_not_found, line_item_not_found or line_item_deleted", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<SharedState>,
    SisCaller(caller): SisCaller,
    Path((course_id, line_item_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let course_id = CourseId::parse(course_id)?;
    let line_item_id = LineItemId::parse(line_item_id)?;
    state
        .engine
        .delete_line_item(&course_id, &line_item_id, &meta(&caller, Source::Sis))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A course's line items in the order they were made.
#[utoipa::path(get, path = "/api/courses/{course_id}/line-items", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id"), ListQuery),
    responses((status = 200, description = "Line items", body = Object), (status = 404, description = "course_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Path(course_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonOut<LineItemList>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    detail_of(&state, &course_id).await?;
    let items: Vec<LineItemOut> = management::line_items(&state.engine.db, course_id.as_str())
        .await?
        .into_iter()
        .filter(|r| q.include_deleted || !r.deleted)
        .map(|r| {
            out(
                &state,
                course_id.as_str(),
                &r.line_item_id,
                r.spec,
                r.deleted,
            )
        })
        .collect();
    Ok(JsonOut(LineItemList {
        course_id: course_id.to_string(),
        line_items: items,
    }))
}

/// One line item (deleted ones too, marked so).
#[utoipa::path(get, path = "/api/courses/{course_id}/line-items/{line_item_id}", tag = "registrar",
    params(("course_id" = String, Path, description = "The SIS course id"), ("line_item_id" = String, Path, description = "The last segment of the AGS URL")),
    responses((status = 200, description = "The line item", body = LineItemOut), (status = 404, description = "course_not_found or line_item_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path((course_id, line_item_id)): Path<(String, String)>,
) -> ApiResult<JsonOut<LineItemOut>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    let line_item_id = LineItemId::parse(line_item_id)?;
    detail_of(&state, &course_id).await?;
    Ok(JsonOut(read(&state, &course_id, &line_item_id).await?))
}
