//! Backfill: loading a registrar's file of past grades (CSV or JSON lines)
//! into a course as score posts with their original timestamps, shared by
//! `POST /api/courses/{id}/backfill`, the backfill page and
//! `gradebook backfill`.
//!
//! The file is read as a stream (`source.rs`), a chunk of rows at a time,
//! and only rejections are kept in memory. Every row is checked by itself
//! and against the course as the batch found it (`checks.rs`) before
//! anything is posted for it, so a row that cannot land (unknown line item,
//! someone who is not an active learner, a bad number or time) is reported
//! with its line number and records nothing.
//!
//! Rows that pass are decided by the domain (`Score::decide`, a
//! `ScoreCommand::Backfill`) on their cell loaded from the log, with the
//! score gates a single post is decided on (`post.rs`): a row whose exact
//! post is already in the cell's history is `unchanged` (the same file twice
//! changes nothing), one older than the kept score is refused without a
//! record. A chunk's events are appended in one transaction that first
//! checks those gates still hold. A dry run takes the very same decisions,
//! in the same function, on an in-memory copy of the cells it touches, and
//! appends nothing.

mod checks;
mod cli;
mod post;
mod source;

use std::collections::HashMap;

use cqrs_es::Aggregate;
use gradebook_domain::score::Score;
use gradebook_domain::CourseId;
use gradebook_projections::tables::queries::{self, QueryError};
use serde::Serialize;

use crate::engine::{Engine, EngineError};

pub use checks::{check_row, CheckedRow};
pub use cli::{cli, BackfillArgs};
pub use post::CHUNK_ROWS;
pub use source::{CsvRows, Format, JsonLines, RowSource, UnifyLineEnds};

/// The columns of a backfill file, in the documented order.
pub const COLUMNS: [&str; 6] = [
    "line_item_id",
    "user_id",
    "score_given",
    "score_maximum",
    "timestamp",
    "comment",
];

/// One row that did not land, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = BackfillRejection)]
pub struct Rejection {
    /// Counted from 1; in CSV the header is line 1.
    pub line: u64,
    pub reason: &'static str,
    pub message: String,
}

/// The answer to a backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = BackfillReport)]
pub struct Report {
    pub batch_id: String,
    pub dry_run: bool,
    pub accepted: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejection>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("course {0} does not exist")]
    CourseNotFound(CourseId),
    #[error("course {0} is locked; unlock it to backfill grades (nothing was changed)")]
    CourseLocked(CourseId),
    #[error("{0}")]
    InvalidHeader(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<QueryError> for BackfillError {
    fn from(e: QueryError) -> Self {
        BackfillError::Engine(e.into())
    }
}

/// Who runs a batch, and how.
#[derive(Debug, Clone)]
pub struct Batch {
    pub course_id: CourseId,
    pub actor: String,
    pub request_id: String,
    pub batch_id: String,
    pub dry_run: bool,
}

impl Batch {
    pub fn new(
        course_id: CourseId,
        actor: impl Into<String>,
        request_id: impl Into<String>,
    ) -> Self {
        Self {
            course_id,
            actor: actor.into(),
            request_id: request_id.into(),
            batch_id: uuid::Uuid::new_v4().simple().to_string(),
            dry_run: false,
        }
    }
}

/// A row's fields as text, before any checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRow {
    pub line_item_id: String,
    pub user_id: String,
    pub score_given: String,
    pub score_maximum: String,
    pub timestamp: String,
    pub comment: Option<String>,
}

fn reject(line: u64, reason: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        line,
        reason,
        message: message.into(),
    }
}

/// A row's result: `Ok(true)` applied, `Ok(false)` unchanged.
type RowResult = Result<bool, Rejection>;

/// Runs a batch over `rows`. `progress` is told how many bytes have been
/// read after each chunk of rows.
///
/// Rows go in chunks of [`CHUNK_ROWS`]: the facts and the cells a chunk
/// touches are read in bulk, each row runs the score command of the domain
/// on its cell in memory (so every rule applies as for a single post), and
/// the chunk's events are appended in one transaction. If another writer
/// appended to one of the cells meanwhile, the chunk is redone from fresh
/// reads, and after a few such conflicts posted row by row. The batch
/// waits once, at the end, for the projector to apply what it appended.
pub async fn run(
    engine: &Engine,
    batch: &Batch,
    rows: &mut (dyn RowSource + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Report, BackfillError> {
    let course = &batch.course_id;
    let view = queries::load_course_view(&engine.db, course.as_str())
        .await?
        .ok_or_else(|| BackfillError::CourseNotFound(course.clone()))?;
    if view.locked {
        return Err(BackfillError::CourseLocked(course.clone()));
    }
    let mut report = Report {
        batch_id: batch.batch_id.clone(),
        dry_run: batch.dry_run,
        accepted: 0,
        unchanged: 0,
        rejected: 0,
        rejections: Vec::new(),
    };
    // Dry run: the cells as they would be, for the rows already taken.
    let mut simulated = HashMap::new();
    // The last event appended, to wait for its projection.
    let mut last: Option<(String, usize)> = None;
    let mut appended = 0u64;

    loop {
        let chunk: Vec<(u64, Result<CheckedRow, Rejection>)> =
            std::iter::from_fn(|| rows.next_row())
                .take(CHUNK_ROWS)
                .map(|(line, row)| (line, row.and_then(|raw| check_row(&view, line, raw))))
                .collect();
        if chunk.is_empty() {
            break;
        }
        let results = if batch.dry_run {
            post::dry_run_chunk(engine, batch, &chunk, &mut simulated).await?
        } else {
            let (results, tail, n) = post::post_chunk(engine, batch, &chunk).await?;
            if tail.is_some() {
                last = tail;
                appended += n;
            }
            // SQLite has one writer at a time: let the projector apply this
            // chunk before the next append, rather than have the two wait on
            // each other's lock (SQLite's busy wait sleeps for milliseconds).
            if matches!(engine.db, gradebook_projections::db::Db::Sqlite(_)) {
                if let Some(tail) = last.take() {
                    wait_projected(engine, batch, tail, n).await?;
                }
            }
            results
        };
        for r in results {
            match r {
                Ok(true) => report.accepted += 1,
                Ok(false) => report.unchanged += 1,
                Err(r) => {
                    report.rejected += 1;
                    report.rejections.push(r);
                }
            }
        }
        progress(rows.bytes_read());
    }
    if let Some(tail) = last {
        // Answer once the read side shows the batch, as a single post does.
        wait_projected(engine, batch, tail, appended).await?;
    }
    Ok(report)
}

/// Waits until the projector has applied the event `(aggregate id,
/// sequence)`, allowing time for the `appended` events before it.
async fn wait_projected(
    engine: &Engine,
    batch: &Batch,
    (id, sequence): (String, usize),
    appended: u64,
) -> Result<(), BackfillError> {
    let wait = std::time::Duration::from_secs(5) + std::time::Duration::from_millis(appended);
    if !engine
        .wait_applied(Score::TYPE, &id, sequence as i64, wait)
        .await?
    {
        tracing::warn!(batch = %batch.batch_id, "projector did not catch up with the backfill in time; answering anyway");
    }
    Ok(())
}
