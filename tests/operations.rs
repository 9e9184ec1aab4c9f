//! Operating the store as an operator does, through the built binary:
//! `gradebook store copy` between SQLite and PostgreSQL in both directions
//! (everything kept arrives row for row, the log event for event, the
//! grades are the same, the source is never written, a live source gives
//! a consistent snapshot, bad targets and unknown events are refused
//! before anything is written, a copy killed halfway leaves nothing),
//! `gradebook backup` while posts arrive, and `gradebook log export` /
//! `import` with the refusals of a bad file.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use common::fixtures::*;
use common::{meta, TestApp};
use futures::TryStreamExt;
use gradebook::domain::Source;
use gradebook::ops::conn::{Conn, Value};
use gradebook::ops::schema::{self, KEPT};
use gradebook::projections::db::Db;
use gradebook::projections::projector::events::{check_stored, AnyEvent};
use gradebook::projections::reports::grades::course_grades;
use gradebook::projections::tables::queries::{load_report_view, People};
use gradebook::projections::tables::view::LogFold;
use serde_json::Value as Json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

// ---------------------------------------------------------------------------
// Running the binary

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn gradebook(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gradebook"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run gradebook");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn copy(from: &str, to: &str) -> Run {
    gradebook(&["store", "copy", "--from", from, "--to", to]).await
}

/// The URL of the per-test PostgreSQL database `#[sqlx::test]` made.
fn pg_url(connect: &PgConnectOptions) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL for the PostgreSQL tests");
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{}", connect.get_database().unwrap())
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn close(db: Db) {
    match db {
        Db::Postgres(p) => p.close().await,
        Db::Sqlite(p) => p.close().await,
    }
}

/// Stops a test server and closes its store, keeping a SQLite file's
/// directory.
async fn stop(mut app: TestApp) -> Option<tempfile::TempDir> {
    let dir = app._dir.take();
    let db = app.db.clone();
    app.stop().await;
    close(db).await;
    dir
}

// ---------------------------------------------------------------------------
// A store worth copying

