//! The registrar reports: provenance, reconciliation, the audit log, and backfill.

use axum::Router;

use crate::http::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
}
