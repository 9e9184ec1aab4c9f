//! Input bounds over HTTP on both stores: numbers the grade arithmetic
//! cannot take and times the stores cannot hold are refused with 4xx in the
//! JSON error shape and record nothing, and the reports (grades,
//! reconciliation, provenance, the course pages) still answer for a log
//! that holds such numbers from before the bounds. Numbers within them are
//! kept as the digits sent, whether a JSON number or a string.

mod common;
#[allow(dead_code)]
#[path = "ui/support.rs"]
mod support;

use common::fixtures::{course, hist101, item, score, user};
use common::launch::{self, COURSE as BIO};
use common::{meta, Body, FakeTool, TestApp};
use gradebook::domain::course::{Course, CourseEvent};
use gradebook::domain::ids::aggregate_id;
use gradebook::domain::line_item::{LineItem, LineItemEvent, LineItemSpec};
use gradebook::domain::policy::{Category, MissingPolicy, Scheme};
use gradebook::domain::score::{Score, ScoreEvent, ScoreOutcome};
use gradebook::domain::{CommandMeta, Source};
use gradebook::services::tools::Grading;
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
    let a = app
        .send(method, url.as_str(), Some(token), Body::json(body))
        .await;
    (a.status, a.json())
}

/// The JSON error shape with this status and code, and no leaked internals.
fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    let leaks = ["select ", "panicked", "sqlx", "displacement", "overflow"];
    common::assert_error_shape(status, body, want_status, want_code, &leaks);
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
    let sequence = gradebook::projections::reports::audit::read_aggregate(&app.db, A::TYPE, id)
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
    let course = serialized[0]
        .aggregate_id
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        gradebook::store::append_behind_gates::<A>(&app.db, &serialized, &course, &[])
            .await
            .unwrap()
    );
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

// ---- times ----

/// Times no store can hold: offsets beyond ±15:59, years outside 0001 to
/// 9999 as written or in UTC, and five-digit years.
const BAD_TIMES: [&str; 7] = [
    "9999-12-31T23:59:59-23:59",
    "2026-05-01T10:00:00+23:59",
    "2026-05-01T10:00:00-16:00",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-10:00",
    "10000-01-01T00:00:00Z",
];

/// Times at the edges that both stores hold.
const EDGE_TIMES: [&str; 4] = [
    "2026-05-01T10:00:00+15:59",
    "2026-05-01T10:00:00-15:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
];

on_both_stores! {
    /// The audit log's `from` and `to`, the grades' `as_of` and the course
    /// page's `as_of`: a time the stores cannot hold is 400 (never 500),
    /// one at the edge is answered.
    async fn query_times_the_stores_cannot_hold_are_400_on_every_route(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("80"), "100", "2026-09-10T10:00:00Z").await;
        let (s, _) = support::sign_in(&app, &app.registrar).await;
        let grades = format!("/api/courses/{C}/grades");
        for t in BAD_TIMES {
            for key in ["from", "to"] {
                let (status, body) = call(&app, "GET", "/api/audit", &app.auditor, &[(key, t)], None).await;
                assert_error(status, &body, 400, "invalid_time");
                assert!(body["message"].as_str().unwrap().starts_with(key), "{body}");
            }
            let (status, body) = call(&app, "GET", &grades, &app.auditor, &[("as_of", t)], None).await;
            assert_error(status, &body, 400, "invalid_as_of");
            let (status, html) = page(&s, &format!("/ui/courses/{C}"), &[("as_of", t)]).await;
            assert_eq!(status, 400, "course page as_of {t}: {html}");
        }
        // This moment at the widest offsets on either side (the fold of
        // the log up to it), and the edges: a course opened today did not
        // exist in the year 1 or in May 2026 (404), and a future moment is
        // the current state.
        let now_at = |minutes: i32| {
            let offset = chrono::FixedOffset::east_opt(minutes * 60).unwrap();
            chrono::Utc::now().with_timezone(&offset).to_rfc3339()
        };
        let mut times: Vec<(String, u16)> = vec![(now_at(959), 200), (now_at(-959), 200)];
        times.extend(EDGE_TIMES.iter().map(|t| (t.to_string(), if t.starts_with("9999") { 200 } else { 404 })));
        for (t, want) in &times {
            let t = t.as_str();
            for key in ["from", "to"] {
                let (status, body) = call(&app, "GET", "/api/audit", &app.auditor, &[(key, t)], None).await;
                assert_eq!(status, 200, "{key}={t}: {body}");
            }
            let (status, body) = call(&app, "GET", &grades, &app.auditor, &[("as_of", t)], None).await;
            assert_eq!(status, *want, "as_of={t}: {body}");
            let (status, html) = page(&s, &format!("/ui/courses/{C}"), &[("as_of", t)]).await;
            assert_eq!(status, *want, "course page as_of {t}: {html}");
        }
        // The tester's value, and the log it should have filtered: from a
        // moment far ahead, nothing; up to the end of 9999, everything.
        let (_, all) = call(&app, "GET", "/api/audit", &app.auditor, &[("to", "9999-12-31T23:59:59Z")], None).await;
        assert!(!all["events"].as_array().unwrap().is_empty(), "{all}");
        let (_, none) = call(&app, "GET", "/api/audit", &app.auditor, &[("from", "9999-12-31T23:59:59+15:59")], None).await;
        assert_eq!(none["events"], json!([]), "{none}");

        // The audit page takes days; a day outside 0001 to 9999 is 400, and
        // `to` on the last day of 9999 is no bound at all.
        for (key, day, want) in [
            ("from", "0000-01-01", 400),
            ("to", "10000-01-01", 400),
            ("from", "0001-01-01", 200),
            ("to", "9999-12-31", 200),
        ] {
            let (status, html) = page(&s, "/ui/audit", &[(key, day)]).await;
            assert_eq!(status, want, "audit page {key}={day}: {html}");
        }
        app.stop().await;
    }
}

