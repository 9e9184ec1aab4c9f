//! The projection against the log: a from-scratch replay rebuilds exactly
//! the live read tables, also after many concurrent writers (on PostgreSQL
//! their transactions commit out of position order), and the `gradebook
//! replay` command does the same from the command line.

mod common;

use std::sync::Arc;

use common::fixtures::*;
use common::meta;
use gradebook::domain::Source;
use gradebook::projections::projector;

/// Adds `n` learners `s0..sn` to the fixture course.
async fn learners(app: &common::TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("s{i}");
        app.engine()
            .put_enrollment(
                &course(),
                &user(&id),
                learner(&format!("Student {i}")),
                &meta(Source::Sis),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

on_both_stores! {
    async fn a_replay_rebuilds_the_live_read_tables_exactly(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("40"), "50", "2026-10-01T10:00:00Z").await;
        score(&app, "ada", "midterm", Some("1"), "50", "2026-09-01T10:00:00Z").await;
        score(&app, "grace", "hw1", Some("1"), "10", "2026-09-01T10:00:00Z").await;
        score(&app, "alan", "hw2", None, "10", "2026-09-01T10:00:00Z").await;
        app.engine().lock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        score(&app, "ada", "hw1", Some("3"), "10", "2026-10-01T10:00:00Z").await;
        app.engine().delete_line_item(&course(), &item("final"), &meta(Source::Sis)).await.unwrap();

        let live = app.tables().await;
        assert!(!live["rm_scores"].is_empty());
        let events = app.event_count().await as u64;
        let mut seen = 0;
        let applied = projector::replay(&app.db, |n| seen = n).await.unwrap();
        assert_eq!(applied, events);
        assert_eq!(seen, events, "progress reached the end");
        assert_eq!(app.tables().await, live);
        app.stop().await;
    }
}

on_both_stores! {
    async fn concurrent_score_posts_project_exactly_like_a_replay(app: TestApp) {
        hist101(&app).await;
        let users = learners(&app, 12).await;
        let app = Arc::new(app);
        let items = ["midterm", "final", "hw1", "hw2"];
        let mut tasks = Vec::new();
        for t in 0..16usize {
            let app = app.clone();
            let users = users.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0..12usize {
                    // Tasks overlap on cells, so some posts race for the same
                    // aggregate and are retried.
                    let u = &users[(t + k) % users.len()];
                    let i = items[(t * 3 + k) % items.len()];
                    let ts = format!("2026-10-01T10:{:02}:{:02}Z", k, t);
                    let given = format!("{}", (t + k) % 10);
                    score(&app, u, i, Some(&given), "10", &ts).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Every write waited for its own projection, so the live tables are
        // complete now; compare them with a rebuild from the log.
        let live = app.tables().await;
        let events = app.event_count().await as u64;
        let applied = projector::replay(&app.db, |_| {}).await.unwrap();
        assert_eq!(applied, events);
        assert_eq!(app.tables().await, live, "the live projection missed or doubled an event");

        // And the projection counts every post exactly once.
        let view = gradebook::projections::queries::load_course_view(&app.db, "HIST-101-2026FA").await.unwrap().unwrap();
        let posts: i64 = view.scores.values().map(|s| s.posts).sum();
        let score_events = gradebook::projections::events::read_course(&app.db, "HIST-101-2026FA")
            .await
            .unwrap()
            .iter()
            .filter(|e| e.aggregate_type == "score")
            .count() as i64;
        assert_eq!(posts, score_events);
        assert!(score_events > 100, "the load recorded {score_events} score events");
        Arc::try_unwrap(app).ok().expect("no task holds the app").stop().await;
    }
}

/// Raw appends from many connections at once, straight into the store,
/// while the projector runs: it must neither skip an event that commits
/// late with a lower position nor apply one twice.
#[sqlx::test(migrations = false)]
async fn the_projector_never_skips_an_event_that_commits_late(
    opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let app = common::TestApp::postgres(opts, connect).await;
    hist101(&app).await;
    let gradebook::projections::db::Db::Postgres(pool) = app.db.clone() else {
        unreachable!()
    };
    // Writers hold their transaction open for a random while after
    // inserting, so later positions commit first.
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..25i64 {
                let mut tx = pool.begin().await.unwrap();
                let id = format!("HIST-101-2026FA/hw1/late{w}x{k}");
                let payload = serde_json::json!({"ScoreRejected": {
                    "course_id": "HIST-101-2026FA", "line_item_id": "hw1", "user_id": format!("late{w}x{k}"),
                    "reason": "user_not_enrolled",
                    "post": {"score_given": "1", "score_maximum": "10", "activity_progress": "Completed",
                             "grading_progress": "FullyGraded", "timestamp": "2026-10-01T10:00:00Z", "comment": null}
                }});
                sqlx::query("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('score', $1, 1, 'ScoreRejected', '1', $2, '{}')")
                    .bind(&id)
                    .bind(payload)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(((w * 7 + k * 13) % 9) as u64)).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = app.event_count().await;
    // Wait for the running projector to reach the end of the log.
    let handle = app.engine().projection().clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        handle.wake();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events e WHERE (e.tx_id::text::bigint, e.position) <= (SELECT last_tx_id, last_position FROM projector_checkpoints)")
            .fetch_one(&pool)
            .await
            .unwrap();
        if applied == total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "projector stuck at {applied}/{total}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let live = app.tables().await;
    let orphans = live["rm_scores"]
        .iter()
        .filter(|r| r.contains("user_id=late"))
        .count();
    assert_eq!(
        orphans, 200,
        "every late-committing event was projected once"
    );
    projector::replay(&app.db, |_| {}).await.unwrap();
    assert_eq!(app.tables().await, live);
    app.stop().await;
}

/// `gradebook replay` on a SQLite file rebuilds the same tables the live
/// server had, and says how many events it replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_rebuilds_the_same_rows() {
    let mut app = common::TestApp::sqlite().await;
    hist101(&app).await;
    score(
        &app,
        "ada",
        "midterm",
        Some("40"),
        "50",
        "2026-10-01T10:00:00Z",
    )
    .await;
    score(&app, "alan", "hw1", Some("7"), "10", "2026-10-01T10:00:00Z").await;
    let live = app.tables().await;
    let events = app.event_count().await;
    // Keep the directory past the server's stop.
    let dir = app._dir.take().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gradebook.db").display());
    app.stop().await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gradebook"))
        .args(["--database-url", &url, "replay"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("replayed {events} events")),
        "{stdout}"
    );

    let db = gradebook::projections::db::Db::connect(&url, 2)
        .await
        .unwrap();
    let rebuilt = projector::dump_read_tables(&db).await.unwrap();
    assert_eq!(rebuilt, live);
}
