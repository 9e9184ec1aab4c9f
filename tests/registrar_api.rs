//! The registrar API over HTTP with real tokens, on PostgreSQL and on
//! SQLite: managing courses, people and line items, who may do what, how
//! bad input is answered, what the event log records about the caller, and
//! the operations endpoints (`/metrics`, `/readyz`, `/api/openapi.json`).

mod common;

use common::fixtures::{course, item, post, student, user};
use common::{meta, Body, TestApp};
use gradebook::domain::score::{RejectReason, ScoreOutcome};
use gradebook::domain::Source;
use serde_json::{json, Value};

const C: &str = "HIST-101-2026FA";

/// A request with an optional bearer token and an optional JSON body.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let a = app.send(method, path, token, Body::json(body)).await;
    (a.status, a.json())
}

fn token_id(token: &str) -> String {
    token
        .strip_prefix("gb_")
        .and_then(|s| s.split_once('_'))
        .map(|(id, _)| id.to_string())
        .expect("token shape")
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    let leaks = ["select ", "insert ", "panicked", "sqlx", "stack"];
    common::assert_error_shape(status, body, want_status, want_code, &leaks);
}

/// A course set up over HTTP: Exams 70 / Quizzes 30, a four-letter scale,
/// exam1 /100 (Exams), quiz1 and quiz2 /20 (Quizzes), two learners and an
/// instructor.
async fn setup(app: &TestApp) {
    let sis = app.sis.clone();
    let s = Some(sis.as_str());
    let (st, b) = call(
        app,
        "POST",
        "/api/courses",
        s,
        Some(json!({"course_id": C, "title": "World History", "term": "2026FA", "tool_ids": []})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = call(
        app,
        "PUT",
        &format!("/api/courses/{C}/grading"),
        s,
        Some(json!({
            "scheme": "weighted",
            "categories": [{"name": "Exams", "weight": "70"}, {"name": "Quizzes", "weight": 30}],
            "scale": [{"letter": "A", "min_percent": "90"}, {"letter": "B", "min_percent": 80},
                      {"letter": "C", "min_percent": "70"}, {"letter": "F", "min_percent": "0"}]
        })),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    for (id, label, max, cat) in [
        ("exam1", "Exam 1", "100", "Exams"),
        ("quiz1", "Quiz 1", "20", "Quizzes"),
        ("quiz2", "Quiz 2", "20", "Quizzes"),
    ] {
        let (st, b) = call(
            app,
            "POST",
            &format!("/api/courses/{C}/line-items"),
            s,
            Some(
                json!({"line_item_id": id, "label": label, "score_maximum": max, "category": cat}),
            ),
        )
        .await;
        assert_eq!(st, 201, "{b}");
    }
    for (u, role, name) in [
        ("ada", "Learner", "Ada Lovelace"),
        ("alan", "Learner", "Alan Turing"),
        ("grace", "Instructor", "Grace Hopper"),
    ] {
        let (st, b) = call(app, "PUT", &format!("/api/courses/{C}/enrollments/{u}"), s,
            Some(json!({"role": role, "status": "active", "name": name, "email": format!("{u}@example.edu")}))).await;
        assert_eq!(st, 201, "{b}");
    }
}

on_both_stores! {
    async fn a_registrar_manages_a_course_from_opening_to_lock_over_http(app: TestApp) {
        setup(&app).await;
        let sis = app.sis.clone();
        let reg = app.registrar.clone();
        let s = Some(sis.as_str());

        // Opening the same course twice is a conflict.
        let (st, b) = call(&app, "POST", "/api/courses", s, Some(json!({"course_id": C, "title": "x", "term": "2026FA"}))).await;
        assert_error(st, &b, 409, "course_exists");

        // The course: policy as set, decimals as strings, counts of learners and items.
        let (st, c) = call(&app, "GET", &format!("/api/courses/{C}"), Some(&app.auditor), None).await;
        assert_eq!(st, 200, "{c}");
        assert_eq!(c["title"], "World History");
        assert_eq!(c["term"], "2026FA");
        assert_eq!(c["locked"], false);
        assert_eq!(c["students"], 2, "instructors are not students");
        assert_eq!(c["line_items"], 3);
        assert_eq!(c["grading"]["scheme"], "weighted");
        assert_eq!(c["grading"]["categories"], json!([{"name": "Exams", "weight": "70"}, {"name": "Quizzes", "weight": "30"}]));
        assert_eq!(c["grading"]["scale"][1], json!({"letter": "B", "min_percent": "80"}));
        assert_eq!(c["grading"]["missing"], "exclude");

        // Replacing an enrollment answers 200 and keeps one row.
        let (st, e) = call(&app, "PUT", &format!("/api/courses/{C}/enrollments/ada"), s,
            Some(json!({"role": "Learner", "name": "Ada King"}))).await;
        assert_eq!(st, 200, "{e}");
        assert_eq!(e["name"], "Ada King");
        assert_eq!(e["status"], "active");

        // A line item without an id gets one that survives lower-casing, and its AGS URL.
        let (st, li) = call(&app, "POST", &format!("/api/courses/{C}/line-items"), s,
            Some(json!({"label": "Participation", "score_maximum": 5, "weight": "10", "completion_only": true}))).await;
        assert_eq!(st, 201, "{li}");
        let new_id = li["line_item_id"].as_str().unwrap().to_string();
        assert_eq!(new_id, new_id.to_lowercase());
        assert_eq!(li["id"], format!("{}/lti/courses/{C}/lineitems/{new_id}", app.base));
        assert_eq!(li["score_maximum"], "5");
        assert_eq!(li["weight"], "10");
        assert_eq!(li["completion_only"], true);
        assert_eq!(li["course_total"], false);

        // PATCH changes what is sent; null clears the weight.
        let (st, li) = call(&app, "PATCH", &format!("/api/courses/{C}/line-items/{new_id}"), s,
            Some(json!({"label": "Class participation", "weight": null, "category": "Quizzes"}))).await;
        assert_eq!(st, 200, "{li}");
        assert_eq!(li["label"], "Class participation");
        assert_eq!(li["weight"], Value::Null);
        assert_eq!(li["category"], "Quizzes");
        assert_eq!(li["score_maximum"], "5", "untouched fields stay");

        // Deleting hides it from the list; history keeps it.
        let (st, _) = call(&app, "DELETE", &format!("/api/courses/{C}/line-items/{new_id}"), s, None).await;
        assert_eq!(st, 204);
        let (_, list) = call(&app, "GET", &format!("/api/courses/{C}/line-items"), Some(&app.auditor), None).await;
        let ids: Vec<&str> = list["line_items"].as_array().unwrap().iter().map(|i| i["line_item_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["exam1", "quiz1", "quiz2"]);
        let (_, all) = call(&app, "GET", &format!("/api/courses/{C}/line-items?include_deleted=true"), Some(&app.auditor), None).await;
        assert_eq!(all["line_items"][3]["deleted"], true);
        let (st, b) = call(&app, "DELETE", &format!("/api/courses/{C}/line-items/{new_id}"), s, None).await;
        assert_error(st, &b, 404, "line_item_deleted");

        // Lock and unlock answer the new state and are idempotent.
        let before = app.event_count().await;
        let (st, l) = call(&app, "POST", &format!("/api/courses/{C}/lock"), Some(&reg), Some(json!({"reason": "grades issued"}))).await;
        assert_eq!(st, 200, "{l}");
        assert_eq!((l["locked"].clone(), l["changed"].clone()), (json!(true), json!(true)));
        assert!(l["locked_at"].is_string());
        let (st, l) = call(&app, "POST", &format!("/api/courses/{C}/lock"), Some(&reg), None).await;
        assert_eq!(st, 200, "{l}");
        assert_eq!((l["locked"].clone(), l["changed"].clone()), (json!(true), json!(false)));
        assert_eq!(app.event_count().await, before + 1, "a repeated lock records nothing");
        let (_, list) = call(&app, "GET", "/api/courses", Some(&app.auditor), None).await;
        assert_eq!(list["courses"][0]["course_id"], C);
        assert_eq!(list["courses"][0]["locked"], true);
        let (st, l) = call(&app, "POST", &format!("/api/courses/{C}/unlock"), Some(&reg), None).await;
        assert_eq!(st, 200, "{l}");
        assert_eq!((l["locked"].clone(), l["changed"].clone(), l["locked_at"].clone()), (json!(false), json!(true), Value::Null));
        let (_, l) = call(&app, "POST", &format!("/api/courses/{C}/unlock"), Some(&reg), None).await;
        assert_eq!(l["changed"], false);
        assert_eq!(app.event_count().await, before + 2);

        // Dropping keeps the person, marked dropped; a learner fewer.
        let (st, d) = call(&app, "DELETE", &format!("/api/courses/{C}/enrollments/alan"), s, None).await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(d["status"], "dropped");
        let (_, people) = call(&app, "GET", &format!("/api/courses/{C}/enrollments"), Some(&app.auditor), None).await;
        let statuses: Vec<(String, String)> = people["enrollments"].as_array().unwrap().iter()
            .map(|p| (p["user_id"].as_str().unwrap().into(), p["status"].as_str().unwrap().into())).collect();
        assert_eq!(statuses, [("ada".into(), "active".into()), ("alan".into(), "dropped".into()), ("grace".into(), "active".into())]);
        let (_, c) = call(&app, "GET", &format!("/api/courses/{C}"), Some(&app.auditor), None).await;
        assert_eq!(c["students"], 1);
        assert_eq!(c["line_items"], 3);

        // The term filter.
        let (_, none) = call(&app, "GET", "/api/courses?term=2027SP", Some(&app.auditor), None).await;
        assert_eq!(none["courses"], json!([]));
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_missing_or_revoked_token_is_401_and_a_wrong_role_is_403_on_every_write_route(app: TestApp) {
        setup(&app).await;
        use gradebook::services::api_tokens::{create, revoke, ApiRole};
        let (info, revoked) = create(&app.db, ApiRole::Sis, None).await.unwrap();
        assert!(revoke(&app.db, &info.token_id).await.unwrap());
        let sis = app.sis.clone();
        let reg = app.registrar.clone();
        let aud = app.auditor.clone();
        // (method, path, body, token of a role that may not do it)
        let routes: Vec<(&str, String, Option<Value>, Vec<&str>)> = vec![
            ("POST", "/api/courses".into(), Some(json!({"course_id": "NEW-1", "title": "t", "term": "x"})), vec![&aud, &reg]),
            ("PUT", format!("/api/courses/{C}/grading"), Some(json!({"scheme": "points"})), vec![&aud, &reg]),
            ("POST", format!("/api/courses/{C}/tools"), Some(json!({"tool_ids": []})), vec![&aud]),
            ("POST", format!("/api/courses/{C}/lock"), None, vec![&aud, &sis]),
            ("POST", format!("/api/courses/{C}/unlock"), None, vec![&aud, &sis]),
            ("PUT", format!("/api/courses/{C}/enrollments/zed"), Some(json!({"role": "Learner"})), vec![&aud, &reg]),
            ("DELETE", format!("/api/courses/{C}/enrollments/ada"), None, vec![&aud, &reg]),
            ("POST", format!("/api/courses/{C}/line-items"), Some(json!({"label": "L", "score_maximum": 1})), vec![&aud, &reg]),
            ("PATCH", format!("/api/courses/{C}/line-items/quiz1"), Some(json!({"label": "L"})), vec![&aud, &reg]),
            ("DELETE", format!("/api/courses/{C}/line-items/quiz1"), None, vec![&aud, &reg]),
        ];
        let before = app.event_count().await;
        for (method, path, body, wrong) in &routes {
            let (st, b) = call(&app, method, path, None, body.clone()).await;
            assert_error(st, &b, 401, "unauthorized");
            let (st, b) = call(&app, method, path, Some("gb_nothing_here"), body.clone()).await;
            assert_error(st, &b, 401, "unauthorized");
            let (st, b) = call(&app, method, path, Some(&revoked), body.clone()).await;
            assert_error(st, &b, 401, "unauthorized");
            for t in wrong {
                let (st, b) = call(&app, method, path, Some(t), body.clone()).await;
                assert_error(st, &b, 403, "forbidden");
            }
        }
        assert_eq!(app.event_count().await, before, "refused calls record nothing");
        // Every role reads.
        for t in [&aud, &reg, &sis] {
            for path in ["/api/courses".to_string(), format!("/api/courses/{C}"), format!("/api/courses/{C}/enrollments"),
                         format!("/api/courses/{C}/line-items"), format!("/api/courses/{C}/line-items/quiz1"),
                         format!("/api/courses/{C}/enrollments/ada")] {
                let (st, b) = call(&app, "GET", &path, Some(t), None).await;
                assert_eq!(st, 200, "{path}: {b}");
            }
        }
        let (st, b) = call(&app, "GET", "/api/courses", Some(&revoked), None).await;
        assert_error(st, &b, 401, "unauthorized");
        app.stop().await;
    }
}

on_both_stores! {
    async fn bad_input_gets_a_json_error_and_records_nothing(app: TestApp) {
        setup(&app).await;
        let sis = app.sis.clone();
        let reg = app.registrar.clone();
        let before = app.event_count().await;
        let li = format!("/api/courses/{C}/line-items");
        let grading = format!("/api/courses/{C}/grading");

        // Raw bodies: malformed JSON, the wrong content type, numbers JSON cannot hold.
        let cases: Vec<(&str, String, &str, &str, u16, &str)> = vec![
            ("POST", li.clone(), "application/json", "{\"label\": \"x\", ", 400, "invalid_json"),
            ("POST", li.clone(), "text/plain", "{\"label\": \"x\", \"score_maximum\": 1}", 415, "unsupported_media_type"),
            ("POST", li.clone(), "application/json", "{\"label\": \"x\", \"score_maximum\": 1e309}", 400, "invalid_json"),
            ("POST", li.clone(), "application/json", "{\"label\": \"x\", \"score_maximum\": NaN}", 400, "invalid_json"),
            ("POST", format!("/api/courses/{C}/lock"), "text/plain", "reason=because", 415, "unsupported_media_type"),
            ("POST", format!("/api/courses/{C}/lock"), "application/json", "{\"reason\": ", 400, "invalid_json"),
        ];
        for (method, path, ctype, body, status, code) in cases {
            let token = if path.ends_with("/lock") { &reg } else { &sis };
            let (st, b) = app.send_text(method, &path, token, ctype, body).await;
            assert_error(st, &b, status, code);
        }

        // Well-formed JSON with wrong content.
        let cases: Vec<(&str, String, Value, u16, &str)> = vec![
            ("POST", li.clone(), json!({"label": "x", "score_maximum": "abc"}), 422, "invalid_body"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": "NaN"}), 422, "invalid_body"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": "1e309"}), 422, "invalid_body"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": 1e300}), 422, "invalid_body"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": 0}), 422, "invalid_score_maximum"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": 10, "points": 3}), 422, "invalid_body"),
            ("POST", li.clone(), json!({"label": "", "score_maximum": 10}), 422, "invalid_line_item"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": 10, "line_item_id": "no spaces"}), 400, "invalid_id"),
            ("POST", li.clone(), json!({"label": "x", "score_maximum": 10, "line_item_id": "exam1"}), 409, "line_item_exists"),
            ("PATCH", format!("{li}/exam1"), json!({"label": null}), 422, "invalid_line_item"),
            ("PATCH", format!("{li}/exam1"), json!({"weight": "-5"}), 422, "invalid_line_item"),
            ("PATCH", format!("{li}/nope"), json!({"label": "x"}), 404, "line_item_not_found"),
            ("PUT", grading.clone(), json!({"scheme": "weighted"}), 422, "invalid_grading"),
            ("PUT", grading.clone(), json!({"scheme": "points", "categories": [{"name": "A", "weight": 1}]}), 422, "invalid_grading"),
            ("PUT", grading.clone(), json!({"scheme": "weighted", "categories": [{"name": "Exams", "weight": "-1"}]}), 422, "invalid_grading"),
            ("PUT", grading.clone(), json!({"scheme": "weighted", "categories": [{"name": "Exams", "weight": "ten"}]}), 422, "invalid_body"),
            ("PUT", grading.clone(), json!({"scheme": "letters"}), 422, "invalid_body"),
            ("PUT", grading.clone(), json!({"scheme": "points", "missing": "ignore"}), 422, "invalid_body"),
            ("PUT", grading.clone(), json!({"scheme": "points", "scale": [{"letter": "A", "min_percent": "x"}]}), 422, "invalid_body"),
            ("PUT", grading.clone(), json!({"scheme": "points", "scale": [{"letter": "A", "min_percent": 90}, {"letter": "A", "min_percent": 80}]}), 422, "invalid_grading"),
            ("PUT", format!("/api/courses/{C}/enrollments/zed"), json!({"role": "Wizard"}), 422, "invalid_enrollment"),
            ("PUT", format!("/api/courses/{C}/enrollments/zed"), json!({"role": "Learner", "status": "gone"}), 422, "invalid_body"),
            ("PUT", format!("/api/courses/{C}/enrollments/zed"), json!({"role": "Learner", "nickname": "z"}), 422, "invalid_body"),
            ("PUT", format!("/api/courses/{C}/enrollments/bad%20id"), json!({"role": "Learner"}), 400, "invalid_id"),
            ("DELETE", format!("/api/courses/{C}/enrollments/nobody"), Value::Null, 404, "not_enrolled"),
            ("POST", "/api/courses".into(), json!({"course_id": "has/slash", "title": "t", "term": "x"}), 400, "invalid_id"),
            ("POST", "/api/courses".into(), json!({"course_id": "bad id", "title": "t", "term": "x"}), 400, "invalid_id"),
            ("POST", "/api/courses".into(), json!({"course_id": "NEW-1", "title": "t", "term": "x", "tool_ids": ["no-such-tool"]}), 422, "tool_not_found"),
            ("POST", "/api/courses".into(), json!({"course_id": "NEW-1", "title": "t"}), 422, "invalid_body"),
            // An unknown course, on every write route that names one.
            ("PUT", "/api/courses/NOPE/grading".into(), json!({"scheme": "points"}), 404, "course_not_found"),
            ("PUT", "/api/courses/NOPE/enrollments/ada".into(), json!({"role": "Learner"}), 404, "course_not_found"),
            ("DELETE", "/api/courses/NOPE/enrollments/ada".into(), Value::Null, 404, "course_not_found"),
            ("POST", "/api/courses/NOPE/line-items".into(), json!({"label": "x", "score_maximum": 1}), 404, "course_not_found"),
            ("PATCH", "/api/courses/NOPE/line-items/exam1".into(), json!({"label": "x"}), 404, "course_not_found"),
            ("DELETE", "/api/courses/NOPE/line-items/exam1".into(), Value::Null, 404, "course_not_found"),
            ("POST", "/api/courses/NOPE/tools".into(), json!({"tool_ids": []}), 404, "course_not_found"),
        ];
        for (method, path, body, status, code) in cases {
            let body = (!body.is_null()).then_some(body.clone());
            let (st, b) = call(&app, method, &path, Some(&sis), body.clone()).await;
            assert_eq!(st, status, "{method} {path} {body:?}: {b}");
            assert_error(st, &b, status, code);
        }
        for path in ["/api/courses/NOPE/lock", "/api/courses/NOPE/unlock"] {
            let (st, b) = call(&app, "POST", path, Some(&reg), None).await;
            assert_error(st, &b, 404, "course_not_found");
        }
        for path in ["/api/courses/NOPE", "/api/courses/NOPE/enrollments", "/api/courses/NOPE/line-items", "/api/courses/NOPE/line-items/exam1"] {
            let (st, b) = call(&app, "GET", path, Some(&app.auditor), None).await;
            assert_error(st, &b, 404, "course_not_found");
        }
        let (st, b) = call(&app, "GET", "/api/courses?colour=red", Some(&app.auditor), None).await;
        assert_error(st, &b, 400, "invalid_query");
        assert_eq!(app.event_count().await, before, "bad input records nothing");
        app.stop().await;
    }
}

on_both_stores! {
    async fn every_write_records_the_callers_token_and_source_in_the_event_metadata(app: TestApp) {
        setup(&app).await;
        let reg = app.registrar.clone();
        let (st, _) = call(&app, "POST", &format!("/api/courses/{C}/lock"), Some(&reg), Some(json!({"reason": "final"}))).await;
        assert_eq!(st, 200);
        let events = gradebook::projections::reports::audit::read_course_events(&app.db, C).await.unwrap();
        let sis_actor = format!("token:{}", token_id(&app.sis));
        let reg_actor = format!("token:{}", token_id(&app.registrar));
        // Course opened, grading and scale set, 3 line items, 3 enrollments, locked.
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types.len(), 10, "{types:?}");
        for e in &events[..9] {
            assert_eq!(e.meta.actor, sis_actor, "{}", e.event_type);
            assert_eq!(e.meta.source, Source::Sis, "{}", e.event_type);
            assert!(!e.meta.request_id.is_empty());
        }
        let lock = events.last().unwrap();
        assert_eq!(lock.event_type, "CourseLocked");
        assert_eq!(lock.meta.actor, reg_actor);
        assert_eq!(lock.meta.source, Source::Registrar);
        // The request id is the one the caller sent.
        let res = app.client.post(app.url(&format!("/api/courses/{C}/unlock")))
            .bearer_auth(&reg).header("x-request-id", "unlock-req-42").send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let events = gradebook::projections::reports::audit::read_course_events(&app.db, C).await.unwrap();
        assert_eq!(events.last().unwrap().meta.request_id, "unlock-req-42");
        app.stop().await;
    }
}

on_both_stores! {
    async fn scores_posted_through_the_engine_show_in_the_grades_as_calculated_by_hand(app: TestApp) {
        setup(&app).await;
        let e = app.engine();
        let sc = |u: &'static str, i: &'static str, given: &'static str, max: &'static str, ts: &'static str| async move {
            e.post_score(&course(), &item(i), &user(u), post(Some(given), max, ts), &meta(Source::Ags)).await.unwrap()
        };
        // Ada: exam1 45/50 -> 90/100; quiz1 15/20, quiz2 18/20 -> Quizzes 33/40 = 82.5%.
        assert_eq!(sc("ada", "exam1", "45", "50", "2026-10-01T10:00:00Z").await, ScoreOutcome::Accepted);
        sc("ada", "quiz1", "15", "20", "2026-09-10T10:00:00Z").await;
        sc("ada", "quiz2", "18", "20", "2026-09-17T10:00:00Z").await;
        // Alan: quiz1 only, 20/20.
        sc("alan", "quiz1", "20", "20", "2026-09-10T10:00:00Z").await;

        let (st, g) = app.get_json(&format!("/api/courses/{C}/grades")).await;
        assert_eq!(st, 200, "{g}");
        assert_eq!(g["scheme"], "weighted");
        assert_eq!(g["students"].as_array().unwrap().len(), 2, "the instructor has no row");
        // (90 x 70 + 82.5 x 30) / 100 = 63 + 24.75 = 87.75: a B (80 <= 87.75 < 90).
        let ada = student(&g, "ada");
        assert_eq!(ada["percent"], "87.75");
        assert_eq!(ada["letter"], "B");
        assert_eq!(ada["points_earned"], "123.00", "90 + 15 + 18");
        assert_eq!(ada["points_possible"], "140.00", "100 + 20 + 20");
        // Alan has only Quizzes counted: renormalised over Quizzes, 20/20 = 100.00, an A.
        let alan = student(&g, "alan");
        assert_eq!(alan["percent"], "100.00");
        assert_eq!(alan["letter"], "A");

        // With missing = zero, Alan's exam1 is 0/100 and quiz2 0/20:
        // Exams 0%, Quizzes 20/40 = 50%: (0 x 70 + 50 x 30) / 100 = 15.00, an F.
        let (st, b) = call(&app, "PUT", &format!("/api/courses/{C}/grading"), Some(&app.sis), Some(json!({
            "scheme": "weighted", "categories": [{"name": "Exams", "weight": "70"}, {"name": "Quizzes", "weight": "30"}], "missing": "zero"
        }))).await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["grading"]["scale"][0]["letter"], "A", "leaving the scale out keeps it");
        let (_, g) = app.get_json(&format!("/api/courses/{C}/grades")).await;
        let alan = student(&g, "alan");
        assert_eq!(alan["percent"], "15.00");
        assert_eq!(alan["letter"], "F");
        assert_eq!(student(&g, "ada")["percent"], "87.75", "Ada has no missing item");

        // Locked, a changed score is refused and the grade stays.
        let (st, _) = call(&app, "POST", &format!("/api/courses/{C}/lock"), Some(&app.registrar), None).await;
        assert_eq!(st, 200);
        assert_eq!(sc("ada", "exam1", "50", "50", "2026-10-02T10:00:00Z").await, ScoreOutcome::Rejected(RejectReason::CourseLocked));
        let (_, g) = app.get_json(&format!("/api/courses/{C}/grades")).await;
        assert_eq!(student(&g, "ada")["percent"], "87.75");
        app.stop().await;
    }
}

/// The value of one Prometheus series, 0 when absent.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (metric, rest) = head.split_once('{').unwrap_or((head, "}"));
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

async fn metrics_text(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    res.text().await.unwrap()
}

on_both_stores! {
    async fn score_posts_and_requests_move_the_prometheus_counters(app: TestApp) {
        setup(&app).await;
        let e = app.engine();
        let m0 = metrics_text(&app).await;
        let count = |t: &str, outcome: &str, reason: &str| series(t, "gradebook_score_posts_total", &[("outcome", outcome), ("reason", reason)]);
        let p = |u: &'static str, given: &'static str, ts: &'static str| async move {
            e.post_score(&course(), &item("quiz1"), &user(u), post(Some(given), "20", ts), &meta(Source::Ags)).await.unwrap()
        };
        assert_eq!(p("ada", "10", "2026-09-10T10:00:00Z").await, ScoreOutcome::Accepted);
        assert_eq!(p("ada", "10", "2026-09-10T10:00:00Z").await, ScoreOutcome::Unchanged);
        assert_eq!(p("ada", "12", "2026-09-09T10:00:00Z").await, ScoreOutcome::IgnoredStale);
        assert_eq!(p("nobody", "12", "2026-09-09T10:00:00Z").await, ScoreOutcome::Rejected(RejectReason::UserNotEnrolled));
        let (st, _) = call(&app, "GET", &format!("/api/courses/{C}"), Some(&app.auditor), None).await;
        assert_eq!(st, 200);
        let m1 = metrics_text(&app).await;
        // Other tests in this process post scores too: counters only grow.
        for (outcome, reason) in [("accepted", ""), ("unchanged", ""), ("ignored_stale", ""), ("rejected", "user_not_enrolled")] {
            assert!(count(&m1, outcome, reason) >= count(&m0, outcome, reason) + 1.0, "{outcome} {reason}\n{m1}");
        }
        // Requests are counted by route template, not by path.
        let by_route = |t: &str| series(t, "gradebook_http_requests_total", &[("method", "GET"), ("route", "/api/courses/{course_id}"), ("status", "200")]);
        assert!(by_route(&m1) >= by_route(&m0) + 1.0, "{m1}");
        assert!(!m1.contains(&format!("route=\"/api/courses/{C}\"")));
        assert!(m1.contains("gradebook_projector_lag_events"), "{m1}");
        assert!(m1.contains("gradebook_projector_lag_seconds"), "{m1}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn readyz_reports_the_projector_lag_and_answers_503_when_the_database_is_gone(app: TestApp) {
        setup(&app).await;
        let res = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let r: Value = res.json().await.unwrap();
        assert_eq!(r["status"], "ready", "{r}");
        assert_eq!(r["store"]["ok"], true);
        assert_eq!(r["projector"]["events_in_log"], app.event_count().await);
        // Every write waited for the projector, so nothing is left to apply.
        assert_eq!(r["projector"]["lag"]["events"], 0, "{r}");
        assert_eq!(r["projector"]["lag"]["oldest_unapplied_seconds"], 0.0, "{r}");
        // No transaction holds the projector back.
        assert_eq!(r["projector"]["held_back_by"], json!([]), "{r}");

        match &app.db {
            gradebook::projections::db::Db::Postgres(p) => p.close().await,
            gradebook::projections::db::Db::Sqlite(p) => p.close().await,
        }
        let res = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 503);
        let r: Value = res.json().await.unwrap();
        assert_eq!(r["status"], "unavailable", "{r}");
        assert!(r["reason"].as_str().is_some_and(|s| s.contains("database")), "{r}");
        // A write now answers 503 in the error shape, not 500.
        let (st, b) = call(&app, "GET", "/api/courses", Some(&app.auditor), None).await;
        assert_error(st, &b, 503, "unavailable");
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_openapi_document_lists_every_route_the_router_registers_and_no_other(app: TestApp) {
        let res = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let doc: Value = res.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

        let mut registered = route_source::registered_routes();
        // The registrar web pages under /ui answer HTML to a browser session,
        // not JSON to a token: they are described in docs/ui.md, not here.
        let pages = registered.iter().filter(|(p, _)| p == "/ui" || p.starts_with("/ui/")).count();
        assert!(pages > 0, "the route extractor found no /ui page routes");
        registered.retain(|(p, _)| p != "/ui" && !p.starts_with("/ui/"));
        // The extractor itself must see the shapes the router uses: a
        // chained method router, a multi-line one and a layered one.
        for want in [
            ("/api/courses", "get"),
            ("/api/courses", "post"),
            ("/api/courses/{course_id}/line-items/{line_item_id}", "delete"),
            ("/api/courses/{course_id}/backfill", "post"),
            ("/lti/token", "post"),
        ] {
            assert!(
                registered.contains(&(want.0.to_string(), want.1.to_string())),
                "the route extractor missed {want:?}; it found {registered:?}"
            );
        }

        let documented = route_source::documented_routes(&doc);
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        assert!(undocumented.is_empty(),
            "routes missing from /api/openapi.json (annotate the handler with #[utoipa::path] and add it to paths(...)): {undocumented:?}");
        let unrouted: Vec<_> = documented.difference(&registered).collect();
        assert!(unrouted.is_empty(), "the document lists routes the router does not have: {unrouted:?}");

        // Every operation is in one of the four groups, describes its error
        // bodies, and says how to authenticate where it needs a token.
        for (path, method) in &documented {
            let op = &doc["paths"][path][method];
            let tag = op["tags"][0].as_str().unwrap_or_default();
            assert!(["registrar", "reports", "lti", "operations"].contains(&tag), "{method} {path} is tagged {tag:?}");
            let schemes: Vec<&str> = op["security"].as_array().into_iter().flatten()
                .filter_map(|s| s.as_object()).flat_map(|s| s.keys()).map(String::as_str).collect();
            for (status, answer) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') {
                    assert!(answer["content"]["application/json"]["schema"].is_object(),
                        "{method} {path} {status} does not describe its JSON error body");
                }
            }
            if path.starts_with("/api/") && path != "/api/openapi.json" {
                assert_eq!(schemes, ["bearer"], "{method} {path} needs an API token");
            } else if path.starts_with("/lti/courses/") {
                assert_eq!(schemes, ["lti_access_token"], "{method} {path} needs an LTI access token");
            }
        }
        for scheme in ["bearer", "lti_access_token", "registration_token"] {
            assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme} scheme missing");
        }

        // The media types are those the handlers read and send.
        let content = |path: &str, method: &str| doc["paths"][path][method]["requestBody"]["content"].clone();
        assert!(content("/lti/token", "post")["application/x-www-form-urlencoded"].is_object());
        assert!(content("/lti/authorize", "post")["application/x-www-form-urlencoded"].is_object());
        assert!(content("/lti/deep-linking/return", "post")["application/x-www-form-urlencoded"].is_object());
        let backfill = content("/api/courses/{course_id}/backfill", "post");
        assert!(backfill["text/csv"].is_object() && backfill["application/x-ndjson"].is_object(), "{backfill}");
        assert!(content("/lti/courses/{course_id}/lineitems/{line_item_id}/scores", "post")
            ["application/vnd.ims.lis.v1.score+json"].is_object());
        let answer = |path: &str, status: &str| doc["paths"][path]["get"]["responses"][status]["content"].clone();
        assert!(answer("/lti/courses/{course_id}/lineitems", "200")["application/vnd.ims.lis.v2.lineitemcontainer+json"].is_object());
        assert!(answer("/lti/courses/{course_id}/lineitems/{line_item_id}", "200")["application/vnd.ims.lis.v2.lineitem+json"].is_object());
        assert!(answer("/lti/courses/{course_id}/lineitems/{line_item_id}/results", "200")["application/vnd.ims.lis.v2.resultcontainer+json"].is_object());
        assert!(answer("/lti/courses/{course_id}/memberships", "200")["application/vnd.ims.lti-nrps.v2.membershipcontainer+json"].is_object());

        // The request bodies are described, with decimals as strings.
        let new_item = &doc["components"]["schemas"]["NewLineItem"];
        assert_eq!(new_item["properties"]["score_maximum"]["type"], "string", "{new_item}");
        let form = &doc["components"]["schemas"]["DeepLinkingReturn"];
        assert!(form["properties"]["JWT"].is_object(), "{form}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_wrong_method_on_a_known_path_answers_405_in_the_error_shape_with_allow(app: TestApp) {
        let before = app.event_count().await;
        let sis = app.sis.clone();
        for (method, path, allowed) in [
            ("GET", "/lti/token".to_string(), &["POST"][..]),
            ("DELETE", "/api/courses".to_string(), &["GET", "POST"]),
            ("PUT", "/.well-known/jwks.json".to_string(), &["GET"]),
            ("POST", format!("/api/courses/{C}/grades"), &["GET"]),
            ("GET", format!("/api/courses/{C}/backfill"), &["POST"]),
            ("POST", format!("/lti/courses/{C}/lineitems/x/results"), &["GET"]),
        ] {
            let res = app.client.request(method.parse().unwrap(), app.url(&path))
                .bearer_auth(&sis)
                .header("x-request-id", "wrong-method-1")
                .json(&json!({"course_id": C}))
                .send().await.unwrap();
            let status = res.status().as_u16();
            let allow = res.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_error(status, &body, 405, "method_not_allowed");
            assert_eq!(body["request_id"], "wrong-method-1", "{body}");
            let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
            for m in allowed {
                assert!(listed.contains(m), "{method} {path}: Allow is {allow:?}, want {m}");
            }
            assert!(body["message"].as_str().unwrap().contains(method), "{body}");
        }
        assert_eq!(app.event_count().await, before, "a refused method changes nothing");
        // An unknown path is still a 404, not a 405.
        let (status, body) = call(&app, "DELETE", "/api/no-such-thing", Some(&sis), None).await;
        assert_error(status, &body, 404, "not_found");
        app.stop().await;
    }
}

