//! `POST /api/courses/{course_id}/backfill[?dry_run=true]`: a registrar's
//! file of past grades, CSV or JSON lines (see [`crate::backfill`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use gradebook_domain::CourseId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::backfill::{self, BackfillError, Batch, CsvRows, Format, JsonLines, Report, RowSource};
use crate::http::auth::RegistrarCaller;
use crate::http::error::ErrorBody;
use crate::http::error::{current_request_id, ApiError, ApiResult};
use crate::http::extract::{Path, Query};
use crate::http::SharedState;

/// The largest backfill body: 64 MiB, about a million rows.
pub const MAX_BACKFILL_BYTES: usize = 64 * 1024 * 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BackfillQuery {
    /// `true` checks the file and reports what would happen, changing nothing.
    #[param(value_type = Option<bool>)]
    pub dry_run: Option<String>,
}

fn dry_run(s: Option<&str>) -> Result<bool, ApiError> {
    match s {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            "dry_run must be true or false",
        )),
    }
}

impl From<BackfillError> for ApiError {
    fn from(e: BackfillError) -> Self {
        match e {
            BackfillError::CourseNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "course_not_found", e.to_string())
            }
            BackfillError::CourseLocked(_) => {
                ApiError::unprocessable("course_locked", e.to_string())
            }
            BackfillError::InvalidHeader(m) => ApiError::bad_request("invalid_header", m),
            BackfillError::Engine(e) => e.into(),
        }
    }
}

/// Past grades as a file; idempotent per (line item, user, timestamp).
#[utoipa::path(post, path = "/api/courses/{course_id}/backfill", tag = "reports",
    params(("course_id" = String, Path, description = "The SIS course id"), BackfillQuery),
    request_body(description = "CSV with the header line_item_id,user_id,score_given,score_maximum,timestamp,comment, or JSON lines with those fields",
        content(
            (String = "text/csv", example = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\nmidterm,s1,40,50,2026-05-01T10:00:00Z,\n"),
            (String = "application/x-ndjson"),
            (String = "application/jsonl"),
        )),
    responses((status = 200, description = "What landed and what did not, line by line", body = crate::backfill::Report),
              (status = 400, description = "invalid_id, invalid_query, invalid_header or invalid_body", body = ErrorBody),
              (status = 404, description = "course_not_found", body = ErrorBody),
              (status = 413, description = "body_too_large", body = ErrorBody),
              (status = 415, description = "unsupported_media_type", body = ErrorBody),
              (status = 422, description = "course_locked; nothing was changed", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn backfill(
    State(state): State<SharedState>,
    RegistrarCaller(caller): RegistrarCaller,
    Path(course_id): Path<String>,
    Query(q): Query<BackfillQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Report>> {
    let course_id = CourseId::parse(course_id)?;
    let dry_run = dry_run(q.dry_run.as_deref())?;
    let format = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the file as text/csv (header line_item_id,user_id,score_given,score_maximum,timestamp,comment) or as JSON lines (application/x-ndjson or application/jsonl)",
            )
        })?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a backfill file may be at most {MAX_BACKFILL_BYTES} bytes; split it into several batches"),
            )
        } else {
            ApiError::bad_request("invalid_body", r.body_text())
        }
    })?;
    let mut batch = Batch::new(course_id, caller.actor(), current_request_id());
    batch.dry_run = dry_run;
    let mut rows: Box<dyn RowSource + Send> = match format {
        Format::Csv => Box::new(CsvRows::new(&body[..])?),
        Format::JsonLines => Box::new(JsonLines::new(&body[..])),
    };
    let report = backfill::run(&state.engine, &batch, rows.as_mut(), &mut |_| {}).await?;
    Ok(Json(report))
}
