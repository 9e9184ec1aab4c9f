//! A student's provenance: their grade, exactly as the grade report shows
//! it, and for every line item the chain of events that produced the number
//! (each post accepted, cleared, ignored as stale or rejected, oldest first,
//! with who sent it, through which door, in which request, the tool's
//! timestamp and when the engine received it), the line item's own history
//! and the course's lock periods. Pure: built from a [`CourseView`] and the
//! student's slice of the log ([`crate::reports::audit::read_student_events`]).

use chrono::{DateTime, FixedOffset};
use gradebook_domain::course::CourseEvent;
use gradebook_domain::enrollment::EnrollmentEvent;
use gradebook_domain::line_item::{LineItemEvent, LineItemSpec};
use gradebook_domain::score::{ScoreEvent, ScorePost};
use gradebook_domain::CommandMeta;
use serde::Serialize;

use crate::projector::events::{AnyEvent, Envelope};
use crate::reports::audit::rfc3339;
use crate::reports::grades::{course_grades, fmt2, ItemRow, StudentRow};
use crate::reports::grading::scale_points;
use crate::tables::view::CourseView;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub course_id: String,
    pub user_id: String,
    pub name: Option<String>,
    /// Current role and status; `None` if never enrolled.
    pub enrollment: Option<EnrollmentNow>,
    /// The student's row of the grade report; `None` when the report has
    /// none (not a learner, or dropped).
    pub grade: Option<GradeSummary>,
    /// Why there is no grade row, when there is none.
    pub grade_note: Option<String>,
    /// Every line item of the course in creation order, deleted ones too.
    pub items: Vec<ItemProvenance>,
    /// Every period the course was locked, oldest first.
    pub locks: Vec<LockPeriod>,
    /// The enrollment's own events (enrolled, updated, dropped, launches).
    pub enrollment_history: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnrollmentNow {
    pub role: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeSummary {
    /// Null only when the grade is not computable.
    pub points_earned: Option<String>,
    /// Null only when the grade is not computable.
    pub points_possible: Option<String>,
    pub percent: Option<String>,
    pub letter: Option<String>,
    pub status: crate::reports::grading::GradeStatus,
    /// Why there are no numbers, as in the grade report; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_computable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemProvenance {
    pub line_item_id: String,
    pub label: String,
    pub maximum: String,
    pub deleted: bool,
    /// This item's line in the grade report (score, state, counted, reason).
    pub grade_item: Option<ItemRow>,
    /// The post the number comes from; `None` when nothing is kept.
    pub kept: Option<PostView>,
    /// Every post for this student on this item, oldest first.
    pub posts: Vec<PostEvent>,
    /// The line item's own events: created, updated, deleted.
    pub history: Vec<Change>,
}

/// Who did something, through which door, when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    pub position: i64,
    pub actor: String,
    pub source: &'static str,
    pub batch_id: Option<String>,
    pub request_id: String,
    pub received_at: String,
}

impl Origin {
    fn of(env: &Envelope) -> Self {
        let m: &CommandMeta = &env.meta;
        Self {
            position: env.at.position,
            actor: m.actor.clone(),
            source: m.source.as_str(),
            batch_id: m.batch_id.clone(),
            request_id: m.request_id.clone(),
            received_at: rfc3339(m.received_at),
        }
    }
}

/// The values a tool sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostView {
    pub score_given: Option<String>,
    pub score_maximum: Option<String>,
    pub activity_progress: String,
    pub grading_progress: String,
    /// The tool's timestamp, with the offset it was sent with.
    pub timestamp: String,
    pub comment: Option<String>,
    /// The number the tool sent, when it had more digits than a decimal
    /// holds and `score_given` is it rounded; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_given_as_sent: Option<String>,
    /// The same for `score_maximum`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_maximum_as_sent: Option<String>,
}

