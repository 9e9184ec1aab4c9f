//! What events write to the read tables, as driver-neutral statements.
//!
//! Events are folded, in log order, into one pending change per read-table
//! row ([`Changes`]); the folded changes are then written with multi-row
//! statements. The live projector folds each batch it applies and a replay
//! folds the log in large chunks: both run this one code path, and folding
//! a row's events in one chunk or in many writes the same row (a test over
//! generated event sequences holds this). Every statement is an insert, an
//! upsert or an update computed from the events alone (no read-modify-write),
//! so applying needs no reads and the SQL is the same on both stores.
//! [`crate::tables::view::CourseView::apply`] is the in-memory twin of this module;
//! a test holds the two equal.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use gradebook_domain::course::CourseEvent;
use gradebook_domain::enrollment::EnrollmentEvent;
use gradebook_domain::line_item::{LineItemEvent, LineItemSpec};
use gradebook_domain::score::{ScoreEvent, ScorePost};

use crate::db::{ts, Param, Stmt};
use crate::projector::events::{AnyEvent, Envelope};
use crate::projector::grades::{self, GradeWrites};

/// Parameters per multi-row statement: well under both stores' limits
/// (SQLite 32,766, PostgreSQL 65,535), large enough that a statement
/// carries hundreds of rows.
const PARAMS_PER_STMT: usize = 4000;

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serialising our own types to JSON cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn dec(d: Option<rust_decimal::Decimal>) -> Option<String> {
    d.map(|d| d.to_string())
}

fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The last segment of an aggregate id (`course/item` -> `item`).
fn last_segment(aggregate_id: &str) -> String {
    aggregate_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

type Key2 = (String, String);
type Key3 = (String, String, String);

/// A row's pending change: the whole row when the batch created it,
/// otherwise the columns the batch changed on a row written earlier.
#[derive(Debug, Clone, PartialEq)]
enum Pending<R, P> {
    Row(R),
    Patch(P),
}

#[derive(Debug, Clone, PartialEq)]
struct CourseRow {
    title: String,
    term: String,
    scheme: String,
    missing: String,
    scale: String,
    locked: bool,
    locked_at: Option<String>,
    opened_at: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct CoursePatch {
    scheme: Option<(String, String)>,
    scale: Option<String>,
    lock: Option<(bool, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct ResourceLinkRow {
    course_id: String,
    resource_link_id: String,
    tool_id: String,
    title: String,
    url: Option<String>,
    custom: String,
    line_item_id: Option<String>,
    created_at: String,
}

/// The columns a line item's spec fills.
#[derive(Debug, Clone, PartialEq)]
struct SpecColumns {
    spec: String,
    label: String,
    score_maximum: String,
    resource_link_id: Option<String>,
    tag: Option<String>,
    tool_id: Option<String>,
}

impl SpecColumns {
    fn of(spec: &LineItemSpec) -> Self {
        Self {
            spec: json(spec),
            label: spec.label.clone(),
            score_maximum: spec.score_maximum.to_string(),
            resource_link_id: spec.resource_link_id.clone(),
            tag: spec.tag.clone(),
            tool_id: spec.tool_id.as_ref().map(|t| t.to_string()),
        }
    }

    fn params(self) -> [Param; 6] {
        [
            self.spec.into(),
            self.label.into(),
            self.score_maximum.into(),
            self.resource_link_id.into(),
            self.tag.into(),
            self.tool_id.into(),
        ]
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LineItemRow {
    spec: SpecColumns,
    deleted: bool,
    created_at: String,
    created_tx: i64,
    created_position: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct LineItemPatch {
    spec: Option<SpecColumns>,
    deleted: bool,
}

/// role, status, name, email.
type PersonColumns = (String, String, Option<String>, Option<String>);

#[derive(Debug, Clone, PartialEq)]
struct EnrollmentRow {
    person: PersonColumns,
    first_launch: Option<String>,
    latest_launch: Option<String>,
    enrolled_at: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct EnrollmentPatch {
    person: Option<PersonColumns>,
    status: Option<String>,
    /// The first and the latest launch recorded in the batch.
    launch: Option<(String, String)>,
}

/// The kept post's columns: kept_at, score_given, score_maximum,
/// activity_progress, grading_progress, tool_timestamp, comment.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    kept_at: String,
    score_given: Option<String>,
    score_maximum: Option<String>,
    activity_progress: String,
    grading_progress: String,
    tool_timestamp: String,
    comment: Option<String>,
}

impl Kept {
    fn of(post: &ScorePost, at: String) -> Self {
        Self {
            kept_at: at,
            score_given: dec(post.score_given),
            score_maximum: dec(post.score_maximum),
            activity_progress: enum_name(&post.activity_progress),
            grading_progress: enum_name(&post.grading_progress),
            tool_timestamp: post.timestamp.to_rfc3339(),
            comment: post.comment.clone(),
        }
    }
}

/// What a batch's posts do to one cell: counts to add, the latest post's
/// outcome, and the latest kept post if the batch has one.
#[derive(Debug, Clone, PartialEq)]
struct ScoreDelta {
    posts: i64,
    rejected: i64,
    stale: i64,
    last_post_at: String,
    last_outcome: &'static str,
    last_reason: Option<String>,
    kept: Option<Kept>,
}

/// The pending changes of a run of events, one entry per read-table row.
#[derive(Debug, Default)]
pub struct Changes {
    events: usize,
    courses: BTreeMap<String, Pending<CourseRow, CoursePatch>>,
    course_tools: BTreeSet<Key2>,
    resource_links: Vec<ResourceLinkRow>,
    line_items: BTreeMap<Key2, Pending<LineItemRow, LineItemPatch>>,
    enrollments: BTreeMap<Key2, Pending<EnrollmentRow, EnrollmentPatch>>,
    tool_accounts: BTreeMap<Key3, String>,
    scores: BTreeMap<Key3, ScoreDelta>,
    grades: GradeWrites,
}

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events have been folded in.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Rows this holds to write, roughly: its events and the kept grades'
    /// rows (what bounds a replay chunk's memory).
    pub fn weight(&self) -> usize {
        self.events + self.grades.kept.len() + self.grades.history.len() + self.grades.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0 && self.grades.is_empty()
    }

    /// Adds the kept grades' rows that the same events made (see
    /// [`crate::projector::grades`]).
    pub fn add_grades(&mut self, grades: GradeWrites) {
        self.grades.append(grades);
    }

    /// Folds one event in. Each row's events must come in log order (a
    /// replay reads aggregate by aggregate, the live projector the log).
    pub fn add(&mut self, env: &Envelope) {
        self.events += 1;
        let at = ts(env.meta.received_at);
        let course_id =
            gradebook_domain::ids::aggregate_id::course_of(&env.aggregate_id).to_string();
        match &env.event {
            AnyEvent::Course(e) => self.course(e, course_id, at),
            AnyEvent::LineItem(e) => self.line_item(e, env, course_id, at),
            AnyEvent::Enrollment(e) => self.enrollment(e, env, course_id, at),
            AnyEvent::Score(e) => self.score(e, at),
        }
    }

    fn course_patch(
        &mut self,
        course_id: String,
        f: impl FnOnce(&mut CourseRow),
        g: impl FnOnce(&mut CoursePatch),
    ) {
        match self
            .courses
            .entry(course_id)
            .or_insert_with(|| Pending::Patch(CoursePatch::default()))
        {
            Pending::Row(r) => f(r),
            Pending::Patch(p) => g(p),
        }
    }

    fn course(&mut self, e: &CourseEvent, course_id: String, at: String) {
        match e {
            CourseEvent::CourseOpened {
                title,
                term,
                tool_ids,
                ..
            } => {
                self.tools(&course_id, tool_ids);
                self.courses.insert(
                    course_id,
                    Pending::Row(CourseRow {
                        title: title.clone(),
                        term: term.clone(),
                        scheme: json(&gradebook_domain::policy::Scheme::Points),
                        missing: json(&gradebook_domain::policy::MissingPolicy::Exclude),
                        scale: "[]".into(),
                        locked: false,
                        locked_at: None,
                        opened_at: at,
                    }),
                );
            }
            CourseEvent::GradingSchemeSet { scheme, missing } => {
                let (s, m) = (json(scheme), json(missing));
                let (s2, m2) = (s.clone(), m.clone());
                self.course_patch(
                    course_id,
                    |r| {
                        r.scheme = s;
                        r.missing = m;
                    },
                    |p| p.scheme = Some((s2, m2)),
                );
            }
            CourseEvent::GradeScaleSet { scale } => {
                let s = json(scale);
                let s2 = s.clone();
                self.course_patch(course_id, |r| r.scale = s, |p| p.scale = Some(s2));
            }
            CourseEvent::ToolDeploymentsAllowed { tool_ids } => self.tools(&course_id, tool_ids),
            CourseEvent::ResourceLinkAdded { link } => self.resource_links.push(ResourceLinkRow {
                course_id,
                resource_link_id: link.resource_link_id.to_string(),
                tool_id: link.tool_id.to_string(),
                title: link.title.clone(),
                url: link.url.clone(),
                custom: json(&link.custom),
                line_item_id: link.line_item_id.as_ref().map(|l| l.to_string()),
                created_at: at,
            }),
            CourseEvent::CourseLocked { .. } => {
                let at2 = at.clone();
                self.course_patch(
                    course_id,
                    |r| {
                        r.locked = true;
                        r.locked_at = Some(at);
                    },
                    |p| p.lock = Some((true, Some(at2))),
                );
            }
            CourseEvent::CourseUnlocked { .. } => self.course_patch(
                course_id,
                |r| {
                    r.locked = false;
                    r.locked_at = None;
                },
                |p| p.lock = Some((false, None)),
            ),
        }
    }

    fn tools(&mut self, course_id: &str, tool_ids: &[gradebook_domain::ToolId]) {
        for t in tool_ids {
            self.course_tools
                .insert((course_id.to_string(), t.to_string()));
        }
    }

    fn line_item(&mut self, e: &LineItemEvent, env: &Envelope, course_id: String, at: String) {
        let key = (course_id, last_segment(&env.aggregate_id));
        match e {
            LineItemEvent::LineItemCreated { spec, .. } => {
                self.line_items.insert(
                    key,
                    Pending::Row(LineItemRow {
                        spec: SpecColumns::of(spec),
                        deleted: false,
                        created_at: at,
                        created_tx: env.at.tx,
                        created_position: env.at.position,
                    }),
                );
            }
            LineItemEvent::LineItemUpdated { spec } => {
                let cols = SpecColumns::of(spec);
                match self
                    .line_items
                    .entry(key)
                    .or_insert_with(|| Pending::Patch(LineItemPatch::default()))
                {
                    Pending::Row(r) => r.spec = cols,
                    Pending::Patch(p) => p.spec = Some(cols),
                }
            }
            LineItemEvent::LineItemDeleted => match self
                .line_items
                .entry(key)
                .or_insert_with(|| Pending::Patch(LineItemPatch::default()))
            {
                Pending::Row(r) => r.deleted = true,
                Pending::Patch(p) => p.deleted = true,
            },
        }
    }

    fn enrollment(&mut self, e: &EnrollmentEvent, env: &Envelope, course_id: String, at: String) {
        let key = (course_id, last_segment(&env.aggregate_id));
        let person_columns = |p: &gradebook_domain::enrollment::Person| -> PersonColumns {
            (
                p.role.name().to_string(),
                p.status.as_str().to_string(),
                p.name.clone(),
                p.email.clone(),
            )
        };
        if let EnrollmentEvent::Enrolled { person, .. } = e {
            self.enrollments.insert(
                key,
                Pending::Row(EnrollmentRow {
                    person: person_columns(person),
                    first_launch: None,
                    latest_launch: None,
                    enrolled_at: at,
                }),
            );
            return;
        }
        if let EnrollmentEvent::ToolAccountLinked { tool_id, account } = e {
            self.tool_accounts
                .insert((key.0, key.1, tool_id.to_string()), account.clone());
            return;
        }
        let entry = self
            .enrollments
            .entry(key)
            .or_insert_with(|| Pending::Patch(EnrollmentPatch::default()));
        match (e, entry) {
            (EnrollmentEvent::EnrollmentUpdated { person }, Pending::Row(r)) => {
                r.person = person_columns(person)
            }
            (EnrollmentEvent::EnrollmentUpdated { person }, Pending::Patch(p)) => {
                p.person = Some(person_columns(person));
                p.status = None;
            }
            (EnrollmentEvent::EnrollmentStatusChanged { to, .. }, Pending::Row(r)) => {
                r.person.1 = to.as_str().to_string()
            }
            (EnrollmentEvent::EnrollmentStatusChanged { to, .. }, Pending::Patch(p)) => {
                match &mut p.person {
                    Some(person) => person.1 = to.as_str().to_string(),
                    None => p.status = Some(to.as_str().to_string()),
                }
            }
            (EnrollmentEvent::LaunchRecorded { at, .. }, Pending::Row(r)) => {
                let at = ts(*at);
                r.first_launch.get_or_insert_with(|| at.clone());
                r.latest_launch = Some(at);
            }
            (EnrollmentEvent::LaunchRecorded { at, .. }, Pending::Patch(p)) => {
                let at = ts(*at);
                match &mut p.launch {
                    Some((_, latest)) => *latest = at,
                    None => p.launch = Some((at.clone(), at)),
                }
            }
            (EnrollmentEvent::Enrolled { .. } | EnrollmentEvent::ToolAccountLinked { .. }, _) => {}
        }
    }

    fn score(&mut self, e: &ScoreEvent, at: String) {
        let (course, item, user) = e.ids();
        let (outcome, reason, kept): (&'static str, Option<String>, Option<Kept>) = match e {
            ScoreEvent::ScoreAccepted { post, .. } | ScoreEvent::ScoreCleared { post, .. } => (
                if post.score_given.is_some() {
                    "accepted"
                } else {
                    "cleared"
                },
                None,
                Some(Kept::of(post, at.clone())),
            ),
            ScoreEvent::ScoreIgnoredStale { .. } => ("stale", None, None),
            ScoreEvent::ScoreRejected { reason, .. } => {
                ("rejected", Some(reason.code().to_string()), None)
            }
        };
        let (rejected, stale) = (
            i64::from(outcome == "rejected"),
            i64::from(outcome == "stale"),
        );
        let key = (course.to_string(), item.to_string(), user.to_string());
        match self.scores.get_mut(&key) {
            Some(d) => {
                d.posts += 1;
                d.rejected += rejected;
                d.stale += stale;
                d.last_post_at = at;
                d.last_outcome = outcome;
                d.last_reason = reason;
                if kept.is_some() {
                    d.kept = kept;
                }
            }
            None => {
                self.scores.insert(
                    key,
                    ScoreDelta {
                        posts: 1,
                        rejected,
                        stale,
                        last_post_at: at,
                        last_outcome: outcome,
                        last_reason: reason,
                        kept,
                    },
                );
            }
        }
    }

    /// The statements that write the folded changes, built as they are
    /// taken so that a large chunk is never held twice in memory. Rows
    /// created in the run are written with multi-row inserts, changes to
    /// older rows with updates, and score cells with one multi-row upsert
    /// that adds the counts and keeps the latest post.
    ///
    /// `numbered` chooses `$1, $2, ..` placeholders (PostgreSQL) or plain
    /// `?` (SQLite): SQLite looks a numbered parameter up by name with a
    /// linear scan, which made binding a multi-row statement quadratic in
    /// its parameters (three quarters of a SQLite replay's time).
    pub fn into_statements(self, numbered: bool) -> Statements {
        Statements {
            parts: self.into_parts(),
            numbered,
        }
    }

    /// The folded changes as PostgreSQL `COPY` data for the rows they
    /// create, and statements for anything else. Only for tables that hold
    /// none of these rows yet: a replay, whose tables start empty and whose
    /// chunks end between aggregates, so every row is new. `COPY` costs the
    /// server a fraction of a multi-row upsert per row; a row that did exist
    /// would fail the copy (and the replay) rather than be overwritten.
    pub fn into_copies(self) -> impl Iterator<Item = Write> {
        self.into_parts().into_iter().filter_map(|part| match part {
            Part::One(s) => Some(Write::Stmt(s)),
            Part::Lazy {
                head, cols, rows, ..
            } => {
                let mut data = String::new();
                for row in rows {
                    debug_assert_eq!(row.len(), cols);
                    copy_row(&row, &mut data);
                }
                if data.is_empty() {
                    return None;
                }
                let target = head
                    .strip_prefix("INSERT INTO ")
                    .expect("row parts are INSERT INTO heads");
                Some(Write::Copy {
                    sql: format!("COPY {target} FROM STDIN"),
                    data,
                })
            }
        })
    }

    fn into_parts(self) -> VecDeque<Part> {
        let mut parts = VecDeque::new();
        let mut course_rows = Vec::new();
        for (id, pending) in self.courses {
            match pending {
                Pending::Row(r) => course_rows.push(vec![
                    id.into(),
                    r.title.into(),
                    r.term.into(),
                    r.scheme.into(),
                    r.missing.into(),
                    r.scale.into(),
                    r.locked.into(),
                    r.locked_at.into(),
                    r.opened_at.into(),
                ]),
                Pending::Patch(p) => {
                    if let Some((scheme, missing)) = p.scheme {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_courses SET scheme = $2, missing = $3 WHERE course_id = $1",
                            vec![id.clone().into(), scheme.into(), missing.into()],
                        )));
                    }
                    if let Some(scale) = p.scale {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_courses SET scale = $2 WHERE course_id = $1",
                            vec![id.clone().into(), scale.into()],
                        )));
                    }
                    if let Some((locked, at)) = p.lock {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_courses SET locked = $2, locked_at = $3 WHERE course_id = $1",
                            vec![id.into(), locked.into(), at.into()],
                        )));
                    }
                }
            }
        }
        // The new rows go first: a patch never touches a row created in the
        // same run (it was folded into the row), so the order only matters
        // for readability.
        parts.push_front(Part::rows(
            "INSERT INTO rm_courses (course_id, title, term, scheme, missing, scale, locked, locked_at, opened_at)",
            9,
            "",
            course_rows,
        ));
        parts.push_back(Part::rows(
            "INSERT INTO rm_course_tools (course_id, tool_id)",
            2,
            " ON CONFLICT DO NOTHING",
            self.course_tools
                .into_iter()
                .map(|(c, t)| vec![c.into(), t.into()])
                .collect(),
        ));
        parts.push_back(Part::rows(
            "INSERT INTO rm_resource_links (course_id, resource_link_id, tool_id, title, url, custom, line_item_id, created_at)",
            8,
            "",
            self.resource_links
                .into_iter()
                .map(|l| {
                    vec![
                        l.course_id.into(),
                        l.resource_link_id.into(),
                        l.tool_id.into(),
                        l.title.into(),
                        l.url.into(),
                        l.custom.into(),
                        l.line_item_id.into(),
                        l.created_at.into(),
                    ]
                })
                .collect(),
        ));
        let mut item_rows = Vec::new();
        for ((course, item), pending) in self.line_items {
            match pending {
                Pending::Row(r) => {
                    let mut row: Vec<Param> = vec![course.into(), item.into()];
                    row.extend(r.spec.params());
                    row.extend([
                        r.deleted.into(),
                        r.created_at.into(),
                        r.created_tx.into(),
                        r.created_position.into(),
                    ]);
                    item_rows.push(row);
                }
                Pending::Patch(p) => {
                    if let Some(spec) = p.spec {
                        let mut params: Vec<Param> =
                            vec![course.clone().into(), item.clone().into()];
                        params.extend(spec.params());
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_line_items SET spec = $3, label = $4, score_maximum = $5, resource_link_id = $6, tag = $7, tool_id = $8
                             WHERE course_id = $1 AND line_item_id = $2",
                            params,
                        )));
                    }
                    if p.deleted {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_line_items SET deleted = $3 WHERE course_id = $1 AND line_item_id = $2",
                            vec![course.into(), item.into(), true.into()],
                        )));
                    }
                }
            }
        }
        parts.push_back(Part::rows(
            "INSERT INTO rm_line_items (course_id, line_item_id, spec, label, score_maximum, resource_link_id, tag, tool_id, deleted, created_at, created_tx, created_position)",
            12,
            "",
            item_rows,
        ));
        let mut enrollment_rows = Vec::new();
        for ((course, user), pending) in self.enrollments {
            match pending {
                Pending::Row(r) => {
                    let (role, status, name, email) = r.person;
                    enrollment_rows.push(vec![
                        course.into(),
                        user.into(),
                        role.into(),
                        status.into(),
                        name.into(),
                        email.into(),
                        r.first_launch.into(),
                        r.latest_launch.into(),
                        r.enrolled_at.into(),
                    ]);
                }
                Pending::Patch(p) => {
                    if let Some((role, status, name, email)) = p.person {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_enrollments SET role = $3, status = $4, name = $5, email = $6 WHERE course_id = $1 AND user_id = $2",
                            vec![
                                course.clone().into(),
                                user.clone().into(),
                                role.into(),
                                status.into(),
                                name.into(),
                                email.into(),
                            ],
                        )));
                    }
                    if let Some(status) = p.status {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_enrollments SET status = $3 WHERE course_id = $1 AND user_id = $2",
                            vec![course.clone().into(), user.clone().into(), status.into()],
                        )));
                    }
                    if let Some((first, latest)) = p.launch {
                        parts.push_back(Part::One(Stmt::new(
                            "UPDATE rm_enrollments SET first_launch = COALESCE(first_launch, $3), latest_launch = $4 WHERE course_id = $1 AND user_id = $2",
                            vec![course.into(), user.into(), first.into(), latest.into()],
                        )));
                    }
                }
            }
        }
        parts.push_back(Part::rows(
            "INSERT INTO rm_enrollments (course_id, user_id, role, status, name, email, first_launch, latest_launch, enrolled_at)",
            9,
            "",
            enrollment_rows,
        ));
        parts.push_back(Part::rows(
            "INSERT INTO rm_tool_accounts (course_id, user_id, tool_id, account)",
            4,
            " ON CONFLICT (course_id, user_id, tool_id) DO UPDATE SET account = excluded.account",
            self.tool_accounts
                .into_iter()
                .map(|((c, u, t), a)| vec![c.into(), u.into(), t.into(), a.into()])
                .collect(),
        ));
        parts.push_back(Part::Lazy {
            head: "INSERT INTO rm_scores (course_id, line_item_id, user_id, last_post_at, last_outcome, last_reason, posts, rejected, stale,
                                      kept_at, score_given, score_maximum, activity_progress, grading_progress, tool_timestamp, comment)",
            cols: 16,
            // A cell written before keeps its kept post unless this run has
            // a newer one (kept_at is set exactly when it has).
            tail: " ON CONFLICT (course_id, line_item_id, user_id) DO UPDATE SET
                    last_post_at = excluded.last_post_at, last_outcome = excluded.last_outcome,
                    last_reason = excluded.last_reason,
                    posts = rm_scores.posts + excluded.posts, rejected = rm_scores.rejected + excluded.rejected,
                    stale = rm_scores.stale + excluded.stale,
                    kept_at = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.kept_at ELSE excluded.kept_at END,
                    score_given = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.score_given ELSE excluded.score_given END,
                    score_maximum = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.score_maximum ELSE excluded.score_maximum END,
                    activity_progress = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.activity_progress ELSE excluded.activity_progress END,
                    grading_progress = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.grading_progress ELSE excluded.grading_progress END,
                    tool_timestamp = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.tool_timestamp ELSE excluded.tool_timestamp END,
                    comment = CASE WHEN excluded.kept_at IS NULL THEN rm_scores.comment ELSE excluded.comment END",
            rows: Box::new(self.scores.into_iter().map(|((c, i, u), d)| {
                let mut row: Vec<Param> = vec![
                    c.into(),
                    i.into(),
                    u.into(),
                    d.last_post_at.into(),
                    d.last_outcome.into(),
                    d.last_reason.into(),
                    d.posts.into(),
                    d.rejected.into(),
                    d.stale.into(),
                ];
                match d.kept {
                    Some(k) => row.extend([
                        k.kept_at.into(),
                        k.score_given.into(),
                        k.score_maximum.into(),
                        k.activity_progress.into(),
                        k.grading_progress.into(),
                        k.tool_timestamp.into(),
                        k.comment.into(),
                    ]),
                    None => row.extend(std::iter::repeat_n(Param::Text(None), 7)),
                }
                row
            })),
        });
        let mut kept = Vec::new();
        for ((course, user), row) in self.grades.kept {
            match row {
                Some(r) => kept.push(r),
                None => parts.push_back(Part::One(Stmt::new(
                    "DELETE FROM rm_course_grades WHERE course_id = $1 AND user_id = $2",
                    vec![course.into(), user.into()],
                ))),
            }
        }
        parts.push_back(Part::rows(
            grades::KEPT_HEAD,
            grades::KEPT_COLS,
            grades::KEPT_TAIL,
            kept,
        ));
        parts.push_back(Part::rows(
            grades::HISTORY_HEAD,
            grades::HISTORY_COLS,
            "",
            self.grades.history,
        ));
        parts.push_back(Part::rows(
            grades::CELLS_HEAD,
            grades::CELLS_COLS,
            "",
            self.grades.cells,
        ));
        parts
    }
}

