//! The raw event log as the registrar's audit trail: filtered, paged reads
//! in log order with an opaque cursor, and the narrow slices of one course's
//! log that provenance, reconciliation and backfill need.
//!
//! Log order is the order the projector applies events: on PostgreSQL the
//! writing transaction's id, then position, and only events below the
//! transaction horizon (`events::PG_HORIZON`: an event that commits late
//! with a lower position can then never slip behind a cursor already
//! handed out); on
//! SQLite, position alone. Positions themselves are shown as they are.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Param};
use crate::projector::events::{
    envelope_from_row, Checkpoint, Envelope, RawEvent, ReadError, PG_COLUMNS, PG_HORIZON,
};

/// The most events one audit page returns.
pub const MAX_LIMIT: i64 = 1000;
/// The page size when the caller names none.
pub const DEFAULT_LIMIT: i64 = 100;

/// What the audit log is narrowed to; every field is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub course_id: Option<String>,
    pub user_id: Option<String>,
    pub line_item_id: Option<String>,
    /// Recorded at or after (the commit time of the event).
    pub from: Option<DateTime<Utc>>,
    /// Recorded strictly before.
    pub to: Option<DateTime<Utc>>,
}

/// A place in the log, handed to clients as an opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub Checkpoint);

impl Cursor {
    /// Lower-case hex of `tx:position`: opaque, URL-safe and unchanged by
    /// clients that lower-case URLs.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.0.tx, self.0.position)
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn decode(s: &str) -> Option<Self> {
        if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 80 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (tx, position) = text.split_once(':')?;
        let tx: i64 = tx.parse().ok()?;
        let position: i64 = position.parse().ok()?;
        (tx >= 0 && position >= 0).then_some(Cursor(Checkpoint { tx, position }))
    }
}

/// One event as the audit log shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub position: i64,
    pub recorded_at: String,
    pub course_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Where the next page starts; `None` at the end of the log.
    pub next_cursor: Option<String>,
}

/// The `$n` conditions of a query, numbered as they are added.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    fn next(&self) -> usize {
        self.params.len() + 1
    }

    fn eq(&mut self, column: &str, value: &str) {
        self.conds.push(format!("{column} = ${}", self.next()));
        self.params.push(value.into());
    }

    fn sql(&self) -> String {
        if self.conds.is_empty() {
            "TRUE".into()
        } else {
            self.conds.join(" AND ")
        }
    }
}

/// SQLite keeps `recorded_at` as `strftime('%Y-%m-%dT%H:%M:%fZ')` text, so
/// bounds are compared in that exact form.
fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn bind_all<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    params: &'q [Param],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for p in params {
        q = match p {
            Param::Text(s) => q.bind(s.clone()),
            Param::Int(i) => q.bind(*i),
            Param::Bool(b) => q.bind(*b),
        };
    }
    q
}