impl PostView {
    fn of(p: &ScorePost) -> Self {
        Self {
            score_given: p.score_given.map(|d| d.normalize().to_string()),
            score_maximum: p.score_maximum.map(|d| d.normalize().to_string()),
            activity_progress: variant_name(&p.activity_progress),
            grading_progress: variant_name(&p.grading_progress),
            timestamp: p.timestamp.to_rfc3339(),
            comment: p.comment.clone(),
            score_given_as_sent: p.score_given_as_sent.clone(),
            score_maximum_as_sent: p.score_maximum_as_sent.clone(),
        }
    }
}

/// The serde name of a unit enum variant (`FullyGraded`).
fn variant_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PostOutcome {
    Accepted,
    Cleared,
    Stale,
    Rejected,
}

/// One post in a cell's chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostEvent {
    pub event_type: String,
    pub outcome: PostOutcome,
    /// Whether this post set the number (accepted or cleared).
    pub applied: bool,
    /// Why it was refused (`course_locked`, `user_not_enrolled`,
    /// `line_item_deleted`).
    pub reason: Option<&'static str>,
    /// For a stale post: the timestamp of the score that was kept instead.
    pub kept_timestamp: Option<String>,
    /// The sent score on the line item's maximum at the time, 2 places;
    /// none without a score, or when the points do not fit a decimal.
    pub points: Option<String>,
    #[serde(flatten)]
    pub post: PostView,
    #[serde(flatten)]
    pub origin: Origin,
}

/// A change to a line item or an enrollment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub event_type: String,
    /// The new state, as recorded (e.g. the line item's whole spec).
    pub detail: serde_json::Value,
    #[serde(flatten)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockPeriod {
    pub locked: Origin,
    pub reason: Option<String>,
    /// `None` while still locked.
    pub unlocked: Option<Origin>,
    pub unlock_reason: Option<String>,
    /// This student's posts refused because of this lock.
    pub rejected_posts: usize,
}

/// Whether the student appears in the course at all: enrolled once, or
/// posted for.
pub fn knows_student(events: &[Envelope], user_id: &str) -> bool {
    events.iter().any(|e| match &e.event {
        AnyEvent::Enrollment(EnrollmentEvent::Enrolled { user_id: u, .. }) => u.as_str() == user_id,
        AnyEvent::Score(s) => s.ids().2.as_str() == user_id,
        _ => false,
    })
}

fn item_id_of(env: &Envelope) -> &str {
    env.aggregate_id.rsplit('/').next().unwrap_or_default()
}

