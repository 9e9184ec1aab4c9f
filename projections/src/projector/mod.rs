//! The projector: reads the event log in global order from a stored
//! checkpoint and applies each batch to the read tables in the transaction
//! that advances the checkpoint, so a crash loses nothing and applies
//! nothing twice.
//!
//! On PostgreSQL only one node projects at a time: the one holding a
//! session advisory lock. The others follow the checkpoint table, so a
//! writer on any node can wait until its own event is readable.
//!
//! Its parts: the log reader (`events`), what events write to the read
//! tables (`apply`) and, on SQLite, this process's queue of writers
//! (`write_lock`).

pub mod apply;
pub mod events;
pub mod grades;
pub mod write_lock;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::{oneshot, watch, Notify};

use self::events::{read_after, Checkpoint, Envelope, RawEvent, ReadError};
use crate::db::{ts, Db, Param, Stmt};
use crate::with_db;

/// The checkpoint row of the read model.
pub const NAME: &str = "read_model";
/// Events applied per transaction.
pub const BATCH: i64 = 500;
/// Arbitrary but fixed: the advisory lock key that elects the projecting node.
const LEADER_LOCK_KEY: i64 = 0x6772_6164_6562_6f6b; // "gradebok"

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("another projector moved the checkpoint")]
    Conflict,
    #[error("a replay task failed: {0}")]
    Task(String),
}

/// The tables the projector owns, emptied by a replay.
pub const READ_TABLES: [&str; 11] = [
    "rm_courses",
    "rm_course_tools",
    "rm_resource_links",
    "rm_line_items",
    "rm_enrollments",
    "rm_tool_accounts",
    "rm_scores",
    "rm_course_grades",
    "rm_grade_history",
    "rm_cell_history",
    "projector_checkpoints",
];

/// Aggregates (type, id) whose events were applied lately, with the
/// highest sequence applied, and the writers waiting for theirs. A writer
/// knows its aggregate and sequence without asking the database where its
/// event landed; the projector tells it directly once the event is applied.
/// An aggregate: its type and id.
type AggregateKey = (String, String);
/// A writer waiting for a sequence of an aggregate to be applied.
type Waiter = (i64, oneshot::Sender<()>);

#[derive(Default)]
struct Applied {
    /// Two generations: the newer is swapped out when it grows large, so an
    /// entry lives for at least `RECENT` later aggregates.
    recent: HashMap<AggregateKey, i64>,
    older: HashMap<AggregateKey, i64>,
    waiters: HashMap<AggregateKey, Vec<Waiter>>,
}

const RECENT: usize = 50_000;

impl Applied {
    fn seen(&self, key: &AggregateKey) -> Option<i64> {
        self.recent
            .get(key)
            .or_else(|| self.older.get(key))
            .copied()
    }

    /// Whether a writer still waits for an event (one that gave up leaves
    /// a closed sender, which does not count).
    fn anyone_waiting(&self) -> bool {
        self.waiters
            .values()
            .flatten()
            .any(|(_, tx)| !tx.is_closed())
    }

    fn record(&mut self, batch: &[Envelope]) {
        for e in batch {
            let key = (e.aggregate_type.clone(), e.aggregate_id.clone());
            if let Some(list) = self.waiters.get_mut(&key) {
                let mut i = 0;
                while i < list.len() {
                    if list[i].0 <= e.sequence || list[i].1.is_closed() {
                        let _ = list.swap_remove(i).1.send(());
                    } else {
                        i += 1;
                    }
                }
                if list.is_empty() {
                    self.waiters.remove(&key);
                }
            }
            let seq = self.recent.entry(key).or_insert(e.sequence);
            *seq = (*seq).max(e.sequence);
        }
        if self.recent.len() > RECENT {
            self.older = std::mem::take(&mut self.recent);
            // Writers that gave up leave closed senders behind.
            self.waiters.retain(|_, list| {
                list.retain(|(_, tx)| !tx.is_closed());
                !list.is_empty()
            });
        }
    }
}

