//! Kept course grades and their history against the log they come from,
//! on generated course histories: policy changes, maxima changed, items
//! added and deleted, learners enrolled and dropped, backfill, locks, and
//! score posts in and out of order. At every moment tried, the course as
//! the history tables give it equals the fold of its whole log; the kept
//! grades equal the grades computed from the cells; and the grade-changes
//! report between any two moments names exactly the learners whose grade
//! differs between the two folds.

mod common;

use chrono::{DateTime, Utc};
use common::fixtures::*;
use common::meta;
use gradebook::domain::line_item::{LineItemPatch, LineItemSpec};
use gradebook::domain::policy::{Category, MissingPolicy, ScaleEntry, Scheme};
use gradebook::domain::score::GradingProgress;
use gradebook::domain::{CourseId, Source};
use gradebook::projections::reports::grades::course_grades;
use gradebook::projections::tables::kept::{self, ChangeScope, GradeValue};
use gradebook::projections::tables::queries::{self, People};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

const USERS: usize = 4;
const ITEMS: usize = 4;

#[derive(Debug, Clone)]
enum Step {
    Post {
        user: usize,
        item: usize,
        given: Option<u8>,
        /// Minutes into the tool's day: a smaller one than the cell's last
        /// post is out of order, recorded stale.
        minute: u8,
        graded: bool,
    },
    Scheme(u8),
    Maximum {
        item: usize,
        max: u8,
    },
    Delete(usize),
    Add,
    Enroll(usize),
    Drop(usize),
    Backfill(Vec<(usize, usize, u8, u8)>),
    Lock,
    Unlock,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..USERS, 0..ITEMS, proptest::option::weighted(0.85, 0u8..=12), 0u8..60, proptest::bool::weighted(0.8))
            .prop_map(|(user, item, given, minute, graded)| Step::Post { user, item, given, minute, graded }),
        1 => (0u8..3).prop_map(Step::Scheme),
        1 => (0..ITEMS, 5u8..=20).prop_map(|(item, max)| Step::Maximum { item, max }),
        1 => (0..ITEMS).prop_map(Step::Delete),
        1 => Just(Step::Add),
        1 => (0..USERS).prop_map(Step::Enroll),
        1 => (0..USERS).prop_map(Step::Drop),
        1 => proptest::collection::vec((0..USERS, 0..ITEMS, 0u8..=10, 0u8..60), 1..6).prop_map(Step::Backfill),
        1 => Just(Step::Lock),
        1 => Just(Step::Unlock),
    ]
}

fn scheme(k: u8) -> Scheme {
    match k {
        0 => Scheme::Points,
        1 => Scheme::Weighted {
            categories: vec![
                Category {
                    name: "Exams".into(),
                    weight: d("60"),
                },
                Category {
                    name: "Homework".into(),
                    weight: d("40"),
                },
            ],
        },
        _ => Scheme::Points,
    }
}

fn scale() -> Vec<ScaleEntry> {
    [("A", "90"), ("B", "80"), ("C", "70"), ("F", "0")]
        .into_iter()
        .map(|(l, m)| ScaleEntry {
            letter: l.into(),
            min_percent: d(m),
        })
        .collect()
}

fn item_id(i: usize) -> String {
    format!("item{i}")
}

