//! The reconciliation report: what does not agree between the tools and the
//! SIS gradebook, cell by cell and course-wide. Pure: built from a live
//! [`CourseView`] and the course's lock and refusal events
//! ([`crate::reports::audit::read_locks_and_refusals`]).
//!
//! # Cell statuses and their precedence
//!
//! A cell is one person x one live line item. Several conditions can hold at
//! once; the cell shows the first of [`PRECEDENCE`] that holds, so what needs
//! a registrar's action comes before what only needs waiting:
//!
//! 1. `orphan`: the cell has posts, but the person is not an active learner
//!    (never enrolled, not a learner, dropped or inactive).
//! 2. `rejected`: the latest post for the cell was refused.
//! 3. `stale`: the latest post was ignored as older than the kept score.
//! 4. `over_maximum`: the kept points are above the item's maximum, or too
//!    large to compute (beyond what a decimal holds; see [`crate::reports::grading`]).
//! 5. `missing`: no score is kept (never posted, or cleared).
//! 6. `provisional`: a score is kept but does not count yet (not
//!    FullyGraded, PendingManual, or a completion-only item not completed).
//! 7. `in_sync`: a counted score, nothing else to say.
//!
//! No number here panics, saturates or wraps: a cell whose points do not fit
//! a decimal has no `score` (and is `over_maximum`), a weight sum that does
//! not fit has no `sum`, and a learner whose grade (or whose comparison with
//! a tool's course total) needs a number that does not fit is listed in the
//! `grades_not_computable` finding.

use std::collections::{BTreeMap, BTreeSet};

use gradebook_domain::course::CourseEvent;
use gradebook_domain::enrollment::EnrollmentStatus;
use gradebook_domain::policy::Scheme;
use gradebook_domain::score::{RejectReason, ScoreEvent};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::projector::events::{AnyEvent, Envelope};
use crate::reports::audit::rfc3339;
use crate::reports::grades::{cell_scores, fmt2, item_specs};
use crate::reports::grading::{self, percent_of, round_percent, scale_points, ItemState};
use crate::tables::view::{CourseView, LastOutcome, ScoreRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    Orphan,
    Rejected,
    Stale,
    OverMaximum,
    Missing,
    Provisional,
    InSync,
}

/// The one order in which statuses win over each other (see the module doc).
pub const PRECEDENCE: [CellStatus; 7] = [
    CellStatus::Orphan,
    CellStatus::Rejected,
    CellStatus::Stale,
    CellStatus::OverMaximum,
    CellStatus::Missing,
    CellStatus::Provisional,
    CellStatus::InSync,
];

impl CellStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Orphan => "orphan",
            CellStatus::Rejected => "rejected",
            CellStatus::Stale => "stale",
            CellStatus::OverMaximum => "over_maximum",
            CellStatus::Missing => "missing",
            CellStatus::Provisional => "provisional",
            CellStatus::InSync => "in_sync",
        }
    }
}

/// The conditions that hold for one cell, before precedence picks one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellFacts {
    pub has_posts: bool,
    pub active_learner: bool,
    pub last_outcome: Option<LastOutcome>,
    pub kept_over_maximum: bool,
    /// The kept score's state under the grade rules; `Missing` if none.
    pub state: Option<ItemState>,
}

impl CellFacts {
    fn holds(&self, status: CellStatus) -> bool {
        match status {
            CellStatus::Orphan => self.has_posts && !self.active_learner,
            CellStatus::Rejected => self.last_outcome == Some(LastOutcome::Rejected),
            CellStatus::Stale => self.last_outcome == Some(LastOutcome::Stale),
            CellStatus::OverMaximum => self.kept_over_maximum,
            CellStatus::Missing => matches!(self.state, None | Some(ItemState::Missing)),
            CellStatus::Provisional => matches!(
                self.state,
                Some(ItemState::Provisional | ItemState::PendingManual)
            ),
            CellStatus::InSync => true,
        }
    }