/// A tool's access token for AGS, signed with its own key.
async fn tool_token(app: &TestApp, t: &FakeTool) -> String {
    t.token(app, "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem https://purl.imsglobal.org/spec/lti-ags/scope/score").await
}

on_both_stores! {
    /// A score's `timestamp` is kept with the offset the tool sent: one the
    /// stores cannot hold is 400 `invalid_timestamp` and records nothing,
    /// over AGS (RFC 3339 or PHP's offset without a colon) and in a
    /// backfill row; one at the edge is accepted and reads back.
    async fn score_timestamps_the_stores_cannot_hold_are_refused(app: TestApp) {
        let t = launch::register(&app, Grading::Full, launch::roster(false, false, false)).await;
        launch::course_with(&app, &[t.tool_id.as_str()]).await;
        let token = tool_token(&app, &t).await;
        let (status, li) = call(&app, "POST", &format!("/lti/courses/{BIO}/lineitems"), &token, &[],
            Some(json!({"label": "Quiz", "scoreMaximum": 10}))).await;
        assert_eq!(status, 201, "{li}");
        let scores = format!("{}/scores", li["id"].as_str().unwrap().strip_prefix(&app.base).unwrap());
        let body = |ts: &str| json!({
            "userId": "ada", "scoreGiven": 7, "scoreMaximum": 10,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded", "timestamp": ts,
        });
        let before = app.event_count().await;
        for ts in BAD_TIMES.iter().copied().chain(["2026-05-01T10:00:00-2359", "2026-05-01T10:00:00+1600"]) {
            let (status, answer) = call(&app, "POST", &scores, &token, &[], Some(body(ts))).await;
            if ts.starts_with("10000") {
                // Not a date-time at all: a malformed body, as before.
                assert_error(status, &answer, 400, "invalid_body");
            } else {
                assert_error(status, &answer, 400, "invalid_timestamp");
                assert!(answer["message"].as_str().unwrap().starts_with("timestamp "), "{answer}");
            }
        }
        assert_eq!(app.event_count().await, before, "refused posts record nothing");

        // At the edge: accepted, and read back with the offset as sent.
        for (n, ts) in ["2026-05-01T10:00:00-15:59", "2026-05-01T10:00:00+1559"].into_iter().enumerate() {
            let mut b = body(ts);
            b["scoreGiven"] = json!(5 + n);
            let (status, answer) = call(&app, "POST", &scores, &token, &[], Some(b)).await;
            assert_eq!(status, 200, "{ts}: {answer}");
        }
        let (status, p) = call(&app, "GET", &format!("/api/courses/{BIO}/students/ada/provenance"), &app.auditor, &[], None).await;
        assert_eq!(status, 200, "{p}");
        let posts = &p["items"][0]["posts"];
        assert_eq!(posts[0]["timestamp"], "2026-05-01T10:00:00-15:59", "{posts}");
        assert_eq!(posts[1]["outcome"], "stale", "+15:59 is earlier than -15:59: {posts}");
        let (status, _) = call(&app, "GET", &format!("/api/courses/{BIO}/grades"), &app.auditor, &[], None).await;
        assert_eq!(status, 200);

        // A backfill row with such a timestamp is rejected with its line,
        // and records nothing.
        let item_id = scores.rsplit('/').nth(1).unwrap();
        let csv = format!(
            "line_item_id,user_id,score_given,score_maximum,timestamp,comment\n\
             {item_id},ada,9,10,2026-05-02T10:00:00-23:59,\n\
             {item_id},ada,9,10,9999-12-31T23:59:59-10:00,\n"
        );
        let before = app.event_count().await;
        let res = app.client.post(app.url(&format!("/api/courses/{BIO}/backfill")))
            .bearer_auth(&app.registrar).header("content-type", "text/csv").body(csv).send().await.unwrap();
        let status = res.status().as_u16();
        let report: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["accepted"], 0, "{report}");
        let reasons: Vec<(&Value, &Value)> = report["rejections"].as_array().unwrap().iter().map(|r| (&r["line"], &r["reason"])).collect();
        assert_eq!(reasons, [(&json!(2), &json!("invalid_timestamp")), (&json!(3), &json!("invalid_timestamp"))], "{report}");
        assert_eq!(app.event_count().await, before, "a rejected row records nothing");
        assert_eq!(
            app.engine().post_score(&gradebook::domain::CourseId::parse(BIO).unwrap(), &gradebook::domain::LineItemId::parse(item_id).unwrap(), &user("ada"),
                common::fixtures::post(Some("1"), "10", "2026-05-03T10:00:00+15:59"), &meta(Source::Ags)).await.unwrap(),
            ScoreOutcome::Accepted
        );
        app.stop().await;
    }
}