/// Opens a course with two learners and three items, then runs `steps`;
/// returns the moments between steps (before the first and after the last
/// included).
async fn run(app: &common::TestApp, c: &CourseId, steps: &[Step]) -> Vec<DateTime<Utc>> {
    let e = app.engine();
    let m = || meta(Source::Sis);
    open_course(app, c, "Generated", &[]).await;
    e.set_grading(c, scheme(1), Some(scale()), MissingPolicy::Exclude, &m())
        .await
        .unwrap();
    let mut items = 0;
    for i in 0..3 {
        let mut spec = LineItemSpec::new(format!("Item {i}"), d("10"));
        spec.category = Some(if i == 0 { "Exams" } else { "Homework" }.into());
        e.create_line_item(c, Some(item(&item_id(i))), spec, &m())
            .await
            .unwrap();
        items += 1;
    }
    for u in 0..2 {
        enroll(app, c, &format!("u{u}"), learner(&format!("Learner {u}"))).await;
    }
    let mut moments = vec![Utc::now()];
    for s in steps {
        // Refusals (a locked course, a deleted item, an unknown learner)
        // are part of the history too; their outcome is not the point here.
        match s {
            Step::Post {
                user: u,
                item: i,
                given,
                minute,
                graded,
            } => {
                let given = given.map(|g| g.to_string());
                let mut post = post(
                    given.as_deref(),
                    "10",
                    &format!("2026-10-01T10:{minute:02}:00Z"),
                );
                if !graded {
                    post.grading_progress = GradingProgress::Pending;
                }
                let _ = e
                    .post_score(
                        c,
                        &item(&item_id(*i)),
                        &user(&format!("u{u}")),
                        post,
                        &meta(Source::Ags),
                    )
                    .await;
            }
            Step::Scheme(k) => {
                let missing = if *k == 2 {
                    MissingPolicy::Zero
                } else {
                    MissingPolicy::Exclude
                };
                e.set_grading(c, scheme(*k), Some(scale()), missing, &m())
                    .await
                    .unwrap();
            }
            Step::Maximum { item: i, max } => {
                let patch = LineItemPatch {
                    score_maximum: Some(d(&max.to_string())),
                    ..Default::default()
                };
                let _ = e
                    .update_line_item(c, &item(&item_id(*i)), patch, &m())
                    .await;
            }
            Step::Delete(i) => {
                let _ = e.delete_line_item(c, &item(&item_id(*i)), &m()).await;
            }
            Step::Add => {
                if items < ITEMS {
                    let mut spec = LineItemSpec::new(format!("Item {items}"), d("10"));
                    spec.category = Some("Homework".into());
                    e.create_line_item(c, Some(item(&item_id(items))), spec, &m())
                        .await
                        .unwrap();
                    items += 1;
                }
            }
            Step::Enroll(u) => {
                enroll(app, c, &format!("u{u}"), learner(&format!("Learner {u}"))).await;
            }
            Step::Drop(u) => {
                let _ = e.drop_enrollment(c, &user(&format!("u{u}")), &m()).await;
            }
            Step::Backfill(rows) => {
                let mut text = String::from(
                    "line_item_id,user_id,score_given,score_maximum,timestamp,comment\n",
                );
                for (u, i, g, minute) in rows {
                    text.push_str(&format!(
                        "{},u{u},{g},10,2026-09-01T09:{minute:02}:00Z,\n",
                        item_id(*i)
                    ));
                }
                let batch = gradebook::backfill::Batch::new(c.clone(), "test", "r");
                let mut rows = gradebook::backfill::CsvRows::new(text.as_bytes()).unwrap();
                let _ = gradebook::backfill::run(e, &batch, &mut rows, &mut |_| {}).await;
            }
            Step::Lock => {
                let _ = e.lock_course(c, None, &m()).await;
            }
            Step::Unlock => {
                let _ = e.unlock_course(c, Some("correction".into()), &m()).await;
            }
        }
        moments.push(Utc::now());
    }
    moments
}

/// Each learner in the grade report with the grade a registrar reads.
fn shown(
    view: &Option<gradebook::projections::tables::view::CourseView>,
) -> std::collections::BTreeMap<String, GradeValue> {
    let Some(view) = view else {
        return Default::default();
    };
    course_grades(view, None)
        .students
        .into_iter()
        .map(|s| {
            (
                s.user_id,
                GradeValue {
                    percent: s.percent,
                    letter: s.letter,
                    status: serde_json::to_value(s.status)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                },
            )
        })
        .collect()
}

