//! Backfill: loading a registrar's file of past grades (CSV or JSON lines)
//! into a course as score posts with their original timestamps, shared by
//! `POST /api/courses/{id}/backfill` and `gradebook backfill`.
//!
//! The file is read as a stream, a chunk of rows at a time, and only
//! rejections are kept in memory. Every row is checked before anything is
//! posted for it, so a row that cannot land (unknown line item, someone who
//! is not an active learner, a bad number or time, a score older than the
//! one kept) is reported with its line number and records nothing. A row
//! whose exact post is already in the cell's history is `unchanged`: sending
//! the same file twice changes nothing the second time.
//!
//! Rows that do post run the score rules of the domain (`Score::decide`)
//! on their cell loaded from the log, with the score gates a single post is
//! decided on; a chunk's events are appended in one transaction that
//! first checks those gates still hold (see [`run`]). A dry run takes the
//! very same decisions, in the same function, on an in-memory copy of the
//! cells it touches, and appends nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, FixedOffset, Utc};
use cqrs_es::Aggregate;
use gradebook_domain::enrollment::EnrollmentStatus;
use gradebook_domain::ids::aggregate_id;
use gradebook_domain::line_item::MAX_SCORE_MAXIMUM;
use gradebook_domain::number::{read_decimal, ReadDecimal};
use gradebook_domain::score::{
    comment_is_clean, ActivityProgress, GradingProgress, Score, ScoreCommand, ScoreEvent,
    ScoreFacts, ScoreOutcome, ScorePost, MAX_COMMENT_CHARS,
};
use gradebook_domain::{CommandMeta, CourseId, DomainError, LineItemId, Source, UserId};
use gradebook_projections::tables::queries::{self, QueryError};
use gradebook_projections::tables::view::CourseView;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::json::{ObjectError, SentObject};

/// The columns of a backfill file, in the documented order.
pub const COLUMNS: [&str; 6] = [
    "line_item_id",
    "user_id",
    "score_given",
    "score_maximum",
    "timestamp",
    "comment",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// `text/csv`; `application/x-ndjson`, `application/jsonl` (and the
    /// common `application/json-lines`, `application/ndjson`).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson"
            | "application/jsonl"
            | "application/json-lines"
            | "application/ndjson"
            | "application/x-jsonlines" => Some(Format::JsonLines),
            _ => None,
        }
    }

    /// From a file name: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

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

// ---- reading rows ----

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

/// Yields `(line, row or rejection)` and how many bytes have been read.
pub trait RowSource {
    fn next_row(&mut self) -> Option<(u64, Result<RawRow, Rejection>)>;
    fn bytes_read(&self) -> u64;
}

/// Turns `\r\n` and a lone `\r` into `\n` as the bytes stream by, and ends
/// the last line with one, so the CSV reader counts lines the way an editor
/// shows them whatever the file mixes; also counts the bytes read, for
/// progress.
pub struct UnifyLineEnds<R: Read> {
    inner: R,
    after_cr: bool,
    /// The last byte handed out; `None` before the first and after the end.
    last: Option<u8>,
    raw_bytes: u64,
}

impl<R: Read> UnifyLineEnds<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            after_cr: false,
            last: None,
            raw_bytes: 0,
        }
    }
}

impl<R: Read> Read for UnifyLineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(match self.last.take() {
                    Some(b) if b != b'\n' => {
                        buf[0] = b'\n';
                        1
                    }
                    _ => 0,
                });
            }
            self.raw_bytes += n as u64;
            let mut out = 0;
            for i in 0..n {
                let b = buf[i];
                if self.after_cr && b == b'\n' {
                    self.after_cr = false;
                    continue;
                }
                self.after_cr = b == b'\r';
                buf[out] = if b == b'\r' { b'\n' } else { b };
                out += 1;
            }
            // A read of only the `\n` of a `\r\n` yields nothing; 0 would mean EOF.
            if out > 0 {
                self.last = Some(buf[out - 1]);
                return Ok(out);
            }
        }
    }
}

/// CSV with a header line naming the columns (any order; `comment` may be
/// left out). A UTF-8 BOM is skipped; `\n`, `\r\n` and `\r` all end lines.
pub struct CsvRows<R: Read> {
    reader: csv::Reader<UnifyLineEnds<R>>,
    /// Column index of each of [`COLUMNS`].
    index: [Option<usize>; 6],
    width: usize,
    record: csv::ByteRecord,
}