/// A cheap, cloneable view of the projector's progress, for writers that
/// want to read their own writes.
#[derive(Clone)]
pub struct ProjectionHandle {
    progress: watch::Receiver<Checkpoint>,
    wake: Arc<Notify>,
    applied: Arc<Mutex<Applied>>,
    leading: Arc<AtomicBool>,
    /// Writers waiting for a position of the log ([`Self::wait_for`]).
    position_waiters: Arc<AtomicUsize>,
}

/// Counts a waiter for as long as it waits, however its wait ends
/// (answered, timed out, or dropped with its request).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProjectionHandle {
    /// Asks the projector to look at the log now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn current(&self) -> Checkpoint {
        *self.progress.borrow()
    }

    /// Whether this node's projector is the one applying events (on
    /// PostgreSQL, the holder of the advisory lock), as of its last look.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Waits until `at` has been applied, or `timeout` passes. Returns
    /// whether it was applied.
    pub async fn wait_for(&self, at: Checkpoint, timeout: Duration) -> bool {
        let _waiting = Waiting::start(&self.position_waiters);
        self.wake();
        let mut rx = self.progress.clone();
        tokio::time::timeout(timeout, rx.wait_for(|cp| *cp >= at))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until this node's projector has applied `sequence` of the
    /// aggregate. Returns `None` when it cannot tell (this node does not
    /// project, or `timeout` passed: the entry may have aged out), so the
    /// caller falls back to [`Self::wait_for`] with the event's position.
    pub async fn wait_for_event(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
        timeout: Duration,
    ) -> Option<()> {
        if !self.leading.load(Ordering::Relaxed) {
            return None;
        }
        let key = (aggregate_type.to_string(), aggregate_id.to_string());
        let rx = {
            let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            if applied.seen(&key).is_some_and(|s| s >= sequence) {
                return Some(());
            }
            let (tx, rx) = oneshot::channel();
            applied.waiters.entry(key).or_default().push((sequence, tx));
            rx
        };
        self.wake();
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }
}

pub async fn load_checkpoint(db: &Db) -> Result<Checkpoint, sqlx::Error> {
    with_db!(db, pool => {
        let row = sqlx::query("SELECT last_tx_id, last_position FROM projector_checkpoints WHERE name = $1")
            .bind(NAME)
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|r| Checkpoint { tx: r.get(0), position: r.get(1) }).unwrap_or_default())
    })
}

fn checkpoint_stmt(from: Checkpoint, to: Checkpoint) -> Stmt {
    // Guarded by the old value: if two projectors ever ran at once, the
    // second one's batch would not commit.
    if from == Checkpoint::default() {
        Stmt::new(
            "INSERT INTO projector_checkpoints (name, last_tx_id, last_position, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET last_tx_id = excluded.last_tx_id, last_position = excluded.last_position, updated_at = excluded.updated_at
             WHERE projector_checkpoints.last_tx_id = 0 AND projector_checkpoints.last_position = 0",
            vec![NAME.into(), to.tx.into(), to.position.into(), ts(chrono::Utc::now()).into()],
        )
    } else {
        Stmt::new(
            "UPDATE projector_checkpoints SET last_tx_id = $2, last_position = $3, updated_at = $4
             WHERE name = $1 AND last_tx_id = $5 AND last_position = $6",
            vec![
                NAME.into(),
                to.tx.into(),
                to.position.into(),
                ts(chrono::Utc::now()).into(),
                Param::Int(from.tx),
                Param::Int(from.position),
            ],
        )
    }
}

/// Applies decoded events, with the kept grades they change, and moves the
/// checkpoint from `from` to the last event's position, in one transaction.
/// `keeper` holds the courses' grading state between batches; it is
/// emptied if the batch does not commit.
pub async fn apply_batch(
    db: &Db,
    from: Checkpoint,
    batch: &[Envelope],
    keeper: &mut grades::GradeKeeper,
) -> Result<Checkpoint, ProjectError> {
    let Some(last) = batch.last() else {
        return Ok(from);
    };
    let to = last.at;
    keeper.start(from);
    let result = write_batch(db, from, to, batch, keeper).await;
    match &result {
        Ok(_) => keeper.committed(to),
        Err(_) => keeper.clear(),
    }
    result
}