async fn check(app: &common::TestApp, c: &CourseId, steps: &[Step]) {
    let moments = run(app, c, steps).await;
    let db = &app.db;
    let course = c.as_str();

    // The kept rows are the grades computed from the cells.
    let live = queries::load_report_view(db, course, People::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept::course_grades(db, course).await.unwrap().unwrap(),
        course_grades(&live, None),
        "kept grades after {steps:#?}"
    );

    // As of every moment between steps, and a microsecond either side of
    // each, the history gives the fold of the log.
    let mut folds = Vec::new();
    for t in &moments {
        for t in [*t - chrono::Duration::microseconds(1), *t] {
            let folded = queries::course_view_folded(db, course, t).await.unwrap();
            let from_history = kept::course_view_as_of(db, course, t).await.unwrap();
            assert_eq!(from_history, folded, "as of {t} after {steps:#?}");
        }
        folds.push(shown(
            &queries::course_view_folded(db, course, *t).await.unwrap(),
        ));
    }

    // Between any two moments, the learners whose grade differs.
    for i in 0..moments.len() {
        for j in (i..moments.len()).step_by(3) {
            let changes =
                kept::grade_changes(db, ChangeScope::Course(course), moments[i], moments[j])
                    .await
                    .unwrap();
            let (then, now) = (&folds[i], &folds[j]);
            let mut expected: Vec<(String, Option<GradeValue>, Option<GradeValue>)> = then
                .keys()
                .chain(now.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|u| then.get(*u) != now.get(*u))
                .map(|u| (u.clone(), then.get(u).cloned(), now.get(u).cloned()))
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            let got: Vec<_> = changes
                .into_iter()
                .map(|ch| {
                    assert!(!ch.events.is_empty());
                    (ch.user_id, ch.then, ch.now)
                })
                .collect();
            assert_eq!(
                got, expected,
                "changes from moment {i} to {j} after {steps:#?}"
            );
        }
    }
}

on_both_stores! {
    async fn as_of_from_the_history_tables_equals_the_fold_of_the_log(app: TestApp) {
        // The same histories every run, so a failure can be run again.
        let mut runner = TestRunner::deterministic();
        let strategy = proptest::collection::vec(step(), 10..30);
        // A handful of generated histories per store keeps the run short;
        // each is checked at some 60 moments.
        for case in 0..6 {
            let steps = strategy.new_tree(&mut runner).unwrap().current();
            let c = CourseId::parse(format!("GEN-{case}")).unwrap();
            check(&app, &c, &steps).await;
        }
        // The histories did exercise what they are meant to.
        let tables = app.tables().await;
        for outcome in ["outcome=kept", "outcome=stale", "outcome=rejected"] {
            assert!(tables["rm_cell_history"].iter().any(|r| r.contains(outcome)), "no cell history row with {outcome}");
        }
        for kind in ["ScoreAccepted", "GradingSchemeSet", "LineItemUpdated", "LineItemDeleted", "EnrollmentStatusChanged", "Enrolled"] {
            assert!(
                tables["rm_grade_history"].iter().any(|r| r.contains(&format!("event_type={kind}|"))),
                "no grade history row made by {kind}"
            );
        }
        app.stop().await;
    }
}

/// Runs one statement on either store.
async fn exec(db: &gradebook::projections::db::Db, sql: &str) {
    match db {
        gradebook::projections::db::Db::Postgres(pool) => {
            sqlx::raw_sql(sql).execute(pool).await.unwrap();
        }
        gradebook::projections::db::Db::Sqlite(pool) => {
            sqlx::raw_sql(sql).execute(pool).await.unwrap();
        }
    }
}

async fn count(db: &gradebook::projections::db::Db, sql: &str) -> i64 {
    match db {
        gradebook::projections::db::Db::Postgres(pool) => {
            sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
        }
        gradebook::projections::db::Db::Sqlite(pool) => {
            sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
        }
    }
}

