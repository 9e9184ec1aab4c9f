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
//!
//! Beside the log the store keeps the score gates (`score_gates`, see
//! `gradebook_domain::gate`): a command that changes whether a course, line
//! item or enrollment lets scores through updates its gate in the
//! transaction that appends its event, and a score is appended only if the
//! gates it was decided on still hold, checked in the appending statement.
//! On PostgreSQL both sides hold the course's gate lock (an advisory lock,
//! exclusive for a gate change, shared for score appends), so a score
//! decided on "unlocked" either commits before the lock's event is appended
//! or is decided again after it. SQLite has one writer at a time.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventStore, PersistenceError, SerializedEvent,
    SerializedSnapshot,
};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore};
use gradebook_domain::gate::ScoreGate;
use gradebook_domain::ids::aggregate_id::course_of;
use gradebook_projections::db::Db;
use gradebook_projections::projector::write_lock::{sqlite_write_lock, turn, WriteLock};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

/// Events between snapshots. Bounds what loading an aggregate replays, so a
/// learner with a long score history costs a new post no more than a new
/// learner does.
pub const SNAPSHOT_EVERY: usize = 20;

/// How many times a gated command is decided again because a gate changed
/// between reading it and appending.
const GATE_ATTEMPTS: usize = 20;

/// The advisory lock class of the course gate locks on PostgreSQL (the
/// second key is `hashtext(course id)`); `score_gates_hold` in migration
/// 0009 takes the same lock shared.
pub const GATE_LOCK_CLASS: i32 = 1_919_181_921;

/// A gate's row key in `score_gates`.
pub fn gate_key(aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{aggregate_type}:{aggregate_id}")
}

/// What a command did to its aggregate: the events it recorded (none when
/// it changed nothing) and the aggregate's sequence after it, which is what
/// the read side must have applied to show the command's effect.
pub struct Executed<A: Aggregate> {
    pub events: Vec<EventEnvelope<A>>,
    pub version: usize,
}

pub struct AggStore<A: Aggregate> {
    db: Db,
    store: Store<A>,
    /// SQLite: the queue of this process's writers to the file.
    writers: Option<WriteLock>,
    queue: AggregateQueue,
}

/// This process's commands on one aggregate wait here for each other: a
/// burst of posts on one learner's cell is then served in turn, where each
/// would otherwise load the same sequence and all but one fail the
/// optimistic check, again and again. Aggregates share a queue by hash; a
/// shared one only makes two commands take turns.
struct AggregateQueue(Box<[tokio::sync::Mutex<()>]>);

impl AggregateQueue {
    const QUEUES: usize = 1024;

    fn new() -> Self {
        AggregateQueue(
            (0..Self::QUEUES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        )
    }

    async fn turn(&self, aggregate_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        aggregate_id.hash(&mut h);
        self.0[(h.finish() % Self::QUEUES as u64) as usize]
            .lock()
            .await
    }
}

enum Store<A: Aggregate> {
    Postgres(PersistedEventStore<PostgresEventRepository, A>),
    Sqlite(PersistedEventStore<SqliteEventRepository, A>),
}

impl<A> AggStore<A>
where
    A: Aggregate<Services = ()> + ScoreGate + Send + Sync,
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
            queue: AggregateQueue::new(),
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
    ///
    /// When the events change the aggregate's score gate (a lock, a drop, a
    /// deletion, and their opposites), they are appended together with the
    /// gate's new value in one transaction that holds the course's gate
    /// lock exclusively; such a commit takes no snapshot (the next command
    /// on the aggregate may).
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Executed<A>, AggregateError<A::Error>> {
        let _queued = self.queue.turn(aggregate_id).await;
        let (mut context, _) = self.load_context_and_gates(aggregate_id, &[]).await?;
        let gate_before = context.aggregate.lets_scores_through();
        let sink = EventSink::default();
        // The sink applies each event to the aggregate as it is written.
        context
            .aggregate()
            .handle(command, &(), &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(Executed {
                events: vec![],
                version: context.current_sequence,
            });
        }
        let version = context.current_sequence + events.len();
        let gate_after = context.aggregate.lets_scores_through();
        let gate_change = (A::IS_GATE && gate_after != gate_before).then_some(gate_after);
        // Only the append waits its turn: the load needs no lock, and a
        // concurrent writer is still caught by the sequence check.
        let _turn = turn(self.writers.as_ref()).await;
        if let Some(open) = gate_change {
            let envelopes = envelopes(aggregate_id, context.current_sequence, events, &metadata);
            let serialized = serialize(&envelopes)?;
            let gate = gate_key(A::TYPE, aggregate_id);
            commit_gate_change::<A>(&self.db, &serialized, course_of(aggregate_id), &gate, open)
                .await
                .map_err(store_failure)?;
            return Ok(Executed {
                events: envelopes,
                version,
            });
        }
        let events = if snapshot_due(context.current_sequence, events.len()) {
            match &self.store {
                Store::Postgres(s) => s.commit(events, context, metadata).await?,
                Store::Sqlite(s) => s.commit(events, context, metadata).await?,
            }
        } else {
            let envelopes = envelopes(aggregate_id, context.current_sequence, events, &metadata);
            insert_events::<A>(&self.db, &serialize(&envelopes)?).await?;
            envelopes
        };
        Ok(Executed { events, version })
    }

