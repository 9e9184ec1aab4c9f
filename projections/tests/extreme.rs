//! The whole grade module over logs no command would write today: weights,
//! maxima, scores and cut-offs of any decimal (Decimal::MAX and MIN, 10^-28,
//! zero maxima, huge weights), as a log written before the input bounds can
//! hold. Folding such a log and building the grade report, the
//! reconciliation and every student's provenance never panics, and a grade
//! either has all its numbers or none and a reason.

mod common;

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use common::{score_event, Outcome};
use gradebook_domain::course::CourseEvent;
use gradebook_domain::enrollment::{EnrollmentEvent, EnrollmentStatus, Person, Role};
use gradebook_domain::line_item::{LineItemEvent, LineItemSpec};
use gradebook_domain::policy::{Category, MissingPolicy, ScaleEntry, Scheme};
use gradebook_domain::score::{ActivityProgress, GradingProgress, RejectReason, ScorePost};
use gradebook_domain::{CommandMeta, CourseId, LineItemId, Source, UserId};
use gradebook_projections::projector::events::{AnyEvent, Checkpoint, Envelope};
use gradebook_projections::reports::grades::course_grades;
use gradebook_projections::reports::provenance::provenance;
use gradebook_projections::reports::reconciliation::{reconcile, Finding};
use gradebook_projections::tables::view::CourseView;
use proptest::prelude::*;
use rust_decimal::Decimal;

const COURSE: &str = "C-1";

/// Decimals at and beyond every edge the grade arithmetic has.
fn extreme() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::ZERO),
        Just(Decimal::new(1, 28)),
        Just(Decimal::new(-1, 28)),
        Just(Decimal::from(1_000_000_000i64)),
        Just(Decimal::from(1_000_000_000_000i64)),
        Just(Decimal::from_str("79228162514264337593543950.335").unwrap()),
        (0i64..=200).prop_map(Decimal::from),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            0u32..=28
        )
            .prop_map(|(lo, mid, hi, negative, scale)| Decimal::from_parts(
                lo, mid, hi, negative, scale
            )),
    ]
}

fn progress() -> impl Strategy<Value = (ActivityProgress, GradingProgress)> {
    (
        prop_oneof![
            Just(ActivityProgress::Submitted),
            Just(ActivityProgress::Completed),
        ],
        prop_oneof![
            4 => Just(GradingProgress::FullyGraded),
            1 => Just(GradingProgress::Pending),
            1 => Just(GradingProgress::PendingManual),
        ],
    )
}

#[derive(Debug, Clone)]
struct ItemPlan {
    maximum: Decimal,
    category: Option<usize>,
    weight: Option<Decimal>,
    course_total: bool,
    completion_only: bool,
    deleted: bool,
}

fn item_plan() -> impl Strategy<Value = ItemPlan> {
    (
        extreme(),
        prop::option::of(0usize..4),
        prop::option::weighted(0.3, extreme()),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(maximum, category, weight, course_total, completion_only, deleted)| ItemPlan {
                maximum,
                category,
                weight,
                course_total,
                completion_only,
                deleted,
            },
        )
}

#[derive(Debug, Clone)]
struct ScorePlan {
    item: usize,
    user: usize,
    given: Option<Decimal>,
    maximum: Option<Decimal>,
    progress: (ActivityProgress, GradingProgress),
    /// 0 accepted, 1 stale, 2 refused while locked.
    outcome: u8,
}

