//! Hostile and broken requests, kept as data in `tests/hostile/corpus.json`,
//! sent to a running server on both stores. Every case must get its own 4xx
//! with the JSON error shape (the OAuth shape at `/lti/token` and
//! `/lti/register`), must record
//! nothing in the event log, and the server must still answer afterwards.
//! Cases marked `known_bug` are skipped and listed (run them anyway with
//! `HOSTILE_KNOWN_BUGS=1`).

mod common;

use common::launch::{course_with, COURSE};
use common::TestApp;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const CORPUS: &str = include_str!("hostile/corpus.json");

use common::tool::{full_roster, moodle};
use common::{FakeTool, ALL_SCOPES};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    category: String,
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Body>,
    auth: String,
    expect_status: u16,
    expect_error: Option<String>,
    /// For backfill rows the API reports per row (a 200 dry run):
    /// `{"rejected": n, "accepted": n, "reasons": [...]}`.
    #[serde(default)]
    expect_report: Option<Value>,
    #[serde(default)]
    known_bug: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// The raw body: a string as is, a JSON value serialized, or a long string
/// built from a repeated piece between an optional prefix and suffix.
#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Raw(String),
    Json {
        json: Value,
    },
    Repeat {
        repeat: String,
        times: usize,
        #[serde(default)]
        before: String,
        #[serde(default)]
        after: String,
    },
}

impl Body {
    fn text(&self) -> String {
        match self {
            Body::Raw(s) => s.clone(),
            Body::Json { json } => json.to_string(),
            Body::Repeat {
                repeat,
                times,
                before,
                after,
            } => format!("{before}{}{after}", repeat.repeat(*times)),
        }
    }
}

/// What the cases can name: the set-up course, tool, line item and people.
struct World {
    tool_token: String,
    vars: Vec<(&'static str, String)>,
}

/// A course with a registered tool deployed in it, a learner and an
/// instructor, a line item made by the tool over AGS with one score in it,
/// and an AGS token with every scope.
async fn world(app: &TestApp) -> World {
    let tool = FakeTool::register(app, moodle("full", full_roster())).await;
    let tool_id = tool.tool_id.clone();
    let client_id = tool.client_id.clone();
    course_with(app, &[&tool_id]).await;
    let tool_token = tool.token(app, ALL_SCOPES).await;

    // The tool's own posts, each with its AGS media type.
    let token = tool_token.as_str();
    let post = |path: String, media_type: &'static str, body: Value| async move {
        app.send_text("POST", &path, token, media_type, &body.to_string())
            .await
    };
    let lineitems = format!("/lti/courses/{COURSE}/lineitems");
    let quiz = json!({"label": "Quiz 1", "scoreMaximum": 10, "tag": "quiz"});
    let (status, created) = post(
        lineitems.clone(),
        "application/vnd.ims.lis.v2.lineitem+json",
        quiz,
    )
    .await;
    assert_eq!(status, 201);
    let item_url = created["id"].as_str().unwrap().to_string();
    let item = item_url.rsplit('/').next().unwrap().to_string();

    let score = json!({"userId": "ada", "scoreGiven": 7, "scoreMaximum": 10,
        "activityProgress": "Completed", "gradingProgress": "FullyGraded",
        "timestamp": "2026-09-10T10:00:00Z"});
    let scores = format!("{lineitems}/{item}/scores");
    let (status, _) = post(scores, "application/vnd.ims.lis.v1.score+json", score).await;
    assert_eq!(status, 200);

    World {
        tool_token,
        vars: vec![
            ("{course}", COURSE.to_string()),
            ("{item}", item),
            ("{tool}", tool_id),
            ("{client_id}", client_id),
            ("{user}", "ada".to_string()),
        ],
    }
}

impl World {
    fn fill(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (k, v) in &self.vars {
            out = out.replace(k, v);
        }
        out
    }
}

