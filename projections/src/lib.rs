//! The read side of the gradebook: grade arithmetic (pure), the read tables
//! and the projector that fills them from the event log in global order.

pub mod grading;
pub mod db;
pub mod events;
pub mod view;
pub mod apply;
pub mod projector;
pub mod queries;
pub mod grades;