/// One write of [`Changes::into_copies`].
pub enum Write {
    Stmt(Stmt),
    /// `COPY table (columns) FROM STDIN` and its rows in the text format.
    Copy {
        sql: String,
        data: String,
    },
}

/// Appends one row in `COPY`'s text format: tab-separated, `\N` for null,
/// backslash escapes for the characters the format uses.
fn copy_row(row: &[Param], out: &mut String) {
    use std::fmt::Write as _;
    for (i, p) in row.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match p {
            Param::Text(None) => out.push_str("\\N"),
            Param::Text(Some(s)) => crate::db::copy_escape(s, out),
            Param::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Param::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        }
    }
    out.push('\n');
}

enum Part {
    One(Stmt),
    Lazy {
        head: &'static str,
        cols: usize,
        tail: &'static str,
        rows: Box<dyn Iterator<Item = Vec<Param>> + Send>,
    },
}

impl Part {
    fn rows(head: &'static str, cols: usize, tail: &'static str, rows: Vec<Vec<Param>>) -> Self {
        Part::Lazy {
            head,
            cols,
            tail,
            rows: Box::new(rows.into_iter()),
        }
    }
}

/// The statements of a [`Changes`], in order; see [`Changes::into_statements`].
pub struct Statements {
    parts: VecDeque<Part>,
    numbered: bool,
}

