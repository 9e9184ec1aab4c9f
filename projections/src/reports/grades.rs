//! The course grade report (`GET /api/courses/{id}/grades`), computed from a
//! [`CourseView`] with the pure arithmetic of [`crate::reports::grading`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use gradebook_domain::enrollment::EnrollmentStatus;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::reports::grading::{self, CellScore, GradeStatus, ItemResult, ItemSpec, ItemState};
use crate::tables::view::{CourseView, EnrollmentRow};

/// Decimals leave the engine as strings with two places, rounded half away
/// from zero: the same rule [`grading::round_percent`] applies to percents.
pub fn fmt2(d: Decimal) -> String {
    format!(
        "{:.2}",
        d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseGrades {
    pub course_id: String,
    pub as_of: Option<DateTime<Utc>>,
    pub scheme: &'static str,
    pub locked: bool,
    pub students: Vec<StudentRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRow {
    pub user_id: String,
    pub name: Option<String>,
    /// Null only when the grade is not computable.
    pub points_earned: Option<String>,
    /// Null only when the grade is not computable.
    pub points_possible: Option<String>,
    pub percent: Option<String>,
    pub letter: Option<String>,
    pub status: GradeStatus,
    pub items: Vec<ItemRow>,
    /// Why the grade has no points, percent or letter: a number it needs
    /// does not fit a decimal (see [`grading`]). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_computable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRow {
    pub line_item_id: String,
    pub label: String,
    pub score: Option<String>,
    pub maximum: String,
    pub state: ItemState,
    pub counted: bool,
    /// Why the score counts or not, in a registrar's words.
    pub reason: String,
}

/// The grading inputs of a course's live line items.
pub fn item_specs(view: &CourseView) -> Vec<ItemSpec> {
    view.live_items()
        .map(|r| ItemSpec {
            line_item_id: r.line_item_id.clone(),
            label: r.spec.label.clone(),
            maximum: r.spec.score_maximum,
            category: r.spec.category.clone(),
            weight: r.spec.weight,
            course_total: r.spec.course_total,
            completion_only: r.spec.completion_only,
        })
        .collect()
}

/// A learner's kept scores, as grading inputs.
pub fn cell_scores(view: &CourseView, user_id: &str) -> HashMap<String, CellScore> {
    view.live_items()
        .filter_map(|item| {
            let row = view
                .scores
                .get(&(item.line_item_id.clone(), user_id.to_string()))?;
            let post = row.score()?;
            Some((
                item.line_item_id.clone(),
                CellScore {
                    score_given: post.score_given?,
                    score_maximum: post.score_maximum?,
                    activity_progress: post.activity_progress,
                    grading_progress: post.grading_progress,
                },
            ))
        })
        .collect()
}

fn reason(result: &ItemResult, item: &ItemSpec, score: Option<&CellScore>) -> String {
    let why = state_reason(result.state, item, score);
    if result.overflow {
        format!("{why}; its points (scoreGiven / scoreMaximum × the item's maximum) are beyond the 28 digits a decimal holds")
    } else {
        why
    }
}

fn state_reason(state: ItemState, item: &ItemSpec, score: Option<&CellScore>) -> String {
    match (state, score) {
        (ItemState::Missing, _) => "no score received".into(),
        (ItemState::Counted, _) if item.completion_only => "completed and fully graded".into(),
        (ItemState::Counted, _) => "fully graded".into(),
        (ItemState::PendingManual, _) => "waiting for a grader (PendingManual)".into(),
        (ItemState::Provisional, Some(s)) if item.completion_only => format!(
            "completion-only: activity {:?}, grading {:?}; counts once Completed and FullyGraded",
            s.activity_progress, s.grading_progress
        ),
        (ItemState::Provisional, Some(s)) => {
            format!("grading {:?}; counts once FullyGraded", s.grading_progress)
        }
        (ItemState::Provisional, None) => "provisional".into(),
    }
}

/// Whether a person has a row in the grade report: a learner who has not
/// dropped the course.
pub fn in_report(e: &EnrollmentRow) -> bool {
    e.is_learner() && e.status != EnrollmentStatus::Dropped
}

/// One learner's row, from the course's live items (see [`item_specs`]).
pub fn student_row(view: &CourseView, items: &[ItemSpec], e: &EnrollmentRow) -> StudentRow {
    student_row_of(&view.policy, items, e, &cell_scores(view, &e.user_id))
}

/// One learner's row from the learner's kept scores by line item (scores
/// of items not in `items` are not read).
pub fn student_row_of(
    policy: &gradebook_domain::policy::GradingPolicy,
    items: &[ItemSpec],
    e: &EnrollmentRow,
    scores: &HashMap<String, CellScore>,
) -> StudentRow {
    let g = grading::student_grade(policy, items, scores);
    StudentRow {
        user_id: e.user_id.clone(),
        name: e.name.clone(),
        points_earned: g.points_earned.map(fmt2),
        points_possible: g.points_possible.map(fmt2),
        percent: g.percent.map(fmt2),
        letter: g.letter,
        status: g.status,
        items: g
            .items
            .iter()
            .zip(items)
            .map(|(r, spec)| ItemRow {
                line_item_id: r.line_item_id.clone(),
                label: r.label.clone(),
                score: r.score.map(fmt2),
                maximum: fmt2(r.maximum),
                state: r.state,
                counted: r.counted,
                reason: reason(r, spec, scores.get(&r.line_item_id)),
            })
            .collect(),
        not_computable: g.not_computable.as_ref().map(grading::Overflow::message),
    }
}

/// One row per learner who has not dropped the course.
pub fn course_grades(view: &CourseView, as_of: Option<DateTime<Utc>>) -> CourseGrades {
    let items = item_specs(view);
    let students = view
        .enrollments
        .values()
        .filter(|e| in_report(e))
        .map(|e| student_row(view, &items, e))
        .collect();
    CourseGrades {
        course_id: view.course_id.clone(),
        as_of,
        scheme: view.policy.scheme.name(),
        locked: view.locked,
        students,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn decimals_leave_with_two_places_rounded_half_away_from_zero() {
        assert_eq!(fmt2(dec!(41.5)), "41.50");
        assert_eq!(fmt2(dec!(2.345)), "2.35");
        assert_eq!(fmt2(dec!(2.3449)), "2.34");
        assert_eq!(fmt2(dec!(0)), "0.00");
    }
}
