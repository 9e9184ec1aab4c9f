//! The registrar reports end to end, on PostgreSQL and on SQLite: a
//! student's provenance, the reconciliation report, the audit log and
//! backfill over HTTP and from the command line.

mod common;

use common::fixtures::*;
use common::{meta, Body, TestApp};
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::policy::{Category, MissingPolicy, Scheme};
use gradebook::domain::score::{GradingProgress, RejectReason, ScoreOutcome};
use gradebook::domain::{CommandMeta, Source};
use serde_json::Value;

const COURSE: &str = "/api/courses/HIST-101-2026FA";

fn finding<'a>(report: &'a Value, kind: &str) -> Option<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
}

async fn send(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> (u16, Value) {
    let body = Body::Raw(content_type.to_string(), body.into());
    let a = app.send("POST", path, Some(token), body).await;
    (a.status, a.json())
}

async fn backfill_csv(app: &TestApp, query: &str, body: &str) -> (u16, Value) {
    send(
        app,
        &app.registrar.clone(),
        &format!("{COURSE}/backfill{query}"),
        "text/csv",
        body.to_string(),
    )
    .await
}

const HEADER: &str = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\n";

on_both_stores! {
    async fn provenance_shows_every_post_behind_a_cell_with_who_sent_it_and_why(app: TestApp) {
        hist101(&app).await;
        let e = app.engine();
        score(&app, "ada", "midterm", Some("40"), "50", "2026-10-01T10:00:00Z").await;
        assert_eq!(score(&app, "ada", "hw1", Some("7"), "10", "2026-09-10T10:00:00Z").await, ScoreOutcome::Accepted);
        assert_eq!(score(&app, "ada", "hw1", Some("3"), "10", "2026-09-09T10:00:00Z").await, ScoreOutcome::IgnoredStale);
        e.lock_course(&course(), Some("term closed".into()), &meta(Source::Registrar)).await.unwrap();
        assert_eq!(
            score(&app, "ada", "hw1", Some("9"), "10", "2026-09-12T10:00:00Z").await,
            ScoreOutcome::Rejected(RejectReason::CourseLocked)
        );
        e.unlock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        let backfill = CommandMeta::new("token:reg-1", Source::Backfill, "req-backfill", chrono::Utc::now()).with_batch("batch-1");
        let out = e
            .post_score(&course(), &item("hw1"), &user("ada"), post(Some("8"), "10", "2026-09-11T10:00:00Z"), &backfill)
            .await
            .unwrap();
        assert_eq!(out, ScoreOutcome::Accepted);
        assert_eq!(score(&app, "ada", "hw1", None, "10", "2026-09-13T10:00:00Z").await, ScoreOutcome::Cleared);
        assert_eq!(score(&app, "ada", "hw1", Some("9.5"), "10", "2026-09-14T10:00:00+02:00").await, ScoreOutcome::Accepted);

        let (status, p) = app.get_json(&format!("{COURSE}/students/ada/provenance")).await;
        assert_eq!(status, 200, "{p}");
        // The grade is the grade report's, number for number.
        let (_, grades) = app.get_json(&format!("{COURSE}/grades")).await;
        let row = find(&grades["students"], "user_id", "ada");
        for k in ["points_earned", "points_possible", "percent", "letter", "status"] {
            assert_eq!(p["grade"][k], row[k], "{k}");
        }
        assert_eq!(p["enrollment"]["status"], "active");

        let hw1 = find(&p["items"], "line_item_id", "hw1");
        assert_eq!(hw1["grade_item"]["score"], "9.50");
        assert_eq!(hw1["kept"]["score_given"], "9.5");
        let posts = hw1["posts"].as_array().unwrap();
        let outcomes: Vec<&str> = posts.iter().map(|p| p["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["accepted", "stale", "rejected", "accepted", "cleared", "accepted"]);
        assert_eq!(posts[0]["source"], "ags");
        assert_eq!(posts[0]["actor"], "test");
        assert_eq!(posts[0]["score_given"], "7");
        assert_eq!(posts[0]["points"], "7.00");
        assert_eq!(posts[0]["timestamp"], "2026-09-10T10:00:00+00:00");
        assert!(posts[0]["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(chrono::DateTime::parse_from_rfc3339(posts[0]["received_at"].as_str().unwrap()).is_ok());
        assert_eq!(posts[1]["kept_timestamp"], "2026-09-10T10:00:00+00:00");
        assert_eq!(posts[1]["applied"], false);
        assert_eq!(posts[2]["reason"], "course_locked");
        assert_eq!(posts[2]["score_given"], "9");
        assert_eq!(posts[3]["source"], "backfill");
        assert_eq!(posts[3]["batch_id"], "batch-1");
        assert_eq!(posts[3]["actor"], "token:reg-1");
        assert_eq!(posts[3]["request_id"], "req-backfill");
        assert_eq!(posts[4]["score_given"], Value::Null);
        assert_eq!(posts[5]["timestamp"], "2026-09-14T10:00:00+02:00", "the tool's own offset is kept");
        // Oldest first, by the log.
        let positions: Vec<i64> = posts.iter().map(|p| p["position"].as_i64().unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(hw1["history"][0]["event_type"], "LineItemCreated");
        assert_eq!(hw1["history"][0]["source"], "sis");
        assert_eq!(hw1["history"][0]["detail"]["score_maximum"], "10");
        // The midterm's number: 40 of 50 on a 100-point item.
        let midterm = find(&p["items"], "line_item_id", "midterm");
        assert_eq!(midterm["posts"][0]["points"], "80.00");

        let locks = p["locks"].as_array().unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0]["reason"], "term closed");
        assert_eq!(locks[0]["rejected_posts"], 1);
        assert_eq!(locks[0]["locked"]["source"], "registrar");
        assert!(locks[0]["unlocked"]["received_at"].is_string());
        assert_eq!(p["enrollment_history"][0]["event_type"], "Enrolled");
        app.stop().await;
    }
}

on_both_stores! {
    async fn provenance_answers_for_orphans_and_404_for_strangers(app: TestApp) {
        hist101(&app).await;
        score(&app, "zed", "hw1", Some("5"), "10", "2026-09-10T10:00:00Z").await;
        let (status, p) = app.get_json(&format!("{COURSE}/students/zed/provenance")).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["enrollment"], Value::Null);
        assert_eq!(p["grade"], Value::Null);
        assert!(p["grade_note"].as_str().unwrap().contains("not enrolled"));
        let hw1 = find(&p["items"], "line_item_id", "hw1");
        assert_eq!(hw1["posts"][0]["reason"], "user_not_enrolled");

        // The instructor is enrolled, never posted for: known, no grade.
        let (status, p) = app.get_json(&format!("{COURSE}/students/grace/provenance")).await;
        assert_eq!(status, 200);
        assert_eq!(p["grade"], Value::Null);

        let (status, body) = app.get_json(&format!("{COURSE}/students/nobody/provenance")).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"], "student_not_found");
        let (status, body) = app.get_json("/api/courses/NOPE-1/students/ada/provenance").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"], "course_not_found");
        let (status, body) = app.get_json(&format!("{COURSE}/students/a%20b/provenance")).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_id");
        let res = app.client.get(app.url(&format!("{COURSE}/students/ada/provenance"))).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        app.stop().await;
    }
}

on_both_stores! {
    async fn reconciliation_gives_every_cell_one_status_by_precedence(app: TestApp) {
        hist101(&app).await;
        let e = app.engine();
        e.put_enrollment(&course(), &user("bob"), learner("Bob"), &meta(Source::Sis)).await.unwrap();
        e.drop_enrollment(&course(), &user("bob"), &meta(Source::Sis)).await.unwrap();

        score(&app, "ada", "midterm", Some("90"), "100", "2026-10-01T10:00:00Z").await; // in_sync
        score(&app, "ada", "hw1", Some("8"), "10", "2026-09-12T10:00:00Z").await;
        assert_eq!(score(&app, "ada", "hw1", Some("5"), "10", "2026-09-11T10:00:00Z").await, ScoreOutcome::IgnoredStale);
        let mut pending = post(Some("6"), "10", "2026-09-17T10:00:00Z");
        pending.grading_progress = GradingProgress::PendingManual;
        e.post_score(&course(), &item("hw2"), &user("ada"), pending, &meta(Source::Ags)).await.unwrap(); // provisional
        score(&app, "alan", "midterm", Some("120"), "100", "2026-10-01T10:00:00Z").await; // over_maximum
        e.lock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        score(&app, "alan", "hw1", Some("9"), "10", "2026-09-10T10:00:00Z").await; // rejected
        e.unlock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        score(&app, "grace", "hw1", Some("10"), "10", "2026-09-10T10:00:00Z").await; // orphan: instructor
        score(&app, "zed", "midterm", Some("50"), "100", "2026-10-01T10:00:00Z").await; // orphan: never enrolled

        let (status, r) = app.get_json(&format!("{COURSE}/reconciliation")).await;
        assert_eq!(status, 200, "{r}");
        let status_of = |u: &str, i: &str| find(&find(&r["people"], "user_id", u)["cells"], "line_item_id", i)["status"].clone();
        assert_eq!(status_of("ada", "midterm"), "in_sync");
        assert_eq!(status_of("ada", "final"), "missing");
        assert_eq!(status_of("ada", "hw1"), "stale");
        assert_eq!(status_of("ada", "hw2"), "provisional");
        assert_eq!(status_of("alan", "midterm"), "over_maximum");
        assert_eq!(status_of("alan", "hw1"), "rejected");
        assert_eq!(status_of("grace", "hw1"), "orphan");
        assert_eq!(status_of("zed", "midterm"), "orphan");
        assert_eq!(status_of("bob", "hw1"), "missing");
        // A refused first post leaves nothing kept: missing holds too, rejected wins.
        let alan_hw1 = find(&find(&r["people"], "user_id", "alan")["cells"], "line_item_id", "hw1");
        assert_eq!(alan_hw1["also"], serde_json::json!(["missing"]));
        assert_eq!(alan_hw1["last_reason"], "course_locked");

        let bob = find(&r["people"], "user_id", "bob");
        assert_eq!(bob["enrollment_status"], "dropped");
        let zed = find(&r["people"], "user_id", "zed");
        assert_eq!(zed["enrollment_status"], Value::Null);
        assert_eq!(zed["cells"].as_array().unwrap().len(), 1, "only the cells posted for");
        assert_eq!(r["orphans"], serde_json::json!(["grace", "zed"]));
        // ada 4 cells, alan 4, bob 4, grace 1, zed 1.
        assert_eq!(
            r["summary"],
            serde_json::json!({"in_sync": 1, "missing": 7, "stale": 1, "provisional": 1,
                               "over_maximum": 1, "rejected": 1, "orphan": 2})
        );
        assert_eq!(r["precedence"][0], "orphan");
        assert_eq!(r["precedence"][6], "in_sync");

        let locked = finding(&r, "rejected_while_locked").expect("the refused post is reported");
        assert_eq!(locked["still_locked"], false);
        assert_eq!(locked["posts"][0]["user_id"], "alan");
        assert_eq!(locked["posts"][0]["applied_since"], false);
        assert!(finding(&r, "course_total_beside_items").is_none());
        assert!(finding(&r, "weights_do_not_sum_to_100").is_none());
        app.stop().await;
    }
}

on_both_stores! {
    async fn reconciliation_finds_a_tool_total_of_87_beside_a_computed_79(app: TestApp) {
        hist101(&app).await;
        let e = app.engine();
        let mut essay = LineItemSpec::new("Essay", d("10"));
        essay.category = Some("Essays".into());
        e.create_line_item(&course(), Some(item("essay")), essay, &meta(Source::Sis)).await.unwrap();
        let mut total = LineItemSpec::new("Moodle course total", d("100"));
        total.course_total = true;
        e.create_line_item(&course(), Some(item("moodle-total")), total, &meta(Source::Ags)).await.unwrap();

        // Ada: Exams (70 + 80) / 200 = 75 %, Homework (8 + 9) / 20 = 85 %;
        // 75 x 60 % + 85 x 40 % = 45 + 34 = 79.00. Moodle says 87.
        score(&app, "ada", "midterm", Some("70"), "100", "2026-10-01T10:00:00Z").await;
        score(&app, "ada", "final", Some("80"), "100", "2026-11-01T10:00:00Z").await;
        score(&app, "ada", "hw1", Some("8"), "10", "2026-09-10T10:00:00Z").await;
        score(&app, "ada", "hw2", Some("9"), "10", "2026-09-17T10:00:00Z").await;
        score(&app, "ada", "moodle-total", Some("87"), "100", "2026-11-02T10:00:00Z").await;
        // Alan: only the midterm, 80 %; Moodle says 80.5 (within 1 point).
        score(&app, "alan", "midterm", Some("80"), "100", "2026-10-01T10:00:00Z").await;
        score(&app, "alan", "moodle-total", Some("161"), "200", "2026-11-02T10:00:00Z").await;

        let (status, r) = app.get_json(&format!("{COURSE}/reconciliation")).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["threshold"], "1");
        let beside = finding(&r, "course_total_beside_items").expect("course total beside items");
        assert_eq!(beside["course_total_items"], serde_json::json!(["moodle-total"]));
        assert_eq!(beside["other_items"], serde_json::json!(["midterm", "final", "hw1", "hw2", "essay"]));
        let mismatch = finding(&r, "course_total_mismatch").expect("the 87 vs 79 case");
        assert_eq!(mismatch["course_total_item"], "moodle-total");
        assert_eq!(
            mismatch["students"],
            serde_json::json!([{"user_id": "ada", "tool_percent": "87.00", "computed_percent": "79.00", "difference": "8.00"}])
        );
        let homeless = finding(&r, "items_without_category").expect("essay has no known category");
        assert_eq!(homeless["items"], serde_json::json!(["essay"]));
        assert!(finding(&r, "weights_do_not_sum_to_100").is_none());

        // A tighter threshold catches Alan's half point too.
        let (_, r) = app.get_json(&format!("{COURSE}/reconciliation?threshold=0.25")).await;
        let students = &finding(&r, "course_total_mismatch").unwrap()["students"];
        assert_eq!(find(students, "user_id", "alan")["tool_percent"], "80.50");
        assert_eq!(find(students, "user_id", "alan")["computed_percent"], "80.00");
        let (status, body) = app.get_json(&format!("{COURSE}/reconciliation?threshold=lots")).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_threshold");

        // A score kept on an item that is then deleted, and a post after.
        let mut quiz = LineItemSpec::new("Quiz", d("10"));
        quiz.category = Some("Homework".into());
        e.create_line_item(&course(), Some(item("quiz")), quiz, &meta(Source::Sis)).await.unwrap();
        score(&app, "ada", "quiz", Some("5"), "10", "2026-09-20T10:00:00Z").await;
        e.delete_line_item(&course(), &item("quiz"), &meta(Source::Sis)).await.unwrap();
        assert_eq!(
            score(&app, "ada", "quiz", Some("6"), "10", "2026-09-21T10:00:00Z").await,
            ScoreOutcome::Rejected(RejectReason::LineItemDeleted)
        );
        // Weights of 60 and 30.
        e.set_grading(
            &course(),
            Scheme::Weighted {
                categories: vec![
                    Category { name: "Exams".into(), weight: d("60") },
                    Category { name: "Homework".into(), weight: d("30") },
                ],
            },
            None,
            MissingPolicy::Exclude,
            &meta(Source::Sis),
        )
        .await
        .unwrap();
        let (_, r) = app.get_json(&format!("{COURSE}/reconciliation")).await;
        assert_eq!(finding(&r, "weights_do_not_sum_to_100").unwrap_or_else(|| panic!("90 is not 100: {}", r["findings"]))["sum"], "90");
        let deleted = finding(&r, "scores_on_deleted_items").expect("scores on the deleted quiz");
        assert_eq!(
            deleted["scores"],
            serde_json::json!([
                {"line_item_id": "quiz", "user_id": "ada", "what": "kept", "count": 1},
                {"line_item_id": "quiz", "user_id": "ada", "what": "refused_post", "count": 1}
            ])
        );
        // Deleted items have no cells.
        let ada = find(&r["people"], "user_id", "ada");
        assert!(ada["cells"].as_array().unwrap().iter().all(|c| c["line_item_id"] != "quiz"));
        let (status, _) = app.get_json("/api/courses/NOPE-1/reconciliation").await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

async fn audit_all(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!("/api/audit?limit={limit}{query}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.get_json(&q).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= limit);
        out.extend(events.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("the audit log never ended");
}

on_both_stores! {
    async fn the_audit_log_pages_through_every_event_exactly_once_and_filters(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "hw1", Some("7"), "10", "2026-09-10T10:00:00Z").await;
        score(&app, "alan", "hw1", Some("6"), "10", "2026-09-10T10:00:00Z").await;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let between = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        score(&app, "ada", "hw2", Some("9"), "10", "2026-09-17T10:00:00Z").await;
        score(&app, "ada", "hw1", Some("8"), "10", "2026-09-11T10:00:00Z").await;

        let total = app.event_count().await as usize;
        let all = audit_all(&app, "", 3).await;
        assert_eq!(all.len(), total);
        let positions: std::collections::BTreeSet<i64> = all.iter().map(|e| e["position"].as_i64().unwrap()).collect();
        assert_eq!(positions.len(), total, "no event twice");
        let first = &all[0];
        assert_eq!(first["event_type"], "CourseOpened");
        assert_eq!(first["aggregate_type"], "course");
        assert_eq!(first["payload"]["CourseOpened"]["title"], "World History");
        assert_eq!(first["metadata"]["source"], "sis");
        assert!(first["recorded_at"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));

        // One page holds the default 100; the end says so.
        let (_, page) = app.get_json("/api/audit").await;
        assert_eq!(page["limit"], 100);
        assert_eq!(page["events"].as_array().unwrap().len(), total);
        assert_eq!(page["next_cursor"], Value::Null);

        let ada = audit_all(&app, "&course_id=HIST-101-2026FA&user_id=ada", 2).await;
        assert_eq!(ada.len(), 4, "enrolled + three score posts: {ada:?}");
        assert!(ada.iter().all(|e| e["aggregate_id"].as_str().unwrap().ends_with("/ada")));
        let hw1 = audit_all(&app, "&line_item_id=hw1", 100).await;
        assert_eq!(hw1.len(), 4, "created + three posts");
        let ada_hw1 = audit_all(&app, "&user_id=ada&line_item_id=hw1", 100).await;
        assert_eq!(ada_hw1.len(), 2);
        assert!(audit_all(&app, "&course_id=OTHER-1", 100).await.is_empty());

        let t = urlencode(&between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let before = audit_all(&app, &format!("&to={t}"), 100).await;
        let after = audit_all(&app, &format!("&from={t}"), 100).await;
        assert_eq!(after.len(), 2, "the two posts after the moment");
        assert_eq!(before.len() + after.len(), total);

        for (q, code) in [
            ("cursor=nonsense", "invalid_cursor"),
            ("cursor=3a", "invalid_cursor"),
            ("from=yesterday", "invalid_time"),
            ("limit=1001", "invalid_limit"),
            ("limit=0", "invalid_limit"),
            ("user_id=a%2Fb", "invalid_id"),
        ] {
            let (status, body) = app.get_json(&format!("/api/audit?{q}")).await;
            assert_eq!(status, 400, "{q}: {body}");
            assert_eq!(body["error"], code, "{q}");
        }
        app.stop().await;
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

on_both_stores! {
    async fn a_csv_backfill_sent_twice_changes_nothing_the_second_time(app: TestApp) {
        hist101(&app).await;
        let file = format!(
            "{HEADER}midterm,ada,81,100,2026-10-01T10:00:00Z,from the paper register\n\
             hw1,ada,9,10,2026-09-10T10:00:00Z,\n\
             hw1,ada,10,10,2026-09-12T10:00:00Z,regraded\n\
             hw1,alan,7.5,10,2026-09-10T10:00:00+02:00,\n"
        );
        let (status, first) = backfill_csv(&app, "", &file).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["dry_run"], false);
        assert_eq!(first["accepted"], 4);
        assert_eq!(first["unchanged"], 0);
        assert_eq!(first["rejected"], 0);
        let batch = first["batch_id"].as_str().unwrap().to_string();
        let events = app.event_count().await;

        let (status, second) = backfill_csv(&app, "", &file).await;
        assert_eq!(status, 200);
        assert_eq!((second["accepted"].as_u64(), second["unchanged"].as_u64(), second["rejected"].as_u64()), (Some(0), Some(4), Some(0)));
        assert_ne!(second["batch_id"], batch.as_str());
        assert_eq!(app.event_count().await, events, "the second run appends nothing");

        let (_, g) = app.get_json(&format!("{COURSE}/grades")).await;
        let ada = find(&g["students"], "user_id", "ada");
        assert_eq!(find(&ada["items"], "line_item_id", "hw1")["score"], "10.00");
        // Each row is a post from the registrar's batch, with the row's own time.
        let (_, p) = app.get_json(&format!("{COURSE}/students/ada/provenance")).await;
        let hw1 = find(&p["items"], "line_item_id", "hw1");
        assert_eq!(hw1["posts"].as_array().unwrap().len(), 2);
        assert_eq!(hw1["posts"][0]["source"], "backfill");
        assert_eq!(hw1["posts"][0]["batch_id"], batch.as_str());
        assert_eq!(hw1["posts"][0]["timestamp"], "2026-09-10T10:00:00+00:00");
        assert!(hw1["posts"][0]["actor"].as_str().unwrap().starts_with("token:"));
        assert_eq!(hw1["posts"][1]["comment"], "regraded");
        assert_eq!(hw1["posts"][0]["comment"], Value::Null);
        assert_eq!(hw1["posts"][0]["activity_progress"], "Completed");
        assert_eq!(hw1["posts"][0]["grading_progress"], "FullyGraded");
        app.stop().await;
    }
}

on_both_stores! {
    async fn json_lines_backfill_reports_each_rejection_with_its_line_and_records_none(app: TestApp) {
        hist101(&app).await;
        let e = app.engine();
        let mut quiz = LineItemSpec::new("Quiz", d("10"));
        quiz.category = Some("Homework".into());
        e.create_line_item(&course(), Some(item("quiz")), quiz, &meta(Source::Sis)).await.unwrap();
        e.delete_line_item(&course(), &item("quiz"), &meta(Source::Sis)).await.unwrap();
        // A newer score is already kept for alan's hw2.
        score(&app, "alan", "hw2", Some("9"), "10", "2026-09-20T10:00:00Z").await;
        let before = app.event_count().await;

        let row = |li: &str, u: &str, given: &str, ts: &str| {
            format!(r#"{{"line_item_id":"{li}","user_id":"{u}","score_given":{given},"score_maximum":10,"timestamp":"{ts}","comment":null}}"#)
        };
        let lines = [
            row("hw1", "ada", "9", "2026-09-10T10:00:00Z"),         // 1 accepted
            row("nope", "ada", "9", "2026-09-10T10:00:00Z"),        // 2 unknown line item
            row("hw1", "nobody", "9", "2026-09-10T10:00:00Z"),      // 3 not enrolled
            row("hw1", "grace", "9", "2026-09-10T10:00:00Z"),       // 4 instructor
            row("hw2", "ada", "\"nine\"", "2026-09-10T10:00:00Z"),  // 5 bad number
            row("hw2", "ada", "-1", "2026-09-10T10:00:00Z"),        // 6 negative
            row("hw2", "ada", "9", "10/09/2026"),                   // 7 not RFC 3339
            row("hw2", "alan", "4", "2026-09-10T10:00:00Z"),        // 8 older than kept
            "{\"line_item_id\": \"hw2\",".to_string(),              // 9 broken JSON
            String::new(),                                          // 10 blank, skipped
            row("quiz", "ada", "9", "2026-09-10T10:00:00Z"),        // 11 deleted item
            row("hw2", "ada", "\"8.50\"", "2026-09-17T10:00:00Z"),  // 12 accepted
        ]
        .join("\n");
        let (status, r) = send(&app, &app.registrar.clone(), &format!("{COURSE}/backfill"), "application/x-ndjson", lines).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["accepted"], 2);
        assert_eq!(r["unchanged"], 0);
        assert_eq!(r["rejected"], 9);
        let got: Vec<(u64, &str)> = r["rejections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["line"].as_u64().unwrap(), x["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "line_item_not_found"),
                (3, "user_not_enrolled"),
                (4, "user_not_enrolled"),
                (5, "invalid_score_given"),
                (6, "invalid_score_given"),
                (7, "invalid_timestamp"),
                (8, "stale"),
                (9, "invalid_json"),
                (11, "line_item_deleted"),
            ]
        );
        assert!(r["rejections"][6]["message"].as_str().unwrap().contains("2026-09-20T10:00:00"));
        assert_eq!(app.event_count().await, before + 2, "only the two accepted rows are recorded");
        // The same file again: the two land as unchanged, the rest as before.
        let again = [
            row("hw1", "ada", "9", "2026-09-10T10:00:00Z"),
            row("hw2", "alan", "4", "2026-09-10T10:00:00Z"),
        ]
        .join("\r\n");
        let (_, r) = send(&app, &app.registrar.clone(), &format!("{COURSE}/backfill"), "application/jsonl", again).await;
        assert_eq!((r["accepted"].as_u64(), r["unchanged"].as_u64(), r["rejected"].as_u64()), (Some(0), Some(1), Some(1)));
        assert_eq!(app.event_count().await, before + 2);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_dry_run_gives_the_same_answer_and_appends_nothing(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "hw2", Some("9"), "10", "2026-09-20T10:00:00Z").await;
        let file = format!(
            "{HEADER}hw1,ada,9,10,2026-09-10T10:00:00Z,\n\
             hw1,ada,9,10,2026-09-10T10:00:00Z,\n\
             hw1,ada,6,10,2026-09-09T10:00:00Z,\n\
             hw2,ada,5,10,2026-09-19T10:00:00Z,\n\
             hw1,alan,8,10,2026-09-10T10:00:00Z,\n\
             final,nobody,8,10,2026-09-10T10:00:00Z,\n"
        );
        let before = app.event_count().await;
        let (status, dry) = backfill_csv(&app, "?dry_run=true", &file).await;
        assert_eq!(status, 200, "{dry}");
        assert_eq!(app.event_count().await, before, "a dry run appends nothing");
        assert_eq!(dry["dry_run"], true);
        let (status, real) = backfill_csv(&app, "", &file).await;
        assert_eq!(status, 200);
        assert_eq!(real["dry_run"], false);
        for k in ["accepted", "unchanged", "rejected", "rejections"] {
            assert_eq!(dry[k], real[k], "{k}");
        }
        // Line 3 repeats line 2, line 4 is older than line 2, line 5 is older
        // than the kept hw2, and nobody is enrolled as nobody.
        assert_eq!((real["accepted"].as_u64(), real["unchanged"].as_u64(), real["rejected"].as_u64()), (Some(2), Some(1), Some(3)));
        assert_eq!(app.event_count().await, before + 2);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_locked_course_refuses_the_whole_batch_and_bad_requests_change_nothing(app: TestApp) {
        hist101(&app).await;
        let file = format!("{HEADER}hw1,ada,9,10,2026-09-10T10:00:00Z,\n");
        app.engine().lock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        let before = app.event_count().await;
        let (status, body) = backfill_csv(&app, "", &file).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"], "course_locked");
        let (status, _) = backfill_csv(&app, "?dry_run=true", &file).await;
        assert_eq!(status, 422);
        assert_eq!(app.event_count().await, before, "nothing appended");
        app.engine().unlock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        let before = app.event_count().await;

        let (status, body) = send(&app, &app.auditor.clone(), &format!("{COURSE}/backfill"), "text/csv", file.clone()).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = send(&app, &app.registrar.clone(), &format!("{COURSE}/backfill"), "application/json", file.clone()).await;
        assert_eq!(status, 415);
        assert_eq!(body["error"], "unsupported_media_type");
        let (status, body) = backfill_csv(&app, "", "hw1,ada,9,10,2026-09-10T10:00:00Z,\n").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_header");
        let (status, body) = send(&app, &app.registrar.clone(), "/api/courses/NOPE-1/backfill", "text/csv", file.clone()).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"], "course_not_found");
        let (status, _) = backfill_csv(&app, "?dry_run=maybe", &file).await;
        assert_eq!(status, 400);
        assert_eq!(app.event_count().await, before);

        // Larger than the 1 MiB default, well within the route's own limit.
        let mut big = String::from(HEADER);
        while big.len() < 1_200_000 {
            big.push_str("hw1,ada,9,10,2026-09-10T10:00:00Z,padding padding padding padding padding padding\n");
        }
        let (status, body) = backfill_csv(&app, "?dry_run=true", &big).await;
        assert_eq!(status, 200, "{body}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn csv_with_a_bom_crlf_and_a_broken_line_loads_the_good_rows(app: TestApp) {
        hist101(&app).await;
        let file = "\u{feff}line_item_id,user_id,score_given,score_maximum,timestamp,comment\r\n\
                    hw1,ada,9,10,2026-09-10T10:00:00Z,\"said \"\"well done\"\"\"\r\n\
                    hw2,ada,8,10,2026-09-17T10:00:00Z\r\n\
                    \r\n\
                    hw2,alan,7,10,2026-09-17T10:00:00Z,\"two, commas, inside\"\n\
                    midterm,alan,70,100,2026-10-01T10:00:00Z,x,extra\r\n";
        let (status, r) = backfill_csv(&app, "", file).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["accepted"], 2);
        let got: Vec<(u64, &str)> = r["rejections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["line"].as_u64().unwrap(), x["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(got, [(3, "csv_error"), (6, "csv_error")]);
        let (_, p) = app.get_json(&format!("{COURSE}/students/ada/provenance")).await;
        assert_eq!(find(&p["items"], "line_item_id", "hw1")["posts"][0]["comment"], "said \"well done\"");
        app.stop().await;
    }
}

/// The URL the command line should use for the test's own database.
async fn store_url(app: &TestApp) -> String {
    match &app.db {
        gradebook::projections::db::Db::Sqlite(_) => format!(
            "sqlite://{}",
            app._dir
                .as_ref()
                .unwrap()
                .path()
                .join("gradebook.db")
                .display()
        ),
        gradebook::projections::db::Db::Postgres(pool) => {
            let name: String = sqlx::query_scalar("SELECT current_database()")
                .fetch_one(pool)
                .await
                .unwrap();
            let base =
                std::env::var("DATABASE_URL").expect("DATABASE_URL for the PostgreSQL tests");
            let (server, _) = base.rsplit_once('/').unwrap();
            format!("{server}/{name}")
        }
    }
}

on_both_stores! {
    async fn the_command_line_backfills_a_file_into_the_store(app: TestApp) {
        hist101(&app).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grades.csv");
        std::fs::write(
            &path,
            format!("{HEADER}hw1,ada,9,10,2026-09-10T10:00:00Z,\nhw2,alan,6,10,2026-09-17T10:00:00Z,\nhw2,nobody,6,10,2026-09-17T10:00:00Z,\n"),
        )
        .unwrap();
        let url = store_url(&app).await;
        let run = |dry: bool| {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gradebook"));
            cmd.arg("--database-url").arg(&url).arg("backfill").arg("--course").arg("HIST-101-2026FA").arg(&path);
            if dry {
                cmd.arg("--dry-run");
            }
            async move { cmd.env_remove("RUST_LOG").output().await }
        };
        let before = app.event_count().await;
        let out = run(true).await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(dry["dry_run"], true);
        assert_eq!(app.event_count().await, before);

        let out = run(false).await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((r["accepted"].as_u64(), r["rejected"].as_u64()), (Some(2), Some(1)));
        assert_eq!(r["rejections"][0]["line"], 4);
        assert_eq!(r["rejections"][0]["reason"], "user_not_enrolled");
        assert_eq!(dry["rejections"], r["rejections"]);
        assert_eq!(app.event_count().await, before + 2);

        // The server sees the rows, recorded as a backfill batch.
        let (_, p) = app.get_json(&format!("{COURSE}/students/ada/provenance")).await;
        let post = &find(&p["items"], "line_item_id", "hw1")["posts"][0];
        assert_eq!(post["source"], "backfill");
        assert_eq!(post["batch_id"], r["batch_id"]);

        // Again: all unchanged.
        let out = run(false).await.unwrap();
        let again: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(again["unchanged"], 2);
        assert_eq!(app.event_count().await, before + 2);
        app.stop().await;
    }
}

/// Two courses with the same line items and people: `BF-A` takes a file
/// through the batched backfill, `BF-B` takes the same rows the way a
/// backfill went before batching, one post through the engine per row.
mod large_backfill {
    use super::*;
    use gradebook::backfill::{self, Batch, CsvRows, Rejection};
    use gradebook::domain::enrollment::Role;
    use gradebook::domain::ids::CourseId;
    use gradebook::projections::projector::events::AnyEvent;
    use gradebook::projections::{db::Db, reports::audit, tables::queries};

    pub const ROWS: usize = 1200;

    pub async fn course_like(app: &TestApp, id: &str) -> CourseId {
        let e = app.engine();
        let c = CourseId::parse(id).unwrap();
        open_course(app, &c, "Backfill", &[]).await;
        for i in ["i0", "i1", "i2", "i3", "gone"] {
            e.create_line_item(
                &c,
                Some(item(i)),
                LineItemSpec::new(i, d("20")),
                &meta(Source::Sis),
            )
            .await
            .unwrap();
        }
        e.delete_line_item(&c, &item("gone"), &meta(Source::Sis))
            .await
            .unwrap();
        for u in 0..20 {
            enroll(app, &c, &format!("s{u}"), learner(&format!("S {u}"))).await;
        }
        let mut prof = learner("Prof");
        prof.role = Role::Instructor;
        enroll(app, &c, "prof", prof).await;
        e.drop_enrollment(&c, &user("s19"), &meta(Source::Sis))
            .await
            .unwrap();
        c
    }

    /// Newer and older posts on the same cells, exact resends, equal
    /// timestamps with other values, and rows each rule refuses.
    pub fn file() -> String {
        let mut rows: Vec<String> = Vec::new();
        for n in 0..ROWS {
            let row = if n % 31 == 30 {
                rows[n - 7].clone()
            } else {
                let item = match n {
                    _ if n % 97 == 0 => "nope".to_string(),
                    _ if n % 89 == 0 => "gone".to_string(),
                    _ => format!("i{}", n % 4),
                };
                let user = if n % 53 == 0 {
                    "prof".to_string()
                } else {
                    format!("s{}", (n * 7) % 20)
                };
                let given = if n % 71 == 0 {
                    "x".to_string()
                } else {
                    format!("{}", n % 21)
                };
                // Row n - 20 is the cell's previous row: mostly newer posts,
                // some older than it (stale), some at the same time.
                let minutes = match n {
                    _ if n % 9 == 4 && n >= 40 => (n - 40) * 3,
                    _ if n % 13 == 6 && n >= 20 => (n - 20) * 3,
                    _ => n * 3,
                } as i64;
                let ts = (chrono::DateTime::parse_from_rfc3339("2026-09-01T00:00:00Z").unwrap()
                    + chrono::Duration::minutes(minutes))
                .to_rfc3339();
                let comment = if n % 5 == 0 {
                    format!("\"row {n}, checked\"")
                } else {
                    String::new()
                };
                format!("{item},{user},{given},20,{ts},{comment}")
            };
            rows.push(row);
        }
        format!("{HEADER}{}\n", rows.join("\n"))
    }

    /// The backfill as it ran before batching: each row checked, decided
    /// against its cell's history read from the log, and posted alone.
    pub async fn row_by_row(
        app: &TestApp,
        course: &CourseId,
        text: &str,
    ) -> (u64, u64, Vec<Rejection>) {
        let engine = app.engine();
        let view = queries::load_course_view(&engine.db, course.as_str())
            .await
            .unwrap()
            .unwrap();
        let mut rows = CsvRows::new(text.as_bytes()).unwrap();
        let (mut accepted, mut unchanged, mut rejections) = (0, 0, Vec::new());
        let meta =
            CommandMeta::new("test", Source::Backfill, "r", chrono::Utc::now()).with_batch("b");
        while let Some((line, row)) = backfill::RowSource::next_row(&mut rows) {
            let row = match row.and_then(|raw| backfill::check_row(&view, line, raw)) {
                Ok(row) => row,
                Err(r) => {
                    rejections.push(r);
                    continue;
                }
            };
            let id = format!("{course}/{}/{}", row.line_item_id, row.user_id);
            let mut history = gradebook::domain::score::ScoreHistory::default();
            for e in audit::read_aggregate(&engine.db, "score", &id)
                .await
                .unwrap()
            {
                if let AnyEvent::Score(e) = e.event {
                    history.apply(e);
                }
            }
            let meta = CommandMeta {
                received_at: chrono::Utc::now(),
                ..meta.clone()
            };
            match engine
                .post_past_score(
                    course,
                    &row.line_item_id,
                    &row.user_id,
                    row.post.clone(),
                    history.applied_before(&row.post),
                    &meta,
                )
                .await
            {
                Ok(ScoreOutcome::Accepted | ScoreOutcome::Cleared) => accepted += 1,
                Ok(ScoreOutcome::Unchanged) => unchanged += 1,
                Err(gradebook::engine::EngineError::Domain(e)) => rejections.push(Rejection {
                    line,
                    reason: e.code(),
                    message: String::new(),
                }),
                other => panic!("line {line}: {other:?}"),
            }
        }
        (accepted, unchanged, rejections)
    }

    /// Each score stream of a course as (item/user, sequence, type, payload
    /// without the course id), and the course's score cells without the
    /// times the engine received the posts.
    pub async fn written(db: &Db, course: &str) -> (Vec<String>, Vec<String>) {
        let sql_events = "SELECT aggregate_id, sequence, event_type, CAST(payload AS TEXT) FROM events WHERE aggregate_type = 'score' AND course_id = $1 ORDER BY aggregate_id, sequence";
        let sql_cells = "SELECT line_item_id, user_id, score_given, score_maximum, tool_timestamp, comment, last_outcome, last_reason, posts, rejected, stale FROM rm_scores WHERE course_id = $1 ORDER BY line_item_id, user_id";
        type Event = (String, i64, String, String);
        type Cell = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            i64,
            i64,
            i64,
        );
        let (events, cells): (Vec<Event>, Vec<Cell>) = match db {
            Db::Postgres(pool) => (
                sqlx::query_as(sql_events)
                    .bind(course)
                    .fetch_all(pool)
                    .await
                    .unwrap(),
                sqlx::query_as(sql_cells)
                    .bind(course)
                    .fetch_all(pool)
                    .await
                    .unwrap(),
            ),
            Db::Sqlite(pool) => (
                sqlx::query_as(sql_events)
                    .bind(course)
                    .fetch_all(pool)
                    .await
                    .unwrap(),
                sqlx::query_as(sql_cells)
                    .bind(course)
                    .fetch_all(pool)
                    .await
                    .unwrap(),
            ),
        };
        let strip = |s: &str| s.replace(course, "C");
        (
            events
                .iter()
                .map(|(id, seq, t, p)| {
                    let payload: Value = serde_json::from_str(p).unwrap();
                    format!("{} {seq} {t} {}", strip(id), strip(&payload.to_string()))
                })
                .collect(),
            cells.iter().map(|c| format!("{c:?}")).collect(),
        )
    }

    pub async fn batched(
        app: &TestApp,
        course: &CourseId,
        text: &str,
        dry_run: bool,
    ) -> backfill::Report {
        let mut batch = Batch::new(course.clone(), "test", "r");
        batch.dry_run = dry_run;
        let mut rows = CsvRows::new(text.as_bytes()).unwrap();
        backfill::run(app.engine(), &batch, &mut rows, &mut |_| {})
            .await
            .unwrap()
    }
}

on_both_stores! {
    async fn a_large_backfill_writes_what_posting_row_by_row_writes(app: TestApp) {
        use large_backfill::*;
        let a = course_like(&app, "BF-A").await;
        let b = course_like(&app, "BF-B").await;
        let text = file();
        let before = app.event_count().await;

        let dry = batched(&app, &a, &text, true).await;
        assert_eq!(app.event_count().await, before, "a dry run appends nothing");
        let report = batched(&app, &a, &text, false).await;
        let (accepted, unchanged, rejections) = row_by_row(&app, &b, &text).await;

        assert_eq!((report.accepted, report.unchanged), (accepted, unchanged));
        assert!(report.accepted > 500 && report.unchanged > 20, "{report:?}");
        let lines = |r: &[gradebook::backfill::Rejection]| r.iter().map(|r| (r.line, r.reason)).collect::<Vec<_>>();
        assert_eq!(lines(&report.rejections), lines(&rejections));
        for reason in ["stale", "line_item_not_found", "line_item_deleted", "user_not_enrolled", "invalid_score_given"] {
            assert!(report.rejections.iter().any(|r| r.reason == reason), "no {reason} row");
        }
        assert_eq!((dry.accepted, dry.unchanged, lines(&dry.rejections)), (report.accepted, report.unchanged, lines(&report.rejections)));
        assert_eq!(app.event_count().await, before + 2 * report.accepted as i64);

        // The same events on the same streams, and the same cells read back.
        let (events_a, cells_a) = written(&app.db, "BF-A").await;
        let (events_b, cells_b) = written(&app.db, "BF-B").await;
        assert_eq!(events_a.len() as u64, report.accepted);
        assert_eq!(events_a, events_b);
        assert_eq!(cells_a, cells_b);

        // Every row is a post of the batch, with its metadata.
        let (_, p) = app.get_json("/api/courses/BF-A/students/s7/provenance").await;
        let posts: Vec<&Value> = p["items"].as_array().unwrap().iter().flat_map(|i| i["posts"].as_array().unwrap()).collect();
        assert!(!posts.is_empty(), "{p}");
        for post in posts {
            assert_eq!(post["source"], "backfill");
            assert_eq!(post["batch_id"], report.batch_id.as_str());
        }

        // The same file again changes nothing.
        let again = batched(&app, &a, &text, false).await;
        assert_eq!(again.accepted, 0);
        assert_eq!(again.unchanged, report.accepted + report.unchanged);
        assert_eq!(app.event_count().await, before + 2 * report.accepted as i64);
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_dry_run_and_the_real_run_decide_every_row_alike(app: TestApp) {
        // Generated files, each on a new course in the same state: rows on
        // live, unknown and deleted columns, for learners, an instructor, a
        // dropped learner and nobody, with bad numbers, repeats, older and
        // newer posts, and timestamps from year 1 to year 9999 (far past,
        // an hour and more ahead of the clock, far future). The dry run's
        // answer for every row is the real run's.
        use large_backfill::*;
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, TestRunner};

        let now = chrono::Utc::now();
        let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let times: Vec<String> = vec![
            "0001-01-01T00:00:00Z".into(),
            "1970-01-01T00:00:00Z".into(),
            "2026-09-01T10:00:00Z".into(),
            "2026-09-01T10:00:00+02:00".into(),
            "2026-09-02T10:00:00Z".into(),
            "2026-09-03T10:00:00-05:00".into(),
            at(now - chrono::Duration::days(1)),
            at(now + chrono::Duration::hours(3)),
            at(now + chrono::Duration::days(400)),
            "2999-12-31T23:59:59Z".into(),
            "9999-12-31T23:59:59Z".into(),
        ];
        let row = (0usize..7, 0usize..23, prop_oneof![(0u32..25).prop_map(|n| n.to_string()), Just("x".to_string())], 0usize..11);
        let file = proptest::collection::vec(row, 1..120);
        let mut runner = TestRunner::new(Config { cases: 6, ..Config::default() });
        for case in 0..6 {
            let rows = file.new_tree(&mut runner).unwrap().current();
            let mut text = String::from(HEADER);
            for (i, u, given, t) in rows {
                let item = ["i0", "i1", "i2", "i3", "gone", "nope", "i0"][i];
                let user = match u {
                    20 => "prof".to_string(),
                    21 => "nobody".to_string(),
                    22 => "s19".to_string(),
                    n => format!("s{}", n % 6),
                };
                text.push_str(&format!("{item},{user},{given},20,{},\n", times[t]));
            }
            // A row well-formed in every other way, for a year far ahead.
            text.push_str("i1,s1,5,20,2999-12-31T23:59:59Z,\n");
            let last_line = text.lines().count() as u64;
            let c = course_like(&app, &format!("PD-{case}")).await;
            let before = app.event_count().await;
            let dry = batched(&app, &c, &text, true).await;
            assert_eq!(app.event_count().await, before, "a dry run appends nothing");
            let real = batched(&app, &c, &text, false).await;
            let rows = |r: &gradebook::backfill::Report| {
                (r.accepted, r.unchanged, r.rejections.iter().map(|r| (r.line, r.reason)).collect::<Vec<_>>())
            };
            assert_eq!(rows(&dry), rows(&real), "case {case}:\n{text}");
            assert!(
                real.rejections.iter().any(|r| r.line == last_line && r.reason == "invalid_timestamp"),
                "case {case}: {real:?}"
            );
        }
        app.stop().await;
    }
}