    /// The status shown: the first of [`PRECEDENCE`] that holds.
    pub fn status(&self) -> CellStatus {
        PRECEDENCE
            .into_iter()
            .find(|s| self.holds(*s))
            .unwrap_or(CellStatus::InSync)
    }

    /// Every status that holds, in precedence order.
    pub fn all(&self) -> Vec<CellStatus> {
        PRECEDENCE
            .into_iter()
            .filter(|s| *s != CellStatus::InSync && self.holds(*s))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconciliation {
    pub course_id: String,
    pub locked: bool,
    pub threshold: String,
    /// How many cells have each status.
    pub summary: BTreeMap<&'static str, usize>,
    /// The order in which statuses win, first wins.
    pub precedence: Vec<&'static str>,
    pub people: Vec<PersonRow>,
    /// Users with posts who are not active learners (also in `people`).
    pub orphans: Vec<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonRow {
    pub user_id: String,
    pub name: Option<String>,
    /// `None` when never enrolled.
    pub role: Option<String>,
    /// `active`, `inactive`, `dropped`, or `None` when never enrolled.
    pub enrollment_status: Option<&'static str>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub line_item_id: String,
    pub status: &'static str,
    /// Other statuses that also hold, in precedence order.
    pub also: Vec<&'static str>,
    /// Kept points on the item's maximum, 2 places.
    pub score: Option<String>,
    pub maximum: String,
    pub last_reason: Option<&'static str>,
    pub posts: i64,
}

/// A course-level problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A tool's whole-course grade counted beside per-assignment items: the
    /// course total gets diluted (or counts everything twice).
    CourseTotalBesideItems {
        course_total_items: Vec<String>,
        other_items: Vec<String>,
        message: String,
    },
    /// Weighted scheme whose category (and own item) weights do not sum to
    /// 100. `sum` is null when the sum does not fit a decimal.
    #[serde(rename = "weights_do_not_sum_to_100")]
    WeightsDoNotSumTo100 {
        sum: Option<String>,
        message: String,
    },
    /// Weighted scheme items that belong to no known category and carry no
    /// weight of their own: they never move the percent.
    ItemsWithoutCategory { items: Vec<String>, message: String },
    /// Scores kept on, or posts refused for, line items that were deleted.
    ScoresOnDeletedItems {
        scores: Vec<DeletedItemScore>,
        message: String,
    },
    /// Posts refused because the course was locked, since the last lock.
    RejectedWhileLocked {
        locked_at: String,
        still_locked: bool,
        posts: Vec<RefusedPost>,
        message: String,
    },
    /// The tool's course-total percentage and the one computed from the
    /// per-assignment items differ by more than the threshold.
    CourseTotalMismatch {
        course_total_item: String,
        students: Vec<Mismatch>,
        message: String,
    },
    /// Learners whose grade, or whose comparison with a tool's course total,
    /// needs a number beyond what a decimal holds: the grade report shows
    /// them without points, percent or letter.
    GradesNotComputable {
        students: Vec<NotComputable>,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotComputable {
    pub user_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeletedItemScore {
    pub line_item_id: String,
    pub user_id: String,
    /// `kept` (a score kept before the item was deleted) or `refused_post`.
    pub what: &'static str,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusedPost {
    pub line_item_id: String,
    pub user_id: String,
    pub position: i64,
    pub received_at: String,
    pub actor: String,
    pub score_given: Option<String>,
    pub timestamp: String,
    /// Whether the same post has since been applied (a retry after unlock).
    pub applied_since: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub user_id: String,
    /// What the tool's course-total item says, in percent.
    pub tool_percent: String,
    /// What the per-assignment items give under the course's scheme.
    pub computed_percent: String,
    pub difference: String,
}

fn is_active_learner(view: &CourseView, user: &str) -> bool {
    view.enrollments
        .get(user)
        .is_some_and(|e| e.is_learner() && e.status == EnrollmentStatus::Active)
}

fn cell_facts(
    active_learner: bool,
    spec: &grading::ItemSpec,
    score: Option<&grading::CellScore>,
    row: Option<&ScoreRow>,
) -> CellFacts {
    CellFacts {
        has_posts: row.is_some_and(|r| r.posts > 0),
        active_learner,
        last_outcome: row.map(|r| r.last_outcome),
        // Points too large to compute are above any maximum worth checking.
        kept_over_maximum: score.as_ref().is_some_and(|s| {
            scale_points(s.score_given, s.score_maximum, spec.maximum)
                .is_none_or(|p| p > spec.maximum)
        }),
        state: Some(grading::item_state(spec, score)),
    }
}

/// Builds the report. `refusals` holds the course's lock, unlock and
/// refused-post events in log order; `threshold` is in percentage points.
pub fn reconcile(view: &CourseView, refusals: &[Envelope], threshold: Decimal) -> Reconciliation {
    let specs = item_specs(view);
    let mut summary: BTreeMap<&'static str, usize> =
        PRECEDENCE.iter().map(|s| (s.as_str(), 0)).collect();

    // Learners (any status), then anyone else with posts on a live item.
    let live: BTreeSet<&str> = specs.iter().map(|s| s.line_item_id.as_str()).collect();
    let mut people: BTreeSet<String> = view
        .enrollments
        .values()
        .filter(|e| e.is_learner())
        .map(|e| e.user_id.clone())
        .collect();
    people.extend(
        view.scores
            .iter()
            .filter(|((item, _), r)| live.contains(item.as_str()) && r.posts > 0)
            .map(|((_, user), _)| user.clone()),
    );

    let mut rows = Vec::new();
    let mut orphans = Vec::new();
    let mut not_computable = Vec::new();
    for user in &people {
        let enrollment = view.enrollments.get(user);
        let active = is_active_learner(view, user);
        let scores = cell_scores(view, user);
        // The learners the grade report has a row for.
        if enrollment.is_some_and(|e| e.is_learner() && e.status != EnrollmentStatus::Dropped) {
            if let Some(o) = grading::student_grade(&view.policy, &specs, &scores).not_computable {
                not_computable.push(NotComputable {
                    user_id: user.clone(),
                    reason: o.message(),
                });
            }
        }
        let mut cells = Vec::new();
        for spec in &specs {
            let row = view.scores.get(&(spec.line_item_id.clone(), user.clone()));
            let facts = cell_facts(active, spec, scores.get(&spec.line_item_id), row);
            // Someone who is not a learner only has cells they were posted for.
            if !enrollment.is_some_and(|e| e.is_learner()) && !facts.has_posts {
                continue;
            }
            let status = facts.status();
            *summary.entry(status.as_str()).or_default() += 1;
            let kept = row.and_then(|r| r.score());
            cells.push(Cell {
                line_item_id: spec.line_item_id.clone(),
                status: status.as_str(),
                also: facts
                    .all()
                    .into_iter()
                    .filter(|s| *s != status)
                    .map(CellStatus::as_str)
                    .collect(),
                score: kept.and_then(|p| {
                    scale_points(p.score_given?, p.score_maximum?, spec.maximum).map(fmt2)
                }),
                maximum: fmt2(spec.maximum),
                last_reason: row.and_then(|r| r.last_reason).map(RejectReason::code),
                posts: row.map_or(0, |r| r.posts),
            });
        }
        if cells
            .iter()
            .any(|c| c.status == CellStatus::Orphan.as_str())
        {
            orphans.push(user.clone());
        }
        rows.push(PersonRow {
            user_id: user.clone(),
            name: enrollment.and_then(|e| e.name.clone()),
            role: enrollment.map(|e| e.role.name().to_string()),
            enrollment_status: enrollment.map(|e| e.status.as_str()),
            cells,
        });
    }

    let mut findings = Vec::new();
    course_total_findings(view, threshold, &mut findings, &mut not_computable);
    weight_findings(view, &mut findings);
    deleted_item_findings(view, refusals, &mut findings);
    locked_findings(view, refusals, &mut findings);
    if !not_computable.is_empty() {
        not_computable.sort_by(|a, b| (&a.user_id, &a.reason).cmp(&(&b.user_id, &b.reason)));
        findings.push(Finding::GradesNotComputable {
            message: format!(
                "{} grade(s) or course-total comparison(s) need a number beyond the 28 digits a decimal holds and are shown without it; check the item maxima, weights and scores",
                not_computable.len()
            ),
            students: not_computable,
        });
    }

    Reconciliation {
        course_id: view.course_id.clone(),
        locked: view.locked,
        threshold: threshold.normalize().to_string(),
        summary,
        precedence: PRECEDENCE.iter().map(|s| s.as_str()).collect(),
        people: rows,
        orphans,
        findings,
    }
}

fn course_total_findings(
    view: &CourseView,
    threshold: Decimal,
    out: &mut Vec<Finding>,
    not_computable: &mut Vec<NotComputable>,
) {
    let specs = item_specs(view);
    let (totals, others): (Vec<_>, Vec<_>) = specs.iter().cloned().partition(|s| s.course_total);
    if totals.is_empty() || others.is_empty() {
        return;
    }
    out.push(Finding::CourseTotalBesideItems {
        course_total_items: totals.iter().map(|s| s.line_item_id.clone()).collect(),
        other_items: others.iter().map(|s| s.line_item_id.clone()).collect(),
        message: format!(
            "{} is a tool's whole-course grade, counted beside {} other item(s): the course grade mixes the tool's total with its parts",
            totals.iter().map(|s| s.line_item_id.as_str()).collect::<Vec<_>>().join(", "),
            others.len()
        ),
    });
    for total in &totals {
        let mut students = Vec::new();
        for e in view
            .enrollments
            .values()
            .filter(|e| e.is_learner() && e.status == EnrollmentStatus::Active)
        {
            let scores = cell_scores(view, &e.user_id);
            let Some(s) = scores.get(&total.line_item_id) else {
                continue;
            };
            let beyond = |what: &str| {
                NotComputable {
                user_id: e.user_id.clone(),
                reason: format!(
                    "{what} of course total {} is beyond the 28 digits a decimal holds; it is not compared",
                    total.line_item_id
                ),
            }
            };
            let tool = match scale_points(s.score_given, s.score_maximum, total.maximum)
                .map(|points| percent_of(points, total.maximum))
            {
                Some(Ok(Some(p))) => round_percent(p),
                Some(Ok(None)) => continue,
                None | Some(Err(_)) => {
                    not_computable.push(beyond("the tool's percent"));
                    continue;
                }
            };
            let grade = grading::student_grade(&view.policy, &others, &scores);
            let computed = match (grade.percent, grade.not_computable) {
                (Some(p), _) => p,
                (None, None) => continue,
                (None, Some(_)) => {
                    not_computable.push(beyond(
                        "the grade from the items other than the course total",
                    ));
                    continue;
                }
            };
            let Some(diff) = tool.checked_sub(computed).map(|d| d.abs()) else {
                not_computable.push(beyond("the difference from the computed grade"));
                continue;
            };
            if diff > threshold {
                students.push(Mismatch {
                    user_id: e.user_id.clone(),
                    tool_percent: fmt2(tool),
                    computed_percent: fmt2(computed),
                    difference: fmt2(diff),
                });
            }
        }
        if !students.is_empty() {
            out.push(Finding::CourseTotalMismatch {
                course_total_item: total.line_item_id.clone(),
                message: format!(
                    "{} student(s) have a course total from the tool more than {} points away from the grade computed from the other items",
                    students.len(),
                    threshold.normalize()
                ),
                students,
            });
        }
    }
}

fn weight_findings(view: &CourseView, out: &mut Vec<Finding>) {
    let Scheme::Weighted { categories } = &view.policy.scheme else {
        return;
    };
    let specs = item_specs(view);
    let sum = categories
        .iter()
        .map(|c| c.weight)
        .chain(specs.iter().filter_map(|s| s.weight))
        .try_fold(Decimal::ZERO, |sum, w| sum.checked_add(w));
    if sum != Some(Decimal::ONE_HUNDRED) {
        let sum = sum.map(|s| s.normalize().to_string());
        out.push(Finding::WeightsDoNotSumTo100 {
            message: format!(
                "category and item weights sum to {}, not 100; percents are renormalised over what is graded",
                sum.as_deref()
                    .unwrap_or("more than the 28 digits a decimal holds")
            ),
            sum,
        });
    }
    let homeless: Vec<String> = specs
        .iter()
        .filter(|s| {
            s.weight.is_none()
                && !s.course_total
                && !s
                    .category
                    .as_deref()
                    .is_some_and(|c| categories.iter().any(|k| k.name == c))
        })
        .map(|s| s.line_item_id.clone())
        .collect();
    if !homeless.is_empty() {
        out.push(Finding::ItemsWithoutCategory {
            message: format!(
                "{} item(s) have no known category and no weight of their own: their scores never move the percent",
                homeless.len()
            ),
            items: homeless,
        });
    }
}

fn deleted_item_findings(view: &CourseView, refusals: &[Envelope], out: &mut Vec<Finding>) {
    let mut found: BTreeMap<(String, String, &'static str), usize> = BTreeMap::new();
    for item in view.line_items.iter().filter(|i| i.deleted) {
        for ((li, user), row) in view
            .scores
            .range((item.line_item_id.clone(), String::new())..)
        {
            if *li != item.line_item_id {
                break;
            }
            if row.score().is_some() {
                *found.entry((li.clone(), user.clone(), "kept")).or_default() += 1;
            }
        }
    }
    for env in refusals {
        if let AnyEvent::Score(ScoreEvent::ScoreRejected {
            line_item_id,
            user_id,
            reason: RejectReason::LineItemDeleted,
            ..
        }) = &env.event
        {
            *found
                .entry((
                    line_item_id.to_string(),
                    user_id.to_string(),
                    "refused_post",
                ))
                .or_default() += 1;
        }
    }
    if found.is_empty() {
        return;
    }
    let scores: Vec<DeletedItemScore> = found
        .into_iter()
        .map(|((line_item_id, user_id, what), count)| DeletedItemScore {
            line_item_id,
            user_id,
            what,
            count,
        })
        .collect();
    out.push(Finding::ScoresOnDeletedItems {
        message: format!(
            "{} score(s) or post(s) concern deleted line items: they count in no grade",
            scores.iter().map(|s| s.count).sum::<usize>()
        ),
        scores,
    });
}

fn locked_findings(view: &CourseView, refusals: &[Envelope], out: &mut Vec<Finding>) {
    let Some(last_lock) = refusals
        .iter()
        .rposition(|e| matches!(e.event, AnyEvent::Course(CourseEvent::CourseLocked { .. })))
    else {
        return;
    };
    let posts: Vec<RefusedPost> = refusals[last_lock + 1..]
        .iter()
        .filter_map(|env| match &env.event {
            AnyEvent::Score(ScoreEvent::ScoreRejected {
                line_item_id,
                user_id,
                post,
                reason: RejectReason::CourseLocked,
                ..
            }) => Some(RefusedPost {
                line_item_id: line_item_id.to_string(),
                user_id: user_id.to_string(),
                position: env.at.position,
                received_at: rfc3339(env.meta.received_at),
                actor: env.meta.actor.clone(),
                score_given: post.score_given.map(|d| d.normalize().to_string()),
                timestamp: post.timestamp.to_rfc3339(),
                applied_since: view
                    .scores
                    .get(&(line_item_id.to_string(), user_id.to_string()))
                    .and_then(|r| r.kept.as_ref())
                    .is_some_and(|k| k == post),
            }),
            _ => None,
        })
        .collect();
    if posts.is_empty() {
        return;
    }
    let waiting = posts.iter().filter(|p| !p.applied_since).count();
    out.push(Finding::RejectedWhileLocked {
        locked_at: rfc3339(refusals[last_lock].meta.received_at),
        still_locked: view.locked,
        message: format!(
            "{} post(s) were refused while the course was locked; {} of them have not been applied since",
            posts.len(),
            waiting
        ),
        posts,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CellFacts {
        CellFacts {
            has_posts: true,
            active_learner: true,
            last_outcome: Some(LastOutcome::Accepted),
            kept_over_maximum: false,
            state: Some(ItemState::Counted),
        }
    }

    #[test]
    fn a_counted_score_with_nothing_else_is_in_sync() {
        assert_eq!(facts().status(), CellStatus::InSync);
        assert!(facts().all().is_empty());
    }

    #[test]
    fn an_orphan_wins_over_everything_else() {
        let f = CellFacts {
            active_learner: false,
            last_outcome: Some(LastOutcome::Rejected),
            kept_over_maximum: true,
            ..facts()
        };
        assert_eq!(f.status(), CellStatus::Orphan);
        assert_eq!(
            f.all(),
            vec![
                CellStatus::Orphan,
                CellStatus::Rejected,
                CellStatus::OverMaximum
            ]
        );
    }

    #[test]
    fn a_refused_latest_post_wins_over_a_stale_kept_or_missing_score() {
        let f = CellFacts {
            last_outcome: Some(LastOutcome::Rejected),
            state: Some(ItemState::Missing),
            ..facts()
        };
        assert_eq!(f.status(), CellStatus::Rejected);
        let f = CellFacts {
            last_outcome: Some(LastOutcome::Stale),
            kept_over_maximum: true,
            ..facts()
        };
        assert_eq!(f.status(), CellStatus::Stale);
    }

    #[test]
    fn over_maximum_wins_over_provisional_and_provisional_over_in_sync() {
        let f = CellFacts {
            kept_over_maximum: true,
            state: Some(ItemState::Provisional),
            ..facts()
        };
        assert_eq!(f.status(), CellStatus::OverMaximum);
        let f = CellFacts {
            state: Some(ItemState::PendingManual),
            ..facts()
        };
        assert_eq!(f.status(), CellStatus::Provisional);
    }

    #[test]
    fn a_learner_without_posts_is_missing_not_orphan() {
        let f = CellFacts {
            has_posts: false,
            active_learner: false,
            last_outcome: None,
            state: Some(ItemState::Missing),
            ..facts()
        };
        assert_eq!(f.status(), CellStatus::Missing);
    }

    #[test]
    fn finding_kinds_have_their_documented_names() {
        let kind = |f: Finding| serde_json::to_value(f).unwrap()["kind"].clone();
        assert_eq!(
            kind(Finding::WeightsDoNotSumTo100 {
                sum: Some("90".into()),
                message: String::new()
            }),
            "weights_do_not_sum_to_100"
        );
        assert_eq!(
            kind(Finding::CourseTotalBesideItems {
                course_total_items: vec![],
                other_items: vec![],
                message: String::new()
            }),
            "course_total_beside_items"
        );
        assert_eq!(
            kind(Finding::ItemsWithoutCategory {
                items: vec![],
                message: String::new()
            }),
            "items_without_category"
        );
        assert_eq!(
            kind(Finding::GradesNotComputable {
                students: vec![],
                message: String::new()
            }),
            "grades_not_computable"
        );
    }

    #[test]
    fn the_precedence_lists_every_status_once() {
        let set: BTreeSet<_> = PRECEDENCE.iter().collect();
        assert_eq!(set.len(), PRECEDENCE.len());
        assert_eq!(PRECEDENCE.last(), Some(&CellStatus::InSync));
    }
}
