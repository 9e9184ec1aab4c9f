//! A running gradebook for tests: the real server on port 0 against a
//! fresh database, PostgreSQL (one database per test, made by
//! `#[sqlx::test]`) or a SQLite file in a temporary directory.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::Utc;
use gradebook::app::{self, Running};
use gradebook::config::Settings;
use gradebook::domain::{CommandMeta, Source};
use gradebook::engine::Engine;
use gradebook::projections::db::Db;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;

pub struct TestApp {
    pub base: String,
    /// Bearer tokens for each role.
    pub registrar: String,
    pub auditor: String,
    pub sis: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub db: Db,
    /// Keeps a SQLite file alive for the test's duration.
    pub _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn postgres(opts: PgPoolOptions, connect: PgConnectOptions) -> Self {
        let pool = opts
            .max_connections(16)
            .connect_with(connect)
            .await
            .expect("connect to the test database");
        Self::start(Db::Postgres(pool), None).await
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gradebook.db").display());
        let db = Db::connect(&url, 8).await.expect("open sqlite");
        Self::start(db, Some(dir)).await
    }

    async fn start(db: Db, dir: Option<tempfile::TempDir>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(db, listener, dir).await
    }

    /// The server on a store of the test's own, listening on `listener`
    /// (a second server can then take the address of a stopped one).
    pub async fn start_on(db: Db, listener: TcpListener, dir: Option<tempfile::TempDir>) -> Self {
        let addr = listener.local_addr().unwrap();
        let settings = Settings {
            database_url: String::new(),
            bind: addr.to_string(),
            public_url: None,
            db_connections: 16,
        };
        let running = app::start(db.clone(), settings, listener)
            .await
            .expect("start the app");
        use gradebook::services::api_tokens::{create, ApiRole};
        let registrar = create(&db, ApiRole::Registrar, None).await.unwrap().1;
        let auditor = create(&db, ApiRole::Auditor, None).await.unwrap().1;
        let sis = create(&db, ApiRole::Sis, None).await.unwrap().1;
        Self {
            registrar,
            auditor,
            sis,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            running: Some(running),
            db,
            _dir: dir,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.running.as_ref().expect("running").state.engine
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET as an auditor.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_json_as(&self.auditor.clone(), path).await
    }

    pub async fn get_json_as(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let a = self.send("GET", path, Some(token), Body::None).await;
        (a.status, a.json())
    }

    /// The one way tests talk HTTP to the server: `path` is under the
    /// server's base unless it is a whole URL; a bearer token if given.
    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Answer {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.url(path)
        };
        let mut req = self.client.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("content-type", "application/json")
                .body(v.to_string()),
            Body::Raw(content_type, bytes) => req.header("content-type", content_type).body(bytes),
            Body::Untyped(bytes) => req.body(bytes),
        };
        let res = req.send().await.unwrap();
        Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            text: res.text().await.unwrap(),
        }
    }

    /// A body sent byte for byte with its content type (a `Value` would
    /// print its numbers in its own way); the answer as status and JSON.
    pub async fn send_text(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let body = Body::Raw(content_type.to_string(), body.as_bytes().to_vec());
        let a = self.send(method, path, Some(token), body).await;
        (a.status, a.json())
    }

    pub async fn event_count(&self) -> i64 {
        gradebook::projections::projector::events::count(&self.db)
            .await
            .unwrap()
    }

    pub async fn tables(&self) -> BTreeMap<String, Vec<String>> {
        gradebook::projections::projector::dump_read_tables(&self.db)
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// What a request carries.
pub enum Body {
    None,
    Json(serde_json::Value),
    /// A content type and the bytes, sent as they are.
    Raw(String, Vec<u8>),
    /// Bytes without a content type, as some tools send them.
    Untyped(Vec<u8>),
}

impl Body {
    pub fn json(v: Option<serde_json::Value>) -> Self {
        v.map_or(Body::None, Body::Json)
    }
}

/// What the server answered.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON, or `null` when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }
}

/// A JSON request to a server of the test's own making (a node in another
/// process): status and JSON body.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let res = client
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// The JSON error shape with this status and code, a message, a request
/// id, and none of the `leaks` (internals that must not reach a caller).
pub fn assert_error_shape(
    status: u16,
    body: &serde_json::Value,
    want_status: u16,
    want_code: &str,
    leaks: &[&str],
) {
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
    for leak in leaks {
        assert!(!text.contains(leak), "{leak} leaked in {body}");
    }
}

/// Metadata for a command run by a test actor.
pub fn meta(source: Source) -> CommandMeta {
    CommandMeta::new("test", source, uuid::Uuid::new_v4().to_string(), Utc::now())
}

