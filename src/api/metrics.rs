//! Prometheus metrics: requests by route template and status, score posts
//! by outcome, and the projector's lag, rendered at `GET /metrics`.
//!
//! The recorder is process-wide (the `metrics` facade allows one), so it is
//! installed once and shared by every app started in the process; counters
//! then add up across them, which is what one process serving means.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gradebook_projections::projector;
use gradebook_projections::tables::management;

use crate::http::SharedState;
use crate::metrics::install;

/// Middleware: counts each request by its route template (not its path,
/// which would make one series per course).
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("gradebook_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("gradebook_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// `GET /metrics`: the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn render(State(state): State<SharedState>) -> Response {
    let handle = install();
    let db = &state.engine.db;
    // Lag is measured at scrape time, from the checkpoint in the database
    // (another node may be the one projecting).
    if let Ok(at) = projector::load_checkpoint(db).await {
        if let Ok(lag) = management::projector_lag(db, at).await {
            metrics::gauge!("gradebook_projector_lag_events").set(lag.events as f64);
            metrics::gauge!("gradebook_projector_lag_seconds").set(lag.oldest_seconds);
        }
    }
    metrics::gauge!("gradebook_projector_leader").set(if state.engine.projection().is_leader() {
        1.0
    } else {
        0.0
    });
    handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