impl<R: Read> CsvRows<R> {
    pub fn new(input: R) -> Result<Self, BackfillError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(UnifyLineEnds::new(input));
        let mut header = csv::ByteRecord::new();
        let read = reader.read_byte_record(&mut header).map_err(|e| {
            BackfillError::InvalidHeader(format!("line 1 cannot be read as CSV: {e}"))
        })?;
        if !read {
            return Err(BackfillError::InvalidHeader(format!(
                "the file is empty; the first line must be the header {}",
                COLUMNS.join(",")
            )));
        }
        let mut index = [None; 6];
        for (i, field) in header.iter().enumerate() {
            let name = std::str::from_utf8(field)
                .map_err(|_| BackfillError::InvalidHeader("the header is not UTF-8".into()))?;
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(col) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(BackfillError::InvalidHeader(format!(
                    "unknown column {name:?} in the header; the columns are {}",
                    COLUMNS.join(",")
                )));
            };
            if index[col].replace(i).is_some() {
                return Err(BackfillError::InvalidHeader(format!(
                    "column {name:?} appears twice in the header"
                )));
            }
        }
        let missing: Vec<&str> = COLUMNS[..5]
            .iter()
            .zip(&index)
            .filter(|(_, i)| i.is_none())
            .map(|(c, _)| *c)
            .collect();
        if !missing.is_empty() {
            return Err(BackfillError::InvalidHeader(format!(
                "the header lacks {}; the first line must be {}",
                missing.join(", "),
                COLUMNS.join(",")
            )));
        }
        Ok(Self {
            reader,
            index,
            width: header.len(),
            record: csv::ByteRecord::new(),
        })
    }

    fn field(&self, line: u64, col: usize) -> Result<Option<String>, Rejection> {
        let Some(i) = self.index[col] else {
            return Ok(None);
        };
        let bytes = self.record.get(i).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_string()))
            .map_err(|_| {
                reject(
                    line,
                    "csv_error",
                    format!("{} is not valid UTF-8", COLUMNS[col]),
                )
            })
    }
}

impl<R: Read> RowSource for CsvRows<R> {
    fn next_row(&mut self) -> Option<(u64, Result<RawRow, Rejection>)> {
        let mut record = std::mem::take(&mut self.record);
        let read = self.reader.read_byte_record(&mut record);
        self.record = record;
        match read {
            Ok(false) => None,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                // An IO error ends the file; a malformed record is one rejection.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "csv_error",
                            format!("the file could not be read further: {e}"),
                        )),
                    ));
                }
                Some((line, Err(reject(line, "csv_error", e.to_string()))))
            }
            Ok(true) => {
                // The reader dates a record from before the blank lines that
                // precede it; its end, less the lines inside it, is exact
                // (every record ends with a line break, see UnifyLineEnds).
                let start = self.record.position().map_or(0, |p| p.line());
                let inside: u64 = self
                    .record
                    .iter()
                    .map(|f| f.iter().filter(|b| **b == b'\n').count() as u64)
                    .sum();
                let end = self.reader.position().line();
                let line = start.max(end.saturating_sub(inside + 1));
                if self.record.len() != self.width {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "csv_error",
                            format!(
                                "the line has {} fields but the header has {} (check quoting and commas)",
                                self.record.len(),
                                self.width
                            ),
                        )),
                    ));
                }
                let row = (|| {
                    Ok(RawRow {
                        line_item_id: self.field(line, 0)?.unwrap_or_default(),
                        user_id: self.field(line, 1)?.unwrap_or_default(),
                        score_given: self.field(line, 2)?.unwrap_or_default(),
                        score_maximum: self.field(line, 3)?.unwrap_or_default(),
                        timestamp: self.field(line, 4)?.unwrap_or_default(),
                        comment: self.field(line, 5)?,
                    })
                })();
                Some((line, row))
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.reader.get_ref().raw_bytes
    }
}

/// One JSON object per line with the [`COLUMNS`] as keys; numbers may be
/// JSON numbers or strings. Blank lines are skipped (and counted).
pub struct JsonLines<R: Read> {
    reader: BufReader<R>,
    line: u64,
    bytes: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: Read> JsonLines<R> {
    pub fn new(input: R) -> Self {
        Self {
            reader: BufReader::new(input),
            line: 0,
            bytes: 0,
            buf: Vec::new(),
            done: false,
        }
    }
}

fn json_text(obj: &SentObject, key: &str) -> Option<String> {
    match obj.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        // A number's own digits, as sent: serde_json's reading of it went
        // through a binary float.
        serde_json::Value::Number(_) => obj.text(key).map(str::to_string),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl<R: Read> RowSource for JsonLines<R> {
    fn next_row(&mut self) -> Option<(u64, Result<RawRow, Rejection>)> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some((
                        self.line,
                        Err(reject(
                            self.line,
                            "invalid_json",
                            format!("the file could not be read further: {e}"),
                        )),
                    ));
                }
            };
            self.bytes += n as u64;
            self.line += 1;
            let line = self.line;
            let mut bytes: &[u8] = &self.buf;
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Some((
                    line,
                    Err(reject(line, "invalid_json", "the line is not valid UTF-8")),
                ));
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let obj = match SentObject::from_slice(text.as_bytes()) {
                Ok(o) => o,
                Err(ObjectError::NotAnObject) => {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "invalid_json",
                            "each line must be one JSON object",
                        )),
                    ))
                }
                Err(ObjectError::Json(e)) => {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "invalid_json",
                            format!("the line is not valid JSON: {e}"),
                        )),
                    ))
                }
            };
            if let Some(k) = obj.values().keys().find(|k| !COLUMNS.contains(&k.as_str())) {
                return Some((
                    line,
                    Err(reject(
                        line,
                        "invalid_json",
                        format!("unknown key {k:?}; the keys are {}", COLUMNS.join(", ")),
                    )),
                ));
            }
            let row = RawRow {
                line_item_id: json_text(&obj, "line_item_id").unwrap_or_default(),
                user_id: json_text(&obj, "user_id").unwrap_or_default(),
                score_given: json_text(&obj, "score_given").unwrap_or_default(),
                score_maximum: json_text(&obj, "score_maximum").unwrap_or_default(),
                timestamp: json_text(&obj, "timestamp").unwrap_or_default(),
                comment: json_text(&obj, "comment"),
            };
            return Some((line, Ok(row)));
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

