//! Input bounds over HTTP on both stores: numbers the grade arithmetic
//! cannot take are refused with 4xx in the JSON error shape and record
//! nothing, and the reports (grades, reconciliation, provenance, the
//! course pages) still answer for a log that holds such numbers from
//! before the bounds.

mod common;
#[allow(dead_code)]
#[path = "ui/support.rs"]
mod support;

use common::fixtures::{course, hist101, item, score, user};
use common::{meta, TestApp};
use gradebook::domain::course::{Course, CourseEvent};
use gradebook::domain::ids::aggregate_id;
use gradebook::domain::line_item::{LineItem, LineItemEvent, LineItemSpec};
use gradebook::domain::policy::{Category, MissingPolicy, Scheme};
use gradebook::domain::score::{Score, ScoreEvent};
use gradebook::domain::{CommandMeta, Source};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const C: &str = "HIST-101-2026FA";
/// Decimal::MAX, the tester's weight.
const HUGE: &str = "79228162514264337593543950335";

/// A request with a bearer token, query pairs encoded, and a JSON body.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(&app.url(path), query).unwrap();
    let mut req = app
        .client
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The JSON error shape with this status and code, and no leaked internals.
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
    for leak in ["select ", "panicked", "sqlx", "displacement", "overflow"] {
        assert!(!text.contains(leak), "{leak} leaked in {body}");
    }
}