/// Reads the router's route registrations from the source, so the
/// OpenAPI test cannot go stale when someone adds a route.
mod route_source {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::Value;

    /// What a method router may be built from; `get(h)` also answers HEAD,
    /// which the document does not list separately.
    const METHODS: [&str; 8] = [
        "get", "post", "put", "patch", "delete", "head", "options", "trace",
    ];
    /// Calls on a method router that add no route.
    const NOT_METHODS: [&str; 3] = ["layer", "route_layer", "with_state"];

    /// Every `(path, method)` registered with `.route("PATH", get(..).post(..))`
    /// in any `.rs` file under `src/`.
    pub fn registered_routes() -> BTreeSet<(String, String)> {
        let mut files = Vec::new();
        rust_files(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut routes = BTreeSet::new();
        for file in files {
            let text = without_line_comments(&std::fs::read_to_string(&file).unwrap());
            for other in [".nest(", ".nest_service(", ".route_service("] {
                // These would hide routes from the reading below; teach it
                // about them before using them.
                assert!(
                    !text.contains(other),
                    "{} uses {other}, which this test cannot read",
                    file.display()
                );
            }
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let (path, methods) = parse_route_args(rest).unwrap_or_else(|e| {
                    panic!("{}: cannot read a .route( call: {e}", file.display())
                });
                for m in methods {
                    routes.insert((path.clone(), m));
                }
            }
        }
        routes
    }

