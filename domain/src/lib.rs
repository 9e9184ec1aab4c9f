//! The gradebook's domain: aggregates, commands, events and the rules they
//! enforce. No IO lives here: no clock, no database, no HTTP. Commands carry
//! every fact a rule needs (the time a request was received, the actor, what
//! the read side knows about the course), so handling a command is a pure
//! function of the aggregate's past events and the command.

pub mod course;
pub mod enrollment;
pub mod error;
pub mod gate;
pub mod ids;
pub mod line_item;
pub mod meta;
pub mod number;
pub mod policy;
pub mod score;
pub mod time;

pub use error::DomainError;
pub use ids::{CourseId, LineItemId, ToolId, UserId};
pub use meta::{CommandMeta, Source};

/// Trims a free-text field and refuses control characters and over-long
/// values, so what a registrar reads later is what was meant.
pub fn clean_text(s: &str, what: &str, max: usize) -> Result<String, DomainError> {
    let s = s.trim();
    if s.chars().count() > max || s.chars().any(|c| c.is_control()) {
        return Err(DomainError::InvalidInput(format!(
            "{what} must be at most {max} characters without control characters"
        )));
    }
    Ok(s.to_string())
}
