//! The read tables and what reads them: a course as the read side sees it
//! (`view`, loaded by `queries`), the facts a score post checks
//! (`post_facts`), what the LTI services show a tool (`tool_reads`) and the
//! registrar's management pages (`management`) and people across courses
//! (`people`).

pub mod kept;
pub mod management;
pub mod people;
pub mod post_facts;
pub mod queries;
pub mod tool_reads;
pub mod view;