impl Iterator for Statements {
    type Item = Stmt;

    fn next(&mut self) -> Option<Stmt> {
        loop {
            match self.parts.front_mut()? {
                Part::One(_) => {
                    let Some(Part::One(s)) = self.parts.pop_front() else {
                        unreachable!()
                    };
                    return Some(s);
                }
                Part::Lazy {
                    head,
                    cols,
                    tail,
                    rows,
                } => {
                    let per_stmt = (PARAMS_PER_STMT / *cols).max(1);
                    let mut params = Vec::with_capacity(per_stmt * *cols);
                    let mut n = 0;
                    for row in rows.by_ref().take(per_stmt) {
                        debug_assert_eq!(row.len(), *cols);
                        params.extend(row);
                        n += 1;
                    }
                    if n == 0 {
                        self.parts.pop_front();
                        continue;
                    }
                    let sql = values_sql(head, *cols, n, tail, self.numbered);
                    return Some(Stmt::new(sql, params));
                }
            }
        }
    }
}

/// `head VALUES ($1, .., $cols), .. tail` for `rows` rows.
fn values_sql(head: &str, cols: usize, rows: usize, tail: &str, numbered: bool) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 7 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            n += 1;
            if numbered {
                let _ = write!(sql, "${n}");
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// The statements one run of events writes (folded, see [`Changes`]).
pub fn statements<'a>(
    events: impl IntoIterator<Item = &'a Envelope>,
    numbered: bool,
) -> Statements {
    let mut changes = Changes::new();
    for env in events {
        changes.add(env);
    }
    changes.into_statements(numbered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_number_every_parameter() {
        assert_eq!(
            values_sql(
                "INSERT INTO t (a, b)",
                2,
                2,
                " ON CONFLICT DO NOTHING",
                true
            ),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            values_sql(
                "INSERT INTO t (a, b)",
                2,
                2,
                " ON CONFLICT DO NOTHING",
                false
            ),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?) ON CONFLICT DO NOTHING"
        );
    }
}
