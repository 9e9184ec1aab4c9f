//! The one axum router: each face's routes (the JSON API under `/api`, the
//! LTI platform under `/lti`, `/.well-known` and its `/api` parts, the pages
//! under `/ui`), the OpenAPI document, and the middleware every answer
//! passes (request ids, error shapes, body limits, metrics, tracing).

use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

use super::{error, extract, openapi, SharedState, MAX_BODY_BYTES};

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/api/openapi.json", get(openapi::serve))
        .merge(crate::api::routes())
        .merge(crate::lti::services::routes())
        .merge(crate::lti::launch::routes())
        .merge(crate::ui::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(crate::api::metrics::track_requests))
        .layer(middleware::from_fn(body_limit_errors))
        .layer(middleware::from_fn(method_not_allowed_errors))
        // A route that takes larger bodies (backfill) sets its own
        // `DefaultBodyLimit`, which overrides this one.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Gives every request an id (the caller's `X-Request-Id` when it is sane,
/// else a new one), echoes it in the answer and makes it readable to error
/// bodies and logs.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"));
    req.headers_mut().insert("x-request-id", value.clone());
    let mut res = error::REQUEST_ID.scope(id, next.run(req)).await;
    res.headers_mut().insert("x-request-id", value);
    res
}

/// The body-limit layer answers 413 with a plain body; give it our shape.
async fn body_limit_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE
        && res
            .headers()
            .get("content-type")
            .is_none_or(|v| !v.as_bytes().starts_with(b"application/json"))
    {
        return extract::too_large().into_response();
    }
    res
}

/// A known path asked with a method it does not take: axum answers 405
/// with an empty body; give it our shape. The router adds the `Allow`
/// header to this answer after this layer has run.
async fn method_not_allowed_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return res;
    }
    let mut answer = error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {path}; the Allow header lists the methods it takes"),
    )
    .into_response();
    if let Some(allow) = res.headers().get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}
