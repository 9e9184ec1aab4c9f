//! A course as the read side sees it: its policy, line items, people and
//! the kept score of every cell. Built either from the read tables (the
//! live view) or by folding the course's events up to a moment (time
//! travel); both feed the same grade computation, and a test holds them
//! equal.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use gradebook_domain::course::{CourseEvent, ResourceLink};
use gradebook_domain::enrollment::{EnrollmentEvent, EnrollmentStatus, Role};
use gradebook_domain::line_item::{LineItemEvent, LineItemSpec};
use gradebook_domain::policy::GradingPolicy;
use gradebook_domain::score::{RejectReason, ScoreEvent, ScorePost};
use serde::Serialize;

use crate::projector::events::{AnyEvent, Envelope};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseView {
    pub course_id: String,
    pub title: String,
    pub term: String,
    pub policy: GradingPolicy,
    pub locked: bool,
    pub tool_ids: BTreeSet<String>,
    /// In the order they were created.
    pub line_items: Vec<LineItemRow>,
    pub resource_links: BTreeMap<String, ResourceLink>,
    pub enrollments: BTreeMap<String, EnrollmentRow>,
    /// Keyed by (line item, user).
    pub scores: BTreeMap<(String, String), ScoreRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItemRow {
    pub line_item_id: String,
    pub spec: LineItemSpec,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnrollmentRow {
    pub user_id: String,
    pub role: Role,
    pub status: EnrollmentStatus,
    pub name: Option<String>,
    pub email: Option<String>,
    pub first_launch: Option<DateTime<Utc>>,
    pub latest_launch: Option<DateTime<Utc>>,
}

impl EnrollmentRow {
    pub fn is_learner(&self) -> bool {
        self.role == Role::Learner
    }
}

/// What happened to the latest post for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LastOutcome {
    Accepted,
    Cleared,
    Stale,
    Rejected,
}

impl LastOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LastOutcome::Accepted => "accepted",
            LastOutcome::Cleared => "cleared",
            LastOutcome::Stale => "stale",
            LastOutcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => LastOutcome::Accepted,
            "cleared" => LastOutcome::Cleared,
            "stale" => LastOutcome::Stale,
            "rejected" => LastOutcome::Rejected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRow {
    /// The post applied last (accepted or cleared); `None` if none was.
    pub kept: Option<ScorePost>,
    /// When the engine received the kept post.
    pub kept_at: Option<DateTime<Utc>>,
    pub last_outcome: LastOutcome,
    pub last_reason: Option<RejectReason>,
    pub last_post_at: DateTime<Utc>,
    pub posts: i64,
    pub rejected: i64,
    pub stale: i64,
}

/// What became of one score post, as a cell records it.
#[derive(Debug, Clone, PartialEq)]
pub enum PostOutcome {
    /// Accepted, or cleared (no `score_given`): the cell's kept post now.
    Kept(ScorePost),
    Stale,
    Rejected(RejectReason),
}

impl ScoreRow {
    /// A cell before its first post.
    pub fn new(first_post_at: DateTime<Utc>) -> Self {
        Self {
            kept: None,
            kept_at: None,
            last_outcome: LastOutcome::Accepted,
            last_reason: None,
            last_post_at: first_post_at,
            posts: 0,
            rejected: 0,
            stale: 0,
        }
    }

    /// Records one post received at `received`: the fold of the log and
    /// the cell history both go through here.
    pub fn record(&mut self, received: DateTime<Utc>, outcome: PostOutcome) {
        self.posts += 1;
        self.last_post_at = received;
        self.last_reason = None;
        match outcome {
            PostOutcome::Kept(post) => {
                self.last_outcome = if post.score_given.is_some() {
                    LastOutcome::Accepted
                } else {
                    LastOutcome::Cleared
                };
                self.kept = Some(post);
                self.kept_at = Some(received);
            }
            PostOutcome::Stale => {
                self.stale += 1;
                self.last_outcome = LastOutcome::Stale;
            }
            PostOutcome::Rejected(reason) => {
                self.rejected += 1;
                self.last_outcome = LastOutcome::Rejected;
                self.last_reason = Some(reason);
            }
        }
    }

    /// The kept post when it carries a score (a cleared cell has none).
    pub fn score(&self) -> Option<&ScorePost> {
        self.kept.as_ref().filter(|p| p.score_given.is_some())
    }
}

impl CourseView {
    /// A course before its first event.
    pub fn empty(course_id: &str) -> Self {
        Self {
            course_id: course_id.to_string(),
            title: String::new(),
            term: String::new(),
            policy: GradingPolicy::default(),
            locked: false,
            tool_ids: BTreeSet::new(),
            line_items: Vec::new(),
            resource_links: BTreeMap::new(),
            enrollments: BTreeMap::new(),
            scores: BTreeMap::new(),
        }
    }

    /// Folds a course's events, in log order, keeping those the engine had
    /// received by `as_of` (all of them when `None`). `None` when the course
    /// had not been opened by then.
    pub fn fold<'a>(
        course_id: &str,
        events: impl IntoIterator<Item = &'a Envelope>,
        as_of: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        let mut view = Self::empty(course_id);
        let mut opened = false;
        for env in events {
            if as_of.is_some_and(|t| env.meta.received_at > t) {
                continue;
            }
            if matches!(
                env.event,
                AnyEvent::Course(CourseEvent::CourseOpened { .. })
            ) {
                opened = true;
            }
            view.apply(env);
        }
        opened.then_some(view)
    }

    /// Applies one event. Mirrors what the projector writes to the tables.
    pub fn apply(&mut self, env: &Envelope) {
        let received = env.meta.received_at;
        match &env.event {
            AnyEvent::Course(e) => match e {
                CourseEvent::CourseOpened {
                    title,
                    term,
                    tool_ids,
                    ..
                } => {
                    self.title = title.clone();
                    self.term = term.clone();
                    self.tool_ids.extend(tool_ids.iter().map(|t| t.to_string()));
                }
                CourseEvent::GradingSchemeSet { scheme, missing } => {
                    self.policy.scheme = scheme.clone();
                    self.policy.missing = *missing;
                }
                CourseEvent::GradeScaleSet { scale } => self.policy.scale = scale.clone(),
                CourseEvent::ToolDeploymentsAllowed { tool_ids } => {
                    self.tool_ids.extend(tool_ids.iter().map(|t| t.to_string()))
                }
                CourseEvent::ResourceLinkAdded { link } => {
                    self.resource_links
                        .insert(link.resource_link_id.to_string(), link.clone());
                }
                CourseEvent::CourseLocked { .. } => self.locked = true,
                CourseEvent::CourseUnlocked { .. } => self.locked = false,
            },
            AnyEvent::LineItem(e) => {
                let id = env.aggregate_id.rsplit('/').next().unwrap_or_default();
                match e {
                    LineItemEvent::LineItemCreated {
                        line_item_id, spec, ..
                    } => self.line_items.push(LineItemRow {
                        line_item_id: line_item_id.to_string(),
                        spec: spec.clone(),
                        deleted: false,
                    }),
                    LineItemEvent::LineItemUpdated { spec } => {
                        if let Some(row) = self.line_items.iter_mut().find(|r| r.line_item_id == id)
                        {
                            row.spec = spec.clone();
                        }
                    }
                    LineItemEvent::LineItemDeleted => {
                        if let Some(row) = self.line_items.iter_mut().find(|r| r.line_item_id == id)
                        {
                            row.deleted = true;
                        }
                    }
                }
            }
            AnyEvent::Enrollment(e) => {
                let user = env.aggregate_id.rsplit('/').next().unwrap_or_default();
                match e {
                    EnrollmentEvent::Enrolled {
                        user_id, person, ..
                    } => {
                        self.enrollments.insert(
                            user_id.to_string(),
                            EnrollmentRow {
                                user_id: user_id.to_string(),
                                role: person.role.clone(),
                                status: person.status,
                                name: person.name.clone(),
                                email: person.email.clone(),
                                first_launch: None,
                                latest_launch: None,
                            },
                        );
                    }
                    EnrollmentEvent::EnrollmentUpdated { person } => {
                        if let Some(row) = self.enrollments.get_mut(user) {
                            row.role = person.role.clone();
                            row.status = person.status;
                            row.name = person.name.clone();
                            row.email = person.email.clone();
                        }
                    }
                    EnrollmentEvent::EnrollmentStatusChanged { to, .. } => {
                        if let Some(row) = self.enrollments.get_mut(user) {
                            row.status = *to;
                        }
                    }
                    EnrollmentEvent::LaunchRecorded { at, .. } => {
                        if let Some(row) = self.enrollments.get_mut(user) {
                            row.first_launch.get_or_insert(*at);
                            row.latest_launch = Some(*at);
                        }
                    }
                    EnrollmentEvent::ToolAccountLinked { .. } => {}
                }
            }
            AnyEvent::Score(e) => {
                let (_, item, user) = e.ids();
                let key = (item.to_string(), user.to_string());
                let row = self
                    .scores
                    .entry(key)
                    .or_insert_with(|| ScoreRow::new(received));
                row.record(
                    received,
                    match e {
                        ScoreEvent::ScoreAccepted { post, .. }
                        | ScoreEvent::ScoreCleared { post, .. } => PostOutcome::Kept(post.clone()),
                        ScoreEvent::ScoreIgnoredStale { .. } => PostOutcome::Stale,
                        ScoreEvent::ScoreRejected { reason, .. } => PostOutcome::Rejected(*reason),
                    },
                );
            }
        }
    }

    /// Line items that have not been deleted, in creation order.
    pub fn live_items(&self) -> impl Iterator<Item = &LineItemRow> {
        self.line_items.iter().filter(|r| !r.deleted)
    }
}

/// Every course folded from one pass over the whole log, in log order:
/// for each course what [`CourseView::fold`] gives it without `as_of`,
/// without holding the log in memory (only the views). Used to check a
/// copied store against the log it was copied from.
#[derive(Debug, Default)]
pub struct LogFold {
    /// Each course seen, whether it was opened, and its view so far.
    courses: BTreeMap<String, (bool, CourseView)>,
}

impl LogFold {
    pub fn apply(&mut self, env: &Envelope) {
        let course = gradebook_domain::ids::aggregate_id::course_of(&env.aggregate_id);
        let (opened, view) = self
            .courses
            .entry(course.to_string())
            .or_insert_with(|| (false, CourseView::empty(course)));
        if matches!(
            env.event,
            AnyEvent::Course(CourseEvent::CourseOpened { .. })
        ) {
            *opened = true;
        }
        view.apply(env);
    }

    /// The views of the courses that were opened, by course id.
    pub fn into_views(self) -> BTreeMap<String, CourseView> {
        self.courses
            .into_iter()
            .filter_map(|(id, (opened, view))| opened.then_some((id, view)))
            .collect()
    }
}
