//! Reading the event log in global order, and decoding rows into the
//! domain's events. The store crates read one aggregate at a time; the read
//! side needs all aggregates in one order, so it reads the table itself.

use cqrs_es::Aggregate;
use gradebook_domain::course::{Course, CourseEvent};
use gradebook_domain::enrollment::{Enrollment, EnrollmentEvent};
use gradebook_domain::line_item::{LineItem, LineItemEvent};
use gradebook_domain::score::{Score, ScoreEvent};
use gradebook_domain::CommandMeta;
use serde::Serialize;
use sqlx::Row;

use crate::db::Db;
use crate::with_db;

/// A point in the log. On PostgreSQL events are ordered by the writing
/// transaction's id, then position: a transaction id below the horizon
/// ([`PG_HORIZON`]) can no longer gain events, so nothing is ever passed
/// over. On
/// SQLite `tx` is always 0 and position alone orders the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Checkpoint {
    pub tx: i64,
    pub position: i64,
}

/// Any event of the gradebook.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    Course(CourseEvent),
    LineItem(LineItemEvent),
    Enrollment(EnrollmentEvent),
    Score(ScoreEvent),
}

/// An event with where and when it sits in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub at: Checkpoint,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub meta: CommandMeta,
    pub event: AnyEvent,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("event at position {position} ({aggregate_type}) cannot be decoded: {reason}")]
    Decode {
        position: i64,
        aggregate_type: String,
        reason: String,
    },
}

/// A row of the events table before decoding.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub tx: i64,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub payload: String,
    pub metadata: String,
}

impl RawEvent {
    pub fn decode(self) -> Result<Envelope, ReadError> {
        decode_parts(
            Checkpoint {
                tx: self.tx,
                position: self.position,
            },
            self.aggregate_type,
            self.aggregate_id,
            self.sequence,
            self.event_type,
            &self.payload,
            &self.metadata,
        )
    }
}

/// The metadata fields the engine writes, read without copying the map.
#[derive(serde::Deserialize)]
struct MetaFields<'a> {
    #[serde(borrow)]
    actor: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    received_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    batch_id: Option<std::borrow::Cow<'a, str>>,
}

