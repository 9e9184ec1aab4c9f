//! `GET /api/audit`: the raw event log, filtered and paged by cursor.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use gradebook_domain::{CourseId, LineItemId, UserId};
use gradebook_projections::reports::audit::{self, AuditFilter, AuditPage, Cursor};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Query;
use crate::http::SharedState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub course_id: Option<String>,
    pub user_id: Option<String>,
    pub line_item_id: Option<String>,
    /// RFC 3339; events recorded at or after.
    pub from: Option<String>,
    /// RFC 3339; events recorded strictly before.
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 1000, default 100; more than 1000 is refused, not clamped.
    pub limit: Option<String>,
}

#[derive(Serialize)]
pub struct AuditAnswer {
    pub limit: i64,
    #[serde(flatten)]
    pub page: AuditPage,
}

fn time(name: &'static str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    s.map(|s| {
        gradebook_domain::time::parse_utc(s)
            .map_err(|e| ApiError::bad_request("invalid_time", format!("{name} {e}")))
    })
    .transpose()
}

fn limit(s: Option<&str>) -> Result<i64, ApiError> {
    match s {
        None => Ok(audit::DEFAULT_LIMIT),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=audit::MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!(
                        "limit must be a whole number from 1 to {}",
                        audit::MAX_LIMIT
                    ),
                )
            }),
    }
}

fn filter(q: &AuditQuery) -> Result<AuditFilter, ApiError> {
    let from = time("from", q.from.as_deref())?;
    let to = time("to", q.to.as_deref())?;
    Ok(AuditFilter {
        course_id: q
            .course_id
            .clone()
            .map(CourseId::parse)
            .transpose()?
            .map(String::from),
        user_id: q
            .user_id
            .clone()
            .map(UserId::parse)
            .transpose()?
            .map(String::from),
        line_item_id: q
            .line_item_id
            .clone()
            .map(LineItemId::parse)
            .transpose()?
            .map(String::from),
        from,
        to,
    })
}

/// The raw event log, oldest first, filtered and paged by cursor.
#[utoipa::path(get, path = "/api/audit", tag = "reports", params(AuditQuery),
    responses((status = 200, description = "One page of events with their metadata, and the next cursor", body = Object),
              (status = 400, description = "invalid_id, invalid_time, invalid_limit or invalid_cursor", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<SharedState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditAnswer>> {
    caller.require_read()?;
    let filter = filter(&q)?;
    let limit = limit(q.limit.as_deref())?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor is not one this server handed out; start again without it",
                )
            })
        })
        .transpose()?;
    let page = state.engine.audit_page(&filter, after, limit).await?;
    Ok(Json(AuditAnswer { limit, page }))
}
