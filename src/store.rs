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
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore};
use gradebook_projections::db::Db;
use gradebook_projections::write_lock::{sqlite_write_lock, WriteLock};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

/// Events between snapshots. Bounds what loading an aggregate replays, so a
/// learner with a long score history costs a new post no more than a new
/// learner does.
pub const SNAPSHOT_EVERY: usize = 20;

pub enum AggStore<A: Aggregate> {
    Postgres(PersistedEventStore<PostgresEventRepository, A>),
    /// With the queue of this process's writers to the file.
    Sqlite(PersistedEventStore<SqliteEventRepository, A>, WriteLock),
}

impl<A> AggStore<A>
where
    A: Aggregate<Services = ()> + Send + Sync,
{
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Postgres(pool) => AggStore::Postgres(PersistedEventStore::new_snapshot_store(
                PostgresEventRepository::new(pool.clone()),
                SNAPSHOT_EVERY,
            )),
            Db::Sqlite(pool) => AggStore::Sqlite(
                PersistedEventStore::new_snapshot_store(
                    SqliteEventRepository::new(pool.clone()),
                    SNAPSHOT_EVERY,
                ),
                sqlite_write_lock(db).unwrap_or_default(),
            ),
        }
    }

    /// Handles one command and commits what it produced. An empty result
    /// means the command was valid and changed nothing.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        match self {
            AggStore::Postgres(s) => run(s, aggregate_id, command, metadata, None).await,
            AggStore::Sqlite(s, writers) => {
                run(s, aggregate_id, command, metadata, Some(writers)).await
            }
        }
    }

    /// The aggregate's current state.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        match self {
            AggStore::Postgres(s) => Ok(take(s.load_aggregate(aggregate_id).await?)),
            AggStore::Sqlite(s, _) => Ok(take(s.load_aggregate(aggregate_id).await?)),
        }
    }
}

fn take<A: Aggregate, C: AggregateContext<A>>(mut ctx: C) -> A {
    std::mem::take(ctx.aggregate())
}

async fn run<A, ES>(
    store: &ES,
    aggregate_id: &str,
    command: A::Command,
    metadata: HashMap<String, String>,
    writers: Option<&WriteLock>,
) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>>
where
    A: Aggregate<Services = ()>,
    ES: EventStore<A>,
{
    let mut context = store.load_aggregate(aggregate_id).await?;
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
    let _turn = match writers {
        Some(w) => Some(w.lock().await),
        None => None,
    };
    store.commit(events, context, metadata).await
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
    events: &[cqrs_es::persist::SerializedEvent],
) -> Result<(), AggregateError<A::Error>> {
    if events.is_empty() {
        return Ok(());
    }
    let writers = sqlite_write_lock(db);
    let _turn = match &writers {
        Some(w) => Some(w.lock().await),
        None => None,
    };
    let numbered = db.is_postgres();
    let result: Result<(), sqlx::Error> = gradebook_projections::with_db!(db, pool => async {
        let mut tx = pool.begin().await?;
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let sql = insert_events_sql(chunk.len(), numbered);
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(A::TYPE)
                    .bind(e.aggregate_id.as_str())
                    .bind(i64::try_from(e.sequence).unwrap_or(i64::MAX))
                    .bind(e.event_type.as_str())
                    .bind(e.event_version.as_str())
                    .bind(&e.payload)
                    .bind(&e.metadata);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await
    }
    .await);
    result.map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => AggregateError::AggregateConflict,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => AggregateError::DatabaseConnectionError(Box::new(e)),
        _ => AggregateError::UnexpectedError(Box::new(e)),
    })
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