/// HIST-101 with scores of every outcome, a cell long enough to have a
/// snapshot, a lock and an unlock (score gates), a registered tool, a
/// rotated signing key, a revoked token, and a row in every other kept
/// table, some with text that COPY must escape.
async fn populate(app: &TestApp) {
    hist101(app).await;
    score(
        app,
        "ada",
        "midterm",
        Some("88"),
        "100",
        "2026-10-01T10:00:00Z",
    )
    .await;
    score(
        app,
        "alan",
        "midterm",
        Some("71.5"),
        "100",
        "2026-10-01T10:00:00Z",
    )
    .await;
    score(app, "alan", "final", None, "100", "2026-10-02T10:00:00Z").await;
    score(
        app,
        "ada",
        "midterm",
        Some("10"),
        "100",
        "2026-09-01T10:00:00Z",
    )
    .await; // stale
    for i in 0..25 {
        let ts = format!("2026-10-03T10:{i:02}:00Z");
        score(app, "ada", "hw1", Some(&format!("{}", i % 11)), "10", &ts).await;
    }
    app.engine()
        .lock_course(
            &course(),
            Some("grades filed".into()),
            &meta(Source::Registrar),
        )
        .await
        .unwrap();
    score(app, "alan", "hw2", Some("9"), "10", "2026-10-04T10:00:00Z").await; // rejected
    app.engine()
        .unlock_course(&course(), None, &meta(Source::Registrar))
        .await
        .unwrap();
    score(app, "alan", "hw2", Some("8"), "10", "2026-10-05T10:00:00Z").await;

    let tool = common::launch::register(
        app,
        gradebook::services::tools::Grading::Full,
        common::launch::roster(true, false, true),
    )
    .await;
    gradebook::services::platform_keys::signing_key(&app.db)
        .await
        .unwrap();
    gradebook::services::platform_keys::rotate(&app.db)
        .await
        .unwrap();
    let (revoked, _) = gradebook::services::api_tokens::create(
        &app.db,
        gradebook::services::api_tokens::ApiRole::Sis,
        Some("old SIS \"link\"".into()),
    )
    .await
    .unwrap();
    gradebook::services::api_tokens::revoke(&app.db, &revoked.token_id)
        .await
        .unwrap();
    let token_id = gradebook::services::api_tokens::list(&app.db)
        .await
        .unwrap()[0]
        .token_id
        .clone();
    let t = tool.tool_id.as_str();
    let odd = "tab\there, back\\slash, line\nbreak, 'quote', été";
    let rows: Vec<(&str, Vec<Option<&str>>)> = vec![
        (
            "INSERT INTO lti_registration_tokens (token_hash, created_by, created_at, expires_at, used_at, tool_id, courses) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![Some("reg-hash"), Some(odd), Some("2026-10-01T00:00:00.000000Z"), Some("2026-10-08T00:00:00.000000Z"), None, Some(t), Some("all")],
        ),
        // The courses a tool reaches travel with it.
        (
            "UPDATE tools SET courses = $1 WHERE tool_id = $2",
            vec![Some(r#"["HIST-101-2026FA"]"#), Some(t)],
        ),
        (
            "INSERT INTO lti_access_tokens (token_hash, tool_id, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            vec![Some("access-hash"), Some(t), Some(odd), Some("2026-10-01T00:00:00.000000Z"), Some("2099-01-01T00:00:00.000000Z")],
        ),
        (
            "INSERT INTO lti_used_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)",
            vec![Some(tool.client_id.as_str()), Some("jti-1"), Some("2099-01-01T00:00:00.000000Z")],
        ),
        (
            "INSERT INTO lti_launch_hints (hint, login_hint, tool_id, course_id, user_id, kind, resource_link_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            vec![Some("hint-1"), Some("ada"), Some(t), Some("HIST-101-2026FA"), Some("ada"), Some("resource_link"), None, Some("2026-10-01T00:00:00.000000Z"), Some("2099-01-01T00:00:00.000000Z"), None],
        ),
        (
            "INSERT INTO lti_deep_link_requests (data, tool_id, course_id, user_id, nonce, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            vec![Some("dl-data"), Some(t), Some("HIST-101-2026FA"), Some("grace"), Some("n-1"), Some("2026-10-01T00:00:00.000000Z"), Some("2099-01-01T00:00:00.000000Z"), Some("2026-10-01T00:01:00.000000Z")],
        ),
        (
            "INSERT INTO lti_deep_link_nonces (tool_id, nonce, used_at) VALUES ($1, $2, $3)",
            vec![Some(t), Some("n-1"), Some("2026-10-01T00:01:00.000000Z")],
        ),
        (
            "INSERT INTO ui_sessions (session_hash, token_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            vec![Some("session-hash"), Some(token_id.as_str()), Some("csrf"), Some("2026-10-01T00:00:00.000000Z"), Some("2099-01-01T00:00:00.000000Z")],
        ),
    ];
    for (sql, params) in rows {
        gradebook::projections::with_db!(&app.db, pool => {
            let mut q = sqlx::query(sql);
            for p in params {
                q = q.bind(p);
            }
            q.execute(pool).await.unwrap();
        });
    }
}

/// Every kept table's rows, each as its values in column order, sorted
/// (a boolean compared as 1 or 0: what SQLite stores for it).
async fn kept_rows(url: &str) -> BTreeMap<String, Vec<String>> {
    let mut conn = Conn::open_read_only(url, "test").await.unwrap().unwrap();
    conn.begin_snapshot().await.unwrap();
    let mut out = BTreeMap::new();
    for t in KEPT {
        let cols: Vec<_> = conn
            .columns(t)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| !c.generated)
            .collect();
        let (sql, read) = conn.select(t, &cols).unwrap();
        let rows: Vec<Vec<Value>> = conn
            .rows(&sql, read, cols.len())
            .try_collect()
            .await
            .unwrap();
        let mut lines: Vec<String> = rows
            .into_iter()
            .map(|r| {
                let cells: Vec<String> = r
                    .into_iter()
                    .zip(&cols)
                    .map(|(v, c)| {
                        let v = match v {
                            Value::Null => "NULL".to_string(),
                            Value::Int(i) => i.to_string(),
                            Value::Bool(b) => (b as i64).to_string(),
                            Value::Real(f) => f.to_string(),
                            Value::Text(s) => s,
                            Value::Bytes(b) => format!("{b:?}"),
                        };
                        format!("{}={v:?}", c.name)
                    })
                    .collect();
                cells.join(" ")
            })
            .collect();
        lines.sort();
        out.insert(t.to_string(), lines);
    }
    conn.close().await;
    out
}

/// One event as compared across stores: every column copied, the time to
/// the millisecond (SQLite keeps milliseconds).
type EventRow = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
);