// ---- checking rows ----

/// A row that passed every check of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRow {
    pub line_item_id: LineItemId,
    pub user_id: UserId,
    pub post: ScorePost,
}

/// A cell's number read from its digits; with the text, when a decimal
/// had to round it, to keep beside the value.
fn number(line: u64, what: &str, s: &str) -> Result<(ReadDecimal, Option<String>), Rejection> {
    let s = s.trim();
    if s.is_empty() {
        return Err(reject(
            line,
            "invalid_score",
            format!("{what} is empty; every row needs a number"),
        ));
    }
    let shown: String = s.chars().take(40).collect();
    match read_decimal(s) {
        Ok(read) => Ok((read, (!read.is_exact()).then(|| s.to_string()))),
        Err(e) => Err(reject(
            line,
            "invalid_score",
            format!("{what} {shown:?} {e}"),
        )),
    }
}

/// Checks a row against itself and the course (as the view holds it).
pub fn check_row(view: &CourseView, line: u64, raw: RawRow) -> Result<CheckedRow, Rejection> {
    let item_text = raw.line_item_id.trim();
    let line_item_id = LineItemId::parse(item_text).map_err(|_| {
        reject(
            line,
            "unknown_line_item",
            format!("{item_text:?} is not a line item id"),
        )
    })?;
    match view
        .line_items
        .iter()
        .find(|i| i.line_item_id == line_item_id.as_str())
    {
        None => {
            return Err(reject(
                line,
                "unknown_line_item",
                format!("the course has no line item {line_item_id}"),
            ))
        }
        Some(i) if i.deleted => {
            return Err(reject(
                line,
                "line_item_deleted",
                format!("line item {line_item_id} was deleted; it takes no scores"),
            ))
        }
        Some(_) => {}
    }
    let user_text = raw.user_id.trim();
    let user_id = UserId::parse(user_text).map_err(|_| {
        reject(
            line,
            "user_not_enrolled",
            format!("{user_text:?} is not a user id"),
        )
    })?;
    match view.enrollments.get(user_id.as_str()) {
        Some(e) if e.is_learner() && e.status == EnrollmentStatus::Active => {}
        Some(e) => {
            return Err(reject(
                line,
                "user_not_enrolled",
                format!(
                    "{user_id} is enrolled as {} ({}), not as an active learner",
                    e.role.name(),
                    e.status.as_str()
                ),
            ))
        }
        None => {
            return Err(reject(
                line,
                "user_not_enrolled",
                format!("{user_id} is not enrolled in the course"),
            ))
        }
    }
    let (given, given_as_sent) = number(line, "score_given", &raw.score_given)?;
    let (maximum, maximum_as_sent) = number(line, "score_maximum", &raw.score_maximum)?;
    // The bounds hold for the numbers as written, not only as rounded.
    let top = Decimal::from(MAX_SCORE_MAXIMUM);
    if !gradebook_domain::line_item::maximum_in_range(maximum.value)
        || !maximum.within(Decimal::ZERO, top)
    {
        return Err(reject(
            line,
            "invalid_score",
            format!("score_maximum must be greater than 0 and at most {MAX_SCORE_MAXIMUM}"),
        ));
    }
    if !given.within(
        Decimal::ZERO,
        Decimal::from(gradebook_domain::score::MAX_SCORE_GIVEN),
    ) {
        return Err(reject(
            line,
            "invalid_score",
            format!(
                "score_given must be a number from 0 to {}",
                gradebook_domain::score::MAX_SCORE_GIVEN
            ),
        ));
    }
    let ts = raw.timestamp.trim();
    let timestamp = gradebook_domain::time::parse(ts)
        .map_err(|e| reject(line, "invalid_timestamp", format!("timestamp {ts:?} {e}")))?;
    let comment = raw.comment.filter(|c| !c.trim().is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(reject(
            line,
            "invalid_comment",
            format!("comment is longer than {MAX_COMMENT_CHARS} characters"),
        ));
    }
    if comment.as_ref().is_some_and(|c| !comment_is_clean(c)) {
        return Err(reject(
            line,
            "invalid_comment",
            "comment holds control characters other than line breaks and tabs",
        ));
    }
    Ok(CheckedRow {
        line_item_id,
        user_id,
        post: ScorePost {
            score_given: Some(given.value),
            score_maximum: Some(maximum.value),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp,
            comment,
            score_given_as_sent: given_as_sent,
            score_maximum_as_sent: maximum_as_sent,
        },
    })
}