async fn write_batch(
    db: &Db,
    from: Checkpoint,
    to: Checkpoint,
    batch: &[Envelope],
    keeper: &mut grades::GradeKeeper,
) -> Result<Checkpoint, ProjectError> {
    // The courses not held yet are read as the tables stand at `from`; if
    // another projector moved on meanwhile, the checkpoint guard below
    // refuses this batch and the keeper is emptied.
    for course in keeper.missing(batch) {
        let view = crate::tables::queries::load_report_view(
            db,
            &course,
            crate::tables::queries::People::All,
        )
        .await
        .map_err(|e| match e {
            crate::tables::queries::QueryError::Db(e) => ProjectError::Db(e),
            crate::tables::queries::QueryError::Read(e) => ProjectError::Read(e),
            other => ProjectError::Task(other.to_string()),
        })?;
        keeper.insert(&course, view);
    }
    let mut changes = apply::Changes::new();
    for env in batch {
        changes.add(env);
    }
    changes.add_grades(keeper.apply(batch));
    let cp = checkpoint_stmt(from, to);
    let writers = crate::projector::write_lock::sqlite_write_lock(db);
    let _turn = crate::projector::write_lock::turn(writers.as_ref()).await;
    with_db!(db, pool => {
        // The read tables are derived from the log, and the checkpoint
        // commits with them: a crash can only lose a batch that is then
        // applied again. So on PostgreSQL this commit need not wait for the
        // disk, which halves the flushes a write waits for; the setting
        // travels with the BEGIN, in the same round trip. On SQLite the
        // write lock is taken at once.
        let begin = if db.is_postgres() {
            "BEGIN; SET LOCAL synchronous_commit = off"
        } else {
            "BEGIN IMMEDIATE"
        };
        let mut tx = pool.begin_with(begin).await?;
        // The checkpoint goes first: on SQLite the first write takes the lock.
        let moved = crate::exec_stmt!(cp, &mut *tx)?.rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Err(ProjectError::Conflict);
        }
        for s in changes.into_statements(db.is_postgres()) {
            crate::exec_stmt!(s, &mut *tx)?;
        }
        tx.commit().await?;
    });
    Ok(to)
}

pub struct Projector {
    db: Db,
    progress: watch::Sender<Checkpoint>,
    wake: Arc<Notify>,
    applied: Arc<Mutex<Applied>>,
    leading: Arc<AtomicBool>,
    position_waiters: Arc<AtomicUsize>,
    grades: Mutex<grades::GradeKeeper>,
}

impl Projector {
    pub async fn new(db: Db) -> Result<Self, sqlx::Error> {
        let cp = load_checkpoint(&db).await?;
        let (progress, _) = watch::channel(cp);
        Ok(Self {
            db,
            progress,
            wake: Arc::new(Notify::new()),
            applied: Arc::default(),
            leading: Arc::new(AtomicBool::new(false)),
            position_waiters: Arc::default(),
            grades: Mutex::default(),
        })
    }

    pub fn handle(&self) -> ProjectionHandle {
        ProjectionHandle {
            progress: self.progress.subscribe(),
            wake: self.wake.clone(),
            applied: self.applied.clone(),
            leading: self.leading.clone(),
            position_waiters: self.position_waiters.clone(),
        }
    }

