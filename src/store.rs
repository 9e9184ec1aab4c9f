//! Store wiring: the one module that names the store crates. Each aggregate
//! gets a cqrs-es persisted event store with snapshots, on PostgreSQL
//! (postgres-es) or SQLite (sqlite-es) alike.
//!
//! Commands run through [`AggStore::execute`], which does what
//! `CqrsFramework::execute_with_metadata` does (load, handle, commit) but
//! hands back the committed events: callers need them to answer (was the
//! score accepted, ignored, rejected?) and to wait for the projector. There
//! are no cqrs-es queries: the writer waiting for its event wakes the
//! projector, which reads the log itself, in order.

use std::collections::HashMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventStore, PersistenceError, SerializedEvent,
    SerializedSnapshot,
};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore};
use gradebook_projections::db::Db;
use gradebook_projections::write_lock::{sqlite_write_lock, turn, WriteLock};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

/// Events between snapshots. Bounds what loading an aggregate replays, so a
/// learner with a long score history costs a new post no more than a new
/// learner does.
pub const SNAPSHOT_EVERY: usize = 20;

pub struct AggStore<A: Aggregate> {
    db: Db,
    store: Store<A>,
    /// SQLite: the queue of this process's writers to the file.
    writers: Option<WriteLock>,
}

enum Store<A: Aggregate> {
    Postgres(PersistedEventStore<PostgresEventRepository, A>),
    Sqlite(PersistedEventStore<SqliteEventRepository, A>),
}

impl<A> AggStore<A>
where
    A: Aggregate<Services = ()> + Send + Sync,
{
    pub fn new(db: &Db) -> Self {
        let store = match db {
            Db::Postgres(pool) => Store::Postgres(PersistedEventStore::new_snapshot_store(
                PostgresEventRepository::new(pool.clone()),
                SNAPSHOT_EVERY,
            )),
            Db::Sqlite(pool) => Store::Sqlite(PersistedEventStore::new_snapshot_store(
                SqliteEventRepository::new(pool.clone()),
                SNAPSHOT_EVERY,
            )),
        };
        AggStore {
            db: db.clone(),
            store,
            writers: sqlite_write_lock(db),
        }
    }

    /// Handles one command and commits what it produced. An empty result
    /// means the command was valid and changed nothing.
    ///
    /// The aggregate is loaded in one round trip (its snapshot and the
    /// events after it together) and, unless a snapshot falls due, its new
    /// events go in with one INSERT statement that commits on its own. The
    /// store crates take two reads, then BEGIN, an INSERT per event and
    /// COMMIT. The rows written are the crates' own, so they read them back
    /// as theirs; a commit that takes a snapshot is still done by them.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let mut context = self.load_context(aggregate_id).await?;
        let sink = EventSink::default();
        context
            .aggregate()
            .handle(command, &(), &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(vec![]);
        }
        // Only the append waits its turn: the load needs no lock, and a
        // concurrent writer is still caught by the sequence check.
        let _turn = turn(self.writers.as_ref()).await;
        if snapshot_due(context.current_sequence, events.len()) {
            return match &self.store {
                Store::Postgres(s) => s.commit(events, context, metadata).await,
                Store::Sqlite(s) => s.commit(events, context, metadata).await,
            };
        }
        let envelopes: Vec<EventEnvelope<A>> = events
            .into_iter()
            .zip(context.current_sequence + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: aggregate_id.to_string(),
                sequence,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let serialized = envelopes
            .iter()
            .map(SerializedEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        insert_events::<A>(&self.db, &serialized).await?;
        Ok(envelopes)
    }

    /// The aggregate's current state.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        Ok(self.load_context(aggregate_id).await?.aggregate)
    }

    /// The aggregate as of its last event, from its snapshot and the events
    /// after it, read with one statement.
    async fn load_context(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        let rows = read_aggregate_rows(&self.db, A::TYPE, aggregate_id)
            .await
            .map_err(store_failure)?;
        let mut rows = rows.into_iter().peekable();
        let mut context = match rows.next_if(|r| r.snapshot) {
            None => EventStoreAggregateContext {
                aggregate_id: aggregate_id.to_string(),
                aggregate: A::default(),
                current_sequence: 0,
                current_snapshot: None,
            },
            Some(snap) => match EventStoreAggregateContext::try_from(SerializedSnapshot {
                aggregate_id: aggregate_id.to_string(),
                aggregate: snap.payload,
                current_sequence: snap.sequence,
                current_snapshot: snap.version,
            }) {
                Ok(context) => context,
                // A snapshot of an older shape: the store crate replays
                // the whole stream instead, as it always did.
                Err(PersistenceError::DeserializationError(_)) => {
                    return match &self.store {
                        Store::Postgres(s) => s.load_aggregate(aggregate_id).await,
                        Store::Sqlite(s) => s.load_aggregate(aggregate_id).await,
                    }
                }
                Err(e) => return Err(e.into()),
            },
        };
        for row in rows {
            let envelope = EventEnvelope::<A>::try_from(SerializedEvent::new(
                aggregate_id.to_string(),
                row.sequence,
                A::TYPE.to_string(),
                row.event_type,
                row.event_version,
                row.payload,
                row.metadata,
            ))?;
            context.current_sequence = envelope.sequence;
            context.aggregate.apply(envelope.payload);
        }
        Ok(context)
    }
}