/// What a cell already holds: every post applied to it, and the kept one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellHistory {
    pub applied: Vec<ScorePost>,
}

impl CellHistory {
    pub fn kept(&self) -> Option<&ScorePost> {
        self.applied.last()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The exact post is already in the cell's history.
    Unchanged,
    /// Older than the kept score: not applied, not recorded.
    Stale {
        kept: DateTime<FixedOffset>,
    },
    Post,
}

/// Idempotent per (line item, user, timestamp): a post already applied with
/// the same values is unchanged, whether or not it is still the kept one.
pub fn decide(post: &ScorePost, cell: &CellHistory) -> Decision {
    if cell.applied.iter().any(|p| p == post) {
        return Decision::Unchanged;
    }
    match cell.kept() {
        Some(k) if post.timestamp < k.timestamp => Decision::Stale { kept: k.timestamp },
        _ => Decision::Post,
    }
}

/// Rows read, checked, decided and appended together: one query for the
/// facts, one for the cells, one transaction for the events.
pub const CHUNK_ROWS: usize = 1000;
/// How often a chunk is redone from fresh reads when another writer
/// appended to one of its cells first, before it goes row by row.
const CHUNK_ATTEMPTS: usize = 3;

type CellKey = (LineItemId, UserId);

/// One cell as the log holds it: the aggregate's state, its sequence and
/// every post applied to it.
#[derive(Debug, Clone, Default)]
struct Cell {
    state: Score,
    sequence: usize,
    history: CellHistory,
}

/// Folds the log's events of the given cells (one query), as loading each
/// aggregate would; cells without events are left out.
async fn load_cells(
    engine: &Engine,
    course: &CourseId,
    keys: &[CellKey],
) -> Result<HashMap<CellKey, Cell>, BackfillError> {
    let mut cells = HashMap::new();
    if keys.is_empty() {
        return Ok(cells);
    }
    let by_id: HashMap<String, &CellKey> = keys
        .iter()
        .map(|k| (aggregate_id::score(course, &k.0, &k.1), k))
        .collect();
    let ids: Vec<&String> = by_id.keys().collect();
    let rows: Vec<(String, i64, String)> = match &engine.db {
        // An IN list on the key's second column is applied as a filter over
        // every score event on PostgreSQL 15; joining to the array probes
        // the key once per id.
        gradebook_projections::db::Db::Postgres(pool) => sqlx::query_as(
            "SELECT aggregate_id, sequence, payload::text AS payload FROM events
              WHERE (aggregate_type, aggregate_id) IN (SELECT $1, unnest($2::text[]))
              ORDER BY aggregate_id, sequence",
        )
        .bind(Score::TYPE)
        .bind(&ids)
        .fetch_all(pool)
        .await
        .map_err(EngineError::from)?,
        // Plain `?`: SQLite finds a numbered parameter by a linear scan.
        gradebook_projections::db::Db::Sqlite(pool) => {
            let sql = format!(
                "SELECT aggregate_id, sequence, payload FROM events
                  WHERE aggregate_type = ? AND aggregate_id IN ({})
                  ORDER BY aggregate_id, sequence",
                vec!["?"; ids.len()].join(",")
            );
            let mut q = sqlx::query_as(&sql).bind(Score::TYPE);
            for id in &ids {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await.map_err(EngineError::from)?
        }
    };
    for (id, sequence, payload) in rows {
        let Some(key) = by_id.get(&id) else { continue };
        let event: ScoreEvent = serde_json::from_str(&payload).map_err(|e| {
            EngineError::Internal(format!("score event {id}#{sequence} cannot be read: {e}"))
        })?;
        let cell: &mut Cell = cells.entry((*key).clone()).or_default();
        if let ScoreEvent::ScoreAccepted { post, .. } | ScoreEvent::ScoreCleared { post, .. } =
            &event
        {
            cell.history.applied.push(post.clone());
        }
        cell.state.apply(event);
        cell.sequence = sequence as usize;
    }
    Ok(cells)
}

/// A row's result: `Ok(true)` applied, `Ok(false)` unchanged.
type RowResult = Result<bool, Rejection>;

fn stale(line: u64, row: &CheckedRow, kept: DateTime<FixedOffset>) -> Rejection {
    reject(
        line,
        "stale",
        format!(
            "a newer score (timestamp {}) is kept for {} on {}; this older one is not applied",
            kept.to_rfc3339(),
            row.user_id,
            row.line_item_id
        ),
    )
}

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
    let mut simulated: HashMap<CellKey, Cell> = HashMap::new();
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
            dry_run_chunk(engine, batch, &chunk, &mut simulated).await?
        } else {
            let (results, tail, n) = post_chunk(engine, batch, &chunk).await?;
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

/// The cells the chunk's well-formed rows touch (repeats included).
fn cell_keys(chunk: &[(u64, Result<CheckedRow, Rejection>)]) -> impl Iterator<Item = CellKey> + '_ {
    chunk
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|r| (r.line_item_id.clone(), r.user_id.clone()))
}