/// A page of the registrar UI, with a query: its status and text.
async fn page(s: &support::Session, path: &str, query: &[(&str, &str)]) -> (u16, String) {
    let url = reqwest::Url::parse_with_params(&format!("http://x{path}"), query).unwrap();
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let res = s.get(&path).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The reports every registrar opens answer 200 for the course.
async fn reports_answer(app: &TestApp, s: &support::Session) {
    for path in [
        format!("/api/courses/{C}/reconciliation"),
        format!("/api/courses/{C}/grades"),
        format!("/api/courses/{C}/students/ada/provenance"),
    ] {
        let (status, body) = call(app, "GET", &path, &app.auditor, &[], None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for path in [
        "/ui/courses".to_string(),
        format!("/ui/courses/{C}"),
        format!("/ui/courses/{C}/students/ada"),
    ] {
        let (status, html) = page(s, &path, &[]).await;
        assert_eq!(status, 200, "{path}: {html}");
    }
}

// ---- numbers ----

on_both_stores! {
    /// The tester's request: two categories of weight Decimal::MAX. It is
    /// refused with 422 and records nothing, and reconciliation and the
    /// course list (which reconciles every course) still answer.
    async fn huge_weights_and_maxima_are_refused_and_the_reports_still_answer(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("80"), "100", "2026-09-10T10:00:00Z").await;
        let (s, _) = support::sign_in(&app, &app.registrar).await;
        let before = app.event_count().await;
        let grading = format!("/api/courses/{C}/grading");
        let weighted = |w: &str| json!({"scheme": "weighted", "categories": [
            {"name": "Exams", "weight": w}, {"name": "Homework", "weight": w}]});

        for w in [HUGE, "1000.01", "100000000000000000000"] {
            let (status, body) = call(&app, "PUT", &grading, &app.sis, &[], Some(weighted(w))).await;
            assert_error(status, &body, 422, "invalid_grading");
            assert!(body["message"].as_str().unwrap().contains("between 0 and 1000"), "{body}");
        }
        let items = format!("/api/courses/{C}/line-items");
        for (body, code) in [
            (json!({"label": "Heavy", "score_maximum": 10, "weight": HUGE}), "invalid_line_item"),
            (json!({"label": "Heavy", "score_maximum": 10, "weight": "1000.5"}), "invalid_line_item"),
            (json!({"label": "Huge", "score_maximum": HUGE}), "invalid_score_maximum"),
            (json!({"label": "Huge", "score_maximum": "1000000000.01"}), "invalid_score_maximum"),
        ] {
            let (status, answer) = call(&app, "POST", &items, &app.sis, &[], Some(body)).await;
            assert_error(status, &answer, 422, code);
        }
        let (status, answer) = call(&app, "PATCH", &format!("{items}/hw1"), &app.sis, &[], Some(json!({"weight": HUGE}))).await;
        assert_error(status, &answer, 422, "invalid_line_item");
        let (status, answer) = call(&app, "PATCH", &format!("{items}/hw1"), &app.sis, &[], Some(json!({"score_maximum": HUGE}))).await;
        assert_error(status, &answer, 422, "invalid_score_maximum");
        assert_eq!(app.event_count().await, before, "refused input records nothing");

        reports_answer(&app, &s).await;
        let (_, c) = call(&app, "GET", &format!("/api/courses/{C}"), &app.auditor, &[], None).await;
        assert_eq!(c["grading"]["categories"][0]["weight"], "60", "the policy is unchanged: {c}");

        // The bounds themselves are accepted.
        let (status, body) = call(&app, "PUT", &grading, &app.sis, &[], Some(weighted("1000"))).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = call(&app, "POST", &items, &app.sis, &[],
            Some(json!({"label": "Big", "score_maximum": "1000000000", "weight": "1000"}))).await;
        assert_eq!(status, 201, "{body}");
        let (status, report) = call(&app, "GET", &format!("/api/courses/{C}/reconciliation"), &app.auditor, &[], None).await;
        assert_eq!(status, 200, "{report}");
        let sum = report["findings"].as_array().unwrap().iter()
            .find(|f| f["kind"] == "weights_do_not_sum_to_100").expect("the weights finding");
        assert_eq!(sum["sum"], "3000");
        app.stop().await;
    }
}

/// Appends events straight to the log, as a store written before the
/// bounds holds them: no command would accept them today.
async fn append_raw<A: cqrs_es::Aggregate>(app: &TestApp, id: &str, events: Vec<A::Event>) {
    let sequence = gradebook::projections::audit::read_aggregate(&app.db, A::TYPE, id)
        .await
        .unwrap()
        .len();
    let m = CommandMeta::new(
        "before-the-bounds",
        Source::Sis,
        uuid::Uuid::new_v4().to_string(),
        chrono::Utc::now(),
    );
    let serialized: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(n, payload)| {
            let envelope = cqrs_es::EventEnvelope::<A> {
                aggregate_id: id.to_string(),
                sequence: sequence + n + 1,
                payload,
                metadata: m.to_map(),
            };
            cqrs_es::persist::SerializedEvent::try_from(&envelope).unwrap()
        })
        .collect();
    gradebook::store::append_events::<A>(&app.db, &serialized)
        .await
        .unwrap();
}

on_both_stores! {
    /// A log that holds weights, maxima and scores from before the bounds
    /// (Decimal::MAX weights, a Decimal::MAX maximum, 10^12 over 10^-28):
    /// every report answers, the grade that cannot be computed says so
    /// instead of showing a made-up number, and nothing panics.
    async fn reports_answer_for_numbers_written_before_the_bounds(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("80"), "100", "2026-09-10T10:00:00Z").await;
        score(&app, "ada", "hw1", Some("9"), "10", "2026-09-10T10:00:00Z").await;
        score(&app, "alan", "hw1", Some("7"), "10", "2026-09-10T10:00:00Z").await;
        let max = Decimal::MAX;
        append_raw::<Course>(&app, &aggregate_id::course(&course()), vec![CourseEvent::GradingSchemeSet {
            scheme: Scheme::Weighted { categories: vec![
                Category { name: "Exams".into(), weight: max },
                Category { name: "Homework".into(), weight: max },
            ] },
            missing: MissingPolicy::Exclude,
        }]).await;
        let huge = item("huge");
        let mut spec = LineItemSpec::new("Huge", max);
        spec.weight = Some(max);
        append_raw::<LineItem>(&app, &aggregate_id::line_item(&course(), &huge), vec![LineItemEvent::LineItemCreated {
            course_id: course(), line_item_id: huge.clone(), spec,
        }]).await;
        let mut post = common::fixtures::post(Some("1000000000000"), "1", "2026-09-11T10:00:00Z");
        post.score_maximum = Some(Decimal::new(1, 28));
        append_raw::<Score>(&app, &aggregate_id::score(&course(), &huge, &user("ada")), vec![ScoreEvent::ScoreAccepted {
            course_id: course(), line_item_id: huge.clone(), user_id: user("ada"), post,
        }]).await;
        // A command after them waits for the projector, which has then
        // applied the raw events too.
        app.engine().put_enrollment(&course(), &user("zed"), common::fixtures::learner("Zed"), &meta(Source::Sis)).await.unwrap();

        let (s, _) = support::sign_in(&app, &app.registrar).await;
        reports_answer(&app, &s).await;

        let (_, grades) = call(&app, "GET", &format!("/api/courses/{C}/grades"), &app.auditor, &[], None).await;
        let ada = grades["students"].as_array().unwrap().iter().find(|r| r["user_id"] == "ada").unwrap();
        assert!(ada["not_computable"].as_str().is_some_and(|m| m.contains("huge")), "{ada}");
        for k in ["points_earned", "points_possible", "percent", "letter"] {
            assert_eq!(ada[k], Value::Null, "{k}: {ada}");
        }
        let cell = ada["items"].as_array().unwrap().iter().find(|i| i["line_item_id"] == "huge").unwrap();
        assert_eq!(cell["score"], Value::Null, "{cell}");
        // Alan has counted scores in one category only: one bucket, whose
        // weight (however large) renormalises to the whole grade.
        let alan = grades["students"].as_array().unwrap().iter().find(|r| r["user_id"] == "alan").unwrap();
        assert_eq!(alan["percent"], "70.00", "{alan}");
        assert!(alan.get("not_computable").is_none(), "{alan}");
        let zed = grades["students"].as_array().unwrap().iter().find(|r| r["user_id"] == "zed").unwrap();
        assert_eq!(zed["points_earned"], "0.00", "nothing counted is still a number: {zed}");
        assert!(zed.get("not_computable").is_none(), "{zed}");

        let (_, report) = call(&app, "GET", &format!("/api/courses/{C}/reconciliation"), &app.auditor, &[], None).await;
        let findings = report["findings"].as_array().unwrap();
        let weights = findings.iter().find(|f| f["kind"] == "weights_do_not_sum_to_100").unwrap();
        assert_eq!(weights["sum"], Value::Null, "{weights}");
        let not_computable = findings.iter().find(|f| f["kind"] == "grades_not_computable").unwrap();
        let who: Vec<&str> = not_computable["students"].as_array().unwrap().iter().map(|s| s["user_id"].as_str().unwrap()).collect();
        assert_eq!(who, ["ada"], "{not_computable}");
        let ada_cells = &report["people"].as_array().unwrap().iter().find(|p| p["user_id"] == "ada").unwrap()["cells"];
        let huge_cell = ada_cells.as_array().unwrap().iter().find(|c| c["line_item_id"] == "huge").unwrap();
        assert_eq!(huge_cell["status"], "over_maximum", "{huge_cell}");
        assert_eq!(huge_cell["score"], Value::Null);

        // The fold behind as_of takes the same path.
        let (status, _) = call(&app, "GET", &format!("/api/courses/{C}/grades"), &app.auditor, &[("as_of", &chrono::Utc::now().to_rfc3339())], None).await;
        assert_eq!(status, 200);
        let (_, html) = page(&s, &format!("/ui/courses/{C}"), &[]).await;
        assert!(html.contains("not computable"), "the course page says so");
        let (_, html) = page(&s, &format!("/ui/courses/{C}/students/ada"), &[]).await;
        assert!(html.contains("no grade can be computed"), "the student page says why");
        app.stop().await;
    }
}