    /// Applies the next batch; returns how many events it applied.
    pub async fn step(&self) -> Result<usize, ProjectError> {
        let from = *self.progress.borrow();
        let raws = read_after(&self.db, from, BATCH).await?;
        if raws.is_empty() {
            return Ok(0);
        }
        let batch: Vec<Envelope> = raws
            .into_iter()
            .map(RawEvent::decode)
            .collect::<Result<_, _>>()?;
        // Taken out for the batch (a step dropped halfway leaves an empty
        // keeper, which loads what it needs again).
        let mut keeper =
            std::mem::take(&mut *self.grades.lock().unwrap_or_else(|p| p.into_inner()));
        let applied = apply_batch(&self.db, from, &batch, &mut keeper).await;
        *self.grades.lock().unwrap_or_else(|p| p.into_inner()) = keeper;
        let to = match applied {
            Ok(to) => to,
            Err(ProjectError::Conflict) => {
                // Someone else projected; take their progress as ours.
                let cp = load_checkpoint(&self.db).await?;
                self.progress.send_replace(cp);
                return Err(ProjectError::Conflict);
            }
            Err(e) => return Err(e),
        };
        self.progress.send_replace(to);
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&batch);
        Ok(batch.len())
    }

    /// Applies everything readable now. A batch smaller than [`BATCH`]
    /// was all the log held when it was read, so there is no need to ask
    /// again: whatever commits later wakes the projector.
    pub async fn catch_up(&self) -> Result<usize, ProjectError> {
        let mut total = 0;
        loop {
            let n = self.step().await?;
            total += n;
            if n < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Refreshes the published progress from the table (for followers).
    async fn follow(&self) -> Result<(), sqlx::Error> {
        let cp = load_checkpoint(&self.db).await?;
        if cp > *self.progress.borrow() {
            self.progress.send_replace(cp);
        }
        Ok(())
    }

    /// Whether a writer on this node waits for the projector: for its
    /// event, or for a position of the log.
    fn someone_waits(&self) -> bool {
        self.position_waiters.load(Ordering::Relaxed) > 0
            || self
                .applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .anyone_waiting()
    }

    /// Runs until `shutdown` resolves: projects while this node leads,
    /// follows the checkpoint otherwise.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut leader = Leadership::new(&self.db);
        loop {
            let leading = leader.hold().await;
            self.leading.store(leading, Ordering::Relaxed);
            let result = if leading {
                self.catch_up().await
            } else {
                self.follow().await.map(|_| 0).map_err(ProjectError::from)
            };
            // While a writer waits, its event may not be readable yet (an
            // older transaction still runs, and may have no event of its
            // own to wake us when it ends), so look again soon. Once no
            // one waits, the next write wakes us: polling then would only
            // cost the database a query every 2 ms.
            let eager = leading && self.someone_waits();
            let pause = match result {
                Ok(_) if eager => Duration::from_millis(2),
                Ok(_) if leading => Duration::from_millis(200),
                Ok(_) => Duration::from_millis(10),
                Err(ProjectError::Conflict) => Duration::from_millis(0),
                Err(e) => {
                    tracing::warn!(error = %e, "projector step failed; retrying");
                    leader.reset();
                    Duration::from_millis(500)
                }
            };
            tokio::select! {
                _ = &mut shutdown => {
                    self.leading.store(false, Ordering::Relaxed);
                    return;
                }
                _ = self.wake.notified(), if leading => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Which node projects. PostgreSQL: the holder of a session advisory lock
/// on a connection kept for that purpose (released by the server when the
/// node dies). SQLite: the one process using the file.
struct Leadership {
    db: Db,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    /// When the lock's connection was last seen alive.
    checked: tokio::time::Instant,
}

/// How often the leader checks that its lock's connection is alive. In
/// between, a lost lock shows up as a failed step, and the checkpoint guard
/// keeps a second projector from applying a batch twice.
const LEADER_CHECK: Duration = Duration::from_secs(1);

impl Leadership {
    fn new(db: &Db) -> Self {
        Self {
            db: db.clone(),
            conn: None,
            checked: tokio::time::Instant::now(),
        }
    }

    fn reset(&mut self) {
        self.conn = None;
    }

    async fn hold(&mut self) -> bool {
        let Db::Postgres(pool) = &self.db else {
            return true;
        };
        if let Some(conn) = &mut self.conn {
            if self.checked.elapsed() < LEADER_CHECK {
                return true;
            }
            // Still alive? A dead connection means the lock is gone.
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                self.checked = tokio::time::Instant::now();
                return true;
            }
            self.conn = None;
        }
        let Ok(mut conn) = pool.acquire().await else {
            return false;
        };
        let got: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await;
        if got.unwrap_or(false) {
            // Keep this connection out of the pool for as long as we lead.
            self.conn = Some(conn);
            self.checked = tokio::time::Instant::now();
            tracing::info!("this node now runs the projector");
            true
        } else {
            false
        }
    }
}

/// Arbitrary but fixed: the advisory lock nodes take turns on to rebuild an
/// emptied read model ("gradebok" + 1).
const REBUILD_LOCK_KEY: i64 = LEADER_LOCK_KEY + 1;

/// Rebuilds the read model in one replay when it has no checkpoint while
/// the log has events: after a migration that empties the read tables to
/// fill new ones (0011 does), a node replays before it serves instead of
/// projecting the whole log batch by batch while answering. Nodes starting
/// at once on PostgreSQL take turns on an advisory lock, and the later
/// ones find the work done. Returns how many events were replayed.
pub async fn rebuild_if_emptied(db: &Db) -> Result<Option<u64>, ProjectError> {
    async fn emptied(db: &Db) -> Result<bool, ProjectError> {
        if load_checkpoint(db).await? != Checkpoint::default() {
            return Ok(false);
        }
        let any: bool = with_db!(db, pool => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events)").fetch_one(pool).await?
        });
        Ok(any)
    }
    async fn rebuild(db: &Db) -> Result<Option<u64>, ProjectError> {
        if !emptied(db).await? {
            return Ok(None);
        }
        tracing::info!("the read model is empty: rebuilding it from the log before serving");
        replay(db, |_| {}).await.map(Some)
    }
    match db {
        Db::Postgres(pool) => {
            let mut turn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(REBUILD_LOCK_KEY)
                .execute(&mut *turn)
                .await?;
            let result = rebuild(db).await;
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(REBUILD_LOCK_KEY)
                .execute(&mut *turn)
                .await;
            result
        }
        Db::Sqlite(_) => rebuild(db).await,
    }
}

/// Events read from the log per query during a replay.
const REPLAY_PAGE: i64 = 10_000;
/// Events folded in memory before a replay writes them: bounds memory
/// (one pending change per row touched) whatever the log's length.
pub const REPLAY_CHUNK: usize = 50_000;

/// Rebuilds every read table from the log in one transaction, so readers
/// see the old tables until the new ones are complete. `progress` is told
/// how many events have been applied so far.
///
/// A reader task streams the log in pages and decodes it while this task
/// folds the events into [`apply::Changes`] and writes each chunk with
/// multi-row statements: the same code the live projector applies its
/// batches with, only with larger chunks. A chunk ends only between
/// aggregates. The log is read aggregate by aggregate (the events table's
/// primary key) rather than in log order: every read-table row is made
/// from the events of one aggregate, which then arrive together and in
/// their own order, so each row is new when its chunk is written (on
/// PostgreSQL it goes in with `COPY`) and the tables fill in key order. In
/// log order a learner's cell is touched again by every pass of grades, and
/// each chunk upserted rows written before it.
pub async fn replay(db: &Db, progress: impl FnMut(u64)) -> Result<u64, ProjectError> {
    replay_in_chunks(db, REPLAY_CHUNK, progress).await
}

/// [`replay`] with a chosen chunk size (tests use small ones to cross
/// chunk boundaries often).
pub async fn replay_in_chunks(
    db: &Db,
    chunk: usize,
    mut progress: impl FnMut(u64),
) -> Result<u64, ProjectError> {
    let (pages_tx, mut pages) =
        tokio::sync::mpsc::channel::<Result<Vec<Envelope>, ProjectError>>(4);
    let mut applied = 0u64;
    // The checkpoint is the latest event replayed, in log order.
    let mut last = Checkpoint::default();
    with_db!(db, pool => {
        let mut tx = crate::begin_write!(db, pool);
        for t in READ_TABLES {
            sqlx::query(&format!("DELETE FROM {t}")).execute(&mut *tx).await?;
        }
        // Start reading only once the old rows are gone, so the reader's
        // connection never waits on this transaction; on SQLite no event
        // can be written from here on, as this transaction holds the lock.
        let reader = tokio::spawn(read_log(db.clone(), pages_tx));
        // A writer task owns the transaction, so the server takes one chunk
        // while the next is folded here and the one after is read.
        let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<apply::Changes>(1);
        let writer = tokio::spawn(async move {
            while let Some(changes) = chunks.recv().await {
                (*tx).write_chunk(changes).await?;
            }
            Ok::<_, ProjectError>(tx)
        });
        let mut changes = apply::Changes::new();
        let mut current: Option<(String, String)> = None;
        let mut courses = CourseEvents::default();
        'read: while let Some(page) = pages.recv().await {
            for env in page? {
                let same = current.as_ref().is_some_and(|(t, id)| {
                    *t == env.aggregate_type && *id == env.aggregate_id
                });
                if !same {
                    if changes.weight() >= chunk.max(1)
                        && chunks_tx.send(std::mem::take(&mut changes)).await.is_err()
                    {
                        // The writer stopped: its error is reported below.
                        break 'read;
                    }
                    current = Some((env.aggregate_type.clone(), env.aggregate_id.clone()));
                }
                changes.add(&env);
                last = last.max(env.at);
                applied += 1;
                if let Some(done) = courses.add(env) {
                    changes.add_grades(done);
                }
            }
            progress(applied);
        }
        changes.add_grades(courses.finish());
        let _ = chunks_tx.send(changes).await;
        drop(chunks_tx);
        let mut tx = writer.await.map_err(|e| ProjectError::Task(e.to_string()))??;
        let _ = reader.await;
        crate::exec_stmt!(checkpoint_stmt(Checkpoint::default(), last), &mut *tx)?;
        tx.commit().await?;
    });
    // Every read table was just rewritten: PostgreSQL's planner would go
    // on estimating from the old statistics (or none) until autovacuum
    // came by, and read a million-row history table whole for a range of
    // it. SQLite plans from its indexes without statistics.
    if let Db::Postgres(pool) = db {
        sqlx::query(&format!("ANALYZE {}", READ_TABLES.join(", ")))
            .execute(pool)
            .await?;
    }
    Ok(applied)
}

