//! The registrar's reports: course grades (`grades`, over the pure grade
//! arithmetic of `grading`), a student's provenance, the reconciliation
//! report and the audit log.

pub mod audit;
pub mod grades;
pub mod grading;
pub mod provenance;
pub mod reconciliation;
