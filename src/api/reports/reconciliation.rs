//! `GET /api/courses/{course_id}/reconciliation[?threshold=1]`: every cell's
//! status and the course-level findings.

use std::str::FromStr;

use axum::extract::State;
use axum::Json;
use gradebook_domain::CourseId;
use gradebook_projections::reports::reconciliation::Reconciliation;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Path, Query};
use crate::http::SharedState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationQuery {
    /// Percentage points a tool's course total may differ from the
    /// computed grade before it is reported; default 1.
    pub threshold: Option<String>,
}

fn parse_threshold(s: Option<&str>) -> Result<Decimal, ApiError> {
    let Some(s) = s else {
        return Ok(crate::services::reads::DEFAULT_THRESHOLD);
    };
    Decimal::from_str(s.trim())
        .ok()
        .filter(|d| *d >= Decimal::ZERO && *d <= Decimal::ONE_HUNDRED)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_threshold",
                "threshold must be a number of percentage points between 0 and 100, e.g. 1 or 0.5",
            )
        })
}

/// Every enrollment x line item with its status, and the course findings.
#[utoipa::path(get, path = "/api/courses/{course_id}/reconciliation", tag = "reports",
    params(("course_id" = String, Path, description = "The SIS course id"), ReconciliationQuery),
    responses((status = 200, description = "Cell statuses and course findings", body = Object),
              (status = 400, description = "invalid_id or invalid_threshold", body = ErrorBody),
              (status = 404, description = "course_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reconciliation(
    State(state): State<SharedState>,
    caller: Caller,
    Path(course_id): Path<String>,
    Query(q): Query<ReconciliationQuery>,
) -> ApiResult<Json<Reconciliation>> {
    caller.require_read()?;
    let course_id = CourseId::parse(course_id)?;
    let threshold = parse_threshold(q.threshold.as_deref())?;
    Ok(Json(
        state
            .engine
            .reconciliation(&course_id, threshold)
            .await
            .map_err(|e| super::not_found_as(e, &course_id))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_is_a_non_negative_number_of_points() {
        assert_eq!(parse_threshold(None).unwrap(), Decimal::ONE);
        assert_eq!(parse_threshold(Some("0.5")).unwrap(), Decimal::new(5, 1));
        for bad in ["-1", "abc", "", "101"] {
            assert!(parse_threshold(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