async fn dry_run_chunk(
    engine: &Engine,
    batch: &Batch,
    chunk: &[(u64, Result<CheckedRow, Rejection>)],
    simulated: &mut HashMap<CellKey, Cell>,
) -> Result<Vec<RowResult>, BackfillError> {
    let course = &batch.course_id;
    let mut missing: Vec<CellKey> = cell_keys(chunk)
        .filter(|k| !simulated.contains_key(k))
        .collect();
    missing.sort();
    missing.dedup();
    simulated.extend(load_cells(engine, course, &missing).await?);
    // Nothing is written, not even a gate worked out from the log.
    let gates = chunk_gates(engine, course, chunk, false).await?;
    Ok(decide_chunk(batch, chunk, &gates, simulated)?.results)
}

/// The score gates of a chunk's rows, by key: the course's, and each row's
/// line item and enrollment. `fill` stores a gate worked out from the log.
async fn chunk_gates(
    engine: &Engine,
    course: &CourseId,
    chunk: &[(u64, Result<CheckedRow, Rejection>)],
    fill: bool,
) -> Result<HashMap<String, bool>, BackfillError> {
    let mut keys = vec![course_gate(course)];
    for (item, user) in cell_keys(chunk) {
        keys.push(item_gate(course, &item));
        keys.push(learner_gate(course, &user));
    }
    keys.sort();
    keys.dedup();
    let open = crate::store::read_gates::<DomainError>(&engine.db, &keys, fill)
        .await
        .map_err(crate::engine::store_error)?;
    Ok(keys.into_iter().zip(open).collect())
}

fn course_gate(course: &CourseId) -> String {
    crate::store::gate_key(
        gradebook_domain::course::Course::TYPE,
        &aggregate_id::course(course),
    )
}

fn item_gate(course: &CourseId, item: &LineItemId) -> String {
    crate::store::gate_key(
        gradebook_domain::line_item::LineItem::TYPE,
        &aggregate_id::line_item(course, item),
    )
}

fn learner_gate(course: &CourseId, user: &UserId) -> String {
    crate::store::gate_key(
        gradebook_domain::enrollment::Enrollment::TYPE,
        &aggregate_id::enrollment(course, user),
    )
}

/// What a chunk's rows came to: each row's result, the events to append
/// (with each cell's next sequence), the outcome of each, and the last
/// event's (aggregate id, sequence).
struct Decided {
    results: Vec<RowResult>,
    events: Vec<cqrs_es::persist::SerializedEvent>,
    outcomes: Vec<ScoreOutcome>,
    last: Option<(String, usize)>,
}

/// Decides a chunk's rows in order, each on its cell as the rows before it
/// left it, with the domain's score rules and the given gates: the one
/// decision path of the dry run and the real run.
fn decide_chunk(
    batch: &Batch,
    chunk: &[(u64, Result<CheckedRow, Rejection>)],
    gates: &HashMap<String, bool>,
    cells: &mut HashMap<CellKey, Cell>,
) -> Result<Decided, BackfillError> {
    let course = &batch.course_id;
    let gate = |key: String| gates.get(&key).copied().unwrap_or(false);
    let course_open = gate(course_gate(course));
    let mut decided = Decided {
        results: Vec::with_capacity(chunk.len()),
        events: Vec::new(),
        outcomes: Vec::new(),
        last: None,
    };
    for (line, row) in chunk {
        let row = match row {
            Err(r) => {
                decided.results.push(Err(r.clone()));
                continue;
            }
            Ok(row) => row,
        };
        let key = (row.line_item_id.clone(), row.user_id.clone());
        let cell = cells.entry(key).or_default();
        let result = match decide(&row.post, &cell.history) {
            Decision::Unchanged => Ok(false),
            Decision::Stale { kept } => Err(stale(*line, row, kept)),
            Decision::Post => {
                let meta = row_meta(batch);
                let command = ScoreCommand::Post {
                    course_id: course.clone(),
                    line_item_id: row.line_item_id.clone(),
                    user_id: row.user_id.clone(),
                    post: row.post.clone(),
                    facts: ScoreFacts {
                        course_locked: !course_open,
                        line_item_deleted: !gate(item_gate(course, &row.line_item_id)),
                        learner_active: gate(learner_gate(course, &row.user_id)),
                        received_at: Some(meta.received_at),
                    },
                };
                match cell.state.decide(command) {
                    Err(e) => Err(reject(*line, e.code(), e.to_string())),
                    Ok(decision) => {
                        let id = aggregate_id::score(course, &row.line_item_id, &row.user_id);
                        for event in decision.events {
                            if let ScoreEvent::ScoreAccepted { post, .. }
                            | ScoreEvent::ScoreCleared { post, .. } = &event
                            {
                                cell.history.applied.push(post.clone());
                            }
                            cell.sequence += 1;
                            let envelope = cqrs_es::EventEnvelope::<Score> {
                                aggregate_id: id.clone(),
                                sequence: cell.sequence,
                                payload: event.clone(),
                                metadata: meta.to_map(),
                            };
                            decided.events.push(
                                cqrs_es::persist::SerializedEvent::try_from(&envelope)
                                    .map_err(|e| EngineError::Internal(e.to_string()))?,
                            );
                            cell.state.apply(event);
                            decided.last = Some((id.clone(), cell.sequence));
                        }
                        decided.outcomes.push(decision.outcome);
                        outcome_result(*line, decision.outcome)
                    }
                }
            }
        };
        decided.results.push(result);
    }
    Ok(decided)
}