    /// Runs a command whose outcome rests on score gates (a score post):
    /// reads `gates` (filling a missing one from its aggregate), lets
    /// `decide` run on the aggregate with their values, in order, and
    /// appends what it decided only if every gate still has the value it
    /// was decided on, checked by the appending statement itself; when one
    /// changed meanwhile, it decides again on what holds now. `decide`
    /// also gives the caller's answer, which an empty result can carry.
    pub async fn execute_gated<T>(
        &self,
        aggregate_id: &str,
        gates: &[String],
        metadata: HashMap<String, String>,
        decide: impl Fn(&A, &[bool]) -> Result<(Vec<A::Event>, T), A::Error>,
    ) -> Result<(Vec<EventEnvelope<A>>, T), AggregateError<A::Error>> {
        let _queued = self.queue.turn(aggregate_id).await;
        let course = course_of(aggregate_id);
        for _ in 0..GATE_ATTEMPTS {
            let (mut context, known) = self.load_context_and_gates(aggregate_id, gates).await?;
            let open = resolve_gates(&self.db, gates, known, true).await?;
            let (events, answer) =
                decide(&context.aggregate, &open).map_err(AggregateError::UserError)?;
            if events.is_empty() {
                return Ok((vec![], answer));
            }
            let count = events.len();
            let envelopes: Vec<EventEnvelope<A>> =
                envelopes(aggregate_id, context.current_sequence, events, &metadata);
            let serialized = serialize(&envelopes)?;
            let expected: Vec<(String, bool)> = gates.iter().cloned().zip(open).collect();
            let appended = {
                let _turn = turn(self.writers.as_ref()).await;
                insert_if_gates::<A>(&self.db, &serialized, course, &expected)
                    .await
                    .map_err(store_failure)?
            };
            if !appended {
                // A gate changed after it was read: decide again.
                continue;
            }
            if snapshot_due(context.current_sequence, count) {
                for e in &envelopes {
                    context.aggregate.apply(e.payload.clone());
                }
                self.write_snapshot(&context, context.current_sequence + count)
                    .await;
            }
            return Ok((envelopes, answer));
        }
        Err(AggregateError::AggregateConflict)
    }