/// Builds the provenance of `user_id` from the live view and the student's
/// slice of the log (course, line item, and this user's events, in order).
pub fn provenance(view: &CourseView, events: &[Envelope], user_id: &str) -> Provenance {
    let report = course_grades(view, None);
    let row: Option<&StudentRow> = report.students.iter().find(|s| s.user_id == user_id);
    let enrollment = view.enrollments.get(user_id);

    // Line item specs as they stood at each moment, for a post's points.
    let mut specs: std::collections::HashMap<String, LineItemSpec> = Default::default();
    let mut items: Vec<ItemProvenance> = view
        .line_items
        .iter()
        .map(|li| ItemProvenance {
            line_item_id: li.line_item_id.clone(),
            label: li.spec.label.clone(),
            maximum: fmt2(li.spec.score_maximum),
            deleted: li.deleted,
            grade_item: row.and_then(|r| {
                r.items
                    .iter()
                    .find(|i| i.line_item_id == li.line_item_id)
                    .cloned()
            }),
            kept: view
                .scores
                .get(&(li.line_item_id.clone(), user_id.to_string()))
                .and_then(|s| s.kept.as_ref())
                .map(PostView::of),
            posts: Vec::new(),
            history: Vec::new(),
        })
        .collect();
    let mut locks: Vec<LockPeriod> = Vec::new();
    let mut enrollment_history = Vec::new();

    for env in events {
        match &env.event {
            AnyEvent::Course(CourseEvent::CourseLocked { reason }) => locks.push(LockPeriod {
                locked: Origin::of(env),
                reason: reason.clone(),
                unlocked: None,
                unlock_reason: None,
                rejected_posts: 0,
            }),
            AnyEvent::Course(CourseEvent::CourseUnlocked { reason }) => {
                if let Some(open) = locks.last_mut().filter(|l| l.unlocked.is_none()) {
                    open.unlocked = Some(Origin::of(env));
                    open.unlock_reason = reason.clone();
                }
            }
            AnyEvent::Course(_) => {}
            AnyEvent::LineItem(e) => {
                let id = item_id_of(env).to_string();
                let detail = match e {
                    LineItemEvent::LineItemCreated { spec, .. }
                    | LineItemEvent::LineItemUpdated { spec } => {
                        specs.insert(id.clone(), spec.clone());
                        serde_json::to_value(spec).unwrap_or_default()
                    }
                    LineItemEvent::LineItemDeleted => serde_json::Value::Null,
                };
                if let Some(item) = items.iter_mut().find(|i| i.line_item_id == id) {
                    item.history.push(Change {
                        event_type: env.event_type.clone(),
                        detail,
                        origin: Origin::of(env),
                    });
                }
            }
            AnyEvent::Enrollment(e) => {
                if env.aggregate_id.rsplit('/').next() == Some(user_id) {
                    enrollment_history.push(Change {
                        event_type: env.event_type.clone(),
                        detail: enrollment_detail(e),
                        origin: Origin::of(env),
                    });
                }
            }
            AnyEvent::Score(e) => {
                let (_, item_id, user) = e.ids();
                if user.as_str() != user_id {
                    continue;
                }
                let post = e.post();
                let points = match (
                    post.score_given,
                    post.score_maximum,
                    specs.get(item_id.as_str()),
                ) {
                    (Some(g), Some(m), Some(spec)) => {
                        scale_points(g, m, spec.score_maximum).map(fmt2)
                    }
                    _ => None,
                };
                let (outcome, reason, kept_timestamp) = match e {
                    ScoreEvent::ScoreAccepted { .. } => (PostOutcome::Accepted, None, None),
                    ScoreEvent::ScoreCleared { .. } => (PostOutcome::Cleared, None, None),
                    ScoreEvent::ScoreIgnoredStale { kept_timestamp, .. } => {
                        (PostOutcome::Stale, None, Some(fmt_ts(kept_timestamp)))
                    }
                    ScoreEvent::ScoreRejected { reason, .. } => {
                        if reason.code() == "course_locked" {
                            if let Some(open) = locks.last_mut().filter(|l| l.unlocked.is_none()) {
                                open.rejected_posts += 1;
                            }
                        }
                        (PostOutcome::Rejected, Some(reason.code()), None)
                    }
                };
                let entry = PostEvent {
                    event_type: env.event_type.clone(),
                    outcome,
                    applied: matches!(outcome, PostOutcome::Accepted | PostOutcome::Cleared),
                    reason,
                    kept_timestamp,
                    points,
                    post: PostView::of(post),
                    origin: Origin::of(env),
                };
                if let Some(item) = items
                    .iter_mut()
                    .find(|i| i.line_item_id == item_id.as_str())
                {
                    item.posts.push(entry);
                }
            }
        }
    }

    let grade_note = match (row, enrollment) {
        (Some(_), _) => None,
        (None, None) => Some("not enrolled in the course: posts are recorded, no grade".into()),
        (None, Some(e)) if !e.is_learner() => Some(format!(
            "enrolled as {}, not as a learner: no grade",
            e.role.name()
        )),
        (None, Some(e)) => Some(format!("enrollment is {}: no grade row", e.status.as_str())),
    };
    Provenance {
        course_id: view.course_id.clone(),
        user_id: user_id.to_string(),
        name: enrollment.and_then(|e| e.name.clone()),
        enrollment: enrollment.map(|e| EnrollmentNow {
            role: e.role.name().to_string(),
            status: e.status.as_str().to_string(),
        }),
        grade: row.map(|r| GradeSummary {
            points_earned: r.points_earned.clone(),
            points_possible: r.points_possible.clone(),
            percent: r.percent.clone(),
            letter: r.letter.clone(),
            status: r.status,
            not_computable: r.not_computable.clone(),
        }),
        grade_note,
        items,
        locks,
        enrollment_history,
    }
}

