//! gradebook: an event-sourced gradebook reconciliation engine, the SIS
//! side of an LTI 1.3 grade connection.
//!
//! `domain` (aggregates and rules) and `projections` (read side and grade
//! arithmetic) are crates of their own; this crate holds the service: the
//! command line, settings, store wiring, the application services and HTTP.

pub mod api;
pub mod app;
pub mod backfill;
pub mod cli;
pub mod config;
pub mod engine;
pub mod http;
pub mod json;
pub mod lti;
pub mod metrics;
pub mod ops;
pub mod services;
pub mod store;
pub mod ui;

pub use gradebook_domain as domain;
pub use gradebook_projections as projections;
