//! LTI launches: the SIS starts them, the OIDC authorization answers them, and deep-linking responses come back here.

use axum::Router;

use crate::http::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
}