/// One page of the log after `after`, narrowed by `filter`. `limit` must
/// already be within 1..=[`MAX_LIMIT`].
pub async fn page(
    db: &Db,
    filter: &AuditFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<AuditPage, sqlx::Error> {
    let mut w = Where::default();
    if let Some(c) = &filter.course_id {
        w.eq("course_id", c);
    }
    if let Some(u) = &filter.user_id {
        w.eq("user_id", u);
    }
    if let Some(l) = &filter.line_item_id {
        w.eq("line_item_id", l);
    }
    let pg = matches!(db, Db::Postgres(_));
    if let Some(t) = filter.from {
        let n = w.next();
        w.conds.push(if pg {
            format!("recorded_at >= ${n}::timestamptz")
        } else {
            format!("recorded_at >= ${n}")
        });
        w.params
            .push(if pg { crate::db::ts(t) } else { sqlite_time(t) }.into());
    }
    if let Some(t) = filter.to {
        let n = w.next();
        w.conds.push(if pg {
            format!("recorded_at < ${n}::timestamptz")
        } else {
            format!("recorded_at < ${n}")
        });
        w.params
            .push(if pg { crate::db::ts(t) } else { sqlite_time(t) }.into());
    }
    if let Some(Cursor(at)) = after {
        let a = w.next();
        if pg {
            w.conds.push(format!(
                "(tx_id, position) > (${a}::text::xid8, ${})",
                a + 1
            ));
            w.params.push(at.tx.to_string().into());
        } else {
            w.conds.push(format!("position > ${a}"));
        }
        w.params.push(at.position.into());
    }
    // One more than asked tells whether another page follows.
    let n = w.next();
    w.params.push((limit + 1).into());
    let rows: Vec<(Checkpoint, AuditEvent)> = match db {
        Db::Postgres(pool) => {
            let sql = format!(
                "SELECT tx_id::text::bigint AS tx, position, course_id, aggregate_type, aggregate_id, sequence,
                        event_type, event_version, payload::text AS payload, metadata::text AS metadata,
                        to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at
                   FROM events
                  WHERE {} AND tx_id < {PG_HORIZON}
                  ORDER BY tx_id, position
                  LIMIT ${n}",
                w.sql()
            );
            let rows = bind_all(sqlx::query(&sql), &w.params)
                .fetch_all(pool)
                .await?;
            rows.iter().map(audit_row).collect::<Result<_, _>>()?
        }
        Db::Sqlite(pool) => {
            let sql = format!(
                "SELECT 0 AS tx, position, course_id, aggregate_type, aggregate_id, sequence,
                        event_type, event_version, payload, metadata, recorded_at
                   FROM events
                  WHERE {}
                  ORDER BY position
                  LIMIT ${n}",
                w.sql()
            );
            let rows = bind_all(sqlx::query(&sql), &w.params)
                .fetch_all(pool)
                .await?;
            rows.iter().map(audit_row).collect::<Result<_, _>>()?
        }
    };
    let more = rows.len() as i64 > limit;
    let mut events = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for (at, e) in rows.into_iter().take(limit as usize) {
        last = Some(at);
        events.push(e);
    }
    Ok(AuditPage {
        events,
        next_cursor: more.then(|| last.map(|at| Cursor(at).encode())).flatten(),
    })
}

fn audit_row<R: Row>(row: &R) -> Result<(Checkpoint, AuditEvent), sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let json = |col: &str| -> Result<serde_json::Value, sqlx::Error> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    let at = Checkpoint {
        tx: row.try_get("tx")?,
        position: row.try_get("position")?,
    };
    Ok((
        at,
        AuditEvent {
            position: at.position,
            recorded_at: row.try_get("recorded_at")?,
            course_id: row.try_get("course_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: json("payload")?,
            metadata: json("metadata")?,
        },
    ))
}

/// Decoded events matching `cond` (SQL over the events table with `$1`..
/// bound to `params`), in log order. Each caller's condition is written to
/// be answered from one index.
async fn read_where(db: &Db, cond: &str, params: &[&str]) -> Result<Vec<Envelope>, ReadError> {
    use futures_util::TryStreamExt;
    let params: Vec<Param> = params.iter().map(|s| Param::from(*s)).collect();
    let raws: Vec<RawEvent> = match db {
        Db::Postgres(pool) => {
            // Decoded as the rows stream in, payload and metadata read in
            // place: an `as_of` report reads a course's whole log (about
            // 0.8 MB for 2,000 events), and copying it first was a fifth
            // of that request's samples in `perf`.
            let sql =
                format!("SELECT {PG_COLUMNS} FROM events WHERE {cond} ORDER BY tx_id, position");
            let mut rows = bind_all(sqlx::query(&sql), &params).fetch(pool);
            let mut out = Vec::new();
            while let Some(row) = rows.try_next().await? {
                out.push(envelope_from_row(&row)?);
            }
            return Ok(out);
        }
        Db::Sqlite(pool) => {
            // The driver hands rows over one at a time from its worker
            // thread, which costs more than the read itself for a few
            // thousand events: they come back as one JSON array instead,
            // sorted here (a few rows, or one course's, never the log).
            let sql = format!("SELECT json_group_array(json_array({SQLITE_ARRAY_COLUMNS})) FROM events WHERE {cond}");
            let row = bind_all(sqlx::query(&sql), &params).fetch_one(pool).await?;
            let mut raws = sqlite_raws(&row.try_get::<String, _>(0)?)?;
            raws.sort_by_key(|r| r.position);
            raws
        }
    };
    raws.into_iter().map(RawEvent::decode).collect()
}

const SQLITE_ARRAY_COLUMNS: &str =
    "position, aggregate_type, aggregate_id, sequence, event_type, payload, metadata";

/// Events as [`SQLITE_ARRAY_COLUMNS`] arrays.
fn sqlite_raws(text: &str) -> Result<Vec<RawEvent>, sqlx::Error> {
    type Cols = (i64, String, String, i64, String, String, String);
    let rows: Vec<Cols> =
        serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(rows
        .into_iter()
        .map(
            |(position, aggregate_type, aggregate_id, sequence, event_type, payload, metadata)| {
                RawEvent {
                    tx: 0,
                    position,
                    aggregate_type,
                    aggregate_id,
                    sequence,
                    event_type,
                    payload,
                    metadata,
                }
            },
        )
        .collect())
}

/// What a student's provenance needs: the course's lock and line item
/// events, and this user's enrollment and score events, in log order, read
/// by index (course + event type, course + user), never the course's whole
/// log.
pub async fn read_student_events(
    db: &Db,
    course_id: &str,
    user_id: &str,
) -> Result<Vec<Envelope>, ReadError> {
    const COURSE: &str = "course_id = $1 AND event_type IN ('CourseLocked', 'CourseUnlocked', 'LineItemCreated', 'LineItemUpdated', 'LineItemDeleted')";
    const USER: &str = "course_id = $1 AND user_id = $2";
    if db.is_postgres() {
        // One round trip: PostgreSQL answers the OR from both indexes.
        return read_where(
            db,
            &format!("({COURSE}) OR ({USER})"),
            &[course_id, user_id],
        )
        .await;
    }
    // SQLite would answer the OR by walking the course's whole log.
    let mut events = read_where(db, COURSE, &[course_id]).await?;
    events.extend(read_where(db, USER, &[course_id, user_id]).await?);
    events.sort_by_key(|e| e.at);
    Ok(events)
}

/// What reconciliation needs beyond the read tables: the course's own
/// events (locks) and every refused score post.
pub async fn read_locks_and_refusals(db: &Db, course_id: &str) -> Result<Vec<Envelope>, ReadError> {
    read_where(
        db,
        "course_id = $1 AND event_type IN ('CourseLocked', 'CourseUnlocked', 'ScoreRejected')",
        &[course_id],
    )
    .await
}

/// Every event of one course, in log order: what grades `as_of` a moment
/// are folded from.
pub async fn read_course_events(db: &Db, course_id: &str) -> Result<Vec<Envelope>, ReadError> {
    read_where(db, "course_id = $1", &[course_id]).await
}

/// A course's events other than score posts, in log order: its policy,
/// line items and people (a few dozen, where the scores are thousands).
pub async fn read_course_setup_events(
    db: &Db,
    course_id: &str,
) -> Result<Vec<Envelope>, ReadError> {
    read_where(
        db,
        "course_id = $1 AND aggregate_type <> 'score'",
        &[course_id],
    )
    .await
}

/// Every event of one aggregate, in order (read by the primary key).
pub async fn read_aggregate(
    db: &Db,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<Envelope>, ReadError> {
    read_where(
        db,
        "aggregate_type = $1 AND aggregate_id = $2",
        &[aggregate_type, aggregate_id],
    )
    .await
}

/// RFC 3339 with microseconds, the form times leave the engine in.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_round_trip_and_lower_casing() {
        let c = Cursor(Checkpoint {
            tx: 7_123_456,
            position: 42,
        });
        let s = c.encode();
        assert_eq!(s, s.to_lowercase());
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(Cursor::decode(&s), Some(c));
    }

    #[test]
    fn a_cursor_that_was_not_handed_out_is_refused() {
        for bad in ["", "zz", "abc", "3a", "313a", "2d313a32", &"00".repeat(50)] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sqlite_time_bounds_have_the_stored_form() {
        let t: DateTime<Utc> = "2026-05-01T10:00:00.123456Z".parse().unwrap();
        assert_eq!(sqlite_time(t), "2026-05-01T10:00:00.123Z");
    }
}