/// Decides and posts one chunk; returns each row's result, the last event
/// appended (aggregate id, sequence) and how many were appended.
async fn post_chunk(
    engine: &Engine,
    batch: &Batch,
    chunk: &[(u64, Result<CheckedRow, Rejection>)],
) -> Result<(Vec<RowResult>, Option<(String, usize)>, u64), BackfillError> {
    let course = &batch.course_id;
    let mut keys: Vec<CellKey> = cell_keys(chunk).collect();
    keys.sort();
    keys.dedup();
    for _ in 0..CHUNK_ATTEMPTS {
        let gates = chunk_gates(engine, course, chunk, true).await?;
        let mut cells = load_cells(engine, course, &keys).await?;
        let decided = decide_chunk(batch, chunk, &gates, &mut cells)?;
        let expected: Vec<(String, bool)> = gates.into_iter().collect();
        match crate::store::append_behind_gates::<Score>(
            &engine.db,
            &decided.events,
            course.as_str(),
            &expected,
        )
        .await
        {
            Ok(true) => {
                for o in &decided.outcomes {
                    crate::metrics::score_outcome(o);
                }
                if !decided.events.is_empty() {
                    engine.projection().wake();
                }
                return Ok((decided.results, decided.last, decided.events.len() as u64));
            }
            // A gate changed (a lock, a drop, a deletion) or another writer
            // appended to one of the cells: decide again on fresh reads.
            Ok(false) | Err(cqrs_es::AggregateError::AggregateConflict) => continue,
            Err(e) => return Err(crate::engine::store_error(e).into()),
        }
    }
    // Contended: post row by row, each through the engine's own retries.
    let mut out = Vec::with_capacity(chunk.len());
    for (line, row) in chunk {
        out.push(match row {
            Err(r) => Err(r.clone()),
            Ok(row) => post_one(engine, batch, row, *line).await?,
        });
    }
    Ok((out, None, 0))
}

fn row_meta(batch: &Batch) -> CommandMeta {
    CommandMeta::new(
        batch.actor.clone(),
        Source::Backfill,
        batch.request_id.clone(),
        Utc::now(),
    )
    .with_batch(batch.batch_id.clone())
}

/// The row's result for what the score command did.
fn outcome_result(line: u64, outcome: ScoreOutcome) -> RowResult {
    match outcome {
        ScoreOutcome::Accepted | ScoreOutcome::Cleared => Ok(true),
        ScoreOutcome::Unchanged => Ok(false),
        // Something changed under the batch (a lock, a newer score, a drop):
        // the refusal is recorded, as it would be for a tool.
        ScoreOutcome::IgnoredStale => Err(reject(
            line,
            "stale",
            "a newer score arrived while the batch ran; this one was recorded as ignored",
        )),
        ScoreOutcome::Rejected(reason) => Err(reject(
            line,
            reason.code(),
            format!(
                "refused while the batch ran ({}); the refusal is recorded",
                reason.code()
            ),
        )),
    }
}

/// One row by itself, as every row went before batching: its cell read
/// from the log, then a single post through the engine.
async fn post_one(
    engine: &Engine,
    batch: &Batch,
    row: &CheckedRow,
    line: u64,
) -> Result<RowResult, BackfillError> {
    let key = (row.line_item_id.clone(), row.user_id.clone());
    let cell = load_cells(engine, &batch.course_id, std::slice::from_ref(&key))
        .await?
        .remove(&key)
        .unwrap_or_default();
    match decide(&row.post, &cell.history) {
        Decision::Unchanged => Ok(Ok(false)),
        Decision::Stale { kept } => Ok(Err(stale(line, row, kept))),
        Decision::Post => post(engine, batch, row, line).await,
    }
}