impl MetaFields<'_> {
    fn into_meta(self) -> CommandMeta {
        CommandMeta::from_fields(|k| match k {
            "actor" => self.actor.as_deref(),
            "source" => self.source.as_deref(),
            "request_id" => self.request_id.as_deref(),
            "received_at" => self.received_at.as_deref(),
            "batch_id" => self.batch_id.as_deref(),
            _ => None,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn decode_parts(
    at: Checkpoint,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    payload: &str,
    metadata: &str,
) -> Result<Envelope, ReadError> {
    let err = |reason: String| ReadError::Decode {
        position: at.position,
        aggregate_type: aggregate_type.clone(),
        reason,
    };
    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }
    let event = match aggregate_type.as_str() {
        Course::TYPE => parse(payload).map(AnyEvent::Course),
        LineItem::TYPE => parse(payload).map(AnyEvent::LineItem),
        Enrollment::TYPE => parse(payload).map(AnyEvent::Enrollment),
        Score::TYPE => parse(payload).map(AnyEvent::Score),
        other => Err(format!("unknown aggregate type {other:?}")),
    }
    .map_err(err)?;
    let meta = serde_json::from_str::<MetaFields>(metadata)
        .map_err(|e| err(e.to_string()))?
        .into_meta();
    Ok(Envelope {
        at,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        meta,
        event,
    })
}

/// Checks an event from outside this store (a row of another store being
/// copied, a line of an exported log) the way this build would read it,
/// and decodes it: its payload is one of this build's events of its
/// aggregate type, `event_type` and `event_version` are the ones that
/// event is written with, the metadata is a JSON object of strings (as the
/// store crates read it back), the aggregate id has its type's shape and
/// names the ids the payload carries, and the sequence starts at 1. The
/// error says why in a sentence.
pub fn check_stored(
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    event_version: &str,
    payload: &str,
    metadata: &str,
) -> Result<Envelope, String> {
    use cqrs_es::DomainEvent;
    if sequence < 1 {
        return Err(format!("sequence {sequence} is below 1"));
    }
    serde_json::from_str::<std::collections::HashMap<String, String>>(metadata)
        .map_err(|e| format!("metadata is not a JSON object of strings: {e}"))?;
    let env = decode_parts(
        Checkpoint::default(),
        aggregate_type.to_string(),
        aggregate_id.to_string(),
        sequence,
        event_type.to_string(),
        payload,
        metadata,
    )
    .map_err(|e| match e {
        ReadError::Decode { reason, .. } => {
            format!("{event_type} is not a {aggregate_type} event this build can read: {reason}")
        }
        other => other.to_string(),
    })?;
    let (known_type, known_version) = match &env.event {
        AnyEvent::Course(e) => (e.event_type(), e.event_version()),
        AnyEvent::LineItem(e) => (e.event_type(), e.event_version()),
        AnyEvent::Enrollment(e) => (e.event_type(), e.event_version()),
        AnyEvent::Score(e) => (e.event_type(), e.event_version()),
    };
    if event_type != known_type {
        return Err(format!(
            "event_type {event_type:?} does not match its payload, which is a {known_type}"
        ));
    }
    if event_version != known_version {
        return Err(format!(
            "{event_type} version {event_version:?} is not one this build knows (it reads version {known_version:?})"
        ));
    }
    let segments: Vec<&str> = aggregate_id.split('/').collect();
    let (shape, named): (usize, Vec<&str>) = match &env.event {
        AnyEvent::Course(CourseEvent::CourseOpened { course_id, .. }) => {
            (1, vec![course_id.as_str()])
        }
        AnyEvent::Course(_) => (1, vec![]),
        AnyEvent::LineItem(LineItemEvent::LineItemCreated {
            course_id,
            line_item_id,
            ..
        }) => (2, vec![course_id.as_str(), line_item_id.as_str()]),
        AnyEvent::LineItem(_) => (2, vec![]),
        AnyEvent::Enrollment(EnrollmentEvent::Enrolled {
            course_id, user_id, ..
        }) => (2, vec![course_id.as_str(), user_id.as_str()]),
        AnyEvent::Enrollment(_) => (2, vec![]),
        AnyEvent::Score(e) => {
            let (c, i, u) = e.ids();
            (3, vec![c.as_str(), i.as_str(), u.as_str()])
        }
    };
    if segments.len() != shape || segments.iter().any(|s| s.is_empty()) {
        return Err(format!(
            "aggregate id {aggregate_id:?} is not the id of a {aggregate_type} ({shape} part(s) joined by '/')"
        ));
    }
    if !named.is_empty() && named != segments {
        return Err(format!(
            "aggregate id {aggregate_id:?} does not match the ids its payload names ({})",
            named.join("/")
        ));
    }
    Ok(env)
}

fn raw_from_row<R: Row>(row: &R) -> RawEvent
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    RawEvent {
        tx: row.get("tx"),
        position: row.get("position"),
        aggregate_type: row.get("aggregate_type"),
        aggregate_id: row.get("aggregate_id"),
        sequence: row.get("sequence"),
        event_type: row.get("event_type"),
        payload: row.get("payload"),
        metadata: row.get("metadata"),
    }
}

pub(crate) const PG_COLUMNS: &str = "tx_id::text::bigint AS tx, position, aggregate_type, aggregate_id, sequence, event_type, payload::text AS payload, metadata::text AS metadata";
const SQLITE_COLUMNS: &str =
    "0 AS tx, position, aggregate_type, aggregate_id, sequence, event_type, payload, metadata";

/// The transaction horizon on PostgreSQL, as one SQL expression of type
/// `xid8`: every event with a lower `tx_id` that the log will ever hold is
/// committed and visible to the statement that evaluates it. The
/// projector, a replay and the audit log read below it, so an event that
/// commits late is never passed over (decision 0005).
///
/// It is the lowest id still running in the statement's snapshot
/// (`pg_snapshot_xip`), leaving out the ids seen to belong to *another*
/// database of the cluster (held by a backend of another database in
/// `pg_stat_activity`, or prepared in another database); with none left,
/// the snapshot's `xmax`. An idle transaction of another application on
/// the same cluster thus holds nothing back, while one of this database (a
/// writer, a replay, someone's open session) holds the horizon until it
/// ends.
///
/// Why no event below it can appear later:
/// - ids handed out after the snapshot are at or above its `xmax`;
/// - an id below `xmax` that is not running has ended: its events are
///   committed and visible to the snapshot, or will never exist;
/// - a running id that is left out was seen held by a backend of another
///   database (a backend stays in its database for life) or prepared in
///   another database (it writes nothing more): it never writes this log,
///   however late it ends, and whenever it was seen.
///
/// An id is left out only on that sight, never for want of it: a writer of
/// this database that commits between the snapshot and the look at
/// `pg_stat_activity` is no longer listed there, and its event, which the
/// snapshot does not show, would otherwise fall below the horizon for
/// good. Unseen, it holds the horizon, and a read waits a moment longer at
/// worst.
///
/// Events carry the top-level transaction's id (`pg_current_xact_id()`
/// gives it in a subtransaction too), the id that the snapshot's running
/// list and `backend_xid` hold. `backend_xid` and a prepared transaction's
/// `transaction` are 32-bit: running ids are matched with `xid(xid8)`,
/// which is unambiguous since they span less than 2^31 ids. `datid` and
/// `backend_xid` are shown to every role: no privilege is needed.
///
/// The two lists are uncorrelated `NOT IN` subqueries, which PostgreSQL
/// reads once into a hash per statement; as correlated `NOT EXISTS` they
/// were read again for every running transaction (one per writer in
/// flight, under load).
pub(crate) const PG_HORIZON: &str = "(SELECT COALESCE(
        (SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x
          WHERE xid(x) NOT IN (SELECT a.backend_xid FROM pg_stat_activity a
                                WHERE a.backend_xid IS NOT NULL
                                  AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))
            AND xid(x) NOT IN (SELECT p.transaction FROM pg_prepared_xacts p
                                WHERE p.database <> current_database())),
        pg_snapshot_xmax(snap.s))
   FROM (SELECT pg_current_snapshot() AS s) AS snap)";