    /// Writes the aggregate's snapshot as of `sequence` the way the store
    /// crates do (a first snapshot inserted, later ones updated from the
    /// one this command loaded), after its events are committed. A failure
    /// only means the next load replays a few more events.
    async fn write_snapshot(&self, context: &EventStoreAggregateContext<A>, sequence: usize) {
        let Ok(payload) = serde_json::to_value(&context.aggregate) else {
            return;
        };
        let next = context.current_snapshot.map_or(1, |c| c + 1);
        let result: Result<_, sqlx::Error> = gradebook_projections::with_db!(&self.db, pool => {
            let _turn = turn(self.writers.as_ref()).await;
            if next == 1 {
                sqlx::query(
                    "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(A::TYPE)
                .bind(context.aggregate_id.as_str())
                .bind(sequence as i64)
                .bind(next as i64)
                .bind(&payload)
                .execute(pool)
                .await
            } else {
                sqlx::query(
                    "UPDATE snapshots SET last_sequence = $3, payload = $4, current_snapshot = $5
                      WHERE aggregate_type = $1 AND aggregate_id = $2 AND current_snapshot = $6",
                )
                .bind(A::TYPE)
                .bind(context.aggregate_id.as_str())
                .bind(sequence as i64)
                .bind(&payload)
                .bind(next as i64)
                .bind(next as i64 - 1)
                .execute(pool)
                .await
            }
            .map(drop)
        });
        if let Err(e) = result {
            tracing::debug!(aggregate = %context.aggregate_id, error = %e, "snapshot not written");
        }
    }

    /// The aggregate's current state.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        Ok(self
            .load_context_and_gates(aggregate_id, &[])
            .await?
            .0
            .aggregate)
    }

    /// The aggregate as of its last event, from its snapshot and the events
    /// after it, read with one statement.
    /// The score gates named in `gates` that have a row come back with it,
    /// read by the same statement.
    async fn load_context_and_gates(
        &self,
        aggregate_id: &str,
        gates: &[String],
    ) -> Result<(EventStoreAggregateContext<A>, HashMap<String, bool>), AggregateError<A::Error>>
    {
        let rows = read_aggregate_rows(&self.db, A::TYPE, aggregate_id, gates)
            .await
            .map_err(store_failure)?;
        let mut rows = rows.into_iter().peekable();
        let mut known = HashMap::new();
        while let Some(gate) = rows.next_if(|r| r.gate) {
            known.insert(gate.event_type, gate.payload == serde_json::json!(1));
        }
        let context = self.context_from(aggregate_id, rows).await?;
        Ok((context, known))
    }

    /// Folds a snapshot row, if any, and the event rows after it.
    async fn context_from(
        &self,
        aggregate_id: &str,
        mut rows: std::iter::Peekable<std::vec::IntoIter<AggregateRow>>,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
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

/// The envelopes of new events, numbered on from `current_sequence`.
fn envelopes<A: Aggregate>(
    aggregate_id: &str,
    current_sequence: usize,
    events: Vec<A::Event>,
    metadata: &HashMap<String, String>,
) -> Vec<EventEnvelope<A>> {
    events
        .into_iter()
        .zip(current_sequence + 1..)
        .map(|(payload, sequence)| EventEnvelope {
            aggregate_id: aggregate_id.to_string(),
            sequence,
            payload,
            metadata: metadata.clone(),
        })
        .collect()
}

fn serialize<A: Aggregate>(
    envelopes: &[EventEnvelope<A>],
) -> Result<Vec<SerializedEvent>, AggregateError<A::Error>> {
    Ok(envelopes
        .iter()
        .map(SerializedEvent::try_from)
        .collect::<Result<Vec<_>, _>>()?)
}

/// A score gate's row (`gate`: its key in `event_type`, 1 or 0 in
/// `payload`), a snapshot row (`snapshot`) or an event row of one aggregate.
struct AggregateRow {
    gate: bool,
    snapshot: bool,
    sequence: usize,
    version: usize,
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
}

/// The rows of `gates` that exist, then the aggregate's snapshot, if any,
/// then its events after it in order.
async fn read_aggregate_rows(
    db: &Db,
    aggregate_type: &str,
    aggregate_id: &str,
    gates: &[String],
) -> Result<Vec<AggregateRow>, sqlx::Error> {
    // JSON comes back as text on both stores and is parsed here.
    let text = if db.is_postgres() { "::text" } else { "" };
    let gate_rows = match (gates.is_empty(), db.is_postgres()) {
        (true, _) => String::new(),
        (false, true) => GATE_ROWS.replace("{gates}", "= ANY($3)"),
        (false, false) => {
            let params: Vec<String> = (3..3 + gates.len()).map(|n| format!("${n}")).collect();
            GATE_ROWS.replace("{gates}", &format!("IN ({})", params.join(",")))
        }
    };
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
         {gate_rows}
         ORDER BY 1 DESC, 2"
    );
    type Cols = (i32, i64, i64, String, String, String, String);
    let rows: Vec<Cols> = match db {
        Db::Postgres(pool) => {
            let q = sqlx::query_as(&sql).bind(aggregate_type).bind(aggregate_id);
            let q = if gates.is_empty() { q } else { q.bind(gates) };
            q.fetch_all(pool).await?
        }
        Db::Sqlite(pool) => {
            let mut q = sqlx::query_as(&sql).bind(aggregate_type).bind(aggregate_id);
            for g in gates {
                q = q.bind(g.as_str());
            }
            q.fetch_all(pool).await?
        }
    };
    let json = |s: &str| serde_json::from_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
    rows.into_iter()
        .map(
            |(snap, sequence, version, event_type, event_version, payload, metadata)| {
                Ok(AggregateRow {
                    gate: snap == 2,
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

/// The score gates' rows, as rows of [`read_aggregate_rows`].
const GATE_ROWS: &str = "UNION ALL
         SELECT 2, 0, 0, gate, '', CASE WHEN open THEN '1' ELSE '0' END, '{}'
           FROM score_gates WHERE gate {gates}";

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

/// Events per multi-row INSERT: 7 parameters each, well under both
/// stores' limits.
const EVENTS_PER_INSERT: usize = 500;

/// Binds the columns and values the store crates bind, one event after
/// another, to a statement made by [`insert_events_sql`].
macro_rules! bind_events {
    ($q:expr, $events:expr) => {{
        let mut q = $q;
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

/// Inserts `$events` on `$conn` (a pool or a transaction), up to
/// [`EVENTS_PER_INSERT`] a statement.
macro_rules! insert_all {
    ($db:expr, $conn:expr, $events:expr) => {{
        let numbered = $db.is_postgres();
        let mut result: Result<(), sqlx::Error> = Ok(());
        for chunk in $events.chunks(EVENTS_PER_INSERT) {
            let sql = insert_events_sql(chunk.len(), numbered);
            if let Err(e) = bind_events!(sqlx::query(&sql), chunk).execute($conn).await {
                result = Err(e);
                break;
            }
        }
        result
    }};
}

/// Binds what [`gates_hold_sql`] asks for, after the statement's other
/// parameters: on PostgreSQL the course, the gates and their values as
/// two arrays; on SQLite each (gate, value) pair.
macro_rules! bind_gates_pg {
    ($q:expr, $course:expr, $gates:expr) => {
        $q.bind($course)
            .bind($gates.iter().map(|g| g.0.as_str()).collect::<Vec<_>>())
            .bind($gates.iter().map(|g| g.1).collect::<Vec<_>>())
    };
}
macro_rules! bind_gates_sqlite {
    ($q:expr, $gates:expr) => {{
        let mut q = $q;
        for (gate, open) in $gates {
            q = q.bind(gate.as_str()).bind(*open);
        }
        q
    }};
}

/// Appends events of any number of `A` aggregates in one transaction, with
/// multi-row INSERTs of the very columns and values the store crates write
/// one statement per event (a backfill chunk would otherwise cost a round
/// trip, or on SQLite a hand-off to its connection thread, per row). Each
/// event must carry the next sequence of its aggregate: the events table's
/// key on (type, id, sequence) refuses the whole transaction with
/// `AggregateConflict` if another writer got there first. Snapshots are
/// left to the next command on each aggregate, which takes one when its
/// sequence passes the next multiple of [`SNAPSHOT_EVERY`].
///
/// The transaction first checks that every gate in `gates` still has the
/// value given (holding the course's gate lock shared on PostgreSQL) and
/// appends nothing when one does not: `Ok(false)`, decide again.
pub async fn append_behind_gates<A: Aggregate>(
    db: &Db,
    events: &[SerializedEvent],
    course: &str,
    gates: &[(String, bool)],
) -> Result<bool, AggregateError<A::Error>> {
    if events.is_empty() {
        return Ok(true);
    }
    let writers = sqlite_write_lock(db);
    let _turn = turn(writers.as_ref()).await;
    let (sql, all) = gates_hold_sql(db, gates.len(), 1);
    // The check, then the inserts, in one transaction.
    macro_rules! checked_append {
        ($pool:ident, $check:expr) => {
            async {
                let mut tx = gradebook_projections::begin_write!(db, $pool);
                let held: i64 = $check.fetch_one(&mut *tx).await?;
                if held != all {
                    tx.rollback().await?;
                    return Ok(false);
                }
                insert_all!(db, &mut *tx, events)?;
                tx.commit().await?;
                Ok(true)
            }
            .await
        };
    }
    let result: Result<bool, sqlx::Error> = match db {
        Db::Postgres(pool) => checked_append!(
            pool,
            bind_gates_pg!(sqlx::query_scalar(&sql), course, gates)
        ),
        Db::Sqlite(pool) => {
            checked_append!(pool, bind_gates_sqlite!(sqlx::query_scalar(&sql), gates))
        }
    };
    result.map_err(store_failure)
}

/// Inserts a command's events. Up to [`EVENTS_PER_INSERT`] events are one
/// statement, which commits by itself; more take a transaction. The
/// caller holds the SQLite writers' turn.
async fn insert_events<A: Aggregate>(
    db: &Db,
    events: &[SerializedEvent],
) -> Result<(), AggregateError<A::Error>> {
    if events.is_empty() {
        return Ok(());
    }
    let result: Result<(), sqlx::Error> = gradebook_projections::with_db!(db, pool => async {
        if events.len() <= EVENTS_PER_INSERT {
            return insert_all!(db, pool, events);
        }
        let mut tx = pool.begin().await?;
        insert_all!(db, &mut *tx, events)?;
        tx.commit().await
    }
    .await);
    result.map_err(store_failure)
}

/// Appends the events that change an aggregate's score gate together with
/// the gate's new value, in one transaction that holds the course's gate
/// lock exclusively on PostgreSQL: it waits for the score appends in
/// flight, and the ones after it see the new value. The caller holds the
/// SQLite writers' turn.
async fn commit_gate_change<A: Aggregate>(
    db: &Db,
    events: &[SerializedEvent],
    course: &str,
    gate: &str,
    open: bool,
) -> Result<(), sqlx::Error> {
    gradebook_projections::with_db!(db, pool => {
        let mut tx = gradebook_projections::begin_write!(db, pool);
        if db.is_postgres() {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(GATE_LOCK_CLASS)
                .bind(course)
                .execute(&mut *tx)
                .await?;
        }
        insert_all!(db, &mut *tx, events)?;
        sqlx::query(
            "INSERT INTO score_gates (gate, open) VALUES ($1, $2)
             ON CONFLICT (gate) DO UPDATE SET open = excluded.open",
        )
        .bind(gate)
        .bind(open)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
}

/// An SQL expression that counts how many of `n` gates hold the value
/// expected, with its parameters numbered from `first`, and the count that
/// means all of them do. PostgreSQL: `score_gates_hold` (course, gates,
/// values) takes the course's gate lock shared first and answers 1 or 0.
/// SQLite: a plain count of (gate, value) pairs.
fn gates_hold_sql(db: &Db, n: usize, first: usize) -> (String, i64) {
    if db.is_postgres() {
        (
            format!(
                "SELECT CASE WHEN score_gates_hold(${}, ${}, ${}) THEN 1::bigint ELSE 0::bigint END",
                first,
                first + 1,
                first + 2
            ),
            1,
        )
    } else if n == 0 {
        ("SELECT 0".into(), 0)
    } else {
        let pairs = vec!["(gate = ? AND open = ?)"; n].join(" OR ");
        (
            format!("SELECT count(*) FROM score_gates WHERE {pairs}"),
            n as i64,
        )
    }
}

/// Inserts a command's events (at most [`EVENTS_PER_INSERT`]) in one
/// statement that first checks the gates they were decided on; false
/// when one changed and nothing was inserted. The caller holds the SQLite
/// writers' turn.
async fn insert_if_gates<A: Aggregate>(
    db: &Db,
    events: &[SerializedEvent],
    course: &str,
    gates: &[(String, bool)],
) -> Result<bool, sqlx::Error> {
    debug_assert!(events.len() <= EVENTS_PER_INSERT);
    let numbered = db.is_postgres();
    let values = insert_events_sql(events.len(), numbered);
    let values = values
        .split_once(" VALUES ")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let (hold, n) = gates_hold_sql(db, gates.len(), events.len() * 7 + 1);
    // The check is an uncorrelated subquery: evaluated once, before any
    // row is inserted.
    let sql = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT * FROM (VALUES {values}) AS v WHERE ({hold}) = {n}"
    );
    let inserted = match db {
        Db::Postgres(pool) => {
            bind_gates_pg!(bind_events!(sqlx::query(&sql), events), course, gates)
                .execute(pool)
                .await?
                .rows_affected()
        }
        Db::Sqlite(pool) => bind_gates_sqlite!(bind_events!(sqlx::query(&sql), events), gates)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    Ok(inserted == events.len() as u64)
}

/// The values of `gates`, in order. A gate without a row (its aggregate
/// predates the gates table, or does not exist) is worked out from its
/// aggregate and, with `fill`, stored for the next post. Storing cannot
/// put a stale value in place: a gate change always writes its row, so a
/// row filled from an older state is either overwritten by it or, when
/// the change came first, not written.
pub async fn read_gates<E: std::error::Error>(
    db: &Db,
    gates: &[String],
    fill: bool,
) -> Result<Vec<bool>, AggregateError<E>> {
    let rows: Vec<(String, bool)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as("SELECT gate, open FROM score_gates WHERE gate = ANY($1)")
                .bind(gates)
                .fetch_all(pool)
                .await
        }
        Db::Sqlite(pool) => {
            let sql = format!(
                "SELECT gate, open FROM score_gates WHERE gate IN ({})",
                vec!["?"; gates.len()].join(",")
            );
            let mut q = sqlx::query_as(&sql);
            for g in gates {
                q = q.bind(g.as_str());
            }
            q.fetch_all(pool).await
        }
    }
    .map_err(store_failure)?;
    resolve_gates(db, gates, rows.into_iter().collect(), fill).await
}

/// The values of `gates`, in order, from the rows read (`known`) and, for
/// a gate without one, from its aggregate (see [`read_gates`]).
async fn resolve_gates<E: std::error::Error>(
    db: &Db,
    gates: &[String],
    known: HashMap<String, bool>,
    fill: bool,
) -> Result<Vec<bool>, AggregateError<E>> {
    let mut out = Vec::with_capacity(gates.len());
    for gate in gates {
        out.push(match known.get(gate) {
            Some(open) => *open,
            None => gate_from_log(db, gate, fill).await.map_err(retype)?,
        });
    }
    Ok(out)
}

/// A gate's value from its aggregate, as the log holds it now.
async fn gate_from_log(
    db: &Db,
    gate: &str,
    fill: bool,
) -> Result<bool, AggregateError<gradebook_domain::DomainError>> {
    use gradebook_domain::course::Course;
    use gradebook_domain::enrollment::Enrollment;
    use gradebook_domain::line_item::LineItem;
    let (kind, id) = gate.split_once(':').unwrap_or((gate, ""));
    let open = match kind {
        k if k == Course::TYPE => AggStore::<Course>::new(db)
            .load(id)
            .await?
            .lets_scores_through(),
        k if k == LineItem::TYPE => AggStore::<LineItem>::new(db)
            .load(id)
            .await?
            .lets_scores_through(),
        k if k == Enrollment::TYPE => AggStore::<Enrollment>::new(db)
            .load(id)
            .await?
            .lets_scores_through(),
        _ => false,
    };
    if fill {
        let writers = sqlite_write_lock(db);
        let _turn = turn(writers.as_ref()).await;
        gradebook_projections::with_db!(db, pool => {
            sqlx::query("INSERT INTO score_gates (gate, open) VALUES ($1, $2) ON CONFLICT (gate) DO NOTHING")
                .bind(gate)
                .bind(open)
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(store_failure)?;
    }
    Ok(open)
}

/// An error from loading another kind of aggregate, as this one's.
fn retype<E2: std::error::Error>(
    e: AggregateError<gradebook_domain::DomainError>,
) -> AggregateError<E2> {
    match e {
        AggregateError::UserError(e) => AggregateError::UnexpectedError(Box::new(e)),
        AggregateError::AggregateConflict => AggregateError::AggregateConflict,
        AggregateError::DatabaseConnectionError(e) => AggregateError::DatabaseConnectionError(e),
        AggregateError::DeserializationError(e) => AggregateError::DeserializationError(e),
        AggregateError::UnexpectedError(e) => AggregateError::UnexpectedError(e),
    }
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
