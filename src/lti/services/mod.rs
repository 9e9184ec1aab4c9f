//! The LTI services a registered tool calls: platform configuration and keys, tool registration, the token endpoint, AGS and NRPS.

use axum::Router;

use crate::http::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
}
