//! The application services: each registrar, SIS or tool action as one
//! method that reads the facts it needs, runs a command on an aggregate,
//! retries on an optimistic-concurrency conflict, and waits until the
//! projector has applied what it wrote (so the caller reads its own write).

use std::time::Duration;

use cqrs_es::{Aggregate, AggregateError};
use gradebook_domain::course::{Course, CourseCommand, ResourceLink};
use gradebook_domain::enrollment::{Enrollment, EnrollmentCommand, LaunchKind, Person};
use gradebook_domain::gate::ScoreGate;
use gradebook_domain::ids::{aggregate_id, ResourceLinkId};
use gradebook_domain::line_item::{LineItem, LineItemCommand, LineItemPatch, LineItemSpec};
use gradebook_domain::policy::{MissingPolicy, ScaleEntry, Scheme};
use gradebook_domain::score::{Score, ScoreCommand, ScoreFacts, ScoreOutcome, ScorePost};
use gradebook_domain::{CommandMeta, CourseId, DomainError, LineItemId, ToolId, UserId};
use gradebook_projections::db::Db;
use gradebook_projections::projector::events::{checkpoint_of, ReadError};
use gradebook_projections::projector::{ProjectionHandle, Projector};
use gradebook_projections::tables::queries::{self, QueryError, ScoreContext};

use crate::store::{gate_key, AggStore};

/// How often a command is retried when another writer got to the same
/// aggregate first.
const MAX_ATTEMPTS: usize = 20;
/// How long a write waits for the projector before answering anyway (the
/// event is committed either way).
const READ_YOUR_WRITE_WAIT: Duration = Duration::from_secs(5);
/// How long a write waits to be told by this node's projector before it
/// looks its event up instead.
const APPLIED_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the database is not reachable: {0}")]
    Unavailable(String),
    #[error("too many concurrent changes to the same record; retry")]
    Contended,
    #[error("internal error: {0}")]
    Internal(String),
    /// Recorded, but the read side (grade reports, rosters, the pages, the
    /// tool checks that read it) does not show it yet: the projector is
    /// behind. Not "does not exist", and not to be sent again.
    #[error(transparent)]
    NotYetVisible(NotYetVisible),
}

/// A write the log holds and the read side does not show yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} is recorded, but the read side has not applied it yet, and {meanwhile} until it does"
)]
pub struct NotYetVisible {
    /// What was written.
    pub what: String,
    /// What holds until the read side shows it.
    pub meanwhile: String,
    /// Where it will show.
    pub shown_in: Shown,
}

/// Where a write shows once the read side has applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Course(CourseId),
    Enrollments(CourseId),
}

/// What a write recorded, and whether the read side shows it yet.
#[derive(Debug)]
pub struct Written<E> {
    pub events: Vec<E>,
    pub visible: bool,
}

impl<E> Written<E> {
    /// The events, once the read side shows them; else what to say.
    fn shown(self, not_yet: impl FnOnce() -> NotYetVisible) -> Result<Vec<E>, EngineError> {
        if self.visible {
            Ok(self.events)
        } else {
            Err(EngineError::NotYetVisible(not_yet()))
        }
    }
}

impl From<QueryError> for EngineError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Db(e) | QueryError::Read(ReadError::Db(e)) => db_error(e),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

impl From<ReadError> for EngineError {
    fn from(e: ReadError) -> Self {
        QueryError::from(e).into()
    }
}

impl From<sqlx::Error> for EngineError {
    fn from(e: sqlx::Error) -> Self {
        db_error(e)
    }
}

/// Whether a database error means the store is not there for us (the
/// caller should retry later) rather than a fault in what we asked.
fn store_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions, resource shortage, operator intervention,
        // a database that refuses connections or is gone, failed logins.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            ["08", "53", "57", "58", "28"]
                .iter()
                .any(|p| c.starts_with(p))
                || c == "55000"
                || c == "3D000"
        }),
        _ => false,
    }
}

/// A value the database cannot hold (PostgreSQL refuses NUL in text and
/// `\u0000` in JSON): the request's data, not our fault, so a 4xx.
fn unstorable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "22021" || c == "22P05"))
}