// ---- numbers kept as sent ----

/// Digits a tool's float serializer writes, and the decimal each is kept
/// as (the same number, exactly).
const FLOAT_DIGITS: [(&str, &str); 3] = [
    ("0.19999999999999998", "0.19999999999999998"),
    ("1.0000000000000002e-05", "0.000010000000000000002"),
    ("1.6666666666666665", "1.6666666666666665"),
];
/// More digits than a decimal holds, and the decimal it rounds to.
const LONG: &str = "0.12345678901234567890123456789012345";
const LONG_KEPT: &str = "0.1234567890123456789012345679";

/// Every event the audit log holds for these filters, as stored.
async fn audit_payloads(app: &TestApp, filters: &[(&str, &str)]) -> Vec<Value> {
    let mut query = vec![("limit", "1000")];
    query.extend_from_slice(filters);
    let (status, page) = call(app, "GET", "/api/audit", &app.auditor, &query, None).await;
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"].clone())
        .collect()
}

/// The posts recorded for one cell, from the log's stored payloads.
async fn posts_in_log(app: &TestApp, item_id: &str, user: &str) -> Vec<Value> {
    audit_payloads(
        app,
        &[
            ("course_id", BIO),
            ("line_item_id", item_id),
            ("user_id", user),
        ],
    )
    .await
    .iter()
    .filter_map(|p| p.as_object()?.values().next()?.get("post").cloned())
    .collect()
}

/// Every string found under `key` anywhere in `v`.
fn strings_at(v: &Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match x {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => out.extend(strings_at(x, key)),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| out.extend(strings_at(x, key))),
        _ => {}
    }
    out
}

/// What each cell's log must hold after the three float texts and the long
/// one were sent, in that order.
fn assert_kept_as_sent(posts: &[Value]) {
    assert_eq!(posts.len(), 4, "{posts:?}");
    for (post, (sent, kept)) in posts.iter().zip(FLOAT_DIGITS) {
        assert_eq!(post["score_given"], kept, "{sent}: {post}");
        assert_eq!(post["score_maximum"], kept, "{sent}: {post}");
        assert!(
            post.get("score_given_as_sent").is_none(),
            "an exact number keeps no text: {post}"
        );
        assert!(post.get("score_maximum_as_sent").is_none(), "{post}");
    }
    assert_eq!(posts[3]["score_given"], LONG_KEPT, "{}", posts[3]);
    assert_eq!(posts[3]["score_given_as_sent"], LONG, "{}", posts[3]);
    assert_eq!(posts[3]["score_maximum"], "10");
    assert!(posts[3].get("score_maximum_as_sent").is_none());
}