on_both_stores! {
    async fn a_policy_change_whose_kept_rows_never_committed_is_applied_after_a_restart(app: TestApp) {
        // A 40 × 20 course with every cell scored, loaded by backfill.
        let c = CourseId::parse("BIG-101").unwrap();
        let e = app.engine();
        open_course(&app, &c, "Big", &[]).await;
        e.set_grading(&c, scheme(1), Some(scale()), MissingPolicy::Exclude, &meta(Source::Sis)).await.unwrap();
        for i in 0..20 {
            let mut spec = LineItemSpec::new(format!("Item {i}"), d(&(10 + i).to_string()));
            spec.category = Some(if i % 4 == 0 { "Exams" } else { "Homework" }.into());
            e.create_line_item(&c, Some(item(&item_id(i))), spec, &meta(Source::Sis)).await.unwrap();
        }
        let mut text = String::from("line_item_id,user_id,score_given,score_maximum,timestamp,comment\n");
        for u in 0..40 {
            enroll(&app, &c, &format!("u{u:02}"), learner(&format!("Learner {u}"))).await;
            for i in 0..20 {
                text.push_str(&format!("{},u{u:02},{},10,2026-09-01T09:00:00Z,\n", item_id(i), (u * 7 + i * 3) % 11));
            }
        }
        let batch = gradebook::backfill::Batch::new(c.clone(), "test", "r");
        let mut rows = gradebook::backfill::CsvRows::new(text.as_bytes()).unwrap();
        let report = gradebook::backfill::run(e, &batch, &mut rows, &mut |_| {}).await.unwrap();
        assert_eq!(report.accepted, 800);
        let kept_before = kept::course_grades(&app.db, "BIG-101").await.unwrap().unwrap();
        assert_eq!(kept_before.students.len(), 40);
        let history_before = count(&app.db, "SELECT COUNT(*) FROM rm_grade_history WHERE course_id = 'BIG-101'").await;

        // The projector's transaction fails once it writes grade history:
        // the policy change is in the log, its projection is not.
        exec(&app.db, match &app.db {
            gradebook::projections::db::Db::Postgres(_) => "CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'crash'; END $$;
                 CREATE TRIGGER crash BEFORE INSERT ON rm_grade_history FOR EACH STATEMENT EXECUTE FUNCTION crash();",
            gradebook::projections::db::Db::Sqlite(_) => "CREATE TRIGGER crash BEFORE INSERT ON rm_grade_history BEGIN SELECT RAISE(ABORT, 'crash'); END;",
        }).await;
        // It answers once it gives up waiting for its projection.
        let _ = e.set_grading(&c, Scheme::Points, Some(scale()), MissingPolicy::Exclude, &meta(Source::Registrar)).await;
        let logged = "SELECT COUNT(*) FROM events WHERE course_id = 'BIG-101' AND event_type = 'GradingSchemeSet'";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while count(&app.db, logged).await < 2 {
            assert!(std::time::Instant::now() < deadline, "the policy change was never logged");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Whatever the projector tried, nothing of the batch is in the tables.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(kept::course_grades(&app.db, "BIG-101").await.unwrap().unwrap(), kept_before);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM rm_grade_history WHERE course_id = 'BIG-101'").await, history_before);

        // The node goes down; the trigger goes away; a new node starts on
        // the same store and its projector resumes from the checkpoint.
        let mut app = app;
        let dir = app._dir.take();
        let db = app.db.clone();
        app.stop().await;
        exec(&db, if db.is_postgres() { "DROP TRIGGER crash ON rm_grade_history" } else { "DROP TRIGGER crash" }).await;
        if db.is_postgres() {
            exec(&db, "DROP FUNCTION crash()").await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = common::TestApp::start_on(db, listener, dir).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let g = kept::course_grades(&app.db, "BIG-101").await.unwrap().unwrap();
            if g.scheme == "points" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the policy change was never projected");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Every learner's kept row is the grade computed under the new
        // policy, and each learner whose grade moved has its history row.
        let live = queries::load_report_view(&app.db, "BIG-101", People::All).await.unwrap().unwrap();
        let after = course_grades(&live, None);
        assert_eq!(kept::course_grades(&app.db, "BIG-101").await.unwrap().unwrap(), after);
        let moved = kept_before
            .students
            .iter()
            .zip(&after.students)
            .filter(|(a, b)| (&a.percent, &a.letter) != (&b.percent, &b.letter))
            .count() as i64;
        assert!(moved > 20, "the new policy moved only {moved} of 40 grades");
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM rm_grade_history WHERE course_id = 'BIG-101' AND event_type = 'GradingSchemeSet'").await,
            moved,
            "one history row per grade the policy change moved (the first policy came before any learner)"
        );
        app.stop().await;
    }
}

fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace('+', "%2B")
}