/// A replay's way to the kept grades, which need each course's events in
/// log order while the replay reads the log aggregate by aggregate. The
/// aggregate types come in the order course, enrollment, line item, score,
/// and a course's score aggregates (`course/item/user`) lie together: so
/// each course's other events are held until its scores arrive, and a
/// course is graded, from its events sorted back into log order, as soon
/// as the next course's scores begin. Memory: every course's few set-up
/// events, and one course's scores.
#[derive(Default)]
struct CourseEvents {
    setup: HashMap<String, Vec<Envelope>>,
    scores_of: Option<String>,
    scores: Vec<Envelope>,
}

impl CourseEvents {
    /// Takes one event; returns a course's grade rows when one is complete.
    fn add(&mut self, env: Envelope) -> Option<grades::GradeWrites> {
        let course = gradebook_domain::ids::aggregate_id::course_of(&env.aggregate_id);
        if !matches!(env.event, events::AnyEvent::Score(_)) {
            self.setup.entry(course.to_string()).or_default().push(env);
            return None;
        }
        let done = match &self.scores_of {
            Some(c) if c == course => None,
            _ => {
                let done = self.grade_current();
                self.scores_of = Some(course.to_string());
                done
            }
        };
        self.scores.push(env);
        done
    }

    fn grade_current(&mut self) -> Option<grades::GradeWrites> {
        let course = self.scores_of.take()?;
        let mut events = self.setup.remove(&course).unwrap_or_default();
        events.append(&mut self.scores);
        events.sort_by_key(|e| e.at);
        Some(grades::grade_course(&course, &events))
    }