/// The log in log order.
async fn log_rows(url: &str) -> Vec<EventRow> {
    let mut conn = Conn::open_read_only(url, "test").await.unwrap().unwrap();
    conn.begin_snapshot().await.unwrap();
    let sql = conn.events_sql(false);
    let rows: Vec<EventRow> = conn
        .events(&sql, None)
        .map_ok(|e| {
            (
                e.position,
                e.aggregate_type,
                e.aggregate_id,
                e.sequence,
                e.event_type,
                e.event_version,
                e.payload,
                e.metadata,
                e.recorded_at.timestamp_millis(),
            )
        })
        .try_collect()
        .await
        .unwrap();
    conn.close().await;
    rows
}

/// The log without positions (a copy numbers them afresh).
fn unpositioned(rows: &[EventRow]) -> Vec<EventRow> {
    rows.iter()
        .cloned()
        .map(|mut r| {
            r.0 = 0;
            r
        })
        .collect()
}

async fn grades_json(app: &TestApp) -> Json {
    let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The grades folded from the store's own log equal the ones its read
/// tables give, for every course.
async fn grades_match_the_log(db: &Db) -> usize {
    let events = gradebook::projections::reports::audit::read_course_events(db, "HIST-101-2026FA")
        .await
        .unwrap();
    let mut fold = LogFold::default();
    for e in &events {
        fold.apply(e);
    }
    let views = fold.into_views();
    for (id, view) in &views {
        let live = load_report_view(db, id, People::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            course_grades(&live, None),
            course_grades(view, None),
            "the grades of {id} are those of its log"
        );
    }
    views.len()
}

fn file_fingerprint(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().modified().unwrap(),
    )
}

/// Every table's row count and a digest of the log: what a write would
/// change.
async fn pg_state(url: &str) -> (Vec<(String, i64)>, String) {
    let mut conn = Conn::open_read_only(url, "test").await.unwrap().unwrap();
    let mut counts = Vec::new();
    for t in conn.tables().await.unwrap() {
        let n = conn.count(&t).await.unwrap();
        counts.push((t, n));
    }
    let Conn::Postgres(c) = &mut conn else {
        unreachable!()
    };
    let digest: String = sqlx::query_scalar(
        "SELECT md5(string_agg(aggregate_id || sequence || payload::text || metadata::text || position || tx_id::text, ',' ORDER BY position)) FROM events",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    conn.close().await;
    (counts, digest)
}

// ---------------------------------------------------------------------------
// Writers posting while an operation runs

/// A post the store acknowledged, and when.
#[derive(Clone)]
struct Acked {
    aggregate_id: String,
    timestamp: DateTime<Utc>,
    at: Instant,
}

/// Four tasks posting newer scores on HIST-101's cells until `stop`.
fn writers(
    app: &TestApp,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<Acked>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let state = app.running.as_ref().expect("running").state.clone();
    for w in 0..4usize {
        let (user_id, items) = match w {
            0 => ("ada", ["midterm", "final"]),
            1 => ("ada", ["hw1", "hw2"]),
            2 => ("alan", ["midterm", "final"]),
            _ => ("alan", ["hw1", "hw2"]),
        };
        let stop = stop.clone();
        let acked = acked.clone();
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let item_id = items[(k % 2) as usize];
                let ts = epoch + chrono::Duration::seconds(k);
                let p = post(Some(&format!("{}", k % 10)), "10", &ts.to_rfc3339());
                let outcome = state
                    .engine
                    .post_score(
                        &course(),
                        &item(item_id),
                        &user(user_id),
                        p,
                        &meta(Source::Ags),
                    )
                    .await;
                if outcome.is_ok() {
                    acked.lock().unwrap().push(Acked {
                        aggregate_id: format!("HIST-101-2026FA/{item_id}/{user_id}"),
                        timestamp: ts,
                        at: Instant::now(),
                    });
                }
            }
        }));
    }
    (acked, tasks)
}

