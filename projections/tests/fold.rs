//! Folding events into pending row changes does not depend on where the
//! batches break: applying generated event sequences one event per batch
//! (what each event writes by itself) and in batches of any sizes leaves
//! the same read tables. The live projector and a replay differ only in
//! their batch sizes, so this is what keeps them equal.

mod common;

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use common::{score_event, Outcome};
use gradebook_domain::course::{CourseEvent, ResourceLink};
use gradebook_domain::enrollment::{EnrollmentEvent, EnrollmentStatus, LaunchKind, Person, Role};
use gradebook_domain::ids::ResourceLinkId;
use gradebook_domain::line_item::{LineItemEvent, LineItemSpec};
use gradebook_domain::policy::{MissingPolicy, ScaleEntry, Scheme};
use gradebook_domain::score::{ActivityProgress, GradingProgress, RejectReason, ScorePost};
use gradebook_domain::{CommandMeta, CourseId, LineItemId, Source, ToolId, UserId};
use gradebook_projections::db::Db;
use gradebook_projections::projector::events::{AnyEvent, Checkpoint, Envelope};
use gradebook_projections::projector::grades::GradeKeeper;
use gradebook_projections::projector::{apply_batch, dump_read_tables};
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
enum Op {
    Open(u8),
    Grading(u8, bool),
    Scale(u8, u8),
    AllowTool(u8, u8),
    Link(u8, u8),
    Lock(u8, bool),
    CreateItem(u8, u8),
    UpdateItem(u8, u8, u8),
    DeleteItem(u8, u8),
    Enroll(u8, u8),
    UpdatePerson(u8, u8, u8),
    Status(u8, u8, u8),
    Launch(u8, u8),
    Account(u8, u8, u8, u8),
    Score(u8, u8, u8, u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..2;
    prop_oneof![
        1 => k.clone().prop_map(Op::Open),
        1 => (k.clone(), any::<bool>()).prop_map(|(c, z)| Op::Grading(c, z)),
        1 => (k.clone(), 0u8..3).prop_map(|(c, n)| Op::Scale(c, n)),
        1 => (k.clone(), 0u8..3).prop_map(|(c, t)| Op::AllowTool(c, t)),
        1 => (k.clone(), 0u8..3).prop_map(|(c, l)| Op::Link(c, l)),
        1 => (k.clone(), any::<bool>()).prop_map(|(c, l)| Op::Lock(c, l)),
        2 => (k.clone(), 0u8..3).prop_map(|(c, i)| Op::CreateItem(c, i)),
        1 => (k.clone(), 0u8..3, 0u8..4).prop_map(|(c, i, n)| Op::UpdateItem(c, i, n)),
        1 => (k.clone(), 0u8..3).prop_map(|(c, i)| Op::DeleteItem(c, i)),
        2 => (k.clone(), 0u8..3).prop_map(|(c, u)| Op::Enroll(c, u)),
        1 => (k.clone(), 0u8..3, 0u8..4).prop_map(|(c, u, n)| Op::UpdatePerson(c, u, n)),
        1 => (k.clone(), 0u8..3, 0u8..3).prop_map(|(c, u, s)| Op::Status(c, u, s)),
        2 => (k.clone(), 0u8..3).prop_map(|(c, u)| Op::Launch(c, u)),
        1 => (k.clone(), 0u8..3, 0u8..2, 0u8..3).prop_map(|(c, u, t, a)| Op::Account(c, u, t, a)),
        8 => (k, 0u8..3, 0u8..3, 0u8..5, 0u8..20).prop_map(|(c, i, u, kind, v)| Op::Score(c, i, u, kind, v)),
    ]
}

fn d(n: u32) -> Decimal {
    Decimal::from(n)
}

/// Turns operations into a valid log: an operation on something that does
/// not exist yet (or a second creation) is left out, as the domain would
/// refuse it.
fn events(ops: &[Op]) -> Vec<Envelope> {
    use std::collections::HashSet;
    let mut courses = HashSet::new();
    let mut items = HashSet::new();
    let mut people = HashSet::new();
    let mut links = HashSet::new();
    let mut sequences = std::collections::HashMap::<String, i64>::new();
    let mut out = Vec::new();
    let course = |c: u8| CourseId::parse(format!("C{c}")).unwrap();
    let tool = |t: u8| ToolId::parse(format!("t{t}")).unwrap();
    for op in ops {
        let (aggregate_id, event) = match *op {
            Op::Open(c) => {
                if !courses.insert(c) {
                    continue;
                }
                (
                    format!("C{c}"),
                    AnyEvent::Course(CourseEvent::CourseOpened {
                        course_id: course(c),
                        title: format!("Course {c}"),
                        term: "2026FA".into(),
                        tool_ids: vec![tool(0)],
                    }),
                )
            }
            Op::Grading(c, zero) if courses.contains(&c) => (
                format!("C{c}"),
                AnyEvent::Course(CourseEvent::GradingSchemeSet {
                    scheme: Scheme::Points,
                    missing: if zero {
                        MissingPolicy::Zero
                    } else {
                        MissingPolicy::Exclude
                    },
                }),
            ),
            Op::Scale(c, n) if courses.contains(&c) => (
                format!("C{c}"),
                AnyEvent::Course(CourseEvent::GradeScaleSet {
                    scale: vec![ScaleEntry {
                        letter: "A".into(),
                        min_percent: d(90 - u32::from(n)),
                    }],
                }),
            ),
            Op::AllowTool(c, t) if courses.contains(&c) => (
                format!("C{c}"),
                AnyEvent::Course(CourseEvent::ToolDeploymentsAllowed {
                    tool_ids: vec![tool(t)],
                }),
            ),
            Op::Link(c, l) if courses.contains(&c) => {
                if !links.insert((c, l)) {
                    continue;
                }
                (
                    format!("C{c}"),
                    AnyEvent::Course(CourseEvent::ResourceLinkAdded {
                        link: ResourceLink {
                            resource_link_id: ResourceLinkId::parse(format!("rl{l}")).unwrap(),
                            tool_id: tool(0),
                            title: format!("Link {l}"),
                            url: (l % 2 == 0).then(|| "https://tool.example/launch".to_string()),
                            custom: serde_json::Map::new(),
                            line_item_id: (l == 1).then(|| LineItemId::parse("i0").unwrap()),
                        },
                    }),
                )
            }
            Op::Lock(c, lock) if courses.contains(&c) => (
                format!("C{c}"),
                AnyEvent::Course(if lock {
                    CourseEvent::CourseLocked { reason: None }
                } else {
                    CourseEvent::CourseUnlocked { reason: None }
                }),
            ),
            Op::CreateItem(c, i) if courses.contains(&c) => {
                if !items.insert((c, i)) {
                    continue;
                }
                (
                    format!("C{c}/i{i}"),
                    AnyEvent::LineItem(LineItemEvent::LineItemCreated {
                        course_id: course(c),
                        line_item_id: LineItemId::parse(format!("i{i}")).unwrap(),
                        spec: LineItemSpec::new(format!("Item {i}"), d(10)),
                    }),
                )
            }
            Op::UpdateItem(c, i, n) if items.contains(&(c, i)) => {
                let mut spec = LineItemSpec::new(format!("Item {i} v{n}"), d(10 + u32::from(n)));
                spec.tag = (n % 2 == 1).then(|| "grade".to_string());
                (
                    format!("C{c}/i{i}"),
                    AnyEvent::LineItem(LineItemEvent::LineItemUpdated { spec }),
                )
            }
            Op::DeleteItem(c, i) if items.contains(&(c, i)) => (
                format!("C{c}/i{i}"),
                AnyEvent::LineItem(LineItemEvent::LineItemDeleted),
            ),
            Op::Enroll(c, u) if courses.contains(&c) => {
                if !people.insert((c, u)) {
                    continue;
                }
                (
                    format!("C{c}/u{u}"),
                    AnyEvent::Enrollment(EnrollmentEvent::Enrolled {
                        course_id: course(c),
                        user_id: UserId::parse(format!("u{u}")).unwrap(),
                        person: Person {
                            role: Role::Learner,
                            status: EnrollmentStatus::Active,
                            name: Some(format!("U {u}")),
                            email: None,
                        },
                    }),
                )
            }
            Op::UpdatePerson(c, u, n) if people.contains(&(c, u)) => (
                format!("C{c}/u{u}"),
                AnyEvent::Enrollment(EnrollmentEvent::EnrollmentUpdated {
                    person: Person {
                        role: if n == 3 {
                            Role::Instructor
                        } else {
                            Role::Learner
                        },
                        status: EnrollmentStatus::Active,
                        name: (n != 0).then(|| format!("U {u} v{n}")),
                        email: (n == 2).then(|| format!("u{u}@example.edu")),
                    },
                }),
            ),
            Op::Status(c, u, s) if people.contains(&(c, u)) => (
                format!("C{c}/u{u}"),
                AnyEvent::Enrollment(EnrollmentEvent::EnrollmentStatusChanged {
                    from: EnrollmentStatus::Active,
                    to: [
                        EnrollmentStatus::Active,
                        EnrollmentStatus::Inactive,
                        EnrollmentStatus::Dropped,
                    ][usize::from(s)],
                }),
            ),
            Op::Launch(c, u) if people.contains(&(c, u)) => (
                format!("C{c}/u{u}"),
                AnyEvent::Enrollment(EnrollmentEvent::LaunchRecorded {
                    tool_id: tool(0),
                    kind: LaunchKind::ResourceLink,
                    resource_link_id: None,
                    at: Utc
                        .timestamp_opt(1_790_000_000 + out.len() as i64, 0)
                        .unwrap(),
                    first: false,
                }),
            ),
            Op::Account(c, u, t, a) if people.contains(&(c, u)) => (
                format!("C{c}/u{u}"),
                AnyEvent::Enrollment(EnrollmentEvent::ToolAccountLinked {
                    tool_id: tool(t),
                    account: format!("acct{a}"),
                }),
            ),
            Op::Score(c, i, u, kind, v) if courses.contains(&c) => {
                let post = ScorePost {
                    score_given: (kind != 1).then(|| d(u32::from(v))),
                    score_maximum: Some(d(20)),
                    activity_progress: ActivityProgress::Completed,
                    grading_progress: if v % 3 == 0 {
                        GradingProgress::Pending
                    } else {
                        GradingProgress::FullyGraded
                    },
                    timestamp: DateTime::parse_from_rfc3339(&format!(
                        "2026-10-01T10:{:02}:00+02:00",
                        v
                    ))
                    .unwrap(),
                    comment: (v % 4 == 0).then(|| format!("comment {v}")),
                    score_given_as_sent: None,
                    score_maximum_as_sent: None,
                };
                let (course_id, line_item_id, user_id) = (
                    course(c),
                    LineItemId::parse(format!("i{i}")).unwrap(),
                    UserId::parse(format!("u{u}")).unwrap(),
                );
                let outcome = match kind {
                    0 | 4 => Outcome::Accepted,
                    1 => Outcome::Cleared,
                    2 => Outcome::Stale,
                    _ => Outcome::Rejected(
                        [
                            RejectReason::CourseLocked,
                            RejectReason::UserNotEnrolled,
                            RejectReason::LineItemDeleted,
                        ][usize::from(v % 3)],
                    ),
                };
                let e = score_event(outcome, course_id, line_item_id, user_id, post);
                (format!("C{c}/i{i}/u{u}"), AnyEvent::Score(e))
            }
            _ => continue,
        };
        let aggregate_type = match &event {
            AnyEvent::Course(_) => "course",
            AnyEvent::LineItem(_) => "line_item",
            AnyEvent::Enrollment(_) => "enrollment",
            AnyEvent::Score(_) => "score",
        };
        let sequence = sequences.entry(aggregate_id.clone()).or_default();
        *sequence += 1;
        let position = out.len() as i64 + 1;
        out.push(Envelope {
            at: Checkpoint { tx: 0, position },
            aggregate_type: aggregate_type.into(),
            aggregate_id,
            sequence: *sequence,
            event_type: String::new(),
            meta: CommandMeta::new(
                "test",
                Source::System,
                "r",
                Utc.timestamp_opt(1_780_000_000 + position * 61, 0).unwrap(),
            ),
            event,
        });
    }
    out
}

async fn fresh() -> Db {
    // One connection: each in-memory SQLite connection is its own database.
    let db = Db::connect("sqlite::memory:", 1).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// Applies `events` in batches of the given sizes (cycled).
async fn apply_in(db: &Db, events: &[Envelope], sizes: &[usize]) {
    let mut from = Checkpoint::default();
    let mut rest = events;
    let mut k = 0;
    let mut keeper = GradeKeeper::default();
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        k += 1;
        // Every third batch starts from graders loaded from the tables, as
        // after a restart; the others from the graders kept in memory.
        if k % 3 == 0 {
            keeper = GradeKeeper::default();
        }
        from = apply_batch(db, from, &rest[..n], &mut keeper)
            .await
            .unwrap();
        rest = &rest[n..];
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_batching_writes_what_one_event_at_a_time_writes(
        ops in proptest::collection::vec(op(), 1..80),
        sizes in proptest::collection::vec(1usize..40, 1..6),
    ) {
        let log = events(&ops);
        prop_assume!(!log.is_empty());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (one, batched, whole) = rt.block_on(async {
            let (a, b, c) = (fresh().await, fresh().await, fresh().await);
            apply_in(&a, &log, &[1]).await;
            apply_in(&b, &log, &sizes).await;
            apply_in(&c, &log, &[usize::MAX]).await;
            (
                dump_read_tables(&a).await.unwrap(),
                dump_read_tables(&b).await.unwrap(),
                dump_read_tables(&c).await.unwrap(),
            )
        });
        prop_assert_eq!(&one, &batched);
        prop_assert_eq!(&one, &whole);
    }
}

/// Many posts to the same few cells in one batch still count each post and
/// keep the latest applied one.
#[tokio::test]
async fn a_batch_with_many_posts_per_cell_counts_each_post() {
    let mut ops = vec![Op::Open(0)];
    for k in 0..200u8 {
        ops.push(Op::Score(0, k % 2, 0, k % 5, k % 20));
    }
    let log = events(&ops);
    let (one, whole) = (fresh().await, fresh().await);
    apply_in(&one, &log, &[1]).await;
    apply_in(&whole, &log, &[usize::MAX]).await;
    let (a, b) = (
        dump_read_tables(&one).await.unwrap(),
        dump_read_tables(&whole).await.unwrap(),
    );
    assert_eq!(a, b);
    let posts: i64 = a["rm_scores"]
        .iter()
        .map(|r| {
            i64::from_str(r.split("posts=").nth(1).unwrap().split('|').next().unwrap()).unwrap()
        })
        .sum();
    assert_eq!(posts, 200);
}
