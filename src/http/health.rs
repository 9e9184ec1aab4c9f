//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::SharedState;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers and the projector is keeping up.
pub async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    let db = &state.engine.db;
    let store = match db.ping().await {
        Ok(()) => json!({"ok": true, "kind": db.kind()}),
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "unavailable", "store": {"ok": false, "kind": db.kind(), "error": "the database does not answer", "detail": e.to_string()}}),
                ),
            )
        }
    };
    let total = gradebook_projections::events::count(db)
        .await
        .unwrap_or_default();
    let applied = state.engine.projection().current();
    (
        StatusCode::OK,
        Json(
            json!({"status": "ready", "store": store, "projector": {"checkpoint": applied, "events_in_log": total}}),
        ),
    )
}
