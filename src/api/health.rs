//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::http::SharedState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers and the projector is keeping up.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready, with the projector's lag and the transactions holding it back", body = Object),
              (status = 503, description = "The database does not answer", body = Object)))]
pub async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    let db = &state.engine.db;
    let store = match db.ping().await {
        Ok(()) => json!({"ok": true, "kind": db.kind()}),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "unavailable", "store": {"ok": false, "kind": db.kind(), "error": "the database does not answer"}, "reason": "the database does not answer; check that it is running and reachable"}),
                ),
            );
        }
    };
    let total = gradebook_projections::projector::events::count(db)
        .await
        .unwrap_or_default();
    let applied = state.engine.projection().current();
    // The checkpoint in the database is the truth when another node projects.
    let stored = gradebook_projections::projector::load_checkpoint(db)
        .await
        .unwrap_or(applied);
    let lag = gradebook_projections::tables::management::projector_lag(db, stored.max(applied))
        .await
        .ok();
    // Readiness does not depend on it: the projector only waits, and
    // catches up once these transactions end.
    let held_back_by =
        gradebook_projections::tables::management::projector_held_back_by(db, stored.max(applied))
            .await
            .ok();
    (
        StatusCode::OK,
        Json(
            json!({"status": "ready", "store": store, "projector": {"leader": state.engine.projection().is_leader(), "checkpoint": applied, "events_in_log": total,
                "lag": lag.map(|l| json!({"events": l.events, "oldest_unapplied_seconds": l.oldest_seconds})),
                "held_back_by": held_back_by}}),
        ),
    )
}
