//! Kept course grades, their history and the cells' history: what the
//! projector writes besides the plain read tables.
//!
//! A course grade depends on the whole course (policy, live items, the
//! learner's cells), so unlike the rest of the projection it cannot be
//! written from the events alone. A [`CourseGrader`] holds one course as
//! a [`CourseView`], applies its events in log order, and after each event
//! recomputes, with the pure grade module, the grades of the learners the
//! event can change: one learner for a score or an enrollment change,
//! every learner for a line item or a policy change. A change of percent,
//! letter or status is a history row at that event's position; the report
//! row of each learner touched is rewritten once per batch.
//!
//! The live projector keeps graders in memory between batches
//! ([`GradeKeeper`], loaded from the read tables when a course is first
//! touched and dropped whenever a batch does not commit); a replay builds
//! each course's grader from nothing as it goes. Both feed the same
//! events through the same code, and the replay-equals-live test holds the
//! tables equal.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gradebook_domain::course::CourseEvent;
use gradebook_domain::enrollment::EnrollmentEvent;
use gradebook_domain::score::ScoreEvent;

use crate::db::{ts, Param};
use crate::projector::events::{AnyEvent, Checkpoint, Envelope};
use crate::reports::grades::{fmt2, in_report, item_specs, student_row_of};
use crate::reports::grading::{self, CellScore, GradeStatus, ItemSpec};
use crate::tables::view::CourseView;

/// A learner's course grade as a registrar reads it: what a history row
/// records before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub percent: Option<String>,
    pub letter: Option<String>,
    pub status: &'static str,
}

pub fn status_name(s: GradeStatus) -> &'static str {
    match s {
        GradeStatus::Final => "final",
        GradeStatus::Provisional => "provisional",
    }
}

/// One course's grading state, kept current event by event.
#[derive(Debug)]
pub struct CourseGrader {
    /// The course's policy, line items and people; its score cells are
    /// kept in `cells` instead, in the form the grade module reads.
    view: CourseView,
    items: Vec<ItemSpec>,
    /// Each learner's kept scores by line item.
    cells: HashMap<String, HashMap<String, CellScore>>,
    /// The learners in the report and their grade as shown.
    shown: BTreeMap<String, Shown>,
    /// Learners whose report row is to be rewritten, with the position of
    /// the latest event that touched them.
    dirty: BTreeMap<String, Checkpoint>,
}

impl CourseGrader {
    /// Starts from a course as the read tables hold it (or an empty one).
    pub fn new(mut view: CourseView) -> Self {
        let items = item_specs(&view);
        let mut cells: HashMap<String, HashMap<String, CellScore>> = HashMap::new();
        for ((item, user), row) in std::mem::take(&mut view.scores) {
            if let Some(score) = row.kept.as_ref().and_then(cell_score) {
                cells.entry(user).or_default().insert(item, score);
            }
        }
        let mut g = Self {
            view,
            items,
            cells,
            shown: BTreeMap::new(),
            dirty: BTreeMap::new(),
        };
        let users: Vec<String> = g.view.enrollments.keys().cloned().collect();
        for u in users {
            if let Some(s) = g.shown_of(&u) {
                g.shown.insert(u, s);
            }
        }
        g
    }

    fn shown_of(&self, user: &str) -> Option<Shown> {
        self.view.enrollments.get(user).filter(|e| in_report(e))?;
        let g = grading::student_grade(&self.view.policy, &self.items, self.scores_of(user));
        Some(Shown {
            percent: g.percent.map(fmt2),
            letter: g.letter,
            status: status_name(g.status),
        })
    }

    fn scores_of(&self, user: &str) -> &HashMap<String, CellScore> {
        static NONE: std::sync::OnceLock<HashMap<String, CellScore>> = std::sync::OnceLock::new();
        self.cells
            .get(user)
            .unwrap_or_else(|| NONE.get_or_init(HashMap::new))
    }

