//! Input bounds over HTTP on both stores: numbers the grade arithmetic
//! cannot take are refused with 4xx in the JSON error shape and record
//! nothing, and the reports (grades, reconciliation, provenance, the
//! course pages) still answer.

mod common;
#[allow(dead_code)]
#[path = "ui/support.rs"]
mod support;

use common::fixtures::{hist101, score};
use common::TestApp;
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
