//! The read side of the gradebook, in three parts: the projector that fills
//! the read tables from the event log in global order (`projector`), the
//! read tables and the queries over them (`tables`), and the reports built
//! from them, with the pure grade arithmetic (`reports`). `db` is the
//! database handle all three share.

pub mod db;
pub mod projector;
pub mod reports;
pub mod tables;
