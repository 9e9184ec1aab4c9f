//! Shared HTTP plumbing the three faces (`crate::api`, `crate::lti`,
//! `crate::ui`) sit beside: the state every handler reaches, the one error
//! shape (`error`), extractors that answer in it (`extract`), callers and
//! their roles (`auth`), serving (`server`); and the two modules that
//! compose the faces: the router (`router`) and the OpenAPI document
//! (`openapi`).

use std::sync::Arc;

use crate::engine::Engine;

pub mod auth;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod router;
pub mod server;

pub use router::router;

/// The largest request body read by default.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub settings: crate::config::Settings,
}

pub type SharedState = Arc<AppState>;

/// A value as one path segment of a link (ids may hold `/`, spaces or
/// anything else a tool sends).
pub fn path_segment(s: &str) -> String {
    // RFC 3986's unreserved characters stay as they are.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}