    /// Every `(path, method)` in an OpenAPI document's `paths`.
    pub fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if METHODS.contains(&method.as_str()) {
                    out.insert((path.clone(), method.clone()));
                }
            }
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Drops whole-line comments (doc comments mention routes in prose);
    /// `//` inside code lines is left alone, as URLs contain it.
    fn without_line_comments(text: &str) -> String {
        text.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads `"PATH", ctor(..).m(..).layer(..))` (what follows `.route(`)
    /// and returns the path and the HTTP methods of the chain.
    fn parse_route_args(s: &str) -> Result<(String, Vec<String>), String> {
        let s = s.trim_start();
        let s = s
            .strip_prefix('"')
            .ok_or("the path is not a string literal")?;
        let end = s.find('"').ok_or("unterminated path")?;
        let path = s[..end].to_string();
        let mut s = s[end + 1..]
            .trim_start()
            .strip_prefix(',')
            .ok_or("no comma after the path")?;
        let mut methods = Vec::new();
        let mut first = true;
        loop {
            s = s.trim_start();
            // The end of `.route(`, perhaps after rustfmt's trailing comma.
            if s.starts_with(')') || s.starts_with(',') {
                break;
            }
            if !first {
                s = s
                    .strip_prefix('.')
                    .ok_or_else(|| format!("{path}: expected .call( in the method chain"))?;
            }
            // A call name, possibly qualified (`axum::routing::get`).
            let name_end = s
                .find('(')
                .ok_or_else(|| format!("{path}: expected a call"))?;
            let qualified = s[..name_end].trim();
            let name = qualified.rsplit("::").next().unwrap_or(qualified);
            if METHODS.contains(&name) {
                methods.push(name.to_string());
            } else if first || !NOT_METHODS.contains(&name) {
                return Err(format!(
                    "{path}: unknown method-router call {qualified}(; teach this test about it"
                ));
            }
            s = skip_balanced(&s[name_end..])
                .ok_or_else(|| format!("{path}: unbalanced parentheses"))?;
            first = false;
        }
        if methods.is_empty() {
            return Err(format!("{path}: no method found"));
        }
        Ok((path, methods))
    }

    /// Skips a parenthesised argument list starting at `(`, string
    /// literals included, and returns what follows it.
    fn skip_balanced(s: &str) -> Option<&str> {
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&s[i + 1..]);
                    }
                }
                _ => {}
            }
        }
        None
    }

    #[test]
    fn the_route_reader_sees_chained_layered_and_qualified_method_routers() {
        let (path, methods) = parse_route_args(
            r#""/a/{id}",
            axum::routing::get(h::get)
                .post(h::post)
                .layer(DefaultBodyLimit::max(f("x)y")))
                .delete(h::delete),
        )
        .route("/b", get(other))"#,
        )
        .unwrap();
        assert_eq!(path, "/a/{id}");
        assert_eq!(methods, ["get", "post", "delete"]);
        assert!(
            parse_route_args(r#""/c", any(h))"#).is_err(),
            "an unknown constructor is not skipped"
        );
        assert!(parse_route_args(r#""/c", get(h).frobnicate(x))"#).is_err());
    }
}

on_both_stores! {
    async fn a_course_deploys_only_registered_live_tools(app: TestApp) {
        use gradebook::services::tools::{insert, new_tool, revoke, Grading, Roster};
        let roster = Roster { access: true, hide_names: false, hide_emails: false };
        let moodle = new_tool("Moodle".into(), Grading::Full, roster, "manual");
        let h5p = new_tool("H5P".into(), Grading::SyncOnly, roster, "manual");
        let gone = new_tool("Old quiz tool".into(), Grading::Full, roster, "manual");
        for t in [&moodle, &h5p, &gone] {
            insert(&app.db, t).await.unwrap();
        }
        assert!(revoke(&app.db, &gone.tool_id).await.unwrap());
        let sis = app.sis.clone();
        let (st, c) = call(&app, "POST", "/api/courses", Some(&sis),
            Some(json!({"course_id": C, "title": "World History", "term": "2026FA", "tool_ids": [moodle.tool_id]}))).await;
        assert_eq!(st, 201, "{c}");
        assert_eq!(c["tool_ids"], json!([moodle.tool_id]));

        let before = app.event_count().await;
        let (st, b) = call(&app, "POST", &format!("/api/courses/{C}/tools"), Some(&sis),
            Some(json!({"tool_ids": [h5p.tool_id, gone.tool_id]}))).await;
        assert_error(st, &b, 422, "tool_not_found");
        assert_eq!(app.event_count().await, before, "a revoked tool refuses the whole request");

        let (st, c) = call(&app, "POST", &format!("/api/courses/{C}/tools"), Some(&app.registrar),
            Some(json!({"tool_ids": [h5p.tool_id, moodle.tool_id]}))).await;
        assert_eq!(st, 200, "{c}");
        let mut want = vec![moodle.tool_id.clone(), h5p.tool_id.clone()];
        want.sort();
        assert_eq!(c["tool_ids"], json!(want));
        assert_eq!(app.event_count().await, before + 1, "only the new tool is recorded");
        app.stop().await;
    }
}

/// Makes the projector fail every batch that inserts (`op` "INSERT") or
/// updates ("UPDATE") a row of `table` (it logs the failure and retries),
/// until [`stop_holding_rows`].
async fn hold_rows(db: &gradebook::projections::db::Db, table: &str, op: &str) {
    use gradebook::projections::db::Db;
    match db {
        Db::Postgres(pool) => {
            for sql in [
                "CREATE FUNCTION hold_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'rows held by the test'; END $$",
                &format!("CREATE TRIGGER hold_rows BEFORE {op} ON {table} FOR EACH ROW EXECUTE FUNCTION hold_rows()"),
            ] {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
        Db::Sqlite(pool) => {
            sqlx::query(&format!("CREATE TRIGGER hold_rows BEFORE {op} ON {table} BEGIN SELECT RAISE(ABORT, 'rows held by the test'); END"))
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn stop_holding_rows(db: &gradebook::projections::db::Db, table: &str) {
    use gradebook::projections::db::Db;
    match db {
        Db::Postgres(pool) => {
            for sql in [
                format!("DROP TRIGGER hold_rows ON {table}"),
                "DROP FUNCTION hold_rows()".to_string(),
            ] {
                sqlx::query(&sql).execute(pool).await.unwrap();
            }
        }
        Db::Sqlite(pool) => {
            sqlx::query("DROP TRIGGER hold_rows")
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

/// Sends a write while the projector cannot write `op` rows of `table`;
/// the answer must be 503 `not_yet_visible`. Returns its body. The rows
/// stay held until [`release_and_wait`].
async fn sent_while_held(
    app: &TestApp,
    (table, op): (&str, &str),
    (method, path, token, body): (&str, &str, &str, Option<Value>),
) -> Value {
    hold_rows(&app.db, table, op).await;
    let (st, b) = call(app, method, path, Some(token), body).await;
    assert_error(st, &b, 503, "not_yet_visible");
    b
}

/// Lets the projector write `table` again and waits until `path` shows the
/// change.
async fn release_and_wait(app: &TestApp, table: &str, path: &str, shown: impl Fn(&Value) -> bool) {
    stop_holding_rows(&app.db, table).await;
    wait_until_shown(app, path, shown).await;
}

/// Polls `path` as an auditor until `shown` holds for its 200 answer.
async fn wait_until_shown(app: &TestApp, path: &str, shown: impl Fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (st, b) = call(app, "GET", path, Some(&app.auditor), None).await;
        if st == 200 && shown(&b) {
            return;
        }
        assert!(st == 200 || st == 404, "{st} {b}");
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never showed the change: {b}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

on_both_stores! {
    async fn a_course_created_while_the_projector_is_held_back_is_503_not_yet_visible_not_404(app: TestApp) {
        let sis = app.sis.clone();
        let body = json!({"course_id": "LATE-101", "title": "Late", "term": "2026FA"});
        // The engine waits for the projector, gives up, and the course is
        // recorded but not readable: the answer says so (before, a 404
        // "does not exist; create it").
        let b = sent_while_held(&app, ("rm_courses", "INSERT"), ("POST", "/api/courses", &sis, Some(body.clone()))).await;
        assert!(b["message"].as_str().unwrap().contains("was created"), "{b}");
        // Recorded once: creating it again is a conflict, not a second course.
        let (st, b) = call(&app, "POST", "/api/courses", Some(&sis), Some(body)).await;
        assert_error(st, &b, 409, "course_exists");
        // Once the projector can write again, the course is there.
        release_and_wait(&app, "rm_courses", "/api/courses/LATE-101", |c| c["title"] == "Late").await;
    }
}

on_both_stores! {
    async fn a_lock_the_read_side_has_not_applied_is_503_not_yet_visible_not_200(app: TestApp) {
        setup(&app).await;
        let reg = app.registrar.clone();
        let lock = format!("/api/courses/{C}/lock");
        // The read side, which grade reports and the pages use, cannot show
        // the lock: a 200 would claim what they do not show (before, 200
        // with "locked": false, "changed": true). Score posts obey the lock
        // already: they are decided on the score gates, not the read side.
        let b = sent_while_held(&app, ("rm_courses", "UPDATE"), ("POST", &lock, &reg, None)).await;
        assert!(b["message"].as_str().unwrap().contains("score posts are refused already"), "{b}");
        let outcome = app
            .engine()
            .post_score(&course(), &item("exam1"), &user("ada"), post(Some("90"), "100", "2026-10-01T10:00:00Z"), &meta(Source::Ags))
            .await
            .unwrap();
        assert_eq!(outcome, ScoreOutcome::Rejected(RejectReason::CourseLocked));
        // Sending it again records nothing new and says the same.
        let events = app.event_count().await;
        let (st, b) = call(&app, "POST", &lock, Some(&reg), None).await;
        assert_error(st, &b, 503, "not_yet_visible");
        assert_eq!(app.event_count().await, events);
        // Once the projector can write again the lock is in force.
        release_and_wait(&app, "rm_courses", &format!("/api/courses/{C}"), |c| c["locked"] == true).await;
        let (st, b) = call(&app, "POST", &lock, Some(&reg), None).await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["locked"], true);
        assert_eq!(b["changed"], false);
    }
}

on_both_stores! {
    async fn an_enrollment_or_drop_the_read_side_has_not_applied_is_503_not_yet_visible(app: TestApp) {
        setup(&app).await;
        let sis = app.sis.clone();
        let new = format!("/api/courses/{C}/enrollments/late");
        let person = json!({"role": "Learner", "name": "Late Comer"});
        // A new enrollment the projector cannot write: recorded, and said so
        // (before, 404 "not_enrolled" right after enrolling).
        sent_while_held(&app, ("rm_enrollments", "INSERT"), ("PUT", &new, &sis, Some(person.clone()))).await;
        release_and_wait(&app, "rm_enrollments", &new, |e| e["status"] == "active").await;
        let (st, e) = call(&app, "PUT", &new, Some(&sis), Some(person)).await;
        assert_eq!((st, &e["role"]), (200, &json!("Learner")), "{e}");

        // A drop the projector cannot write: score posts would still take
        // the learner's scores, so it is not answered as done (before, 200
        // with "status": "active").
        let b = sent_while_held(&app, ("rm_enrollments", "UPDATE"), ("DELETE", &new, &sis, None)).await;
        assert!(b["message"].as_str().unwrap().contains("dropped"), "{b}");
        release_and_wait(&app, "rm_enrollments", &new, |e| e["status"] == "dropped").await;
        let (st, e) = call(&app, "DELETE", &new, Some(&sis), None).await;
        assert_eq!((st, &e["status"]), (200, &json!("dropped")), "{e}");
    }
}

on_both_stores! {
    async fn a_tool_deployment_the_read_side_has_not_applied_is_503_not_yet_visible(app: TestApp) {
        use gradebook::services::tools::{insert, new_tool, Grading, Roster};
        setup(&app).await;
        let roster = Roster { access: true, hide_names: false, hide_emails: false };
        let moodle = new_tool("Moodle".into(), Grading::Full, roster, "manual");
        insert(&app.db, &moodle).await.unwrap();
        let path = format!("/api/courses/{C}/tools");
        let body = json!({"tool_ids": [moodle.tool_id]});
        // The tool's launches and posts are checked against the read side's
        // deployments: not answered as deployed until they show it (before,
        // 200 with the tool missing from "tool_ids").
        sent_while_held(&app, ("rm_course_tools", "INSERT"), ("POST", &path, &app.registrar, Some(body.clone()))).await;
        release_and_wait(&app, "rm_course_tools", &format!("/api/courses/{C}"), |c| c["tool_ids"] == json!([moodle.tool_id])).await;
        let before = app.event_count().await;
        let (st, c) = call(&app, "POST", &path, Some(&app.registrar), Some(body)).await;
        assert_eq!(st, 200, "{c}");
        assert_eq!(c["tool_ids"], json!([moodle.tool_id]));
        assert_eq!(app.event_count().await, before, "sending it again records nothing");
    }
}

on_both_stores! {
    async fn a_grading_policy_the_read_side_has_not_applied_is_503_not_yet_visible(app: TestApp) {
        setup(&app).await;
        let sis = app.sis.clone();
        let path = format!("/api/courses/{C}/grading");
        let points = json!({"scheme": "points", "missing": "zero"});
        // Grade reports read the policy from the read side: not answered as
        // set until it shows it (before, 200 with the weighted policy).
        sent_while_held(&app, ("rm_courses", "UPDATE"), ("PUT", &path, &sis, Some(points.clone()))).await;
        release_and_wait(&app, "rm_courses", &format!("/api/courses/{C}"), |c| c["grading"]["scheme"] == "points").await;
        let (st, c) = call(&app, "PUT", &path, Some(&sis), Some(points)).await;
        assert_eq!(st, 200, "{c}");
        assert_eq!((&c["grading"]["scheme"], &c["grading"]["missing"]), (&json!("points"), &json!("zero")));
        // A weighted policy with weights written differently ("70.0" for
        // "70") is the same policy once applied: 200, not 503.
        let weighted = json!({"scheme": "weighted", "categories": [{"name": "Exams", "weight": "70.0"}, {"name": "Quizzes", "weight": "30"}]});
        let (st, c) = call(&app, "PUT", &path, Some(&sis), Some(weighted)).await;
        assert_eq!(st, 200, "{c}");
        assert_eq!(c["grading"]["scheme"], "weighted");
    }
}
