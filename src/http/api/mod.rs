//! The registrar API for managing courses, people, line items, links and tools.

use axum::Router;

use crate::http::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
}