/// Writes a test once and runs it on both stores, as `name::postgres` and
/// `name::sqlite`.
#[macro_export]
macro_rules! on_both_stores {
    ($(#[$attr:meta])* async fn $name:ident($app:ident: TestApp) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            async fn scenario($app: $crate::common::TestApp) $body

            #[sqlx::test(migrations = false)]
            async fn postgres(opts: sqlx::postgres::PgPoolOptions, connect: sqlx::postgres::PgConnectOptions) {
                scenario($crate::common::TestApp::postgres(opts, connect).await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario($crate::common::TestApp::sqlite().await).await
            }
        }
    };
}

pub mod launch;
pub mod tool;

#[allow(unused_imports)]
pub use tool::{FakeTool, ALL_SCOPES};

pub mod fixtures {
    //! A small real-looking course: HIST-101 with a weighted scheme.
    use super::*;
    use chrono::DateTime;
    use gradebook::domain::enrollment::{EnrollmentStatus, Person, Role};
    use gradebook::domain::line_item::LineItemSpec;
    use gradebook::domain::policy::{Category, MissingPolicy, ScaleEntry, Scheme};
    use gradebook::domain::score::{ActivityProgress, GradingProgress, ScoreOutcome, ScorePost};
    use gradebook::domain::{CourseId, LineItemId, UserId};
    use rust_decimal::Decimal;
    use std::str::FromStr;

    /// The entry of a JSON list whose `key` is `value`.
    pub fn find<'a>(list: &'a serde_json::Value, key: &str, value: &str) -> &'a serde_json::Value {
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .find(|v| v[key] == value)
            .unwrap_or_else(|| panic!("no {key} = {value} in {list}"))
    }

    /// A student's row of a grade report.
    pub fn student<'a>(grades: &'a serde_json::Value, user: &str) -> &'a serde_json::Value {
        find(&grades["students"], "user_id", user)
    }

    /// A resource link of the tool in the course, added by the SIS, with no
    /// line item and no url of its own.
    pub async fn resource_link(
        app: &TestApp,
        c: &CourseId,
        tool_id: &str,
        link: &str,
        title: &str,
    ) {
        app.engine()
            .add_resource_link(
                c,
                gradebook::domain::course::ResourceLink {
                    resource_link_id: gradebook::domain::ids::ResourceLinkId::parse(link).unwrap(),
                    tool_id: gradebook::domain::ToolId::parse(tool_id).unwrap(),
                    title: title.into(),
                    url: None,
                    custom: Default::default(),
                    line_item_id: None,
                },
                &meta(Source::Sis),
            )
            .await
            .unwrap();
    }

    /// Opens a course of term 2026FA with these tools deployed, as the SIS.
    pub async fn open_course(app: &TestApp, c: &CourseId, title: &str, tool_ids: &[&str]) {
        let tools = tool_ids
            .iter()
            .map(|t| gradebook::domain::ToolId::parse(*t).unwrap())
            .collect();
        app.engine()
            .open_course(c, title.into(), "2026FA".into(), tools, &meta(Source::Sis))
            .await
            .unwrap();
    }

    /// Enrolls someone in the course, as the SIS.
    pub async fn enroll(app: &TestApp, c: &CourseId, id: &str, person: Person) {
        app.engine()
            .put_enrollment(c, &user(id), person, &meta(Source::Sis))
            .await
            .unwrap();
    }

    /// One learner's cell of a column in a grade report.
    pub fn grade_cell<'a>(
        grades: &'a serde_json::Value,
        user: &str,
        item: &str,
    ) -> &'a serde_json::Value {
        find(&student(grades, user)["items"], "line_item_id", item)
    }

    /// The value of a response header, or "" when it is absent.
    pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn course() -> CourseId {
        CourseId::parse("HIST-101-2026FA").unwrap()
    }

    pub fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    pub fn item(s: &str) -> LineItemId {
        LineItemId::parse(s).unwrap()
    }

    pub fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    pub fn learner(name: &str) -> Person {
        Person {
            role: Role::Learner,
            status: EnrollmentStatus::Active,
            name: Some(name.into()),
            email: None,
        }
    }

    pub fn post(given: Option<&str>, max: &str, ts: &str) -> ScorePost {
        ScorePost {
            score_given: given.map(d),
            score_maximum: Some(d(max)),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp: DateTime::parse_from_rfc3339(ts).unwrap(),
            comment: None,
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        }
    }

    /// Exams 60 (midterm /100, final /100), Homework 40 (hw1 /10, hw2 /10);
    /// two learners and an instructor.
    pub async fn hist101(app: &TestApp) {
        let e = app.engine();
        let c = course();
        open_course(app, &c, "World History", &[]).await;
        e.set_grading(
            &c,
            Scheme::Weighted {
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
            Some(vec![
                ScaleEntry {
                    letter: "A".into(),
                    min_percent: d("93"),
                },
                ScaleEntry {
                    letter: "B".into(),
                    min_percent: d("83"),
                },
                ScaleEntry {
                    letter: "C".into(),
                    min_percent: d("73"),
                },
                ScaleEntry {
                    letter: "F".into(),
                    min_percent: d("0"),
                },
            ]),
            MissingPolicy::Exclude,
            &meta(Source::Sis),
        )
        .await
        .unwrap();
        for (id, label, max, cat) in [
            ("midterm", "Midterm", "100", "Exams"),
            ("final", "Final exam", "100", "Exams"),
            ("hw1", "Homework 1", "10", "Homework"),
            ("hw2", "Homework 2", "10", "Homework"),
        ] {
            let mut spec = LineItemSpec::new(label, d(max));
            spec.category = Some(cat.into());
            e.create_line_item(&c, Some(item(id)), spec, &meta(Source::Sis))
                .await
                .unwrap();
        }
        enroll(app, &c, "ada", learner("Ada Lovelace")).await;
        enroll(app, &c, "alan", learner("Alan Turing")).await;
        let mut prof = learner("Grace Hopper");
        prof.role = Role::Instructor;
        enroll(app, &c, "grace", prof).await;
    }

    pub async fn score(
        app: &TestApp,
        user_id: &str,
        item_id: &str,
        given: Option<&str>,
        max: &str,
        ts: &str,
    ) -> ScoreOutcome {
        app.engine()
            .post_score(
                &course(),
                &item(item_id),
                &user(user_id),
                post(given, max, ts),
                &meta(Source::Ags),
            )
            .await
            .unwrap()
    }
}
