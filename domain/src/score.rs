//! The Score aggregate: everything one tool-facing line item received for
//! one learner, as accepted, cleared, ignored-stale or rejected posts.
//!
//! One stream per (line item, learner) keeps a command's cost independent of
//! how many scores the column holds, and lets posts for different learners
//! commit in parallel. Facts owned by other aggregates (is the course
//! locked, is the learner active, is the item deleted) arrive with the
//! command, read by the service just before it runs.

use chrono::{DateTime, FixedOffset};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{CourseId, LineItemId, UserId};
use crate::line_item::maximum_in_range;
use crate::number::{read_decimal, ReadDecimal};
use crate::DomainError;

/// The largest `scoreGiven` a post may carry: a thousand times the largest
/// maximum, room for any extra credit.
pub const MAX_SCORE_GIVEN: i64 = 1_000_000_000_000;

/// Whether `g` is a `scoreGiven` the gradebook accepts: 0 to
/// [`MAX_SCORE_GIVEN`].
pub fn score_given_in_range(g: Decimal) -> bool {
    g >= Decimal::ZERO && g <= Decimal::from(MAX_SCORE_GIVEN)
}

/// Longest comment kept on a score.
pub const MAX_COMMENT_CHARS: usize = 4000;

/// Feedback may span lines, but other control characters (NUL above all,
/// which PostgreSQL cannot store) have no place in it.
pub fn comment_is_clean(c: &str) -> bool {
    !c.chars()
        .any(|ch| ch.is_control() && !matches!(ch, '\n' | '\r' | '\t'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActivityProgress {
    Initialized,
    Started,
    InProgress,
    Submitted,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GradingProgress {
    FullyGraded,
    Pending,
    PendingManual,
    Failed,
    NotReady,
}

/// A score as a tool posted it (AGS score publish), parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScorePost {
    /// Absent means "clear the score".
    pub score_given: Option<Decimal>,
    pub score_maximum: Option<Decimal>,
    pub activity_progress: ActivityProgress,
    pub grading_progress: GradingProgress,
    /// The tool's own timestamp, with the offset it was sent with.
    pub timestamp: DateTime<FixedOffset>,
    pub comment: Option<String>,
    /// The number sent for `score_given`, only when it has more digits than
    /// a decimal holds and `score_given` is it rounded: the log keeps what
    /// the tool sent. Events written before it read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_given_as_sent: Option<String>,
    /// The same for `score_maximum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_maximum_as_sent: Option<String>,
}

/// A number of a post with the text it was rounded from, if any: the text
/// must read as that value and be one a decimal cannot hold exactly (an
/// exact number needs no text beside it).
fn as_read(
    value: Option<Decimal>,
    as_sent: Option<&str>,
    what: &str,
) -> Result<Option<ReadDecimal>, DomainError> {
    let read = match (value, as_sent) {
        (None, None) => return Ok(None),
        (Some(value), None) => ReadDecimal {
            value,
            written: std::cmp::Ordering::Equal,
        },
        (Some(value), Some(text)) => match read_decimal(text) {
            Ok(r) if r.value == value && !r.is_exact() => r,
            _ => {
                return Err(DomainError::InvalidInput(format!(
                    "{what}_as_sent must be the number {what} was rounded from"
                )))
            }
        },
        (None, Some(_)) => {
            return Err(DomainError::InvalidInput(format!(
                "{what}_as_sent goes only with a {what}"
            )))
        }
    };
    Ok(Some(read))
}

impl ScorePost {
    /// The post's own checks, before any rule: its numbers' bounds as
    /// sent, its timestamp and its comment.
    pub fn check(&self) -> Result<(), DomainError> {
        let maximum = as_read(
            self.score_maximum,
            self.score_maximum_as_sent.as_deref(),
            "score_maximum",
        )?;
        let given = as_read(
            self.score_given,
            self.score_given_as_sent.as_deref(),
            "score_given",
        )?;
        if let Some(max) = maximum {
            // Above 0 and at most the bound, as sent: a text that rounds
            // to 0 or to the bound from beyond it is out.
            let top = Decimal::from(crate::line_item::MAX_SCORE_MAXIMUM);
            if !maximum_in_range(max.value) || !max.within(Decimal::ZERO, top) {
                return Err(DomainError::InvalidScoreMaximum);
            }
        }
        if let Some(given) = given {
            if !given.within(Decimal::ZERO, Decimal::from(MAX_SCORE_GIVEN)) {
                return Err(DomainError::InvalidScoreGiven);
            }
            if self.score_maximum.is_none() {
                return Err(DomainError::MissingScoreMaximum);
            }
        }
        crate::time::check(self.timestamp).map_err(DomainError::InvalidTimestamp)?;
        if let Some(c) = &self.comment {
            if c.chars().count() > MAX_COMMENT_CHARS {
                return Err(DomainError::CommentTooLong(MAX_COMMENT_CHARS));
            }
            if !comment_is_clean(c) {
                return Err(DomainError::InvalidInput(
                    "comment must not contain control characters other than line breaks and tabs"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Same values, compared numerically (72.5 equals 72.50000).
    fn same_as(&self, other: &ScorePost) -> bool {
        self == other
    }
}

/// What the rest of the gradebook says about this post, read just before
/// the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreFacts {
    pub line_item_deleted: bool,
    pub course_locked: bool,
    /// The user is an active learner in the course.
    pub learner_active: bool,
    /// When the engine received the post: a tool timestamp far ahead of it
    /// would become the kept score and turn every real post after it stale.
    pub received_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How far ahead of the engine's clock a tool's timestamp may be (clocks
/// drift; a day ahead is a wrong clock or a wrong year).
pub const MAX_CLOCK_AHEAD: chrono::TimeDelta = chrono::TimeDelta::hours(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    CourseLocked,
    UserNotEnrolled,
    LineItemDeleted,
}

impl RejectReason {
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::CourseLocked => "course_locked",
            RejectReason::UserNotEnrolled => "user_not_enrolled",
            RejectReason::LineItemDeleted => "line_item_deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScoreCommand {
    Post {
        course_id: CourseId,
        line_item_id: LineItemId,
        user_id: UserId,
        post: ScorePost,
        facts: ScoreFacts,
    },
    /// A past grade from a registrar's file. The rules of a post, and two
    /// of its own: a post applied to the cell at any time before is
    /// unchanged (so a file sent twice changes nothing), and one older than
    /// the kept score is refused without a record (a file is not a tool
    /// that retries).
    Backfill {
        course_id: CourseId,
        line_item_id: LineItemId,
        user_id: UserId,
        post: ScorePost,
        facts: ScoreFacts,
        /// This exact post was applied to the cell before, as its log says
        /// ([`ScoreHistory::applied_before`]).
        applied_before: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScoreEvent {
    ScoreAccepted {
        course_id: CourseId,
        line_item_id: LineItemId,
        user_id: UserId,
        post: ScorePost,
    },
    /// A post without scoreGiven: the learner has no score on the item.
    ScoreCleared {
        course_id: CourseId,
        line_item_id: LineItemId,
        user_id: UserId,
        post: ScorePost,
    },
    /// Older than the score kept; recorded, not applied.
    ScoreIgnoredStale {
        course_id: CourseId,
        line_item_id: LineItemId,
        user_id: UserId,
        post: ScorePost,
        kept_timestamp: DateTime<FixedOffset>,
    },
    ScoreRejected {
        course_id: CourseId,
        line_item_id: LineItemId,
        user_id: UserId,
        post: ScorePost,
        reason: RejectReason,
    },
}

impl ScoreEvent {
    pub fn post(&self) -> &ScorePost {
        match self {
            ScoreEvent::ScoreAccepted { post, .. }
            | ScoreEvent::ScoreCleared { post, .. }
            | ScoreEvent::ScoreIgnoredStale { post, .. }
            | ScoreEvent::ScoreRejected { post, .. } => post,
        }
    }

    pub fn ids(&self) -> (&CourseId, &LineItemId, &UserId) {
        match self {
            ScoreEvent::ScoreAccepted {
                course_id,
                line_item_id,
                user_id,
                ..
            }
            | ScoreEvent::ScoreCleared {
                course_id,
                line_item_id,
                user_id,
                ..
            }
            | ScoreEvent::ScoreIgnoredStale {
                course_id,
                line_item_id,
                user_id,
                ..
            }
            | ScoreEvent::ScoreRejected {
                course_id,
                line_item_id,
                user_id,
                ..
            } => (course_id, line_item_id, user_id),
        }
    }
}

impl DomainEvent for ScoreEvent {
    fn event_type(&self) -> String {
        match self {
            ScoreEvent::ScoreAccepted { .. } => "ScoreAccepted",
            ScoreEvent::ScoreCleared { .. } => "ScoreCleared",
            ScoreEvent::ScoreIgnoredStale { .. } => "ScoreIgnoredStale",
            ScoreEvent::ScoreRejected { .. } => "ScoreRejected",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// What a post did, for the caller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreOutcome {
    Accepted,
    Cleared,
    /// An identical re-send of the kept score: nothing recorded.
    Unchanged,
    IgnoredStale,
    Rejected(RejectReason),
}

impl ScoreOutcome {
    /// Reads the outcome from the events a post produced.
    pub fn from_events(events: &[ScoreEvent]) -> Self {
        match events.last() {
            None => ScoreOutcome::Unchanged,
            Some(ScoreEvent::ScoreAccepted { .. }) => ScoreOutcome::Accepted,
            Some(ScoreEvent::ScoreCleared { .. }) => ScoreOutcome::Cleared,
            Some(ScoreEvent::ScoreIgnoredStale { .. }) => ScoreOutcome::IgnoredStale,
            Some(ScoreEvent::ScoreRejected { reason, .. }) => ScoreOutcome::Rejected(*reason),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The last post applied (accepted or cleared).
    pub kept: Option<ScorePost>,
    /// The last post rejected, until something else happens; an identical
    /// retry of it (tools retry while a course is locked) records nothing.
    pub last_rejected: Option<(RejectReason, ScorePost)>,
}

/// What a score command decided: the events to record and the answer the
/// poster gets. The answer does not always follow from the events: an
/// identical retry of a refused post records nothing and is refused again.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreDecision {
    pub events: Vec<ScoreEvent>,
    pub outcome: ScoreOutcome,
}

impl ScoreDecision {
    fn of(events: Vec<ScoreEvent>) -> Self {
        let outcome = ScoreOutcome::from_events(&events);
        ScoreDecision { events, outcome }
    }
}

impl Score {
    /// The score rules, synchronously: what `handle` records, and what
    /// the poster is told. Backfill runs the same function on its cells.
    pub fn decide(&self, command: ScoreCommand) -> Result<ScoreDecision, DomainError> {
        match command {
            ScoreCommand::Post {
                course_id,
                line_item_id,
                user_id,
                post: p,
                facts,
            } => post(self, course_id, line_item_id, user_id, p, facts),
            ScoreCommand::Backfill {
                course_id,
                line_item_id,
                user_id,
                post: p,
                facts,
                applied_before,
            } => {
                p.check()?;
                if applied_before {
                    return Ok(ScoreDecision::of(vec![]));
                }
                if let Some(kept) = self.kept.as_ref().filter(|k| p.timestamp < k.timestamp) {
                    return Err(DomainError::OlderThanKept(kept.timestamp));
                }
                post(self, course_id, line_item_id, user_id, p, facts)
            }
        }
    }
}

/// A score cell folded from its events outside the framework, with every
/// post ever applied to it: what a backfill row is decided on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreHistory {
    pub state: Score,
    applied: Vec<ScorePost>,
}

impl ScoreHistory {
    pub fn apply(&mut self, event: ScoreEvent) {
        if let ScoreEvent::ScoreAccepted { post, .. } | ScoreEvent::ScoreCleared { post, .. } =
            &event
        {
            self.applied.push(post.clone());
        }
        self.state.apply(event);
    }

    /// Whether this exact post (same timestamp and values) was applied to
    /// the cell, whether or not it is still the kept one.
    pub fn applied_before(&self, post: &ScorePost) -> bool {
        self.applied.iter().any(|p| p == post)
    }
}

fn post(
    state: &Score,
    course_id: CourseId,
    line_item_id: LineItemId,
    user_id: UserId,
    post: ScorePost,
    facts: ScoreFacts,
) -> Result<ScoreDecision, DomainError> {
    post.check()?;
    if facts
        .received_at
        .is_some_and(|now| post.timestamp > now + MAX_CLOCK_AHEAD)
    {
        return Err(DomainError::TimestampInFuture);
    }
    let reason = if facts.line_item_deleted {
        Some(RejectReason::LineItemDeleted)
    } else if facts.course_locked {
        Some(RejectReason::CourseLocked)
    } else if !facts.learner_active {
        Some(RejectReason::UserNotEnrolled)
    } else {
        None
    };
    if let Some(reason) = reason {
        if matches!(&state.last_rejected, Some((r, p)) if *r == reason && p.same_as(&post)) {
            // Recorded once; every retry is told the same refusal.
            return Ok(ScoreDecision {
                events: vec![],
                outcome: ScoreOutcome::Rejected(reason),
            });
        }
        return Ok(ScoreDecision::of(vec![ScoreEvent::ScoreRejected {
            course_id,
            line_item_id,
            user_id,
            post,
            reason,
        }]));
    }
    if let Some(kept) = &state.kept {
        // Tools send whole seconds, so only strictly older posts are stale.
        if post.timestamp < kept.timestamp {
            return Ok(ScoreDecision::of(vec![ScoreEvent::ScoreIgnoredStale {
                course_id,
                line_item_id,
                user_id,
                kept_timestamp: kept.timestamp,
                post,
            }]));
        }
        if post.timestamp == kept.timestamp && post.same_as(kept) {
            return Ok(ScoreDecision::of(vec![]));
        }
    }
    Ok(ScoreDecision::of(vec![if post.score_given.is_some() {
        ScoreEvent::ScoreAccepted {
            course_id,
            line_item_id,
            user_id,
            post,
        }
    } else {
        ScoreEvent::ScoreCleared {
            course_id,
            line_item_id,
            user_id,
            post,
        }
    }]))
}

impl Aggregate for Score {
    const TYPE: &'static str = "score";
    type Command = ScoreCommand;
    type Event = ScoreEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ScoreCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        for e in self.decide(command)?.events {
            sink.write(e, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: ScoreEvent) {
        match event {
            ScoreEvent::ScoreAccepted { post, .. } | ScoreEvent::ScoreCleared { post, .. } => {
                self.kept = Some(post);
                self.last_rejected = None;
            }
            ScoreEvent::ScoreIgnoredStale { .. } => self.last_rejected = None,
            ScoreEvent::ScoreRejected { post, reason, .. } => {
                self.last_rejected = Some((reason, post))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use rust_decimal_macros::dec;

    #[test]
    fn comments_keep_line_breaks_and_tabs_but_no_other_control_characters() {
        assert!(comment_is_clean("Good work.\nSee page 3\tand 4\r\n"));
        assert!(!comment_is_clean("nul\0"));
        assert!(!comment_is_clean("bell\u{7}"));
        assert!(!comment_is_clean("escape \u{1b}[31m"));
    }

    type F = TestFramework<Score>;

    const OPEN: ScoreFacts = ScoreFacts {
        line_item_deleted: false,
        course_locked: false,
        learner_active: true,
        received_at: None,
    };

    fn p(given: Option<Decimal>, ts: &str) -> ScorePost {
        ScorePost {
            score_given: given,
            score_maximum: Some(dec!(100)),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp: DateTime::parse_from_rfc3339(ts).unwrap(),
            comment: None,
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        }
    }

    fn cmd(post: ScorePost, facts: ScoreFacts) -> ScoreCommand {
        ScoreCommand::Post {
            course_id: CourseId::parse("HIST-101").unwrap(),
            line_item_id: LineItemId::parse("li-1").unwrap(),
            user_id: UserId::parse("u1").unwrap(),
            post,
            facts,
        }
    }

    fn ids() -> (CourseId, LineItemId, UserId) {
        (
            CourseId::parse("HIST-101").unwrap(),
            LineItemId::parse("li-1").unwrap(),
            UserId::parse("u1").unwrap(),
        )
    }

    fn accepted(post: ScorePost) -> ScoreEvent {
        let (course_id, line_item_id, user_id) = ids();
        ScoreEvent::ScoreAccepted {
            course_id,
            line_item_id,
            user_id,
            post,
        }
    }

    fn rejected(post: ScorePost, reason: RejectReason) -> ScoreEvent {
        let (course_id, line_item_id, user_id) = ids();
        ScoreEvent::ScoreRejected {
            course_id,
            line_item_id,
            user_id,
            post,
            reason,
        }
    }

    const T1: &str = "2026-05-01T10:00:00Z";
    const T0: &str = "2026-05-01T09:59:59Z";

    fn past(history: &ScoreHistory, post: ScorePost, facts: ScoreFacts) -> ScoreCommand {
        let (course_id, line_item_id, user_id) = ids();
        ScoreCommand::Backfill {
            course_id,
            line_item_id,
            user_id,
            applied_before: history.applied_before(&post),
            post,
            facts,
        }
    }

    fn history(events: Vec<ScoreEvent>) -> ScoreHistory {
        let mut h = ScoreHistory::default();
        for e in events {
            h.apply(e);
        }
        h
    }

    #[test]
    fn a_past_grade_already_applied_is_unchanged_even_when_no_longer_kept() {
        let h = history(vec![
            accepted(p(Some(dec!(7)), "2026-09-10T10:00:00Z")),
            accepted(p(Some(dec!(9)), "2026-09-12T10:00:00Z")),
        ]);
        for again in [
            p(Some(dec!(7.00)), "2026-09-10T12:00:00+02:00"),
            p(Some(dec!(9)), "2026-09-12T10:00:00Z"),
        ] {
            let d = h.state.decide(past(&h, again, OPEN)).unwrap();
            assert_eq!((d.events, d.outcome), (vec![], ScoreOutcome::Unchanged));
        }
    }

    #[test]
    fn a_past_grade_older_than_the_kept_score_is_refused_without_a_record() {
        let h = history(vec![accepted(p(Some(dec!(9)), "2026-09-12T10:00:00Z"))]);
        let older = h
            .state
            .decide(past(&h, p(Some(dec!(5)), "2026-09-11T10:00:00Z"), OPEN))
            .unwrap_err();
        assert_eq!(older.code(), "stale");
        assert!(older.to_string().contains("2026-09-12T10:00:00"), "{older}");
        for ts in ["2026-09-12T10:00:00Z", "2026-09-13T10:00:00Z"] {
            let d = h
                .state
                .decide(past(&h, p(Some(dec!(5)), ts), OPEN))
                .unwrap();
            assert_eq!(d.outcome, ScoreOutcome::Accepted, "{ts}");
        }
        let fresh = ScoreHistory::default();
        let d = fresh
            .state
            .decide(past(&fresh, p(Some(dec!(5)), T1), OPEN))
            .unwrap();
        assert_eq!(d.outcome, ScoreOutcome::Accepted);
    }

    #[test]
    fn a_past_grade_is_held_to_a_posts_checks_and_gates() {
        let h = ScoreHistory::default();
        let mut bad = p(Some(dec!(-1)), T1);
        let e = h.state.decide(past(&h, bad.clone(), OPEN)).unwrap_err();
        assert_eq!(e.code(), "invalid_score_given");
        bad.score_given = Some(dec!(1));
        bad.score_maximum = None;
        let e = h.state.decide(past(&h, bad, OPEN)).unwrap_err();
        assert_eq!(e.code(), "missing_score_maximum");
        let locked = ScoreFacts {
            course_locked: true,
            ..OPEN
        };
        let d = h
            .state
            .decide(past(&h, p(Some(dec!(1)), T1), locked))
            .unwrap();
        assert_eq!(
            d.outcome,
            ScoreOutcome::Rejected(RejectReason::CourseLocked)
        );
        assert_eq!(
            d.events.len(),
            1,
            "a refusal by a gate is recorded, as for a tool"
        );
    }

    #[test]
    fn a_first_score_is_accepted() {
        F::with(())
            .given_no_previous_events()
            .when(cmd(p(Some(dec!(87)), T1), OPEN))
            .then_expect_events(vec![accepted(p(Some(dec!(87)), T1))]);
    }

    #[test]
    fn a_score_of_zero_is_a_score() {
        F::with(())
            .given(vec![accepted(p(Some(dec!(87)), T0))])
            .when(cmd(p(Some(dec!(0)), T1), OPEN))
            .then_expect_events(vec![accepted(p(Some(dec!(0)), T1))]);
    }

    #[test]
    fn a_locked_course_refuses_a_new_score_and_records_why() {
        F::with(())
            .given_no_previous_events()
            .when(cmd(
                p(Some(dec!(87)), T1),
                ScoreFacts {
                    course_locked: true,
                    ..OPEN
                },
            ))
            .then_expect_events(vec![rejected(
                p(Some(dec!(87)), T1),
                RejectReason::CourseLocked,
            )]);
    }

    #[test]
    fn a_retry_of_a_rejected_post_records_nothing_new() {
        let locked = ScoreFacts {
            course_locked: true,
            ..OPEN
        };
        F::with(())
            .given(vec![rejected(
                p(Some(dec!(87)), T1),
                RejectReason::CourseLocked,
            )])
            .when(cmd(p(Some(dec!(87)), T1), locked))
            .then_expect_events(vec![]);
        // Once unlocked, the same post lands.
        F::with(())
            .given(vec![rejected(
                p(Some(dec!(87)), T1),
                RejectReason::CourseLocked,
            )])
            .when(cmd(p(Some(dec!(87)), T1), OPEN))
            .then_expect_events(vec![accepted(p(Some(dec!(87)), T1))]);
    }

    #[test]
    fn every_retry_of_a_refused_post_is_told_the_same_refusal() {
        for (reason, facts) in [
            (
                RejectReason::CourseLocked,
                ScoreFacts {
                    course_locked: true,
                    ..OPEN
                },
            ),
            (
                RejectReason::UserNotEnrolled,
                ScoreFacts {
                    learner_active: false,
                    ..OPEN
                },
            ),
            (
                RejectReason::LineItemDeleted,
                ScoreFacts {
                    line_item_deleted: true,
                    ..OPEN
                },
            ),
        ] {
            let mut state = Score::default();
            let first = state.decide(cmd(p(Some(dec!(87)), T1), facts)).unwrap();
            assert_eq!(first.outcome, ScoreOutcome::Rejected(reason));
            assert_eq!(first.events.len(), 1);
            for e in first.events {
                state.apply(e);
            }
            for _ in 0..3 {
                let again = state.decide(cmd(p(Some(dec!(87)), T1), facts)).unwrap();
                assert_eq!(again.events, vec![], "nothing new is recorded");
                assert_eq!(again.outcome, ScoreOutcome::Rejected(reason));
            }
        }
    }

    #[test]
    fn a_user_who_is_not_an_active_learner_gets_no_score() {
        F::with(())
            .given_no_previous_events()
            .when(cmd(
                p(Some(dec!(87)), T1),
                ScoreFacts {
                    learner_active: false,
                    ..OPEN
                },
            ))
            .then_expect_events(vec![rejected(
                p(Some(dec!(87)), T1),
                RejectReason::UserNotEnrolled,
            )]);
    }

    #[test]
    fn a_deleted_line_item_takes_no_scores() {
        F::with(())
            .given_no_previous_events()
            .when(cmd(
                p(Some(dec!(87)), T1),
                ScoreFacts {
                    line_item_deleted: true,
                    ..OPEN
                },
            ))
            .then_expect_events(vec![rejected(
                p(Some(dec!(87)), T1),
                RejectReason::LineItemDeleted,
            )]);
    }

    #[test]
    fn a_strictly_older_score_is_recorded_as_stale_and_not_applied() {
        let (course_id, line_item_id, user_id) = ids();
        F::with(())
            .given(vec![accepted(p(Some(dec!(90)), T1))])
            .when(cmd(p(Some(dec!(50)), T0), OPEN))
            .then_expect_events(vec![ScoreEvent::ScoreIgnoredStale {
                course_id,
                line_item_id,
                user_id,
                post: p(Some(dec!(50)), T0),
                kept_timestamp: DateTime::parse_from_rfc3339(T1).unwrap(),
            }]);
    }

    #[test]
    fn an_equal_timestamp_with_a_different_value_is_applied() {
        F::with(())
            .given(vec![accepted(p(Some(dec!(90)), T1))])
            .when(cmd(p(Some(dec!(91)), T1), OPEN))
            .then_expect_events(vec![accepted(p(Some(dec!(91)), T1))]);
    }

    #[test]
    fn an_identical_resend_records_nothing_new() {
        let mut resent = p(Some(dec!(72.50000)), T1);
        resent.timestamp = DateTime::parse_from_rfc3339("2026-05-01T12:00:00+02:00").unwrap();
        F::with(())
            .given(vec![accepted(p(Some(dec!(72.5)), T1))])
            .when(cmd(resent, OPEN))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_post_without_score_given_clears_the_score() {
        let (course_id, line_item_id, user_id) = ids();
        F::with(())
            .given(vec![accepted(p(Some(dec!(90)), T0))])
            .when(cmd(p(None, T1), OPEN))
            .then_expect_events(vec![ScoreEvent::ScoreCleared {
                course_id,
                line_item_id,
                user_id,
                post: p(None, T1),
            }]);
    }

    #[test]
    fn pending_and_provisional_progress_is_kept_for_the_projection_to_judge() {
        let mut pending = p(Some(dec!(40)), T1);
        pending.grading_progress = GradingProgress::PendingManual;
        F::with(())
            .given_no_previous_events()
            .when(cmd(pending.clone(), OPEN))
            .then_expect_events(vec![accepted(pending)]);
    }

    #[test]
    fn bad_numbers_are_refused_and_nothing_is_recorded() {
        let mut zero_max = p(Some(dec!(1)), T1);
        zero_max.score_maximum = Some(dec!(0));
        F::with(())
            .given_no_previous_events()
            .when(cmd(zero_max, OPEN))
            .then_expect_error(DomainError::InvalidScoreMaximum);
        F::with(())
            .given_no_previous_events()
            .when(cmd(p(Some(dec!(-1)), T1), OPEN))
            .then_expect_error(DomainError::InvalidScoreGiven);
        let mut no_max = p(Some(dec!(1)), T1);
        no_max.score_maximum = None;
        F::with(())
            .given_no_previous_events()
            .when(cmd(no_max, OPEN))
            .then_expect_error(DomainError::MissingScoreMaximum);
    }

    #[test]
    fn scores_and_maxima_beyond_the_bounds_are_refused() {
        for given in [dec!(1000000000000.01), Decimal::MAX] {
            F::with(())
                .given_no_previous_events()
                .when(cmd(p(Some(given), T1), OPEN))
                .then_expect_error(DomainError::InvalidScoreGiven);
        }
        for max in [dec!(1000000000.5), Decimal::MAX] {
            let mut post = p(Some(dec!(1)), T1);
            post.score_maximum = Some(max);
            F::with(())
                .given_no_previous_events()
                .when(cmd(post, OPEN))
                .then_expect_error(DomainError::InvalidScoreMaximum);
        }
        // The bounds themselves are accepted.
        let mut top = p(Some(Decimal::from(MAX_SCORE_GIVEN)), T1);
        top.score_maximum = Some(Decimal::from(crate::line_item::MAX_SCORE_MAXIMUM));
        F::with(())
            .given_no_previous_events()
            .when(cmd(top.clone(), OPEN))
            .then_expect_events(vec![accepted(top)]);
        // The messages say the bounds.
        assert!(DomainError::InvalidScoreGiven
            .to_string()
            .contains(&MAX_SCORE_GIVEN.to_string()));
        assert!(DomainError::InvalidScoreMaximum
            .to_string()
            .contains(&crate::line_item::MAX_SCORE_MAXIMUM.to_string()));
    }

    /// A post whose number was rounded, with the text it was rounded from.
    fn rounded(text: &str) -> ScorePost {
        let read = read_decimal(text).unwrap();
        assert!(!read.is_exact(), "{text} fits a decimal");
        let mut post = p(Some(read.value), T1);
        post.score_given_as_sent = Some(text.to_string());
        post
    }

    #[test]
    fn a_rounded_score_keeps_the_text_it_was_rounded_from() {
        let post = rounded("0.12345678901234567890123456789012345");
        F::with(())
            .given_no_previous_events()
            .when(cmd(post.clone(), OPEN))
            .then_expect_events(vec![accepted(post.clone())]);
        let stored = serde_json::to_value(&post).unwrap();
        assert_eq!(stored["score_given"], "0.1234567890123456789012345679");
        assert_eq!(
            stored["score_given_as_sent"],
            "0.12345678901234567890123456789012345"
        );
        assert_eq!(serde_json::from_value::<ScorePost>(stored).unwrap(), post);
        // The same value sent with other digits is another post, recorded.
        let mut other = rounded("0.123456789012345678901234567890123451");
        other.timestamp = post.timestamp;
        F::with(())
            .given(vec![accepted(post)])
            .when(cmd(other.clone(), OPEN))
            .then_expect_events(vec![accepted(other)]);
    }

    #[test]
    fn a_post_stored_before_texts_were_kept_loads_and_an_exact_one_stores_no_text() {
        let old = serde_json::json!({
            "score_given": "72.50000", "score_maximum": "100",
            "activity_progress": "Completed", "grading_progress": "FullyGraded",
            "timestamp": "2026-05-01T10:00:00+02:00", "comment": null
        });
        let post: ScorePost = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(post.score_given, Some(dec!(72.50000)));
        assert_eq!(post.score_given_as_sent, None);
        assert_eq!(
            serde_json::to_value(&post).unwrap(),
            old,
            "stored as before"
        );
    }

    #[test]
    fn a_text_kept_beside_a_number_must_be_what_it_was_rounded_from() {
        let mut wrong = rounded("0.12345678901234567890123456789012345");
        wrong.score_given = Some(dec!(0.5));
        let mut exact = p(Some(dec!(0.2)), T1);
        exact.score_given_as_sent = Some("0.2".into());
        let mut orphan = p(None, T1);
        orphan.score_given_as_sent = Some("0.12345678901234567890123456789012345".into());
        for post in [wrong, exact, orphan] {
            let err = Score::default().decide(cmd(post, OPEN)).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{err}");
        }
    }

    #[test]
    fn bounds_hold_for_the_number_as_sent_not_only_as_rounded() {
        // Rounds to 0, but was below it.
        F::with(())
            .given_no_previous_events()
            .when(cmd(rounded("-1e-40"), OPEN))
            .then_expect_error(DomainError::InvalidScoreGiven);
        // Rounds to the bound, from above it.
        F::with(())
            .given_no_previous_events()
            .when(cmd(rounded("1000000000000.00000000000000000001"), OPEN))
            .then_expect_error(DomainError::InvalidScoreGiven);
        // Rounds to 0 from above: a score of 0, text kept.
        let tiny = rounded("1e-40");
        F::with(())
            .given_no_previous_events()
            .when(cmd(tiny.clone(), OPEN))
            .then_expect_events(vec![accepted(tiny)]);
        // A maximum that rounds to 0 is not above 0.
        let mut max = p(Some(dec!(1)), T1);
        max.score_maximum = Some(read_decimal("1e-40").unwrap().value);
        max.score_maximum_as_sent = Some("1e-40".into());
        F::with(())
            .given_no_previous_events()
            .when(cmd(max, OPEN))
            .then_expect_error(DomainError::InvalidScoreMaximum);
        let mut max = p(Some(dec!(1)), T1);
        max.score_maximum = Some(dec!(1000000000));
        max.score_maximum_as_sent = Some("1000000000.000000000000000000001".into());
        F::with(())
            .given_no_previous_events()
            .when(cmd(max, OPEN))
            .then_expect_error(DomainError::InvalidScoreMaximum);
    }

    #[test]
    fn a_timestamp_far_ahead_of_the_engine_clock_is_refused() {
        let received = Some("2026-05-01T10:00:00Z".parse().unwrap());
        F::with(())
            .given_no_previous_events()
            .when(cmd(
                p(Some(dec!(5)), "2999-01-01T00:00:00Z"),
                ScoreFacts {
                    received_at: received,
                    ..OPEN
                },
            ))
            .then_expect_error(DomainError::TimestampInFuture);
        // A tool clock a few minutes fast is fine.
        F::with(())
            .given_no_previous_events()
            .when(cmd(
                p(Some(dec!(5)), "2026-05-01T10:05:00Z"),
                ScoreFacts {
                    received_at: received,
                    ..OPEN
                },
            ))
            .then_expect_events(vec![accepted(p(Some(dec!(5)), "2026-05-01T10:05:00Z"))]);
    }

    #[test]
    fn a_timestamp_the_stores_cannot_hold_is_refused() {
        use crate::time::TimeError;
        let mut wide = p(Some(dec!(5)), T1);
        wide.timestamp = DateTime::parse_from_rfc3339("2026-05-01T10:00:00-23:59").unwrap();
        F::with(())
            .given_no_previous_events()
            .when(cmd(wide, OPEN))
            .then_expect_error(DomainError::InvalidTimestamp(TimeError::Offset));
        F::with(())
            .given_no_previous_events()
            .when(cmd(p(Some(dec!(5)), "0000-06-01T00:00:00Z"), OPEN))
            .then_expect_error(DomainError::InvalidTimestamp(TimeError::Year));
        assert_eq!(
            DomainError::InvalidTimestamp(TimeError::Offset).code(),
            "invalid_timestamp"
        );
        // The widest offset PostgreSQL takes is fine.
        let edge = p(Some(dec!(5)), "2026-05-01T10:00:00+15:59");
        F::with(())
            .given_no_previous_events()
            .when(cmd(edge.clone(), OPEN))
            .then_expect_events(vec![accepted(edge)]);
    }

    #[test]
    fn the_outcome_is_read_from_the_events() {
        assert_eq!(ScoreOutcome::from_events(&[]), ScoreOutcome::Unchanged);
        assert_eq!(
            ScoreOutcome::from_events(&[rejected(p(None, T1), RejectReason::CourseLocked)]),
            ScoreOutcome::Rejected(RejectReason::CourseLocked)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Runs posts through the aggregate as the store would: handle, then
        /// keep the state the emitted events produce.
        fn run(posts: &[ScorePost]) -> (Score, Vec<ScoreEvent>) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let mut state = Score::default();
            let mut all = Vec::new();
            for p in posts {
                let sink = EventSink::default();
                rt.block_on(state.handle(cmd(p.clone(), OPEN), &(), &sink))
                    .unwrap();
                all.extend(rt.block_on(sink.collect()));
            }
            (state, all)
        }

        fn posts() -> impl Strategy<Value = Vec<ScorePost>> {
            // Distinct timestamps (seconds apart), arbitrary values.
            proptest::collection::btree_map(0u32..100_000, (0u32..=1000, any::<bool>()), 1..20)
                .prop_map(|m| {
                    m.into_iter()
                        .map(|(sec, (given, clear))| {
                            let ts = DateTime::from_timestamp(1_790_000_000 + i64::from(sec), 0)
                                .unwrap()
                                .fixed_offset();
                            let mut post = p(Some(Decimal::from(given)), T1);
                            post.timestamp = ts;
                            if clear {
                                post.score_given = None;
                            }
                            post
                        })
                        .collect()
                })
        }

        proptest! {
            /// Whatever order the tool's posts arrive in, the newest one is
            /// the one kept, and every post is accounted for exactly once.
            #[test]
            fn the_newest_post_wins_in_any_arrival_order(posts in posts(), seed in any::<u64>()) {
                let newest = posts.iter().max_by_key(|p| p.timestamp).unwrap().clone();
                let mut shuffled = posts.clone();
                // A cheap deterministic shuffle from the seed.
                let n = shuffled.len();
                let mut s = seed;
                for i in (1..n).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    shuffled.swap(i, (s >> 33) as usize % (i + 1));
                }
                let (in_order, _) = run(&posts);
                let (state, events) = run(&shuffled);
                prop_assert_eq!(state.kept.as_ref(), Some(&newest));
                prop_assert_eq!(state.kept, in_order.kept);
                prop_assert_eq!(events.len(), posts.len(), "one event per distinct post");
            }

            /// Replaying the recorded events rebuilds the same state.
            #[test]
            fn replaying_the_events_rebuilds_the_state(posts in posts()) {
                let (state, events) = run(&posts);
                let mut replayed = Score::default();
                for e in events {
                    replayed.apply(e);
                }
                prop_assert_eq!(replayed, state);
            }
        }
    }
}