/// The query of [`read_after`]: `$1`/`$2` the checkpoint (SQLite: the
/// position alone), then the limit.
fn after_sql(db: &Db) -> String {
    match db {
        Db::Postgres(_) => format!(
            "SELECT {PG_COLUMNS} FROM events
              WHERE (tx_id, position) > ($1::text::xid8, $2)
                AND tx_id < {PG_HORIZON}
              ORDER BY tx_id, position
              LIMIT $3"
        ),
        Db::Sqlite(_) => format!(
            "SELECT {SQLITE_COLUMNS} FROM events
              WHERE position > $1
              ORDER BY position
              LIMIT $2"
        ),
    }
}

/// The next events after `after`, at most `limit`, that can no longer be
/// overtaken by a slower writer.
pub async fn read_after(
    db: &Db,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RawEvent>, sqlx::Error> {
    let sql = after_sql(db);
    match db {
        Db::Postgres(pool) => {
            let rows = sqlx::query(&sql)
                .bind(after.tx.to_string())
                .bind(after.position)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(raw_from_row).collect())
        }
        Db::Sqlite(pool) => {
            let rows = sqlx::query(&sql)
                .bind(after.position)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(raw_from_row).collect())
        }
    }
}

/// A key of the events table's primary index, (aggregate type, aggregate
/// id, sequence): in that order each aggregate's events are contiguous and
/// in their own log order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateKey {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
}

/// The transaction horizon ([`PG_HORIZON`]) as a statement on `conn` sees
/// it: no event below it can appear later. A replay reads the log up to
/// the horizon as it starts (its own transaction runs in this database, so
/// the horizon is at or below it).
pub async fn pg_horizon<'e>(conn: impl sqlx::PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT {PG_HORIZON}::text::bigint"))
        .fetch_one(conn)
        .await
}

/// The next events after `after` in primary-key order (aggregate by
/// aggregate), at most `limit`, decoded as they stream in. A replay reads
/// the log this way so that each read-table row's events come together and
/// the row is written once, instead of again for every chunk of the log
/// that touches it. On PostgreSQL only events below `horizon` are read (see
/// [`pg_horizon`]); on SQLite the replay's write lock keeps the log
/// from growing, and `horizon` is not used.
pub async fn read_by_aggregate(
    db: &Db,
    after: &AggregateKey,
    horizon: i64,
    limit: i64,
) -> Result<Vec<Envelope>, ReadError> {
    use futures_util::TryStreamExt;
    let sql = match db {
        Db::Postgres(_) => format!(
            "SELECT {PG_COLUMNS} FROM events
              WHERE (aggregate_type, aggregate_id, sequence) > ($1, $2, $3)
                AND tx_id < $4::text::xid8
              ORDER BY aggregate_type, aggregate_id, sequence
              LIMIT $5"
        ),
        Db::Sqlite(_) => format!(
            "SELECT {SQLITE_COLUMNS} FROM events
              WHERE (aggregate_type, aggregate_id, sequence) > (?, ?, ?)
              ORDER BY aggregate_type, aggregate_id, sequence
              LIMIT ?"
        ),
    };
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or_default());
    with_db!(db, pool => {
        let mut q = sqlx::query(&sql)
            .bind(&after.aggregate_type)
            .bind(&after.aggregate_id)
            .bind(after.sequence);
        if db.is_postgres() {
            q = q.bind(horizon.to_string());
        }
        let mut rows = q.bind(limit).fetch(pool);
        while let Some(row) = rows.try_next().await? {
            out.push(envelope_from_row(&row)?);
        }
    });
    Ok(out)
}