fn fmt_ts(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339()
}

fn enrollment_detail(e: &EnrollmentEvent) -> serde_json::Value {
    match e {
        EnrollmentEvent::Enrolled { person, .. }
        | EnrollmentEvent::EnrollmentUpdated { person } => {
            serde_json::json!({"role": person.role.name(), "status": person.status.as_str()})
        }
        EnrollmentEvent::EnrollmentStatusChanged { from, to } => {
            serde_json::json!({"from": from.as_str(), "to": to.as_str()})
        }
        EnrollmentEvent::LaunchRecorded { tool_id, at, .. } => {
            serde_json::json!({"tool_id": tool_id.as_str(), "at": rfc3339(*at)})
        }
        EnrollmentEvent::ToolAccountLinked { tool_id, .. } => {
            serde_json::json!({"tool_id": tool_id.as_str()})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projector::events::Checkpoint;
    use gradebook_domain::enrollment::{EnrollmentStatus, Person, Role};
    use gradebook_domain::score::{ActivityProgress, GradingProgress, RejectReason};
    use gradebook_domain::{CourseId, LineItemId, Source, UserId};
    use rust_decimal::Decimal;

    fn env(position: i64, aggregate_id: &str, source: Source, event: AnyEvent) -> Envelope {
        let event_type = match &event {
            AnyEvent::Course(e) => cqrs_es::DomainEvent::event_type(e),
            AnyEvent::LineItem(e) => cqrs_es::DomainEvent::event_type(e),
            AnyEvent::Enrollment(e) => cqrs_es::DomainEvent::event_type(e),
            AnyEvent::Score(e) => cqrs_es::DomainEvent::event_type(e),
        };
        Envelope {
            at: Checkpoint { tx: 0, position },
            aggregate_type: String::new(),
            aggregate_id: aggregate_id.into(),
            sequence: position,
            event_type,
            meta: CommandMeta::new(
                "test",
                source,
                format!("req-{position}"),
                DateTime::from_timestamp(1_790_000_000 + position, 0).unwrap(),
            ),
            event,
        }
    }

    fn post(given: i64, ts: &str) -> ScorePost {
        ScorePost {
            score_given: Some(Decimal::from(given)),
            score_maximum: Some(Decimal::from(50)),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp: DateTime::parse_from_rfc3339(ts).unwrap(),
            comment: None,
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        }
    }

    fn log() -> Vec<Envelope> {
        let c = CourseId::parse("C-1").unwrap();
        let li = LineItemId::parse("quiz").unwrap();
        let u = UserId::parse("ada").unwrap();
        let score = |e| AnyEvent::Score(e);
        vec![
            env(
                1,
                "C-1",
                Source::Sis,
                AnyEvent::Course(CourseEvent::CourseOpened {
                    course_id: c.clone(),
                    title: "T".into(),
                    term: "2026FA".into(),
                    tool_ids: vec![],
                }),
            ),
            env(
                2,
                "C-1/quiz",
                Source::Sis,
                AnyEvent::LineItem(LineItemEvent::LineItemCreated {
                    course_id: c.clone(),
                    line_item_id: li.clone(),
                    spec: LineItemSpec::new("Quiz", Decimal::from(100)),
                }),
            ),
            env(
                3,
                "C-1/ada",
                Source::Sis,
                AnyEvent::Enrollment(EnrollmentEvent::Enrolled {
                    course_id: c.clone(),
                    user_id: u.clone(),
                    person: Person {
                        role: Role::Learner,
                        status: EnrollmentStatus::Active,
                        name: Some("Ada".into()),
                        email: None,
                    },
                }),
            ),
            env(
                4,
                "C-1/quiz/ada",
                Source::Ags,
                score(ScoreEvent::ScoreAccepted {
                    course_id: c.clone(),
                    line_item_id: li.clone(),
                    user_id: u.clone(),
                    post: post(40, "2026-09-10T10:00:00Z"),
                }),
            ),
            env(
                5,
                "C-1",
                Source::Registrar,
                AnyEvent::Course(CourseEvent::CourseLocked {
                    reason: Some("closed".into()),
                }),
            ),
            env(
                6,
                "C-1/quiz/ada",
                Source::Ags,
                score(ScoreEvent::ScoreRejected {
                    course_id: c.clone(),
                    line_item_id: li.clone(),
                    user_id: u.clone(),
                    post: post(45, "2026-09-11T10:00:00Z"),
                    reason: RejectReason::CourseLocked,
                }),
            ),
            env(
                7,
                "C-1",
                Source::Registrar,
                AnyEvent::Course(CourseEvent::CourseUnlocked { reason: None }),
            ),
            env(
                8,
                "C-1/quiz/ada",
                Source::Ags,
                score(ScoreEvent::ScoreIgnoredStale {
                    course_id: c.clone(),
                    line_item_id: li.clone(),
                    user_id: u.clone(),
                    post: post(10, "2026-09-01T10:00:00Z"),
                    kept_timestamp: DateTime::parse_from_rfc3339("2026-09-10T10:00:00Z").unwrap(),
                }),
            ),
        ]
    }

    #[test]
    fn a_cell_lists_every_post_with_its_outcome_points_and_origin() {
        let events = log();
        let view = CourseView::fold("C-1", &events, None).unwrap();
        let p = provenance(&view, &events, "ada");
        assert_eq!(
            p.grade.as_ref().and_then(|g| g.percent.clone()).as_deref(),
            Some("80.00")
        );
        let quiz = &p.items[0];
        let outcomes: Vec<PostOutcome> = quiz.posts.iter().map(|p| p.outcome).collect();
        assert_eq!(
            outcomes,
            [
                PostOutcome::Accepted,
                PostOutcome::Rejected,
                PostOutcome::Stale
            ]
        );
        // 40 of 50 on a 100-point item.
        assert_eq!(quiz.posts[0].points.as_deref(), Some("80.00"));
        assert_eq!(quiz.posts[1].reason, Some("course_locked"));
        assert_eq!(quiz.posts[1].origin.request_id, "req-6");
        assert_eq!(
            quiz.posts[2].kept_timestamp.as_deref(),
            Some("2026-09-10T10:00:00+00:00")
        );
        assert_eq!(
            quiz.kept
                .as_ref()
                .and_then(|k| k.score_given.clone())
                .as_deref(),
            Some("40")
        );
        assert_eq!(quiz.history.len(), 1);
    }

    #[test]
    fn a_lock_period_counts_the_posts_it_refused() {
        let events = log();
        let view = CourseView::fold("C-1", &events, None).unwrap();
        let p = provenance(&view, &events, "ada");
        assert_eq!(p.locks.len(), 1);
        assert_eq!(p.locks[0].reason.as_deref(), Some("closed"));
        assert_eq!(p.locks[0].rejected_posts, 1);
        assert_eq!(p.locks[0].unlocked.as_ref().map(|o| o.position), Some(7));
    }

    #[test]
    fn a_student_is_known_by_an_enrollment_or_a_post() {
        let events = log();
        assert!(knows_student(&events, "ada"));
        assert!(!knows_student(&events, "alan"));
        assert!(
            knows_student(&events[3..4], "ada"),
            "a post alone is enough"
        );
    }
}