fn db_error(e: sqlx::Error) -> EngineError {
    classify(&e, e.to_string())
}

/// The one reading of a database error: the store is away (retry later),
/// the request holds what it cannot store (the caller's data, a 4xx), or
/// our fault. `text` is what to say of it.
fn classify(e: &sqlx::Error, text: String) -> EngineError {
    if store_unreachable(e) {
        EngineError::Unavailable(text)
    } else if unstorable(e) {
        tracing::warn!(error = %text, "refused a value the database cannot store");
        DomainError::InvalidInput(
            "the request holds a character that cannot be stored (such as NUL)".into(),
        )
        .into()
    } else {
        EngineError::Internal(text)
    }
}

/// The store crates wrap database errors in boxes; look inside.
pub(crate) fn store_error(e: AggregateError<DomainError>) -> EngineError {
    match e {
        AggregateError::UserError(d) => EngineError::Domain(d),
        AggregateError::AggregateConflict => EngineError::Contended,
        AggregateError::DatabaseConnectionError(e) => EngineError::Unavailable(e.to_string()),
        AggregateError::UnexpectedError(e) => match e.downcast_ref::<sqlx::Error>() {
            Some(sqlx_error) => classify(sqlx_error, e.to_string()),
            None => EngineError::Internal(e.to_string()),
        },
        other => EngineError::Internal(other.to_string()),
    }
}

pub struct Engine {
    pub db: Db,
    courses: AggStore<Course>,
    line_items: AggStore<LineItem>,
    enrollments: AggStore<Enrollment>,
    scores: AggStore<Score>,
    projection: ProjectionHandle,
}

impl Engine {
    /// Migrates the store and builds the engine and its projector; the
    /// caller runs the projector (`Projector::run`).
    pub async fn start(db: Db) -> Result<(Engine, Projector), anyhow::Error> {
        db.migrate().await?;
        // A migration may have emptied the read model to fill new tables:
        // one replay now, rather than the whole log batch by batch while
        // serving.
        if let Some(n) = gradebook_projections::projector::rebuild_if_emptied(&db).await? {
            tracing::info!(events = n, "read model rebuilt from the log");
        }
        let projector = Projector::new(db.clone()).await?;
        let engine = Engine {
            courses: AggStore::new(&db),
            line_items: AggStore::new(&db),
            enrollments: AggStore::new(&db),
            scores: AggStore::new(&db),
            projection: projector.handle(),
            db,
        };
        Ok((engine, projector))
    }

    pub fn projection(&self) -> &ProjectionHandle {
        &self.projection
    }

    /// Runs a command with retries and waits (bounded) for the projector to
    /// apply the aggregate as the command left it. Returns the events it
    /// recorded and whether the read side shows them yet.
    async fn exec<A>(
        &self,
        store: &AggStore<A>,
        id: &str,
        command: A::Command,
        meta: &CommandMeta,
    ) -> Result<Written<A::Event>, EngineError>
    where
        A: Aggregate<Services = (), Error = DomainError> + ScoreGate + Send + Sync,
        A::Command: Clone,
    {
        let metadata = meta.to_map();
        let done = self
            .retrying(id, || store.execute(id, command.clone(), metadata.clone()))
            .await?;
        let visible = self.wait_shown::<A>(id, &done).await?;
        Ok(Written {
            events: done.events.into_iter().map(|e| e.payload).collect(),
            visible,
        })
    }

    /// Waits (bounded) until the read side has applied the aggregate up to
    /// where the command left it: its own events, or, when it recorded
    /// nothing, whatever came before (a repeated lock must not be answered
    /// from a read side that does not show the first one yet).
    async fn wait_shown<A: Aggregate>(
        &self,
        id: &str,
        done: &crate::store::Executed<A>,
    ) -> Result<bool, EngineError> {
        if !done.events.is_empty() {
            return self.wait_committed(id, &done.events).await;
        }
        if done.version == 0 {
            return Ok(true);
        }
        match checkpoint_of(&self.db, A::TYPE, id, done.version as i64).await? {
            Some(at) => Ok(self.projection.wait_for(at, READ_YOUR_WRITE_WAIT).await),
            None => Ok(true),
        }
    }