/// Decodes a row of [`PG_COLUMNS`] or [`SQLITE_COLUMNS`] (by index, in that
/// order) without copying its payload and metadata first.
pub(crate) fn envelope_from_row<R: Row>(row: &R) -> Result<Envelope, ReadError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    decode_parts(
        Checkpoint {
            tx: row.try_get(0)?,
            position: row.try_get(1)?,
        },
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
    )
}

/// Where one committed event sits in the log, to wait for the projector.
pub async fn checkpoint_of(
    db: &Db,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    let sql = match db {
        Db::Postgres(_) => "SELECT tx_id::text::bigint AS tx, position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        Db::Sqlite(_) => "SELECT 0 AS tx, position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
    };
    with_db!(db, pool => {
        let row = sqlx::query(sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(sequence)
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|r| Checkpoint { tx: r.get("tx"), position: r.get("position") }))
    })
}

/// How many events the log holds.
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::DomainEvent;
    use gradebook_domain::score::{ActivityProgress, GradingProgress, ScorePost};

    fn accepted(course: &str, item: &str, user: &str) -> ScoreEvent {
        ScoreEvent::ScoreAccepted {
            course_id: gradebook_domain::CourseId::parse(course).unwrap(),
            line_item_id: gradebook_domain::LineItemId::parse(item).unwrap(),
            user_id: gradebook_domain::UserId::parse(user).unwrap(),
            post: ScorePost {
                score_given: Some(rust_decimal::Decimal::new(875, 1)),
                score_maximum: Some(rust_decimal::Decimal::new(100, 0)),
                score_given_as_sent: None,
                score_maximum_as_sent: None,
                activity_progress: ActivityProgress::Completed,
                grading_progress: GradingProgress::FullyGraded,
                timestamp: chrono::DateTime::parse_from_rfc3339("2026-10-01T10:00:00Z").unwrap(),
                comment: None,
            },
        }
    }

    const META: &str =
        r#"{"actor":"t","source":"ags","request_id":"r","received_at":"2026-10-01T10:00:00Z"}"#;

    fn check(
        id: &str,
        seq: i64,
        ty: &str,
        version: &str,
        payload: &str,
        meta: &str,
    ) -> Result<(), String> {
        check_stored("score", id, seq, ty, version, payload, meta).map(drop)
    }

    #[test]
    fn a_stored_event_must_be_one_this_build_writes_as_it_writes_it() {
        let e = accepted("C1", "hw1", "ada");
        let payload = serde_json::to_string(&e).unwrap();
        let ty = e.event_type();
        assert_eq!(check("C1/hw1/ada", 1, &ty, "1", &payload, META), Ok(()));

        let refused = |r: Result<(), String>, words: &str| {
            let why = r.expect_err("refused");
            assert!(why.contains(words), "{why:?} should say {words:?}");
        };
        refused(check("C1/hw1/ada", 0, &ty, "1", &payload, META), "below 1");
        refused(
            check("C1/hw1/ada", 1, "ScoreCleared", "1", &payload, META),
            "does not match its payload",
        );
        refused(
            check("C1/hw1/ada", 1, &ty, "2", &payload, META),
            "version \"2\"",
        );
        refused(
            check("C1/hw1/ada", 1, &ty, "1", r#"{"ScoreDoubled":{}}"#, META),
            "ScoreDoubled",
        );
        refused(
            check("C1/hw1/ada", 1, &ty, "1", &payload, r#"{"actor":1}"#),
            "metadata",
        );
        refused(
            check("C1/hw1", 1, &ty, "1", &payload, META),
            "is not the id of a score",
        );
        refused(
            check("C1/hw1/alan", 1, &ty, "1", &payload, META),
            "does not match the ids",
        );
        refused(
            check_stored("grade", "C1", 1, &ty, "1", &payload, META).map(drop),
            "unknown aggregate type",
        );
    }
}