on_both_stores! {
    async fn grade_changes_name_each_learner_whose_grade_moved_after_a_moment(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("90"), "100", "2026-10-01T10:00:00Z").await;
        score(&app, "alan", "midterm", Some("70"), "100", "2026-10-01T10:00:00Z").await;
        let other = CourseId::parse("MATH-201-2026FA").unwrap();
        open_course(&app, &other, "Calculus", &[]).await;
        app.engine()
            .create_line_item(&other, Some(item("quiz")), LineItemSpec::new("Quiz", d("10")), &meta(Source::Sis))
            .await
            .unwrap();
        enroll(&app, &other, "ada", learner("Ada Lovelace")).await;
        app.engine()
            .post_score(&other, &item("quiz"), &user("ada"), post(Some("5"), "10", "2026-10-01T10:00:00Z"), &meta(Source::Ags))
            .await
            .unwrap();
        // Transcripts were issued here.
        let issued = Utc::now();
        score(&app, "ada", "midterm", Some("80"), "100", "2026-10-02T10:00:00Z").await;
        // Alan's grade moves and comes back: no net change, not listed.
        score(&app, "alan", "midterm", Some("95"), "100", "2026-10-02T10:00:00Z").await;
        score(&app, "alan", "midterm", Some("70"), "100", "2026-10-03T10:00:00Z").await;
        app.engine()
            .post_score(&other, &item("quiz"), &user("ada"), post(Some("9"), "10", "2026-10-02T10:00:00Z"), &meta(Source::Ags))
            .await
            .unwrap();

        let (status, body) = app.get_json(&format!("/api/courses/HIST-101-2026FA/grade-changes?since={}", q(issued))).await;
        assert_eq!(status, 200, "{body}");
        let changes = body["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{body}");
        let ada = &changes[0];
        assert_eq!(ada["user_id"], "ada");
        assert_eq!(ada["name"], "Ada Lovelace");
        assert_eq!(ada["then"]["percent"], "90.00");
        assert_eq!(ada["then"]["letter"], "B");
        assert_eq!(ada["now"]["percent"], "80.00");
        assert_eq!(ada["now"]["letter"], "C");
        assert_eq!(ada["events"].as_array().unwrap().len(), 1);
        assert_eq!(ada["events"][0]["event_type"], "ScoreAccepted");
        assert_eq!(ada["events"][0]["before"]["percent"], "90.00");
        assert_eq!(ada["provenance"], "/api/courses/HIST-101-2026FA/students/ada/provenance");
        let (status, _) = app.get_json(ada["provenance"].as_str().unwrap()).await;
        assert_eq!(status, 200);

        // The same for the whole term: both courses.
        let (status, body) = app.get_json(&format!("/api/grade-changes?term=2026FA&since={}", q(issued))).await;
        assert_eq!(status, 200, "{body}");
        let listed: Vec<(&str, &str)> = body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["course_id"].as_str().unwrap(), c["user_id"].as_str().unwrap()))
            .collect();
        assert_eq!(listed, [("HIST-101-2026FA", "ada"), ("MATH-201-2026FA", "ada")]);
        assert_eq!(body["changes"][1]["then"]["percent"], "50.00");
        assert_eq!(body["changes"][1]["now"]["percent"], "90.00");
        // Another term has none; `until` before the changes has none.
        let (_, body) = app.get_json(&format!("/api/grade-changes?term=2027SP&since={}", q(issued))).await;
        assert_eq!(body["changes"], serde_json::json!([]));
        let (_, body) = app.get_json(&format!("/api/grade-changes?term=2026FA&since=2026-01-01&until={}", q(issued))).await;
        assert_eq!(body["changes"].as_array().unwrap().len(), 3, "{body}");

        // A date alone is the end of that day (UTC).
        let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grade-changes?since=2999-12-31").await;
        assert_eq!(status, 400, "since after until (now): {body}");
        common::assert_error_shape(status, &body, 400, "invalid_window", &[]);
        let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grade-changes?since=2020-01-01").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["since"], "2020-01-01T23:59:59.999999Z");
        let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grades?as_of=2020-01-01").await;
        common::assert_error_shape(status, &body, 404, "course_not_found", &[]);
        let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grades?as_of=2999-01-01").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["as_of"], "2999-01-01T23:59:59.999999Z");
        assert_eq!(student(&body, "ada")["percent"], "80.00");

        for (path, code) in [
            ("/api/courses/HIST-101-2026FA/grade-changes", "missing_since"),
            ("/api/courses/HIST-101-2026FA/grade-changes?since=yesterday", "invalid_since"),
            ("/api/courses/HIST-101-2026FA/grade-changes?since=2026-10-01&until=soon", "invalid_until"),
            ("/api/courses/HIST-101-2026FA/grade-changes?since=2026-10-02&until=2026-10-01", "invalid_window"),
            ("/api/courses/HIST-101-2026FA/grade-changes?since=2026-10-01&term=x", "invalid_query"),
            ("/api/grade-changes?since=2026-10-01", "missing_term"),
            ("/api/grade-changes?term=2026FA", "missing_since"),
        ] {
            let (status, body) = app.get_json(path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["error"], code, "{path}: {body}");
            common::assert_error_shape(status, &body, 400, code, &[]);
        }
        let (status, body) = app.get_json("/api/courses/NOPE-1/grade-changes?since=2026-10-01").await;
        common::assert_error_shape(status, &body, 404, "course_not_found", &[]);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_students_grades_list_every_course_with_its_kept_grade_and_lock(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("90"), "100", "2026-10-01T10:00:00Z").await;
        let other = CourseId::parse("MATH-201-2026FA").unwrap();
        open_course(&app, &other, "Calculus", &[]).await;
        enroll(&app, &other, "ada", learner("Ada Lovelace")).await;
        app.engine().lock_course(&other, Some("term over".into()), &meta(Source::Registrar)).await.unwrap();

        let (status, body) = app.get_json("/api/students/ada/grades").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user_id"], "ada");
        let courses = body["courses"].as_array().unwrap();
        assert_eq!(courses.len(), 2);
        assert_eq!(courses[0]["course_id"], "HIST-101-2026FA");
        assert_eq!(courses[0]["locked"], false);
        assert_eq!(courses[0]["grade"]["percent"], "90.00");
        assert_eq!(courses[0]["grade"]["letter"], "B");
        // The row is the grade report's own row for the learner.
        let (_, report) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(courses[0]["grade"], *student(&report, "ada"));
        assert_eq!(courses[1]["course_id"], "MATH-201-2026FA");
        assert_eq!(courses[1]["locked"], true);
        assert_eq!(courses[1]["grade"]["percent"], serde_json::Value::Null);

        // The instructor has courses but no grade row.
        let (status, body) = app.get_json("/api/students/grace/grades").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["courses"][0]["role"], "Instructor");
        assert_eq!(body["courses"][0]["grade"], serde_json::Value::Null);

        let (status, body) = app.get_json("/api/students/nobody/grades").await;
        common::assert_error_shape(status, &body, 404, "student_not_found", &[]);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_node_rebuilds_an_emptied_read_model_before_it_serves(app: TestApp) {
        // What migration 0011 does to a store written before it: every read
        // table and the checkpoint emptied, the log kept.
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("90"), "100", "2026-10-01T10:00:00Z").await;
        score(&app, "alan", "hw1", Some("7"), "10", "2026-10-01T10:00:00Z").await;
        let (_, before) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        let tables = app.tables().await;
        let mut app = app;
        let dir = app._dir.take();
        let db = app.db.clone();
        app.stop().await;
        for t in gradebook::projections::projector::READ_TABLES {
            exec(&db, &format!("DELETE FROM {t}")).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = common::TestApp::start_on(db, listener, dir).await;
        // Answered at once, not after a catch-up: the start replayed first.
        let (status, after) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(status, 200, "{after}");
        assert_eq!(after, before);
        assert_eq!(app.tables().await, tables);
        app.stop().await;
    }
}