/// Posts one checked row through the engine.
async fn post(
    engine: &Engine,
    batch: &Batch,
    row: &CheckedRow,
    line: u64,
) -> Result<RowResult, BackfillError> {
    let result = engine
        .post_score(
            &batch.course_id,
            &row.line_item_id,
            &row.user_id,
            row.post.clone(),
            &row_meta(batch),
        )
        .await;
    Ok(match result {
        Ok(outcome) => outcome_result(line, outcome),
        Err(EngineError::Domain(e)) => Err(reject(line, e.code(), e.to_string())),
        Err(e) => return Err(e.into()),
    })
}

// ---- the command line ----

/// `gradebook backfill --course ID FILE [--dry-run]`.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// The course the grades belong to.
    #[arg(long)]
    pub course: String,
    /// A CSV file (header line_item_id,user_id,score_given,score_maximum,timestamp,comment)
    /// or a JSON lines file.
    pub file: std::path::PathBuf,
    /// Check every row and report, appending nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The file's format; by default from its extension (.csv, .jsonl, .ndjson).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    pub format: Option<String>,
}

/// Runs a backfill file against the configured store directly, with a
/// progress bar, and prints the report as JSON on standard output.
pub async fn cli(settings: &crate::config::Settings, args: BackfillArgs) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};

    let course_id = CourseId::parse(args.course.clone())?;
    let format = match args.format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::JsonLines,
        None => Format::from_path(&args.file).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot tell the format of {}: name it .csv or .jsonl, or pass --format",
                args.file.display()
            )
        })?,
    };
    let file = std::fs::File::open(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);

    let db = gradebook_projections::db::Db::connect(&settings.database_url, 4).await?;
    let (engine, projector) = Engine::start(db).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = tokio::spawn(projector.run(async {
        let _ = stopped.await;
    }));

    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let mut batch = Batch::new(course_id, actor, String::new());
    batch.request_id = format!("backfill-{}", batch.batch_id);
    batch.dry_run = args.dry_run;

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} backfill [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = async {
        let mut rows: Box<dyn RowSource + Send> = match format {
            Format::Csv => Box::new(CsvRows::new(file)?),
            Format::JsonLines => Box::new(JsonLines::new(file)),
        };
        let progress_bar = bar.clone();
        run(&engine, &batch, rows.as_mut(), &mut move |n| {
            progress_bar.set_position(n)
        })
        .await
    }
    .await;
    bar.finish_and_clear();
    let _ = stop.send(());
    let _ = projector.await;

    let report = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "{}batch {}: {} accepted, {} unchanged, {} rejected",
        if report.dry_run {
            "dry run, nothing recorded: "
        } else {
            ""
        },
        report.batch_id,
        report.accepted,
        report.unchanged,
        report.rejected
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn rows(src: &mut dyn RowSource) -> Vec<(u64, Result<RawRow, Rejection>)> {
        std::iter::from_fn(|| src.next_row()).collect()
    }

    #[test]
    fn csv_with_a_bom_and_mixed_line_endings_reads_every_row_with_its_line() {
        let text = "\u{feff}line_item_id,user_id,score_given,score_maximum,timestamp,comment\r\nhw1,ada,9,10,2026-09-10T10:00:00Z,\nhw2,ada,\"8.5\",10,2026-09-17T10:00:00Z,\"late, but fine\"\r\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let got = rows(&mut src);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        assert_eq!(got[1].0, 3);
        let second = got[1].1.clone().unwrap();
        assert_eq!(second.score_given, "8.5");
        assert_eq!(second.comment.as_deref(), Some("late, but fine"));
        assert_eq!(src.bytes_read(), text.len() as u64);
    }

    #[test]
    fn csv_line_numbers_count_blank_lines_and_lone_carriage_returns() {
        let text = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\r\rhw1,ada,9,10,2026-09-10T10:00:00Z,\"two\nlines\"\n\nhw2,ada,9,10,2026-09-10T10:00:00Z,\r\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let got = rows(&mut src);
        let lines: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(lines, vec![3, 6]);
    }

    #[test]
    fn csv_columns_may_come_in_any_order_and_comment_may_be_left_out() {
        let text = "user_id,line_item_id,timestamp,score_maximum,score_given\nada,hw1,2026-09-10T10:00:00Z,10,9\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let row = rows(&mut src).remove(0).1.unwrap();
        assert_eq!(row.line_item_id, "hw1");
        assert_eq!(row.user_id, "ada");
        assert_eq!(row.score_given, "9");
        assert_eq!(row.comment, None);
    }

    #[test]
    fn a_csv_line_with_the_wrong_number_of_fields_is_rejected_with_its_line() {
        let text = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\nhw1,ada,9,10\nhw1,ada,9,10,2026-09-10T10:00:00Z,\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let got = rows(&mut src);
        let bad = got[0].1.clone().unwrap_err();
        assert_eq!((bad.line, bad.reason), (2, "csv_error"));
        assert!(got[1].1.is_ok());
    }

    #[test]
    fn a_csv_without_its_header_is_refused_whole() {
        for text in [
            "",
            "hw1,ada,9,10,2026-09-10T10:00:00Z,\n",
            "line_item_id,user_id\n",
        ] {
            assert!(
                matches!(
                    CsvRows::new(text.as_bytes()),
                    Err(BackfillError::InvalidHeader(_))
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn json_lines_take_numbers_or_strings_and_count_blank_lines() {
        let text = "{\"line_item_id\":\"hw1\",\"user_id\":\"ada\",\"score_given\":9.5,\"score_maximum\":\"10\",\"timestamp\":\"2026-09-10T10:00:00Z\"}\n\n[1]\n{bad\n";
        let mut src = JsonLines::new(text.as_bytes());
        let got = rows(&mut src);
        assert_eq!(got.len(), 3);
        let first = got[0].1.clone().unwrap();
        assert_eq!(first.score_given, "9.5");
        assert_eq!(first.score_maximum, "10");
        assert_eq!(got[1].0, 3);
        assert_eq!(got[1].1.clone().unwrap_err().reason, "invalid_json");
        assert_eq!(got[2].0, 4);
    }

    #[test]
    fn json_lines_numbers_keep_the_digits_sent() {
        let text = "{\"score_given\":0.19999999999999998,\"score_maximum\":1.0000000000000002e-05,\"user_id\":12345678901234567890123}\n";
        let row = rows(&mut JsonLines::new(text.as_bytes()))
            .remove(0)
            .1
            .unwrap();
        assert_eq!(row.score_given, "0.19999999999999998");
        assert_eq!(row.score_maximum, "1.0000000000000002e-05");
        assert_eq!(row.user_id, "12345678901234567890123");
    }

    #[test]
    fn a_cell_number_a_decimal_rounds_keeps_its_text_and_one_it_holds_none() {
        let (read, text) =
            number(2, "score_given", " 0.12345678901234567890123456789012345 ").unwrap();
        assert_eq!(read.value.to_string(), "0.1234567890123456789012345679");
        assert_eq!(
            text.as_deref(),
            Some("0.12345678901234567890123456789012345")
        );
        let (read, text) = number(2, "score_given", "1.6666666666666665").unwrap();
        assert_eq!(read.value.to_string(), "1.6666666666666665");
        assert_eq!(text, None);
        for (bad, says) in [("1_000", "is not a number"), ("1e40", "is too large")] {
            let r = number(2, "score_given", bad).unwrap_err();
            assert_eq!(r.reason, "invalid_score");
            assert!(r.message.contains(says), "{}", r.message);
        }
    }

    fn p(given: &str, ts: &str) -> ScorePost {
        ScorePost {
            score_given: Some(Decimal::from_str(given).unwrap()),
            score_maximum: Some(Decimal::TEN),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp: DateTime::parse_from_rfc3339(ts).unwrap(),
            comment: None,
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        }
    }

    #[test]
    fn a_post_already_applied_is_unchanged_even_when_no_longer_kept() {
        let cell = CellHistory {
            applied: vec![
                p("7", "2026-09-10T10:00:00Z"),
                p("9", "2026-09-12T10:00:00Z"),
            ],
        };
        assert_eq!(
            decide(&p("7.00", "2026-09-10T12:00:00+02:00"), &cell),
            Decision::Unchanged
        );
        assert_eq!(
            decide(&p("9", "2026-09-12T10:00:00Z"), &cell),
            Decision::Unchanged
        );
    }

    #[test]
    fn a_post_older_than_the_kept_score_is_stale_and_a_newer_or_equal_one_is_posted() {
        let cell = CellHistory {
            applied: vec![p("9", "2026-09-12T10:00:00Z")],
        };
        assert!(matches!(
            decide(&p("5", "2026-09-11T10:00:00Z"), &cell),
            Decision::Stale { .. }
        ));
        assert_eq!(
            decide(&p("5", "2026-09-12T10:00:00Z"), &cell),
            Decision::Post
        );
        assert_eq!(
            decide(&p("5", "2026-09-13T10:00:00Z"), &cell),
            Decision::Post
        );
        assert_eq!(
            decide(&p("5", "2026-09-13T10:00:00Z"), &CellHistory::default()),
            Decision::Post
        );
    }

    #[test]
    fn content_types_and_file_names_pick_the_format() {
        assert_eq!(
            Format::from_content_type("text/csv; charset=utf-8"),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_content_type("application/x-ndjson"),
            Some(Format::JsonLines)
        );
        assert_eq!(
            Format::from_content_type("application/jsonl"),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::from_content_type("application/json"), None);
        assert_eq!(
            Format::from_path(std::path::Path::new("grades.CSV")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_path(std::path::Path::new("g.jsonl")),
            Some(Format::JsonLines)
        );
    }
}