/// Whether committing `new_events` after `current_sequence` takes a
/// snapshot: the store crates' rule for one every [`SNAPSHOT_EVERY`] events.
fn snapshot_due(current_sequence: usize, new_events: usize) -> bool {
    new_events >= SNAPSHOT_EVERY - current_sequence % SNAPSHOT_EVERY
}

/// A snapshot row (`snapshot`) or an event row of one aggregate.
struct AggregateRow {
    snapshot: bool,
    sequence: usize,
    version: usize,
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
}

/// The aggregate's snapshot, if any, then its events after it in order.
async fn read_aggregate_rows(
    db: &Db,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<AggregateRow>, sqlx::Error> {
    // JSON comes back as text on both stores and is parsed here.
    let text = if db.is_postgres() { "::text" } else { "" };
    let sql = format!(
        "WITH s AS (SELECT last_sequence, current_snapshot, payload FROM snapshots
                     WHERE aggregate_type = $1 AND aggregate_id = $2 LIMIT 1)
         SELECT 1 AS snap, last_sequence AS sequence, current_snapshot AS version,
                '' AS event_type, '' AS event_version, payload{text} AS payload, '{{}}' AS metadata
           FROM s
         UNION ALL
         SELECT 0, sequence, 0, event_type, event_version, payload{text}, metadata{text}
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2
            AND sequence > COALESCE((SELECT last_sequence FROM s), 0)
         ORDER BY 1 DESC, 2"
    );
    type Cols = (i32, i64, i64, String, String, String, String);
    let rows: Vec<Cols> = gradebook_projections::with_db!(db, pool => {
        sqlx::query_as(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await?
    });
    let json = |s: &str| serde_json::from_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
    rows.into_iter()
        .map(
            |(snap, sequence, version, event_type, event_version, payload, metadata)| {
                Ok(AggregateRow {
                    snapshot: snap == 1,
                    sequence: usize::try_from(sequence).unwrap_or_default(),
                    version: usize::try_from(version).unwrap_or_default(),
                    event_type,
                    event_version,
                    payload: json(&payload)?,
                    metadata: json(&metadata)?,
                })
            },
        )
        .collect()
}

/// A database error as the store crates report it.
fn store_failure<E: std::error::Error>(e: sqlx::Error) -> AggregateError<E> {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => AggregateError::AggregateConflict,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => AggregateError::DatabaseConnectionError(Box::new(e)),
        _ => AggregateError::UnexpectedError(Box::new(e)),
    }
}

/// Events per multi-row INSERT in [`append_events`]: 7 parameters each,
/// well under both stores' limits.
const EVENTS_PER_INSERT: usize = 500;

/// Appends events of any number of `A` aggregates in one transaction, with
/// multi-row INSERTs of the very columns and values the store crates write
/// one statement per event (a backfill chunk would otherwise cost a round
/// trip, or on SQLite a hand-off to its connection thread, per row). Each
/// event must carry the next sequence of its aggregate: the events table's
/// key on (type, id, sequence) refuses the whole transaction with
/// `AggregateConflict` if another writer got there first. Snapshots are
/// left to the next command on each aggregate, which takes one when its
/// sequence passes the next multiple of [`SNAPSHOT_EVERY`].
pub async fn append_events<A: Aggregate>(
    db: &Db,
    events: &[SerializedEvent],
) -> Result<(), AggregateError<A::Error>> {
    let writers = sqlite_write_lock(db);
    let _turn = turn(writers.as_ref()).await;
    insert_events::<A>(db, events).await
}

/// [`append_events`] for a caller that already holds the SQLite writers'
/// turn. Up to [`EVENTS_PER_INSERT`] events are one statement, which
/// commits by itself; more take a transaction.
async fn insert_events<A: Aggregate>(
    db: &Db,
    events: &[SerializedEvent],
) -> Result<(), AggregateError<A::Error>> {
    if events.is_empty() {
        return Ok(());
    }
    let numbered = db.is_postgres();
    // The columns and values the store crates bind, one event after another.
    macro_rules! bound {
        ($sql:expr, $events:expr) => {{
            let mut q = sqlx::query($sql);
            for e in $events {
                q = q
                    .bind(A::TYPE)
                    .bind(e.aggregate_id.as_str())
                    .bind(i64::try_from(e.sequence).unwrap_or(i64::MAX))
                    .bind(e.event_type.as_str())
                    .bind(e.event_version.as_str())
                    .bind(&e.payload)
                    .bind(&e.metadata);
            }
            q
        }};
    }
    let result: Result<(), sqlx::Error> = gradebook_projections::with_db!(db, pool => async {
        if events.len() <= EVENTS_PER_INSERT {
            let sql = insert_events_sql(events.len(), numbered);
            bound!(&sql, events).execute(pool).await?;
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let sql = insert_events_sql(chunk.len(), numbered);
            bound!(&sql, chunk).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
    .await);
    result.map_err(store_failure)
}

/// `INSERT INTO events (...) VALUES (...), ...` for `rows` events; plain `?`
/// placeholders on SQLite, which looks numbered ones up by a linear scan.
fn insert_events_sql(rows: usize, numbered: bool) -> String {
    use std::fmt::Write;
    let mut sql = String::from(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ",
    );
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..7 {
            if c > 0 {
                sql.push(',');
            }
            if numbered {
                let _ = write!(sql, "${}", r * 7 + c + 1);
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}