/// The (aggregate id, post timestamp) of every score event in a store.
async fn posts_in(url: &str) -> BTreeSet<(String, DateTime<Utc>)> {
    let mut out = BTreeSet::new();
    for (_, t, id, seq, ty, ver, payload, metadata, _) in log_rows(url).await {
        let env = check_stored(&t, &id, seq, &ty, &ver, &payload, &metadata).unwrap();
        if let AnyEvent::Score(e) = env.event {
            out.insert((id, e.post().timestamp.with_timezone(&Utc)));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The schema is fully classified

async fn all_tables_classified(url: &str) {
    let db = Db::connect(url, 2).await.unwrap();
    db.migrate().await.unwrap();
    close(db).await;
    let mut conn = Conn::open_read_only(url, "test").await.unwrap().unwrap();
    let tables = conn.tables().await.unwrap();
    assert_eq!(
        schema::unclassified(&mut conn).await.unwrap(),
        Vec::<String>::new(),
        "every table the migrations create is the event log, kept or rebuilt (src/ops/schema.rs)"
    );
    for t in KEPT {
        assert!(tables.iter().any(|x| x == t), "kept table {t} exists");
        let cols: Vec<_> = conn
            .columns(t)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| !c.generated)
            .collect();
        conn.select(t, &cols)
            .unwrap_or_else(|e| panic!("every column of {t} can cross between the stores: {e}"));
    }
    for t in gradebook::projections::projector::READ_TABLES {
        assert!(tables.iter().any(|x| x == t), "read table {t} exists");
    }
    assert_eq!(
        schema::unknown_event_columns(&mut conn).await.unwrap(),
        Vec::<String>::new(),
        "every column of the log is copied or filled by the store"
    );
    conn.close().await;
}

#[sqlx::test(migrations = false)]
async fn every_table_the_postgres_migrations_create_is_classified(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    all_tables_classified(&pg_url(&connect)).await;
}

#[tokio::test]
async fn every_table_the_sqlite_migrations_create_is_classified() {
    let dir = tempfile::tempdir().unwrap();
    all_tables_classified(&sqlite_url(&dir.path().join("gb.db"))).await;
}

// ---------------------------------------------------------------------------
// Copies, both ways

#[sqlx::test(migrations = false)]
async fn a_sqlite_store_moves_to_postgres_with_everything_it_keeps(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::sqlite().await;
    populate(&app).await;
    let grades = grades_json(&app).await;
    let dir = stop(app).await.unwrap();
    let file = dir.path().join("gradebook.db");
    let from = sqlite_url(&file);
    let to = pg_url(&connect);
    let before = file_fingerprint(&file);
    let source_log = log_rows(&from).await;
    let source_kept = kept_rows(&from).await;
    assert!(
        !source_kept["snapshots"].is_empty(),
        "the source has snapshots to carry"
    );
    assert_eq!(source_kept["platform_keys"].len(), 2);
    assert!(
        source_kept["tools"][0].contains("HIST-101-2026FA"),
        "the source tool has a course set to carry: {:?}",
        source_kept["tools"]
    );

    let run = copy(&from, &to).await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("all equal"), "{}", run.stdout);
    assert_eq!(
        file_fingerprint(&file),
        before,
        "the source file was not written"
    );

    assert_eq!(
        kept_rows(&to).await,
        source_kept,
        "every kept row arrived as it was"
    );
    let target_log = log_rows(&to).await;
    assert_eq!(
        unpositioned(&target_log),
        unpositioned(&source_log),
        "the log arrived in log order, unchanged"
    );
    let positions: Vec<i64> = target_log.iter().map(|r| r.0).collect();
    assert_eq!(positions, (1..=source_log.len() as i64).collect::<Vec<_>>());

    // Copied again: refused, naming what the target holds.
    let again = copy(&from, &to).await;
    assert!(!again.ok);
    assert!(
        again
            .stderr
            .contains(&format!("events holds {} row(s)", source_log.len()))
            && again.stderr.contains("dropdb"),
        "{}",
        again.stderr
    );

    // The target serves the same grades and takes new posts.
    let target = TestApp::postgres(opts, connect).await;
    assert_eq!(grades_json(&target).await, grades);
    assert_eq!(
        score(
            &target,
            "alan",
            "final",
            Some("90"),
            "100",
            "2026-12-01T10:00:00Z"
        )
        .await,
        gradebook::domain::score::ScoreOutcome::Accepted
    );
    assert_eq!(target.event_count().await, source_log.len() as i64 + 1);
    assert_eq!(grades_match_the_log(&target.db).await, 1);
    target.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_postgres_store_moves_to_sqlite_with_everything_it_keeps(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let from = pg_url(&connect);
    let app = TestApp::postgres(opts, connect).await;
    populate(&app).await;
    let grades = grades_json(&app).await;
    stop(app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("moved.db");
    let to = sqlite_url(&file);
    let before = pg_state(&from).await;
    let source_log = log_rows(&from).await;
    let source_kept = kept_rows(&from).await;

    let run = copy(&from, &to).await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("all equal"), "{}", run.stdout);
    assert_eq!(
        pg_state(&from).await,
        before,
        "the source database was not written"
    );

    assert_eq!(
        kept_rows(&to).await,
        source_kept,
        "every kept row arrived as it was"
    );
    assert_eq!(
        unpositioned(&log_rows(&to).await),
        unpositioned(&source_log)
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let db = Db::connect(&to, 8).await.unwrap();
    let target = TestApp::start_on(db, listener, Some(dir)).await;
    assert_eq!(grades_json(&target).await, grades);
    assert_eq!(
        score(
            &target,
            "alan",
            "final",
            Some("90"),
            "100",
            "2026-12-01T10:00:00Z"
        )
        .await,
        gradebook::domain::score::ScoreOutcome::Accepted
    );
    assert_eq!(grades_match_the_log(&target.db).await, 1);
    target.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_copy_of_a_live_server_is_one_consistent_moment_of_it(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::sqlite().await;
    populate(&app).await;
    let from = sqlite_url(&app._dir.as_ref().unwrap().path().join("gradebook.db"));
    let to = pg_url(&connect);
    let stop_writing = Arc::new(AtomicBool::new(false));
    let (acked, tasks) = writers(&app, stop_writing.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let run = copy(&from, &to).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_writing.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("all equal"), "{}", run.stdout);

    let acked = acked.lock().unwrap().clone();
    let before: Vec<&Acked> = acked.iter().filter(|a| a.at < started).collect();
    assert!(
        before.len() > 10 && acked.len() > before.len(),
        "posts arrived before and during the copy"
    );
    println!(
        "live copy: {} posts acknowledged before the copy began, {} in all",
        before.len(),
        acked.len()
    );
    let copied = posts_in(&to).await;
    for a in &before {
        assert!(
            copied.contains(&(a.aggregate_id.clone(), a.timestamp)),
            "a post acknowledged before the copy began is in the copy"
        );
    }
    // The copy is the source's log up to one moment: a prefix of it.
    let source_log = unpositioned(&log_rows(&from).await);
    let target_log = unpositioned(&log_rows(&to).await);
    assert!(
        source_log.len() > target_log.len(),
        "the source went on after the snapshot"
    );
    assert_eq!(&source_log[..target_log.len()], &target_log[..]);
    stop(app).await;
}

#[sqlx::test(migrations = false)]
async fn a_target_that_is_not_empty_is_refused_and_left_alone(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::sqlite().await;
    populate(&app).await;
    let dir = stop(app).await.unwrap();
    let from = sqlite_url(&dir.path().join("gradebook.db"));
    let to = pg_url(&connect);
    let db = Db::connect(&to, 2).await.unwrap();
    db.migrate().await.unwrap();
    gradebook::services::api_tokens::create(
        &db,
        gradebook::services::api_tokens::ApiRole::Auditor,
        None,
    )
    .await
    .unwrap();
    close(db).await;
    let before = kept_rows(&to).await;

    let run = copy(&from, &to).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("is not empty: api_tokens holds 1 row(s)")
            && run.stderr.contains("wrote nothing")
            && run.stderr.contains("delete the file"),
        "{}",
        run.stderr
    );
    assert_eq!(kept_rows(&to).await, before);
    assert!(log_rows(&to).await.is_empty());

    // The same refusal for a SQLite target.
    let other = tempfile::tempdir().unwrap();
    let copied = sqlite_url(&other.path().join("copy.db"));
    assert!(copy(&from, &copied).await.ok);
    let run = copy(&to, &copied).await;
    assert!(
        !run.ok && run.stderr.contains("events holds"),
        "{}",
        run.stderr
    );
    // And a store is never copied onto itself.
    let run = copy(&from, &from).await;
    assert!(
        !run.ok && run.stderr.contains("the same database"),
        "{}",
        run.stderr
    );
}

#[sqlx::test(migrations = false)]
async fn an_event_this_build_does_not_know_is_refused_before_anything_is_written(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::sqlite().await;
    populate(&app).await;
    gradebook::projections::with_db!(&app.db, pool => {
        sqlx::query("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('score', 'HIST-101-2026FA/hw1/grace', 1, 'ScoreDoubled', '1', '{\"ScoreDoubled\":{}}', '{}')")
            .execute(pool)
            .await
            .unwrap();
    });
    let dir = stop(app).await.unwrap();
    let from = sqlite_url(&dir.path().join("gradebook.db"));

    let to = pg_url(&connect);
    let run = copy(&from, &to).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("ScoreDoubled")
            && run.stderr.contains("HIST-101-2026FA/hw1/grace")
            && run.stderr.contains("Nothing was written"),
        "{}",
        run.stderr
    );
    let mut target = Conn::open_read_only(&to, "test").await.unwrap().unwrap();
    assert_eq!(
        target.tables().await.unwrap(),
        Vec::<String>::new(),
        "not even the schema"
    );
    target.close().await;

    let file = dir.path().join("never.db");
    let run = copy(&from, &sqlite_url(&file)).await;
    assert!(
        !run.ok && run.stderr.contains("ScoreDoubled"),
        "{}",
        run.stderr
    );
    assert!(!file.exists(), "no SQLite target is created");
}

#[sqlx::test(migrations = false)]
async fn a_copy_killed_halfway_leaves_nothing_and_runs_again(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::sqlite().await;
    populate(&app).await;
    let dir = stop(app).await.unwrap();
    let from = sqlite_url(&dir.path().join("gradebook.db"));
    let to = pg_url(&connect);
    // An empty, migrated target, and a transaction of ours holding an
    // uncommitted score gate the copy is about to write: the copy waits on
    // it with the log already written in its own transaction.
    let db = Db::connect(&to, 2).await.unwrap();
    db.migrate().await.unwrap();
    let Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO score_gates (gate, open) VALUES ('course:HIST-101-2026FA', true)")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gradebook"))
        .args(["store", "copy", "--from", &from, "--to", &to])
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity
                    WHERE application_name = 'gradebook (target)' AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(pool).await.unwrap();
        if n == 1 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it was killed"
        );
        assert!(
            Instant::now() < deadline,
            "the copy never reached the score gates"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    blocker.rollback().await.unwrap();
    let gone =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'gradebook (target%'";
    loop {
        let n: i64 = sqlx::query_scalar(gone).fetch_one(pool).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed copy's session did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    close(db).await;
    let mut target = Conn::open_read_only(&to, "test").await.unwrap().unwrap();
    assert_eq!(
        schema::occupied(&mut target).await.unwrap(),
        vec![],
        "nothing of the killed copy remains"
    );
    target.close().await;

    let run = copy(&from, &to).await;
    assert!(
        run.ok && run.stdout.contains("all equal"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(log_rows(&to).await.len(), log_rows(&from).await.len());
}

// ---------------------------------------------------------------------------
// Backups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_posts_arrive_holds_every_acknowledged_post_and_serves() {
    let app = TestApp::sqlite().await;
    populate(&app).await;
    let from = sqlite_url(&app._dir.as_ref().unwrap().path().join("gradebook.db"));
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("gradebook-backup.db");
    let stop_writing = Arc::new(AtomicBool::new(false));
    let (acked, tasks) = writers(&app, stop_writing.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let run = gradebook(&["--database-url", &from, "backup", path.to_str().unwrap()]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_writing.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("backed up"), "{}", run.stdout);

    let acked = acked.lock().unwrap().clone();
    let before: Vec<&Acked> = acked.iter().filter(|a| a.at < started).collect();
    assert!(
        before.len() > 10 && acked.len() > before.len(),
        "posts arrived before and during the backup"
    );
    println!(
        "backup: {} posts acknowledged before the backup began, {} in all",
        before.len(),
        acked.len()
    );
    let backed = posts_in(&sqlite_url(&path)).await;
    for a in &before {
        assert!(
            backed.contains(&(a.aggregate_id.clone(), a.timestamp)),
            "a post acknowledged before the backup began is in it"
        );
    }
    let source_kept = kept_rows(&from).await;
    stop(app).await;

    // Served from the backup: the server catches its read tables up with
    // the backed-up log, and the grades are the log's.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let db = Db::connect(&sqlite_url(&path), 8).await.unwrap();
    let restored = TestApp::start_on(db, listener, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while gradebook::projections::projector::load_checkpoint(&restored.db)
        .await
        .unwrap()
        .position
        < restored.event_count().await
    {
        assert!(Instant::now() < deadline, "the restored server catches up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(grades_match_the_log(&restored.db).await, 1);
    // Keys, tools and tokens came along (the server added its own tokens).
    let restored_kept = kept_rows(&sqlite_url(&path)).await;
    assert_eq!(restored_kept["platform_keys"], source_kept["platform_keys"]);
    assert_eq!(restored_kept["tools"], source_kept["tools"]);
    restored.stop().await;

    // A backup never overwrites.
    let run = gradebook(&[
        "--database-url",
        &sqlite_url(&path),
        "backup",
        path.to_str().unwrap(),
    ])
    .await;
    assert!(
        !run.ok && run.stderr.contains("already exists"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_postgres_backup_is_left_to_pg_dump_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gb.dump");
    let run = gradebook(&[
        "--database-url",
        "postgres://gb:secret@db.example.edu:5433/gradebook",
        "backup",
        path.to_str().unwrap(),
    ])
    .await;
    assert!(!run.ok, "no backup was made, so it does not succeed");
    assert_eq!(
        run.stdout.trim(),
        format!(
            "pg_dump --format=custom --host=db.example.edu --port=5433 --username=gb --file={} gradebook",
            path.display()
        )
    );
    assert!(!run.stdout.contains("secret") && !run.stderr.contains("secret"));
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------
// Export and import

/// A store with HIST-101, on PostgreSQL (`pg` given) or SQLite; its URL.
async fn store_with_history(pg: Option<(PgPoolOptions, PgConnectOptions)>) -> (String, TestApp) {
    let app = match pg {
        Some((opts, connect)) => {
            let url = pg_url(&connect);
            let app = TestApp::postgres(opts, connect).await;
            populate(&app).await;
            return (url, app);
        }
        None => TestApp::sqlite().await,
    };
    populate(&app).await;
    let url = sqlite_url(&app._dir.as_ref().unwrap().path().join("gradebook.db"));
    (url, app)
}

async fn export_import_round_trip(pg: Option<(PgPoolOptions, PgConnectOptions)>) {
    let (url, app) = store_with_history(pg).await;
    let grades = grades_json(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hist101.jsonl");
    let run = gradebook(&[
        "--database-url",
        &url,
        "log",
        "export",
        "--course",
        "HIST-101-2026FA",
        "--output",
        file.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let source_log = log_rows(&url).await;
    assert_eq!(text.lines().count(), source_log.len());
    // Each line is one event with every field, payload and metadata as the
    // very text the store holds.
    for (line, row) in text.lines().zip(&source_log) {
        let v: Json = serde_json::from_str(line).unwrap();
        assert_eq!(v["position"], row.0);
        assert_eq!(v["aggregate_id"], row.2.as_str());
        assert_eq!(v["sequence"], row.3);
        assert!(line.contains(&format!("\"payload\":{},", row.6)), "{line}");
        assert!(
            line.contains(&format!("\"metadata\":{}}}", row.7)),
            "{line}"
        );
    }
    // Exporting onto an existing file is refused.
    let run = gradebook(&[
        "--database-url",
        &url,
        "log",
        "export",
        "--output",
        file.to_str().unwrap(),
    ])
    .await;
    assert!(
        !run.ok && run.stderr.contains("already exists"),
        "{}",
        run.stderr
    );

    // Into another, empty installation (a SQLite file), then its server.
    let other = sqlite_url(&dir.path().join("other.db"));
    let run = gradebook(&[
        "--database-url",
        &other,
        "log",
        "import",
        file.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("imported {} event(s)", source_log.len())),
        "{}",
        run.stdout
    );
    assert_eq!(
        unpositioned(&log_rows(&other).await),
        unpositioned(&source_log)
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imported = TestApp::start_on(Db::connect(&other, 8).await.unwrap(), listener, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = imported
            .get_json("/api/courses/HIST-101-2026FA/grades")
            .await;
        if status == 200 {
            assert_eq!(body, grades, "the imported log gives the same grades");
            break;
        }
        assert!(Instant::now() < deadline, "the import was never projected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    imported.stop().await;

    // Imported again where it came from: every aggregate clashes.
    let before = log_rows(&url).await.len();
    let run = gradebook(&[
        "--database-url",
        &url,
        "log",
        "import",
        file.to_str().unwrap(),
    ])
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("line 1:") && run.stderr.contains("clashes with the target"),
        "{}",
        run.stderr
    );
    assert_eq!(log_rows(&url).await.len(), before, "nothing was written");
    stop(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_sqlite_log_imports_elsewhere_with_the_same_grades() {
    export_import_round_trip(None).await;
}

#[sqlx::test(migrations = false)]
async fn an_exported_postgres_log_imports_elsewhere_with_the_same_grades(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    export_import_round_trip(Some((opts, connect))).await;
}

/// Each bad file is refused naming its line, and the target keeps exactly
/// what it held.
async fn bad_files_are_refused(pg: Option<(PgPoolOptions, PgConnectOptions)>) {
    let (url, app) = store_with_history(pg).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.jsonl");
    let run = gradebook(&[
        "--database-url",
        &url,
        "log",
        "export",
        "--output",
        file.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The hw1 cell has 25 events in a row somewhere in the log.
    let hw1: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"aggregate_id\":\"HIST-101-2026FA/hw1/ada\""))
        .map(|(i, _)| i)
        .collect();
    assert!(hw1.len() >= 25);
    // A course of its own, unknown to the target, to import on its own.
    let fresh = |l: &str| l.replace("HIST-101-2026FA", "HIST-102-2026FA");

    let mut cases: Vec<(&str, String, usize)> = Vec::new();
    let all_fresh: Vec<String> = lines.iter().map(|l| fresh(l)).collect();
    // A gap: one hw1 event left out.
    let mut gap = all_fresh.clone();
    gap.remove(hw1[5]);
    cases.push(("gap", gap.join("\n") + "\n", hw1[6]));
    // A clash: one hw1 event twice.
    let mut clash = all_fresh.clone();
    clash.insert(hw1[3] + 1, all_fresh[hw1[3]].clone());
    cases.push(("clashes", clash.join("\n") + "\n", hw1[3] + 2));
    // A line cut off at the end of the file.
    let mut cut = all_fresh.join("\n") + "\n";
    cut.truncate(cut.len() - 30);
    cases.push(("cut off", cut, lines.len()));
    // A line cut off in the middle of the file.
    let mut torn = all_fresh.clone();
    let half = torn[7].len() / 2;
    torn[7].truncate(half);
    cases.push(("not an exported event", torn.join("\n") + "\n", 8));
    // An event type this build does not know.
    let mut unknown = all_fresh.clone();
    unknown[hw1[2]] = unknown[hw1[2]].replace("ScoreAccepted", "ScoreDoubled");
    cases.push(("ScoreDoubled", unknown.join("\n") + "\n", hw1[2] + 1));
    // An aggregate that starts past what the target holds.
    let mut late = all_fresh.clone();
    late.remove(hw1[0]);
    cases.push(("gap", late.join("\n") + "\n", hw1[1]));

    let before_log = log_rows(&url).await;
    let before_kept = kept_rows(&url).await;
    for (what, body, line) in cases {
        let bad = dir.path().join(format!("bad-{line}.jsonl"));
        std::fs::write(&bad, body).unwrap();
        let run = gradebook(&[
            "--database-url",
            &url,
            "log",
            "import",
            bad.to_str().unwrap(),
        ])
        .await;
        assert!(!run.ok, "{what} refused");
        assert!(
            run.stderr.contains(&format!("line {line}:")) && run.stderr.contains(what),
            "{what} at line {line}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("nothing was imported"),
            "{}",
            run.stderr
        );
        assert_eq!(
            log_rows(&url).await,
            before_log,
            "nothing was written ({what})"
        );
        assert_eq!(
            kept_rows(&url).await,
            before_kept,
            "nothing was written ({what})"
        );
    }
    // The good file goes in, as a second course beside the first.
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, all_fresh.join("\n") + "\n").unwrap();
    let run = gradebook(&[
        "--database-url",
        &url,
        "log",
        "import",
        good.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(log_rows(&url).await.len(), before_log.len() * 2);
    stop(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_log_file_is_refused_at_its_line_on_sqlite() {
    bad_files_are_refused(None).await;
}

#[sqlx::test(migrations = false)]
async fn a_bad_log_file_is_refused_at_its_line_on_postgres(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    bad_files_are_refused(Some((opts, connect))).await;
}