fn score_plan() -> impl Strategy<Value = ScorePlan> {
    (
        0usize..5,
        0usize..4,
        prop::option::weighted(0.9, extreme()),
        prop::option::weighted(0.9, extreme()),
        progress(),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(
            |(item, user, given, maximum, progress, outcome)| ScorePlan {
                item,
                user,
                given,
                maximum,
                progress,
                outcome,
            },
        )
}

#[derive(Debug, Clone)]
struct Plan {
    weighted: bool,
    weights: Vec<Decimal>,
    cut_offs: Vec<Decimal>,
    missing_zero: bool,
    items: Vec<ItemPlan>,
    /// Each person's status; the last one is an instructor.
    people: Vec<EnrollmentStatus>,
    scores: Vec<ScorePlan>,
    locked: bool,
}

fn plan() -> impl Strategy<Value = Plan> {
    let status = prop_oneof![
        4 => Just(EnrollmentStatus::Active),
        1 => Just(EnrollmentStatus::Inactive),
        1 => Just(EnrollmentStatus::Dropped),
    ];
    (
        any::<bool>(),
        prop::collection::vec(extreme(), 4),
        prop::collection::vec(extreme(), 0..4),
        any::<bool>(),
        prop::collection::vec(item_plan(), 1..5),
        prop::collection::vec(status, 1..4),
        prop::collection::vec(score_plan(), 0..12),
        any::<bool>(),
    )
        .prop_map(
            |(weighted, weights, cut_offs, missing_zero, items, people, scores, locked)| Plan {
                weighted,
                weights,
                cut_offs,
                missing_zero,
                items,
                people,
                scores,
                locked,
            },
        )
}

fn post(s: &ScorePlan, minute: usize) -> ScorePost {
    ScorePost {
        score_given: s.given,
        score_maximum: s.maximum,
        activity_progress: s.progress.0,
        grading_progress: s.progress.1,
        timestamp: DateTime::parse_from_rfc3339(&format!(
            "2026-10-01T{:02}:{:02}:00+02:00",
            10 + minute / 60,
            minute % 60
        ))
        .unwrap(),
        comment: None,
        score_given_as_sent: None,
        score_maximum_as_sent: None,
    }
}

/// The log the plan describes, as the store would hold it.
fn log(plan: &Plan) -> Vec<Envelope> {
    let course = CourseId::parse(COURSE).unwrap();
    let item_id = |i: usize| LineItemId::parse(format!("i{i}")).unwrap();
    let user_id = |u: usize| UserId::parse(format!("u{u}")).unwrap();
    let mut events: Vec<(String, AnyEvent)> = vec![
        (
            COURSE.into(),
            AnyEvent::Course(CourseEvent::CourseOpened {
                course_id: course.clone(),
                title: "Extremes".into(),
                term: "2026FA".into(),
                tool_ids: vec![],
            }),
        ),
        (
            COURSE.into(),
            AnyEvent::Course(CourseEvent::GradingSchemeSet {
                scheme: if plan.weighted {
                    Scheme::Weighted {
                        categories: plan
                            .weights
                            .iter()
                            .enumerate()
                            .map(|(n, w)| Category {
                                name: format!("c{n}"),
                                weight: *w,
                            })
                            .collect(),
                    }
                } else {
                    Scheme::Points
                },
                missing: if plan.missing_zero {
                    MissingPolicy::Zero
                } else {
                    MissingPolicy::Exclude
                },
            }),
        ),
        (
            COURSE.into(),
            AnyEvent::Course(CourseEvent::GradeScaleSet {
                scale: plan
                    .cut_offs
                    .iter()
                    .enumerate()
                    .map(|(n, min_percent)| ScaleEntry {
                        letter: format!("L{n}"),
                        min_percent: *min_percent,
                    })
                    .collect(),
            }),
        ),
    ];
    for (i, p) in plan.items.iter().enumerate() {
        let mut spec = LineItemSpec::new(format!("Item {i}"), p.maximum);
        spec.category = p.category.map(|c| format!("c{c}"));
        spec.weight = p.weight;
        spec.course_total = p.course_total;
        spec.completion_only = p.completion_only;
        events.push((
            format!("{COURSE}/i{i}"),
            AnyEvent::LineItem(LineItemEvent::LineItemCreated {
                course_id: course.clone(),
                line_item_id: item_id(i),
                spec,
            }),
        ));
    }
    let last = plan.people.len() - 1;
    for (u, status) in plan.people.iter().enumerate() {
        events.push((
            format!("{COURSE}/u{u}"),
            AnyEvent::Enrollment(EnrollmentEvent::Enrolled {
                course_id: course.clone(),
                user_id: user_id(u),
                person: Person {
                    role: if u == last && u > 0 {
                        Role::Instructor
                    } else {
                        Role::Learner
                    },
                    status: *status,
                    name: None,
                    email: None,
                },
            }),
        ));
    }
    if plan.locked {
        events.push((
            COURSE.into(),
            AnyEvent::Course(CourseEvent::CourseLocked { reason: None }),
        ));
    }
    for (n, s) in plan.scores.iter().enumerate() {
        // Posts for items the plan does not have land on no live item.
        let (course_id, line_item_id, user_id) = (course.clone(), item_id(s.item), user_id(s.user));
        let post = post(s, n);
        let outcome = match s.outcome {
            0 if post.score_given.is_some() => Outcome::Accepted,
            0 => Outcome::Cleared,
            1 => Outcome::Stale,
            _ => Outcome::Rejected(RejectReason::CourseLocked),
        };
        let e = score_event(outcome, course_id, line_item_id, user_id, post);
        events.push((
            format!("{COURSE}/i{}/u{}", s.item, s.user),
            AnyEvent::Score(e),
        ));
    }
    for (i, p) in plan.items.iter().enumerate() {
        if p.deleted {
            events.push((
                format!("{COURSE}/i{i}"),
                AnyEvent::LineItem(LineItemEvent::LineItemDeleted),
            ));
        }
    }
    events
        .into_iter()
        .enumerate()
        .map(|(n, (aggregate_id, event))| {
            let position = n as i64 + 1;
            Envelope {
                at: Checkpoint { tx: 0, position },
                aggregate_type: match &event {
                    AnyEvent::Course(_) => "course",
                    AnyEvent::LineItem(_) => "line_item",
                    AnyEvent::Enrollment(_) => "enrollment",
                    AnyEvent::Score(_) => "score",
                }
                .into(),
                aggregate_id,
                sequence: position,
                event_type: String::new(),
                meta: CommandMeta::new(
                    "test",
                    Source::System,
                    format!("r{position}"),
                    Utc.timestamp_opt(1_790_000_000 + position, 0).unwrap(),
                ),
                event,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_log_of_extreme_decimals_panics_a_report(plan in plan(), threshold in extreme()) {
        let events = log(&plan);
        let view = CourseView::fold(COURSE, &events, None).expect("the course is opened");

        let grades = course_grades(&view, None);
        for row in &grades.students {
            // All the numbers or none, and then a reason.
            match &row.not_computable {
                Some(reason) => {
                    prop_assert!(!reason.is_empty());
                    prop_assert_eq!(&row.points_earned, &None);
                    prop_assert_eq!(&row.points_possible, &None);
                    prop_assert_eq!(&row.percent, &None);
                    prop_assert_eq!(&row.letter, &None);
                }
                None => {
                    prop_assert!(row.points_earned.is_some() && row.points_possible.is_some());
                }
            }
        }
        serde_json::to_string(&grades).unwrap();

        let report = reconcile(&view, &events, threshold);
        let listed: Vec<&str> = report
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::GradesNotComputable { students, .. } => Some(students),
                _ => None,
            })
            .flatten()
            .map(|s| s.user_id.as_str())
            .collect();
        for row in grades.students.iter().filter(|r| r.not_computable.is_some()) {
            prop_assert!(listed.contains(&row.user_id.as_str()), "{} not in the finding", row.user_id);
        }
        serde_json::to_string(&report).unwrap();

        for u in 0..plan.people.len() + 1 {
            let p = provenance(&view, &events, &format!("u{u}"));
            if let Some(g) = &p.grade {
                prop_assert_eq!(g.not_computable.is_some(), g.points_earned.is_none());
            }
            serde_json::to_string(&p).unwrap();
        }
    }
}

/// The tester's course, as a log written before the bounds: two categories
/// of weight Decimal::MAX, a learner with counted scores in both.
#[test]
fn the_testers_weights_give_reports_not_panics() {
    let plan = Plan {
        weighted: true,
        weights: vec![Decimal::MAX, Decimal::MAX, Decimal::ZERO, Decimal::ZERO],
        cut_offs: vec![Decimal::from(90)],
        missing_zero: false,
        items: (0..2)
            .map(|c| ItemPlan {
                maximum: Decimal::from(100),
                category: Some(c),
                weight: None,
                course_total: false,
                completion_only: false,
                deleted: false,
            })
            .collect(),
        people: vec![EnrollmentStatus::Active],
        scores: (0..2)
            .map(|item| ScorePlan {
                item,
                user: 0,
                given: Some(Decimal::from(80 + item as i64)),
                maximum: Some(Decimal::from(100)),
                progress: (ActivityProgress::Completed, GradingProgress::FullyGraded),
                outcome: 0,
            })
            .collect(),
        locked: false,
    };
    let events = log(&plan);
    let view = CourseView::fold(COURSE, &events, None).unwrap();
    let report = reconcile(&view, &events, Decimal::ONE);
    let sum = report.findings.iter().find_map(|f| match f {
        Finding::WeightsDoNotSumTo100 { sum, message } => Some((sum.clone(), message.clone())),
        _ => None,
    });
    let (sum, message) = sum.expect("the weights finding");
    assert_eq!(sum, None, "a sum that does not fit is not made up");
    assert!(message.contains("more than"), "{message}");
    assert!(report
        .findings
        .iter()
        .any(|f| matches!(f, Finding::GradesNotComputable { students, .. } if students[0].user_id == "u0")));
    let grades = course_grades(&view, None);
    let row = &grades.students[0];
    assert_eq!(row.percent, None);
    assert!(row.not_computable.as_deref().unwrap().contains("percent"));
    // The item scores are still shown.
    assert_eq!(row.items[0].score.as_deref(), Some("80.00"));
}
