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

/// Appends events of any number of `A` aggregates in one transaction,
/// through the store crate's own writer (so the rows are exactly what a
/// command would have written). Each event must carry the next sequence of
/// its aggregate: the events table's key on (type, id, sequence) refuses
/// the whole transaction with `AggregateConflict` if another writer got
/// there first. Snapshots are left to the next command on each aggregate,
/// which takes one when its sequence passes the next multiple of
/// [`SNAPSHOT_EVERY`].
pub async fn append_events<A: Aggregate>(
    db: &Db,
    events: &[cqrs_es::persist::SerializedEvent],
) -> Result<(), AggregateError<A::Error>> {
    use cqrs_es::persist::PersistedEventRepository;
    if events.is_empty() {
        return Ok(());
    }
    match db {
        Db::Postgres(pool) => PostgresEventRepository::new(pool.clone())
            .persist::<A>(events, None)
            .await
            .map_err(Into::into),
        Db::Sqlite(pool) => {
            let writers = sqlite_write_lock(db).unwrap_or_default();
            let _turn = writers.lock().await;
            SqliteEventRepository::new(pool.clone())
                .persist::<A>(events, None)
                .await
                .map_err(Into::into)
        }
    }
}
