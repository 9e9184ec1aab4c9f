//! The registrar API over HTTP with real tokens, on PostgreSQL and on
//! SQLite: managing courses, people and line items, who may do what, how
//! bad input is answered, what the event log records about the caller, and
//! the operations endpoints (`/metrics`, `/readyz`, `/api/openapi.json`).

mod common;

use common::fixtures::{course, item, post, user};
use common::{meta, TestApp};
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
    let mut req = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A request with a raw body and content type.
async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    ctype: &str,
    body: &str,
) -> (u16, Value) {
    let res = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn token_id(token: &str) -> String {
    token
        .strip_prefix("gb_")
        .and_then(|s| s.split_once('_'))
        .map(|(id, _)| id.to_string())
        .expect("token shape")
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let text = body.to_string().to_lowercase();
    for leak in ["select ", "insert ", "panicked", "sqlx", "stack"] {
        assert!(!text.contains(leak), "{leak} leaked in {body}");
    }
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

fn student<'a>(grades: &'a Value, user: &str) -> &'a Value {
    grades["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user_id"] == user)
        .unwrap_or_else(|| panic!("{user} has no row in {grades}"))
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
        use gradebook::auth::{create, revoke, ApiRole};
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
            let (st, b) = raw(&app, method, &path, token, ctype, body).await;
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
        let events = gradebook::projections::events::read_course(&app.db, C).await.unwrap();
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
        let events = gradebook::projections::events::read_course(&app.db, C).await.unwrap();
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
    async fn the_openapi_document_lists_every_registrar_and_operations_route(app: TestApp) {
        let res = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let doc: Value = res.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let want = [
            ("/api/courses", &["post", "get"][..]),
            ("/api/courses/{course_id}", &["get"]),
            ("/api/courses/{course_id}/grading", &["put"]),
            ("/api/courses/{course_id}/tools", &["post"]),
            ("/api/courses/{course_id}/lock", &["post"]),
            ("/api/courses/{course_id}/unlock", &["post"]),
            ("/api/courses/{course_id}/enrollments", &["get"]),
            ("/api/courses/{course_id}/enrollments/{user_id}", &["put", "delete", "get"]),
            ("/api/courses/{course_id}/line-items", &["post", "get"]),
            ("/api/courses/{course_id}/line-items/{line_item_id}", &["patch", "delete", "get"]),
            ("/api/courses/{course_id}/grades", &["get"]),
            ("/healthz", &["get"]),
            ("/readyz", &["get"]),
            ("/metrics", &["get"]),
            ("/api/openapi.json", &["get"]),
        ];
        for (path, methods) in want {
            for m in methods {
                assert!(doc["paths"][path][m].is_object(), "{m} {path} missing from {}", doc["paths"]);
            }
        }
        // The request bodies are described, with decimals as strings.
        let new_item = &doc["components"]["schemas"]["NewLineItem"];
        assert_eq!(new_item["properties"]["score_maximum"]["type"], "string", "{new_item}");
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_course_deploys_only_registered_live_tools(app: TestApp) {
        use gradebook::lti::tools::{insert, new_tool, revoke, Grading, Roster};
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