    /// The rows of every course not graded yet.
    fn finish(mut self) -> grades::GradeWrites {
        let mut out = self.grade_current().unwrap_or_default();
        for (course, mut events) in std::mem::take(&mut self.setup) {
            events.sort_by_key(|e| e.at);
            out.append(grades::grade_course(&course, &events));
        }
        out
    }
}

/// How a replay writes a chunk of folded changes into tables it emptied.
trait ReplayWrite {
    async fn write_chunk(&mut self, changes: apply::Changes) -> Result<(), ProjectError>;
}

impl ReplayWrite for sqlx::PgConnection {
    /// Every row of a replay chunk is new, so it goes in with `COPY`.
    async fn write_chunk(&mut self, changes: apply::Changes) -> Result<(), ProjectError> {
        for w in changes.into_copies() {
            match w {
                apply::Write::Stmt(s) => {
                    crate::exec_stmt!(s, &mut *self)?;
                }
                apply::Write::Copy { sql, data } => {
                    let mut copy = self.copy_in_raw(&sql).await?;
                    copy.send(data.into_bytes()).await?;
                    copy.finish().await?;
                }
            }
        }
        Ok(())
    }
}

impl ReplayWrite for sqlx::SqliteConnection {
    /// Every row of a chunk is new here too, but SQLite has no `COPY`: the
    /// live projector's multi-row upserts are its cheapest way in, and
    /// with the log read aggregate by aggregate they only ever insert.
    async fn write_chunk(&mut self, changes: apply::Changes) -> Result<(), ProjectError> {
        for s in changes.into_statements(false) {
            crate::exec_stmt!(s, &mut *self)?;
        }
        Ok(())
    }
}

