//! The read side of the gradebook: grade arithmetic (pure), the read tables
//! and the projector that fills them from the event log in global order.

pub mod apply;
pub mod audit;
pub mod db;
pub mod events;
pub mod grades;
pub mod grading;
pub mod management;
pub mod post_facts;
pub mod projector;
pub mod provenance;
pub mod queries;
pub mod reconciliation;
pub mod tool_reads;
pub mod view;
pub mod write_lock;