    /// Runs `attempt` again while another writer got to the same aggregate
    /// first (on another node: this node's writers of one aggregate take
    /// turns), backing off a little more each time so racing writers
    /// spread out. Each attempt reads everything afresh.
    async fn retrying<T, F, Fut>(&self, id: &str, mut attempt: F) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AggregateError<DomainError>>>,
    {
        let mut n = 0;
        loop {
            n += 1;
            match attempt().await {
                Ok(done) => return Ok(done),
                Err(AggregateError::AggregateConflict) if n < MAX_ATTEMPTS => {
                    metrics::counter!("gradebook_write_conflicts_total").increment(1);
                    let jitter = (n as u64 * 7 + id.len() as u64 * 13) % 11;
                    tokio::time::sleep(Duration::from_millis(n as u64 * 2 + jitter)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// Waits (bounded) for the projector to apply the last of `committed`,
    /// so the caller reads its own write; false when it did not in time
    /// (the events are committed either way).
    async fn wait_committed<A: Aggregate>(
        &self,
        id: &str,
        committed: &[cqrs_es::EventEnvelope<A>],
    ) -> Result<bool, EngineError> {
        let Some(last) = committed.last() else {
            return Ok(true);
        };
        // Waiting wakes the projector (once the waiter is registered).
        let applied = self
            .wait_applied(A::TYPE, id, last.sequence as i64, READ_YOUR_WRITE_WAIT)
            .await?;
        if !applied {
            tracing::warn!(
                aggregate = id,
                "projector did not catch up in time; answering anyway"
            );
        }
        Ok(applied)
    }

    /// Waits until the projector has applied event `sequence` of the
    /// aggregate. This node's projector says so directly; otherwise
    /// (another node projects, or it took long) the log tells where the
    /// event sits and the checkpoint is followed for up to `wait`. False
    /// when the projector did not get there in time.
    pub(crate) async fn wait_applied(
        &self,
        aggregate_type: &str,
        id: &str,
        sequence: i64,
        wait: Duration,
    ) -> Result<bool, EngineError> {
        let told = self
            .projection
            .wait_for_event(aggregate_type, id, sequence, APPLIED_WAIT)
            .await
            .is_some();
        if told {
            return Ok(true);
        }
        match checkpoint_of(&self.db, aggregate_type, id, sequence).await? {
            Some(at) => Ok(self.projection.wait_for(at, wait).await),
            None => Ok(true),
        }
    }

    async fn require_course(&self, course: &CourseId) -> Result<(), EngineError> {
        if queries::course_exists(&self.db, course.as_str()).await? {
            Ok(())
        } else {
            Err(DomainError::CourseNotFound.into())
        }
    }

    // ---- courses ----

    pub async fn open_course(
        &self,
        course_id: &CourseId,
        title: String,
        term: String,
        tool_ids: Vec<ToolId>,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        let cmd = CourseCommand::Open {
            course_id: course_id.clone(),
            title,
            term,
            tool_ids,
        };
        self.change_course(
            course_id,
            cmd,
            meta,
            format!("course {course_id}"),
            "it cannot be read yet (it was created: creating it again answers course_exists)",
        )
        .await
        .map(drop)
    }

    pub async fn set_grading(
        &self,
        course_id: &CourseId,
        scheme: Scheme,
        scale: Option<Vec<ScaleEntry>>,
        missing: MissingPolicy,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        let cmd = CourseCommand::SetGrading {
            scheme,
            scale,
            missing,
        };
        self.change_course(
            course_id,
            cmd,
            meta,
            format!("the grading of course {course_id}"),
            "grade reports use the policy before it",
        )
        .await
        .map(drop)
    }

    pub async fn allow_tools(
        &self,
        course_id: &CourseId,
        tool_ids: Vec<ToolId>,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        let listed = tool_ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let cmd = CourseCommand::AllowTools { tool_ids };
        self.change_course(
            course_id,
            cmd,
            meta,
            format!("the deployment of {listed} in course {course_id}"),
            "launches and posts of a tool not deployed before are refused",
        )
        .await
        .map(drop)
    }

    /// Locks a course; returns whether this call changed anything.
    pub async fn lock_course(
        &self,
        course_id: &CourseId,
        reason: Option<String>,
        meta: &CommandMeta,
    ) -> Result<bool, EngineError> {
        let cmd = CourseCommand::Lock { reason };
        // Score posts are decided on the score gates, not the read side.
        self.change_course(
            course_id,
            cmd,
            meta,
            format!("the lock of course {course_id}"),
            "score posts are refused already, but grade reports still show the course unlocked",
        )
        .await
    }

    /// Unlocks a course; returns whether this call changed anything.
    pub async fn unlock_course(
        &self,
        course_id: &CourseId,
        reason: Option<String>,
        meta: &CommandMeta,
    ) -> Result<bool, EngineError> {
        let cmd = CourseCommand::Unlock { reason };
        self.change_course(
            course_id,
            cmd,
            meta,
            format!("the unlock of course {course_id}"),
            "score posts are taken already, but grade reports still show the course locked",
        )
        .await
    }

    /// A registrar's change to a course, visible in the course's reads
    /// before it answers; returns whether it recorded anything.
    async fn change_course(
        &self,
        course_id: &CourseId,
        cmd: CourseCommand,
        meta: &CommandMeta,
        what: String,
        meanwhile: &str,
    ) -> Result<bool, EngineError> {
        self.exec(&self.courses, &aggregate_id::course(course_id), cmd, meta)
            .await?
            .shown(|| NotYetVisible {
                what,
                meanwhile: meanwhile.into(),
                shown_in: Shown::Course(course_id.clone()),
            })
            .map(|e| !e.is_empty())
    }

    pub async fn add_resource_link(
        &self,
        course_id: &CourseId,
        link: ResourceLink,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        let cmd = CourseCommand::AddResourceLink { link };
        self.exec(&self.courses, &aggregate_id::course(course_id), cmd, meta)
            .await
            .map(drop)
    }

    /// The course aggregate itself (resource links, tools, lock).
    pub async fn course(&self, course_id: &CourseId) -> Result<Option<Course>, EngineError> {
        let c = self
            .courses
            .load(&aggregate_id::course(course_id))
            .await
            .map_err(store_error)?;
        Ok(c.is_open().then_some(c))
    }

    // ---- people ----

    /// Creates or replaces an enrollment (the API's PUT). Returns whether
    /// the person was newly enrolled.
    pub async fn put_enrollment(
        &self,
        course_id: &CourseId,
        user_id: &UserId,
        person: Person,
        meta: &CommandMeta,
    ) -> Result<bool, EngineError> {
        self.require_course(course_id).await?;
        let id = aggregate_id::enrollment(course_id, user_id);
        let existing = self.enrollments.load(&id).await.map_err(store_error)?;
        let not_yet = || Self::enrollment_not_shown(course_id, user_id, Some(&person));
        let update = EnrollmentCommand::Update {
            person: person.clone(),
        };
        if existing.person.is_some() {
            self.exec(&self.enrollments, &id, update, meta)
                .await?
                .shown(not_yet)?;
            return Ok(false);
        }
        let cmd = EnrollmentCommand::Enroll {
            course_id: course_id.clone(),
            user_id: user_id.clone(),
            person: person.clone(),
        };
        match self.exec(&self.enrollments, &id, cmd, meta).await {
            Ok(written) => written.shown(not_yet).map(|_| true),
            // Someone enrolled them a moment ago: this PUT replaces that.
            Err(EngineError::Domain(DomainError::AlreadyEnrolled)) => {
                self.exec(&self.enrollments, &id, update, meta)
                    .await?
                    .shown(not_yet)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn drop_enrollment(
        &self,
        course_id: &CourseId,
        user_id: &UserId,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        self.require_course(course_id).await?;
        let id = aggregate_id::enrollment(course_id, user_id);
        self.exec(&self.enrollments, &id, EnrollmentCommand::Drop, meta)
            .await?
            .shown(|| Self::enrollment_not_shown(course_id, user_id, None))
            .map(drop)
    }

    /// Score posts follow an enrollment change from its commit (the score
    /// gates); rosters and grade reports follow the read side.
    fn enrollment_not_shown(
        course_id: &CourseId,
        user_id: &UserId,
        person: Option<&Person>,
    ) -> NotYetVisible {
        let what = match person {
            Some(p) => format!("{}, {}", p.role.name(), p.status.as_str()),
            None => "dropped".to_string(),
        };
        NotYetVisible {
            what: format!("the enrollment of {user_id} in {course_id} ({what})"),
            meanwhile: "score posts follow it already, but rosters and grade reports show the enrollment before it".into(),
            shown_in: Shown::Enrollments(course_id.clone()),
        }
    }

    pub async fn record_launch(
        &self,
        course_id: &CourseId,
        user_id: &UserId,
        tool_id: ToolId,
        kind: LaunchKind,
        resource_link_id: Option<ResourceLinkId>,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        let id = aggregate_id::enrollment(course_id, user_id);
        let cmd = EnrollmentCommand::RecordLaunch {
            tool_id,
            kind,
            resource_link_id,
            at: meta.received_at,
        };
        self.exec(&self.enrollments, &id, cmd, meta).await.map(drop)
    }

    pub async fn enrollment(
        &self,
        course_id: &CourseId,
        user_id: &UserId,
    ) -> Result<Enrollment, EngineError> {
        self.enrollments
            .load(&aggregate_id::enrollment(course_id, user_id))
            .await
            .map_err(store_error)
    }

    // ---- line items ----

    /// Creates a line item; a new id is made when none is given.
    pub async fn create_line_item(
        &self,
        course_id: &CourseId,
        line_item_id: Option<LineItemId>,
        spec: LineItemSpec,
        meta: &CommandMeta,
    ) -> Result<LineItemId, EngineError> {
        self.require_course(course_id).await?;
        let line_item_id = match line_item_id {
            Some(id) => id,
            // Lower-case hex: it survives clients that lower-case URLs.
            None => LineItemId::parse(uuid::Uuid::new_v4().simple().to_string())?,
        };
        let cmd = LineItemCommand::Create {
            course_id: course_id.clone(),
            line_item_id: line_item_id.clone(),
            spec,
        };
        self.exec(
            &self.line_items,
            &aggregate_id::line_item(course_id, &line_item_id),
            cmd,
            meta,
        )
        .await?;
        Ok(line_item_id)
    }

    pub async fn update_line_item(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
        patch: LineItemPatch,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        self.require_course(course_id).await?;
        let cmd = LineItemCommand::Update { patch };
        self.exec(
            &self.line_items,
            &aggregate_id::line_item(course_id, line_item_id),
            cmd,
            meta,
        )
        .await
        .map(drop)
    }

    pub async fn delete_line_item(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
        meta: &CommandMeta,
    ) -> Result<(), EngineError> {
        self.require_course(course_id).await?;
        self.exec(
            &self.line_items,
            &aggregate_id::line_item(course_id, line_item_id),
            LineItemCommand::Delete,
            meta,
        )
        .await
        .map(drop)
    }

    pub async fn line_item(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
    ) -> Result<LineItem, EngineError> {
        self.line_items
            .load(&aggregate_id::line_item(course_id, line_item_id))
            .await
            .map_err(store_error)
    }

    // ---- scores ----

    /// Posts a tool's score for a learner. Unknown courses and line items
    /// are refused without a record; everything else is recorded, applied
    /// or not, with why.
    pub async fn post_score(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
        user_id: &UserId,
        post: ScorePost,
        meta: &CommandMeta,
    ) -> Result<ScoreOutcome, EngineError> {
        let ctx = self.score_context(course_id, line_item_id).await?;
        self.post_score_in(ctx, course_id, line_item_id, user_id, post, meta)
            .await
    }

    /// What the read side says of a post's course and column; an unknown
    /// course is refused here.
    async fn score_context(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
    ) -> Result<ScoreContext, EngineError> {
        Ok(
            queries::score_context(&self.db, course_id.as_str(), line_item_id.as_str())
                .await?
                .ok_or(DomainError::CourseNotFound)?,
        )
    }

    /// [`Self::post_score`] with the facts already read (by a caller that
    /// read them together with its own checks, in one round trip). The read
    /// side only says whether the column exists; whether the course, the
    /// column and the learner let the score through is decided on the
    /// score gates, which the append itself checks (`AggStore::execute_gated`):
    /// a post in flight when a lock, a drop or a deletion answers is either
    /// in the log before that event or decided again after it.
    pub async fn post_score_in(
        &self,
        ctx: ScoreContext,
        course_id: &CourseId,
        line_item_id: &LineItemId,
        user_id: &UserId,
        post: ScorePost,
        meta: &CommandMeta,
    ) -> Result<ScoreOutcome, EngineError> {
        ctx.line_item_deleted.ok_or(DomainError::LineItemNotFound)?;
        self.decide_score(course_id, line_item_id, user_id, meta, |facts| {
            ScoreCommand::Post {
                course_id: course_id.clone(),
                line_item_id: line_item_id.clone(),
                user_id: user_id.clone(),
                post: post.clone(),
                facts,
            }
        })
        .await
    }

    /// One backfill row by itself, decided and appended as a single post
    /// is; `applied_before` is what the cell's log said of this exact post.
    pub async fn post_past_score(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
        user_id: &UserId,
        post: ScorePost,
        applied_before: bool,
        meta: &CommandMeta,
    ) -> Result<ScoreOutcome, EngineError> {
        self.score_context(course_id, line_item_id)
            .await?
            .line_item_deleted
            .ok_or(DomainError::LineItemNotFound)?;
        self.decide_score(course_id, line_item_id, user_id, meta, |facts| {
            ScoreCommand::Backfill {
                course_id: course_id.clone(),
                line_item_id: line_item_id.clone(),
                user_id: user_id.clone(),
                post: post.clone(),
                facts,
                applied_before,
            }
        })
        .await
    }

    /// Runs a score command on the cell's gates, which the append itself
    /// checks (`AggStore::execute_gated`): a post in flight when a lock, a
    /// drop or a deletion answers is either in the log before that event
    /// or decided again after it.
    async fn decide_score(
        &self,
        course_id: &CourseId,
        line_item_id: &LineItemId,
        user_id: &UserId,
        meta: &CommandMeta,
        command: impl Fn(ScoreFacts) -> ScoreCommand,
    ) -> Result<ScoreOutcome, EngineError> {
        let gates = score_gates(course_id, line_item_id, user_id);
        let decide = |score: &Score, open: &[bool]| {
            let decision = score.decide(command(score_facts(open, meta)))?;
            Ok((decision.events, decision.outcome))
        };
        let id = aggregate_id::score(course_id, line_item_id, user_id);
        let metadata = meta.to_map();
        let (committed, outcome) = self
            .retrying(&id, || {
                self.scores
                    .execute_gated(&id, &gates, metadata.clone(), decide)
            })
            .await?;
        self.wait_committed(&id, &committed).await?;
        crate::metrics::score_outcome(&outcome);
        Ok(outcome)
    }
}

/// The score gates a post on one cell is decided on, in the order
/// [`score_facts`] reads them: the course, the line item, the enrollment.
pub fn score_gates(
    course_id: &CourseId,
    line_item_id: &LineItemId,
    user_id: &UserId,
) -> [String; 3] {
    [
        gate_key(Course::TYPE, &aggregate_id::course(course_id)),
        gate_key(
            LineItem::TYPE,
            &aggregate_id::line_item(course_id, line_item_id),
        ),
        gate_key(
            Enrollment::TYPE,
            &aggregate_id::enrollment(course_id, user_id),
        ),
    ]
}

/// The facts the score rules take, from whether each of [`score_gates`]
/// is open.
pub fn score_facts(open: &[bool], meta: &CommandMeta) -> ScoreFacts {
    ScoreFacts {
        course_locked: !open[0],
        line_item_deleted: !open[1],
        learner_active: open[2],
        received_at: Some(meta.received_at),
    }
}
