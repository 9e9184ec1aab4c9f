//! The application services every face calls besides the engine: what the
//! platform keeps in its own tables (API tokens, signing keys, tools and
//! their rights, LTI state), the JWT checks, and the reads more than one
//! face gives. No HTTP here: a face turns these answers into its own.

pub mod api_tokens;
pub mod crypto;
pub mod lti_state;
pub mod platform_keys;
pub mod reads;
pub mod scope;
pub mod tool_settings;
pub mod tools;
pub mod ui_sessions;
pub mod urls;