on_both_stores! {
    /// A tool's JSON numbers reach the log as the digits it sent, over AGS
    /// and in a JSON-lines backfill: the same as those digits sent as a
    /// string. A number with more digits than a decimal holds is kept
    /// rounded, with the text sent beside it in the event, the audit log
    /// and provenance. A line item's maximum keeps its digits too.
    async fn numbers_are_kept_as_the_digits_sent_over_ags_and_backfill(app: TestApp) {
        let t = launch::register(&app, Grading::Full, launch::roster(false, false, false)).await;
        launch::course_with(&app, &[t.tool_id.as_str()]).await;
        let bio = gradebook::domain::CourseId::parse(BIO).unwrap();
        app.engine().put_enrollment(&bio, &user("bob"),
            launch::person(gradebook::domain::enrollment::Role::Learner, "Bob", None), &meta(Source::Sis)).await.unwrap();
        let token = tool_token(&app, &t).await;
        let lineitems = format!("/lti/courses/{BIO}/lineitems");
        let lineitem_type = "application/vnd.ims.lis.v2.lineitem+json";

        // A line item whose maximum is a float's digits.
        let (status, li) = app.send_text("POST", &lineitems, &token, lineitem_type,
            r#"{"label": "Quiz", "scoreMaximum": 1.6666666666666665}"#).await;
        assert_eq!(status, 201, "{li}");
        let quiz = li["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        let created = audit_payloads(&app, &[("course_id", BIO), ("line_item_id", &quiz)]).await;
        assert_eq!(strings_at(&created[0], "score_maximum"), ["1.6666666666666665"], "{created:?}");
        // One a decimal cannot hold exactly is refused, naming the field.
        let before = app.event_count().await;
        let (status, answer) = app.send_text("POST", &lineitems, &token, lineitem_type,
            &format!(r#"{{"label": "Quiz", "scoreMaximum": 1{}}}"#, &LONG[1..])).await;
        assert_error(status, &answer, 400, "invalid_body");
        assert!(answer["message"].as_str().unwrap().starts_with("scoreMaximum has more digits"), "{answer}");
        assert_eq!(app.event_count().await, before);

        // Score posts: Ada's as JSON numbers, Bob's as strings.
        let scores = format!("{lineitems}/{quiz}/scores");
        let sent = FLOAT_DIGITS.iter().map(|(s, _)| (*s, *s)).chain([(LONG, "10")]);
        for (n, (given, max)) in sent.clone().enumerate() {
            for (user, quote) in [("ada", ""), ("bob", "\"")] {
                let body = format!(
                    r#"{{"userId": "{user}", "scoreGiven": {quote}{given}{quote}, "scoreMaximum": {quote}{max}{quote},
                        "activityProgress": "Completed", "gradingProgress": "FullyGraded", "timestamp": "2026-09-1{n}T10:00:00Z"}}"#
                );
                let (status, answer) = app.send_text("POST", &scores, &token, "application/vnd.ims.lis.v1.score+json", &body).await;
                assert_eq!((status, answer["result"].as_str()), (200, Some("accepted")), "{body}: {answer}");
            }
        }
        let ada = posts_in_log(&app, &quiz, "ada").await;
        assert_kept_as_sent(&ada);
        assert_eq!(ada, posts_in_log(&app, &quiz, "bob").await, "a number is kept as its digits sent as a string");

        // Provenance shows the text sent beside the rounded score.
        let (status, p) = call(&app, "GET", &format!("/api/courses/{BIO}/students/ada/provenance"), &app.auditor, &[], None).await;
        assert_eq!(status, 200, "{p}");
        let posts = p["items"][0]["posts"].as_array().unwrap();
        assert_eq!(posts.last().unwrap()["score_given_as_sent"], LONG, "{p}");
        assert!(posts[0].get("score_given_as_sent").is_none(), "{p}");
        let (status, g) = call(&app, "GET", &format!("/api/courses/{BIO}/grades"), &app.auditor, &[], None).await;
        assert_eq!(status, 200, "{g}");

        // The same numbers in a JSON-lines backfill, into a second column.
        let (status, li) = app.send_text("POST", &lineitems, &token, lineitem_type,
            r#"{"label": "Quiz 2", "scoreMaximum": 10}"#).await;
        assert_eq!(status, 201, "{li}");
        let quiz2 = li["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        let mut lines = String::new();
        for (n, (given, max)) in sent.enumerate() {
            for (user, quote) in [("ada", ""), ("bob", "\"")] {
                lines.push_str(&format!(
                    "{{\"line_item_id\": \"{quiz2}\", \"user_id\": \"{user}\", \"score_given\": {quote}{given}{quote}, \
                      \"score_maximum\": {quote}{max}{quote}, \"timestamp\": \"2026-09-2{n}T10:00:00Z\"}}\n"
                ));
            }
        }
        let (status, report) = app.send_text("POST", &format!("/api/courses/{BIO}/backfill"), &app.registrar,
            "application/x-ndjson", &lines).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["accepted"], 8, "{report}");
        let ada = posts_in_log(&app, &quiz2, "ada").await;
        assert_kept_as_sent(&ada);
        assert_eq!(ada, posts_in_log(&app, &quiz2, "bob").await);
        // The same file again changes nothing: the texts kept match.
        let before = app.event_count().await;
        let (status, report) = app.send_text("POST", &format!("/api/courses/{BIO}/backfill"), &app.registrar,
            "application/x-ndjson", &lines).await;
        assert_eq!((status, &report["accepted"]), (200, &json!(0)), "{report}");
        assert_eq!(app.event_count().await, before);

        // A resource link's new column keeps its maximum's digits, and
        // refuses one a decimal cannot hold exactly.
        let link = |id: &str, max: &str| format!(
            r#"{{"resource_link_id": "{id}", "tool_id": "{}", "title": "Lab", "line_item": {{"label": "Lab", "score_maximum": {max}}}}}"#,
            t.tool_id
        );
        let links = format!("/api/courses/{BIO}/resource-links");
        let before = app.event_count().await;
        let (status, answer) = app.send_text("POST", &links, &app.sis, "application/json", &link("lab-1", LONG)).await;
        assert_error(status, &answer, 422, "invalid_body");
        assert_eq!(app.event_count().await, before);
        let (status, answer) = app.send_text("POST", &links, &app.sis, "application/json", &link("lab-1", "0.19999999999999998")).await;
        assert_eq!(status, 201, "{answer}");
        let lab = answer["line_item_id"].as_str().expect("the new column's id").to_string();
        let created = audit_payloads(&app, &[("course_id", BIO), ("line_item_id", &lab)]).await;
        assert_eq!(strings_at(&created[0], "score_maximum"), ["0.19999999999999998"], "{created:?}");
        app.stop().await;
    }
}

on_both_stores! {
    /// A registrar's weights and maxima sent as JSON numbers keep their
    /// digits; one a decimal cannot hold exactly is refused with 422
    /// `invalid_body` and records nothing.
    async fn registrar_weights_and_maxima_keep_the_digits_sent(app: TestApp) {
        hist101(&app).await;
        let grading = format!("/api/courses/{C}/grading");
        let body = format!(
            r#"{{"scheme": "weighted", "categories": [{{"name": "Exams", "weight": {}}}, {{"name": "Homework", "weight": {}}}]}}"#,
            FLOAT_DIGITS[2].0, FLOAT_DIGITS[1].0
        );
        let (status, answer) = app.send_text("PUT", &grading, &app.sis, "application/json", &body).await;
        assert_eq!(status, 200, "{answer}");
        let log = audit_payloads(&app, &[("course_id", C)]).await;
        let weights = strings_at(log.last().unwrap(), "weight");
        assert_eq!(weights, [FLOAT_DIGITS[2].1, FLOAT_DIGITS[1].1], "{log:?}");
        let (_, c) = call(&app, "GET", &format!("/api/courses/{C}"), &app.auditor, &[], None).await;
        assert_eq!(c["grading"]["categories"][0]["weight"], FLOAT_DIGITS[2].1, "{c}");

        let items = format!("/api/courses/{C}/line-items");
        let (status, li) = app.send_text("POST", &items, &app.sis, "application/json",
            &format!(r#"{{"label": "Lab", "line_item_id": "lab", "score_maximum": {}, "weight": {}}}"#, FLOAT_DIGITS[0].0, FLOAT_DIGITS[2].0)).await;
        assert_eq!(status, 201, "{li}");
        assert_eq!((li["score_maximum"].as_str(), li["weight"].as_str()), (Some(FLOAT_DIGITS[0].1), Some(FLOAT_DIGITS[2].1)), "{li}");
        let created = audit_payloads(&app, &[("course_id", C), ("line_item_id", "lab")]).await;
        assert_eq!(strings_at(&created[0], "score_maximum"), [FLOAT_DIGITS[0].1], "{created:?}");
        assert_eq!(strings_at(&created[0], "weight"), [FLOAT_DIGITS[2].1], "{created:?}");

        let before = app.event_count().await;
        for (method, path, body) in [
            ("PUT", grading.clone(), format!(r#"{{"scheme": "weighted", "categories": [{{"name": "Exams", "weight": {LONG}}}]}}"#)),
            ("POST", items.clone(), format!(r#"{{"label": "Lab", "score_maximum": {LONG}}}"#)),
            ("PATCH", format!("{items}/lab"), format!(r#"{{"weight": "{LONG}"}}"#)),
        ] {
            let (status, answer) = app.send_text(method, &path, &app.sis, "application/json", &body).await;
            assert_error(status, &answer, 422, "invalid_body");
            assert!(answer["message"].as_str().unwrap().contains("more digits than a decimal holds"), "{answer}");
        }
        assert_eq!(app.event_count().await, before, "refused input records nothing");
        app.stop().await;
    }
}