/// Reads and decodes the log in pages, aggregate by aggregate, sending each
/// page on; stops at the end, at the first error, or when nobody listens.
/// On PostgreSQL the log is read up to the transaction horizon taken as the
/// reading starts.
async fn read_log(db: Db, out: tokio::sync::mpsc::Sender<Result<Vec<Envelope>, ProjectError>>) {
    let horizon = match &db {
        Db::Postgres(pool) => match events::pg_horizon(pool).await {
            Ok(h) => h,
            Err(e) => {
                let _ = out.send(Err(e.into())).await;
                return;
            }
        },
        Db::Sqlite(_) => 0,
    };
    let mut after = events::AggregateKey::default();
    loop {
        let page = events::read_by_aggregate(&db, &after, horizon, REPLAY_PAGE)
            .await
            .map_err(ProjectError::from);
        if page.as_ref().is_ok_and(|p| p.is_empty()) {
            return;
        }
        if let Ok(Some(e)) = page.as_ref().map(|p| p.last()) {
            after = events::AggregateKey {
                aggregate_type: e.aggregate_type.clone(),
                aggregate_id: e.aggregate_id.clone(),
                sequence: e.sequence,
            };
        }
        let failed = page.is_err();
        if out.send(page).await.is_err() || failed {
            return;
        }
    }
}

/// Every row of every read table as text, sorted, for comparing a live
/// projection with a replay (the checkpoint's own timestamp left out).
pub async fn dump_read_tables(
    db: &Db,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, sqlx::Error> {
    use sqlx::{Column, ValueRef};
    let mut out = std::collections::BTreeMap::new();
    for t in READ_TABLES {
        let rows = with_db!(db, pool => {
            let rows = sqlx::query(&format!("SELECT * FROM {t}")).fetch_all(pool).await?;
            let mut lines = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut cells = Vec::new();
                for (i, c) in r.columns().iter().enumerate() {
                    if c.name() == "updated_at" {
                        continue;
                    }
                    let cell = if r.try_get_raw(i)?.is_null() {
                        "NULL".to_string()
                    } else if let Ok(s) = r.try_get::<String, _>(i) {
                        s
                    } else if let Ok(n) = r.try_get::<i64, _>(i) {
                        n.to_string()
                    } else {
                        r.try_get::<bool, _>(i)?.to_string()
                    };
                    cells.push(format!("{}={cell}", c.name()));
                }
                lines.push(cells.join("|"));
            }
            lines
        });
        let mut rows = rows;
        rows.sort();
        out.insert(t.to_string(), rows);
    }
    Ok(out)
}