    /// Applies one event of this course and records what it changed.
    pub fn apply(&mut self, env: &Envelope, out: &mut GradeWrites) {
        match &env.event {
            // A cell's kept score, as `CourseView::apply` keeps it: an
            // accepted or cleared post replaces it, others leave it.
            AnyEvent::Score(e) => {
                if let ScoreEvent::ScoreAccepted { post, .. }
                | ScoreEvent::ScoreCleared { post, .. } = e
                {
                    let (_, item, user) = e.ids();
                    let cells = self.cells.entry(user.to_string()).or_default();
                    match cell_score(post) {
                        Some(score) => cells.insert(item.to_string(), score),
                        None => cells.remove(item.as_str()),
                    };
                }
            }
            _ => self.view.apply(env),
        }
        let course = self.view.course_id.clone();
        let course = course.as_str();
        let touched: Vec<String> = match &env.event {
            AnyEvent::Course(
                CourseEvent::GradingSchemeSet { .. } | CourseEvent::GradeScaleSet { .. },
            ) => self.view.enrollments.keys().cloned().collect(),
            AnyEvent::Course(_) => Vec::new(),
            AnyEvent::LineItem(_) => {
                self.items = item_specs(&self.view);
                self.view.enrollments.keys().cloned().collect()
            }
            AnyEvent::Enrollment(
                EnrollmentEvent::Enrolled { .. }
                | EnrollmentEvent::EnrollmentUpdated { .. }
                | EnrollmentEvent::EnrollmentStatusChanged { .. },
            ) => vec![last_segment(&env.aggregate_id).to_string()],
            AnyEvent::Enrollment(_) => Vec::new(),
            AnyEvent::Score(e) => {
                out.cells.push(cell_row(course, env, e));
                let (_, _, user) = e.ids();
                match e {
                    ScoreEvent::ScoreAccepted { .. } | ScoreEvent::ScoreCleared { .. } => {
                        vec![user.to_string()]
                    }
                    _ => Vec::new(),
                }
            }
        };
        for user in touched {
            let after = self.shown_of(&user);
            let before = self.shown.get(&user);
            if before.is_none() && after.is_none() {
                continue;
            }
            if before != after.as_ref() {
                out.history
                    .push(history_row(course, &user, env, before, after.as_ref()));
                match after {
                    Some(s) => self.shown.insert(user.clone(), s),
                    None => self.shown.remove(&user),
                };
            }
            self.dirty.insert(user, env.at);
        }
    }

    /// Writes the report rows of the learners touched since the last flush.
    pub fn flush(&mut self, out: &mut GradeWrites) {
        if self.dirty.is_empty() {
            return;
        }
        let course = self.view.course_id.clone();
        for (user, at) in std::mem::take(&mut self.dirty) {
            let row = self
                .view
                .enrollments
                .get(&user)
                .filter(|e| in_report(e))
                .map(|e| {
                    let row =
                        student_row_of(&self.view.policy, &self.items, e, self.scores_of(&user));
                    kept_row(&course, at, &row)
                });
            out.kept.insert((course.clone(), user), row);
        }
    }
}

/// A kept post as the grade module reads it: `None` when it carries no
/// score (a cleared cell), as [`crate::reports::grades::cell_scores`] has it.
fn cell_score(post: &gradebook_domain::score::ScorePost) -> Option<CellScore> {
    Some(CellScore {
        score_given: post.score_given?,
        score_maximum: post.score_maximum?,
        activity_progress: post.activity_progress,
        grading_progress: post.grading_progress,
    })
}

fn last_segment(aggregate_id: &str) -> &str {
    aggregate_id.rsplit('/').next().unwrap_or_default()
}

/// Rows for the three tables, as parameters in their columns' order.
#[derive(Debug, Default)]
pub struct GradeWrites {
    /// Each learner's report row after the batch; `None` removes it.
    pub kept: BTreeMap<(String, String), Option<Vec<Param>>>,
    pub history: Vec<Vec<Param>>,
    pub cells: Vec<Vec<Param>>,
}

impl GradeWrites {
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.history.is_empty() && self.cells.is_empty()
    }

    pub fn append(&mut self, other: GradeWrites) {
        self.kept.extend(other.kept);
        self.history.extend(other.history);
        self.cells.extend(other.cells);
    }
}

pub const KEPT_HEAD: &str = "INSERT INTO rm_course_grades (course_id, user_id, tx_id, position, percent, letter, status, report_row)";
pub const KEPT_COLS: usize = 8;
pub const KEPT_TAIL: &str = " ON CONFLICT (course_id, user_id) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position, percent = excluded.percent, letter = excluded.letter, status = excluded.status, report_row = excluded.report_row";
pub const HISTORY_HEAD: &str = "INSERT INTO rm_grade_history (course_id, user_id, tx_id, position, received_at, event_type, before_percent, before_letter, before_status, after_percent, after_letter, after_status)";
pub const HISTORY_COLS: usize = 12;
pub const CELLS_HEAD: &str = "INSERT INTO rm_cell_history (course_id, tx_id, position, line_item_id, user_id, received_at, outcome, reason, score_given, score_maximum, activity_progress, grading_progress, tool_timestamp, comment)";
pub const CELLS_COLS: usize = 14;

fn kept_row(course: &str, at: Checkpoint, row: &crate::reports::grades::StudentRow) -> Vec<Param> {
    vec![
        course.into(),
        row.user_id.clone().into(),
        at.tx.into(),
        at.position.into(),
        row.percent.clone().into(),
        row.letter.clone().into(),
        status_name(row.status).into(),
        // Serialising our own row cannot fail.
        serde_json::to_string(row).unwrap_or_default().into(),
    ]
}

fn history_row(
    course: &str,
    user: &str,
    env: &Envelope,
    before: Option<&Shown>,
    after: Option<&Shown>,
) -> Vec<Param> {
    let mut row: Vec<Param> = vec![
        course.into(),
        user.into(),
        env.at.tx.into(),
        env.at.position.into(),
        ts(env.meta.received_at).into(),
        env.event_type.clone().into(),
    ];
    for s in [before, after] {
        row.push(s.and_then(|s| s.percent.clone()).into());
        row.push(s.and_then(|s| s.letter.clone()).into());
        row.push(s.map(|s| s.status.to_string()).into());
    }
    row
}