/// Sends one case and says what was wrong with the answer, if anything.
async fn run(app: &TestApp, w: &World, case: &Case) -> Result<(), String> {
    let method = reqwest::Method::from_bytes(case.method.as_bytes())
        .map_err(|e| format!("bad method in corpus: {e}"))?;
    let path = w.fill(&case.path);
    let mut req = app.client.request(method, app.url(&path));
    match case.auth.as_str() {
        "sis" => req = req.bearer_auth(&app.sis),
        "registrar" => req = req.bearer_auth(&app.registrar),
        "auditor" => req = req.bearer_auth(&app.auditor),
        "tool" => req = req.bearer_auth(&w.tool_token),
        "none" => {}
        other => return Err(format!("unknown auth {other:?} in corpus")),
    }
    let mut has_type = false;
    for (k, v) in &case.headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        req = req.header(k.as_str(), w.fill(v));
    }
    if let Some(body) = &case.body {
        if matches!(body, Body::Json { .. }) && !has_type {
            req = req.header("content-type", "application/json");
        }
        req = req.body(w.fill(&body.text()));
    }
    let res = req.send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = res.status().as_u16();
    let content_type = common::fixtures::header(res.headers(), "content-type");
    let text = res.text().await.unwrap_or_default();
    let short: String = text.chars().take(300).collect();
    if status >= 500 {
        return Err(format!("answered {status}: {short}"));
    }
    if status != case.expect_status {
        return Err(format!(
            "answered {status}, expected {}: {short}",
            case.expect_status
        ));
    }
    for leak in [
        "sqlx",
        "error returned from database",
        "panicked",
        "syntax error at",
    ] {
        if text.contains(leak) {
            return Err(format!("the answer leaks internals ({leak}): {short}"));
        }
    }
    if !content_type.starts_with("application/json") {
        return Err(format!("answered {content_type:?}, not JSON: {short}"));
    }
    let body: Value =
        serde_json::from_str(&text).map_err(|_| format!("the body is not JSON: {short}"))?;
    if let Some(report) = &case.expect_report {
        return check_report(&body, report);
    }
    // The OAuth endpoints (token, dynamic registration) answer in the OAuth
    // error shape their specs require; a method they do not take never
    // reaches them and gets the router's usual shape.
    let oauth =
        (path.starts_with("/lti/token") || path.starts_with("/lti/register")) && status != 405;
    let (code_field, message_field) = if oauth {
        ("error", "error_description")
    } else {
        ("error", "message")
    };
    let code = body[code_field].as_str().unwrap_or_default();
    if Some(code) != case.expect_error.as_deref() {
        return Err(format!(
            "error code {code:?}, expected {:?}: {short}",
            case.expect_error
        ));
    }
    if body[message_field].as_str().is_none_or(str::is_empty) {
        return Err(format!("no {message_field} in the answer: {short}"));
    }
    if !oauth && body["request_id"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no request_id in the answer: {short}"));
    }
    Ok(())
}

/// A backfill dry run's per-row report against what the case expects.
fn check_report(body: &Value, want: &Value) -> Result<(), String> {
    for field in ["accepted", "rejected", "unchanged"] {
        if let Some(n) = want.get(field) {
            if body[field] != *n {
                return Err(format!("{field} is {}, expected {n}: {body}", body[field]));
            }
        }
    }
    if let Some(reasons) = want.get("reasons") {
        let got: Vec<Value> = body["rejections"]
            .as_array()
            .map(|r| r.iter().map(|x| x["reason"].clone()).collect())
            .unwrap_or_default();
        if got != *reasons.as_array().unwrap() {
            return Err(format!("rejection reasons {got:?}, expected {reasons}"));
        }
    }
    if body["dry_run"] != json!(true) {
        return Err(format!("per-row cases must be dry runs: {body}"));
    }
    Ok(())
}

on_both_stores! {
    async fn every_hostile_request_gets_its_json_error_and_records_nothing(app: TestApp) {
        let cases: Vec<Case> = serde_json::from_str(CORPUS).expect("the corpus is valid");
        let w = world(&app).await;
        let mut names = std::collections::HashSet::new();
        let mut failures = Vec::new();
        let mut skipped = Vec::new();
        let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
        let before = app.event_count().await;
        for case in &cases {
            assert!(names.insert(case.name.as_str()), "duplicate case name {}", case.name);
            assert!(
                case.expect_report.is_some() || (400..500).contains(&case.expect_status),
                "{}: a hostile case expects a 4xx",
                case.name
            );
            *by_category.entry(case.category.as_str()).or_default() += 1;
            // HOSTILE_KNOWN_BUGS=1 runs the known bugs too, to see which are fixed.
            if let Some(bug) = &case.known_bug {
                if std::env::var_os("HOSTILE_KNOWN_BUGS").is_none() {
                    skipped.push(format!("{}: {bug}", case.name));
                    continue;
                }
            }
            let events = app.event_count().await;
            let mut outcome = run(&app, &w, case).await;
            if outcome.is_ok() && app.event_count().await != events {
                outcome = Err("a refused request recorded an event".into());
            }
            if let Err(why) = outcome {
                let note = case.note.as_deref().unwrap_or_default();
                failures.push(format!("{} [{}] {note}: {why}", case.name, case.category));
            }
        }
        let run_count = cases.len() - skipped.len();
        println!(
            "hostile corpus: {} cases, {} passed, {} skipped as known bugs",
            cases.len(),
            run_count - failures.len(),
            skipped.len()
        );
        println!("by category: {by_category:?}");
        for s in &skipped {
            println!("known bug: {s}");
        }
        for f in &failures {
            println!("FAILED: {f}");
        }
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200, "the server still answers");
        assert_eq!(app.event_count().await, before, "the corpus recorded nothing");
        assert!(failures.is_empty(), "{} cases failed", failures.len());
    }
}

