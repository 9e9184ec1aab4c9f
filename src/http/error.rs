//! The one JSON error shape every endpoint answers with:
//! `{"error": "<stable code>", "message": "<what to do>", "request_id": "..."}`.
//! A 500 shows the client only the request id; the cause goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gradebook_domain::error::ErrorKind;
use gradebook_domain::DomainError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::{EngineError, Shown};

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    request_id: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} was not found"),
        )
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A change the log recorded but the read side has not applied yet (the
    /// projector is behind): not "does not exist", and not to be sent again.
    pub fn not_yet_visible(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_yet_visible", message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let request_id = current_request_id();
        tracing::error!(%cause, request_id, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!(
                "something went wrong on our side; quote request id {request_id} when reporting it"
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            message: &self.message,
            request_id: current_request_id(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let status = match e {
            DomainError::InvalidId { .. } | DomainError::InvalidTimestamp(_) => {
                StatusCode::BAD_REQUEST
            }
            _ => status,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Domain(d) => d.into(),
            EngineError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                ApiError::unavailable("the grade store is not reachable right now; nothing was changed, retry shortly")
            }
            EngineError::Contended => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "contended",
                "too many concurrent changes to the same record; nothing was changed, retry",
            ),
            EngineError::Internal(cause) => ApiError::internal(cause),
            EngineError::NotYetVisible(n) => {
                let check = match &n.shown_in {
                    Shown::Course(c) => format!("/api/courses/{c}"),
                    Shown::Enrollments(c) => format!("/api/courses/{c}/enrollments"),
                };
                ApiError::not_yet_visible(format!(
                    "{n}; check with GET {check} shortly (sending it again is safe)"
                ))
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        EngineError::from(e).into()
    }
}

impl From<gradebook_projections::projector::events::ReadError> for ApiError {
    fn from(e: gradebook_projections::projector::events::ReadError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<gradebook_projections::tables::queries::QueryError> for ApiError {
    fn from(e: gradebook_projections::tables::queries::QueryError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<crate::services::tool_settings::ToolError> for ApiError {
    fn from(e: crate::services::tool_settings::ToolError) -> Self {
        use crate::services::tool_settings::ToolError;
        match e {
            ToolError::NotFound => ApiError::not_found("the tool"),
            ToolError::Revoked => {
                ApiError::new(StatusCode::CONFLICT, "tool_revoked", e.to_string())
            }
            ToolError::InvalidCourses(m) => ApiError::unprocessable("invalid_courses", m),
            ToolError::InvalidRegistrationUrl => {
                ApiError::unprocessable("invalid_registration_url", e.to_string())
            }
            ToolError::Store(e) => e.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

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