fn enum_name<T: serde::Serialize>(v: &T) -> Option<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

fn cell_row(course: &str, env: &Envelope, e: &ScoreEvent) -> Vec<Param> {
    let (_, item, user) = e.ids();
    let mut row: Vec<Param> = vec![
        course.into(),
        env.at.tx.into(),
        env.at.position.into(),
        item.to_string().into(),
        user.to_string().into(),
        ts(env.meta.received_at).into(),
    ];
    match e {
        ScoreEvent::ScoreAccepted { post, .. } | ScoreEvent::ScoreCleared { post, .. } => {
            row.push("kept".into());
            row.push(Param::Text(None));
            row.push(post.score_given.map(|d| d.to_string()).into());
            row.push(post.score_maximum.map(|d| d.to_string()).into());
            row.push(enum_name(&post.activity_progress).into());
            row.push(enum_name(&post.grading_progress).into());
            row.push(post.timestamp.to_rfc3339().into());
            row.push(post.comment.clone().into());
        }
        ScoreEvent::ScoreIgnoredStale { .. } => {
            row.push("stale".into());
            row.extend(std::iter::repeat_n(Param::Text(None), 7));
        }
        ScoreEvent::ScoreRejected { reason, .. } => {
            row.push("rejected".into());
            row.push(reason.code().to_string().into());
            row.extend(std::iter::repeat_n(Param::Text(None), 6));
        }
    }
    row
}

/// How many courses the live projector keeps graders for (a 40 × 20 course
/// is about a quarter of a megabyte); past it, the courses used longest
/// ago are dropped after a batch and loaded again when next touched.
const MAX_KEPT_COURSES: usize = 512;

/// The live projector's graders, by course. Valid only for the
/// checkpoint its last batch committed: the projector empties it when a
/// batch fails or another node moved the checkpoint.
#[derive(Debug, Default)]
pub struct GradeKeeper {
    /// Each course's grader and the batch that last used it.
    courses: HashMap<String, (CourseGrader, u64)>,
    batches: u64,
    /// The checkpoint the graders are at.
    at: Option<Checkpoint>,
}

impl GradeKeeper {
    /// Makes the keeper valid for a batch starting at `from`: graders kept
    /// for any other checkpoint (another node projected meanwhile, or a
    /// batch failed) are dropped and will be loaded again.
    pub fn start(&mut self, from: Checkpoint) {
        if self.at != Some(from) {
            self.clear();
            self.at = Some(from);
        }
    }

    /// The batch committed: the graders are at `to` now.
    pub fn committed(&mut self, to: Checkpoint) {
        self.at = Some(to);
    }

    /// The courses of `batch` this keeper has no grader for.
    pub fn missing(&self, batch: &[Envelope]) -> BTreeSet<String> {
        batch
            .iter()
            .map(|e| gradebook_domain::ids::aggregate_id::course_of(&e.aggregate_id))
            .filter(|c| !self.courses.contains_key(*c))
            .map(str::to_string)
            .collect()
    }

    /// Adds a course loaded from the read tables (`None`: not there yet).
    pub fn insert(&mut self, course_id: &str, view: Option<CourseView>) {
        let view = view.unwrap_or_else(|| CourseView::empty(course_id));
        self.courses.insert(
            course_id.to_string(),
            (CourseGrader::new(view), self.batches),
        );
    }

    /// Applies a batch (every course of it must be here).
    pub fn apply(&mut self, batch: &[Envelope]) -> GradeWrites {
        self.batches += 1;
        let mut out = GradeWrites::default();
        let mut touched = BTreeSet::new();
        for env in batch {
            let course = gradebook_domain::ids::aggregate_id::course_of(&env.aggregate_id);
            let (grader, used) = self
                .courses
                .entry(course.to_string())
                .or_insert_with(|| (CourseGrader::new(CourseView::empty(course)), 0));
            *used = self.batches;
            grader.apply(env, &mut out);
            touched.insert(course);
        }
        for c in touched {
            if let Some((g, _)) = self.courses.get_mut(c) {
                g.flush(&mut out);
            }
        }
        if self.courses.len() > MAX_KEPT_COURSES {
            let mut by_use: Vec<(u64, String)> = self
                .courses
                .iter()
                .map(|(c, (_, u))| (*u, c.clone()))
                .collect();
            by_use.sort();
            let excess = self.courses.len() - MAX_KEPT_COURSES;
            for (_, c) in by_use.into_iter().take(excess) {
                self.courses.remove(&c);
            }
        }
        out
    }

    pub fn clear(&mut self) {
        self.courses.clear();
        self.at = None;
    }
}

/// The grade rows of one course's events, in log order, from nothing: a
/// replay's way in.
pub fn grade_course(course_id: &str, events: &[Envelope]) -> GradeWrites {
    let mut out = GradeWrites::default();
    let mut g = CourseGrader::new(CourseView::empty(course_id));
    for env in events {
        g.apply(env, &mut out);
    }
    g.flush(&mut out);
    out
}