on_both_stores! {
    /// A tool may send `-0` (JavaScript and PHP both print it): it is the
    /// score 0, accepted, and shown as 0, never as "-0".
    async fn a_score_of_minus_zero_is_kept_and_shown_as_zero(app: TestApp) {
        let w = world(&app).await;
        let item = w.fill("{item}");
        for (user, raw) in [("ada", "-0"), ("ada", "-0.0")] {
            let ts = if raw == "-0" { "2026-09-12T10:00:00Z" } else { "2026-09-13T10:00:00Z" };
            let body = format!(
                r#"{{"userId":"{user}","scoreGiven":{raw},"scoreMaximum":10,"activityProgress":"Completed","gradingProgress":"FullyGraded","timestamp":"{ts}"}}"#
            );
            let res = app
                .client
                .post(app.url(&format!("/lti/courses/{COURSE}/lineitems/{item}/scores")))
                .bearer_auth(&w.tool_token)
                .header("content-type", "application/vnd.ims.lis.v1.score+json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200, "{raw}");
            let res = app
                .client
                .get(app.url(&format!("/lti/courses/{COURSE}/lineitems/{item}/results")))
                .bearer_auth(&w.tool_token)
                .send()
                .await
                .unwrap();
            let text = res.text().await.unwrap();
            let results: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(results[0]["resultScore"], json!(0), "{raw}: {text}");
            assert!(!text.contains("-0"), "{raw}: {text}");
            let (status, grades) = app
                .get_json(&format!("/api/courses/{COURSE}/grades"))
                .await;
            assert_eq!(status, 200);
            let ada = &grades["students"][0];
            assert_eq!(ada["items"][0]["score"], json!("0.00"), "{raw}: {grades}");
            assert_eq!(ada["percent"], json!("0.00"), "{raw}: {grades}");
            assert!(!grades.to_string().contains("\"-0"), "{raw}: {grades}");
        }
    }
}

/// Bodies no route should choke on, each sent with a content type taken
/// in turn from `SWEEP_TYPES`.
fn sweep_bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = [
        "",
        "{}",
        "[]",
        "null",
        "\u{feff}{\"label\": \"x\", \"scoreMaximum\": 10}",
        "{\"userId\": \"ada\", \"scoreGiven\": 1e309, \"scoreMaximum\": -0, \"timestamp\": \"2026-02-30T25:00:00Z\"}",
        "{\"course_id\": \"' OR 1=1 --\", \"title\": \"\u{0000}\u{0007}\", \"term\": \"../../etc/passwd\"}",
        "line_item_id,user_id,score_given\r\n\"unclosed,ada,NaN\n\rx,y",
        "JWT=%ZZ&scope=%00&grant_type=client_credentials",
        "{\"a\":",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    bodies.push("[".repeat(5000).into_bytes());
    bodies.push(vec![0xff, 0xfe, 0x00, 0x7b, 0x22]);
    bodies
}

const SWEEP_TYPES: [Option<&str>; 9] = [
    Some("application/json"),
    None,
    Some("text/plain"),
    Some("text/csv"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data"),
    Some("application/json; charset=utf-16"),
    Some("application/vnd.ims.lis.v1.score+json"),
    Some("x/y; charset=\"\"; boundary="),
];

on_both_stores! {
    /// Every route the OpenAPI document lists, with its own methods and a
    /// few it does not take, with broken bodies under every content type,
    /// hostile path parameters and every kind of caller: never a 5xx, every
    /// refusal in a JSON error shape, nothing internal leaked, the server up
    /// and its read tables equal to a replay of the log afterwards.
    async fn any_route_any_method_any_body_gets_a_clean_answer(app: TestApp) {
        let w = world(&app).await;
        let (_, doc) = app.get_json("/api/openapi.json").await;
        let bodies = sweep_bodies();
        let tokens = [Some(app.registrar.clone()), Some(app.sis.clone()), Some(w.tool_token.clone()), None, Some(app.auditor.clone())];
        let hostile_ids = ["..%2F..%2Fetc%2Fpasswd", "%27%20OR%201%3D1--", "%00", "a%0Ab", &"x".repeat(3000), "%F0%9F%92%A9"];
        let mut sent = 0usize;
        let mut failures = Vec::new();
        for (template, ops) in doc["paths"].as_object().unwrap() {
            let mut methods: Vec<String> = ops.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
            for extra in ["PATCH", "DELETE", "PUT", "OPTIONS", "TRACE", "FOO"] {
                if !methods.iter().any(|m| m == extra) {
                    methods.push(extra.to_string());
                    break;
                }
            }
            let real = template
                .replace("{course_id}", COURSE)
                .replace("{line_item_id}", &w.fill("{item}"))
                .replace("{user_id}", "ada")
                .replace("{tool_id}", &w.fill("{tool}"))
                .replace("{token_id}", "nope")
                .replace("{resource_link_id}", "nope");
            let mut paths = vec![real.clone()];
            // Every query parameter any route reads, with a NUL, a quote and a huge number.
            if ops.get("get").is_some() {
                for param in ["limit", "cursor", "tag", "user_id", "role", "as_of", "course_id", "rlid", "threshold", "from", "to", "resource_link_id", "dry_run"] {
                    for value in ["%00", "%27--", "99999999999999999999999"] {
                        paths.push(format!("{real}?{param}={value}"));
                    }
                }
            }
            if template.contains('{') {
                for bad in hostile_ids {
                    let mut p = template.clone();
                    while let (Some(a), Some(b)) = (p.find('{'), p.find('}')) {
                        p.replace_range(a..=b, bad);
                    }
                    paths.push(p);
                }
            }
            for (pi, path) in paths.iter().enumerate() {
                // A query string is only read by GET.
                let only_get = ["GET".to_string()];
                let methods = if path.contains('?') { &only_get[..] } else { &methods[..] };
                for method in methods {
                    // Hostile paths get fewer bodies: the path is the point.
                    let n = if pi == 0 { bodies.len() } else if path.contains('?') { 1 } else { 2 };
                    for (bi, body) in bodies.iter().take(n).enumerate() {
                        let token = &tokens[(sent + bi) % tokens.len()];
                        let ct = SWEEP_TYPES[(sent + pi) % SWEEP_TYPES.len()];
                        sent += 1;
                        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                        let mut req = app.client.request(m, app.url(path)).body(body.clone());
                        if let Some(t) = token {
                            req = req.bearer_auth(t);
                        }
                        if let Some(ct) = ct {
                            req = req.header("content-type", ct);
                        }
                        let shown: String = path.chars().take(80).collect();
                        let what = format!("{method} {shown} [{}] body #{bi} as {ct:?}", token.as_ref().map_or("none", |_| "token"));
                        let res = match req.send().await {
                            Ok(r) => r,
                            Err(e) => {
                                failures.push(format!("{what}: no answer: {e}"));
                                continue;
                            }
                        };
                        let status = res.status().as_u16();
                        let json_type = res.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
                        let text = res.text().await.unwrap_or_default();
                        let short: String = text.chars().take(200).collect();
                        if status >= 500 {
                            failures.push(format!("{what}: {status} {short}"));
                            continue;
                        }
                        for leak in ["sqlx", "error returned from database", "panicked", "syntax error at"] {
                            if text.contains(leak) {
                                failures.push(format!("{what}: leaks {leak}: {short}"));
                            }
                        }
                        if status >= 400 && method != "HEAD" {
                            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            let oauth = path.starts_with("/lti/token") || path.starts_with("/lti/register");
                            let shaped = v["error"].is_string() && (v["message"].is_string() || (oauth && v["error_description"].is_string()));
                            if !json_type || !shaped {
                                failures.push(format!("{what}: {status} not in the JSON error shape: {short}"));
                            }
                        }
                    }
                }
            }
        }
        println!("sweep: {sent} requests, {} failures", failures.len());
        for f in &failures {
            println!("FAILED: {f}");
        }
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200, "the server still answers");
        let live = app.tables().await;
        gradebook::projections::projector::replay(&app.db, |_| {}).await.unwrap();
        assert_eq!(app.tables().await, live, "the projection equals a replay of the log");
        assert!(sent > 1000, "{sent} requests");
        assert!(failures.is_empty(), "{} requests failed", failures.len());
    }
}
