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
        enroll(app, &course(), &id, learner(&format!("Student {i}"))).await;
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

/// Every kind of event the log can hold, including several on the same
/// rows, so that a replay has something of each to fold.
async fn every_kind_of_event(app: &common::TestApp) {
    use gradebook::domain::course::ResourceLink;
    use gradebook::domain::enrollment::LaunchKind;
    use gradebook::domain::ids::ResourceLinkId;
    use gradebook::domain::line_item::LineItemPatch;
    use gradebook::domain::policy::{MissingPolicy, Scheme};
    use gradebook::domain::ToolId;

    hist101(app).await;
    let e = app.engine();
    let c = course();
    let tool = ToolId::parse("tool-a").unwrap();
    e.allow_tools(&c, vec![tool.clone()], &meta(Source::Registrar))
        .await
        .unwrap();
    e.add_resource_link(
        &c,
        ResourceLink {
            resource_link_id: ResourceLinkId::parse("rl-1").unwrap(),
            tool_id: tool.clone(),
            // Characters that PostgreSQL's COPY text format escapes (a replay copies rows in).
            title: "Quiz\t1 \\ \"two\"\nthree\r\\N".into(),
            url: Some("https://tool.example/quiz".into()),
            custom: serde_json::Map::new(),
            line_item_id: Some(item("hw1")),
        },
        &meta(Source::Sis),
    )
    .await
    .unwrap();
    e.set_grading(
        &c,
        Scheme::Points,
        None,
        MissingPolicy::Zero,
        &meta(Source::Sis),
    )
    .await
    .unwrap();
    let patch = LineItemPatch {
        label: Some("Homework one".into()),
        ..Default::default()
    };
    e.update_line_item(&c, &item("hw1"), patch, &meta(Source::Sis))
        .await
        .unwrap();
    for k in 0..3 {
        e.record_launch(
            &c,
            &user("ada"),
            tool.clone(),
            LaunchKind::ResourceLink,
            None,
            &meta(Source::Launch),
        )
        .await
        .unwrap();
        let mut ada = learner("Ada Lovelace");
        ada.email = Some(format!("ada{k}@example.edu"));
        e.put_enrollment(&c, &user("ada"), ada, &meta(Source::Sis))
            .await
            .unwrap();
    }
    for k in 0..6 {
        let ts = format!("2026-10-0{}T10:00:00Z", k + 1);
        score(
            app,
            "ada",
            "midterm",
            Some(&format!("{}", 40 + k)),
            "50",
            &ts,
        )
        .await;
        score(
            app,
            "alan",
            "midterm",
            if k % 2 == 0 { Some("3") } else { None },
            "50",
            &ts,
        )
        .await;
    }
    score(
        app,
        "ada",
        "midterm",
        Some("1"),
        "50",
        "2026-09-01T10:00:00Z",
    )
    .await; // stale
    score(app, "grace", "hw1", Some("1"), "10", "2026-09-01T10:00:00Z").await; // not a learner
    e.lock_course(&c, Some("grades filed".into()), &meta(Source::Registrar))
        .await
        .unwrap();
    score(app, "ada", "hw2", Some("3"), "10", "2026-10-01T10:00:00Z").await; // locked
    e.unlock_course(&c, None, &meta(Source::Registrar))
        .await
        .unwrap();
    e.lock_course(&c, None, &meta(Source::Registrar))
        .await
        .unwrap();
    e.unlock_course(&c, None, &meta(Source::Registrar))
        .await
        .unwrap();
    e.drop_enrollment(&c, &user("alan"), &meta(Source::Sis))
        .await
        .unwrap();
    e.delete_line_item(&c, &item("final"), &meta(Source::Sis))
        .await
        .unwrap();
    // No command links a tool account yet; append the event as the store would.
    let payload = serde_json::json!({"ToolAccountLinked": {"tool_id": "tool-a", "account": "moodle\\17\t\\N"}});
    let metadata = serde_json::to_value(meta(Source::Launch).to_map()).unwrap();
    let sql = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
               VALUES ('enrollment', 'HIST-101-2026FA/ada', (SELECT MAX(sequence) + 1 FROM events WHERE aggregate_id = 'HIST-101-2026FA/ada'), 'ToolAccountLinked', '1', $1, $2)";
    match &app.db {
        gradebook::projections::db::Db::Postgres(pool) => {
            sqlx::query(sql)
                .bind(&payload)
                .bind(&metadata)
                .execute(pool)
                .await
                .unwrap();
        }
        gradebook::projections::db::Db::Sqlite(pool) => {
            sqlx::query(sql)
                .bind(payload.to_string())
                .bind(metadata.to_string())
                .execute(pool)
                .await
                .unwrap();
        }
    }
    // Wait for the projector to reach the end of the log.
    let handle = e.projection().clone();
    for _ in 0..500 {
        handle.wake();
        if app.tables().await["rm_tool_accounts"].len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

on_both_stores! {
    async fn a_replay_folds_every_kind_of_event_exactly_like_the_live_projection(app: TestApp) {
        every_kind_of_event(&app).await;
        let live = app.tables().await;
        assert_eq!(live["rm_tool_accounts"].len(), 1, "{:?}", live["rm_tool_accounts"]);
        let types = match &app.db {
            gradebook::projections::db::Db::Postgres(pool) => sqlx::query_scalar::<_, String>("SELECT DISTINCT event_type FROM events").fetch_all(pool).await.unwrap(),
            gradebook::projections::db::Db::Sqlite(pool) => sqlx::query_scalar::<_, String>("SELECT DISTINCT event_type FROM events").fetch_all(pool).await.unwrap(),
        };
        for t in [
            "CourseOpened", "GradingSchemeSet", "GradeScaleSet", "ToolDeploymentsAllowed", "ResourceLinkAdded",
            "CourseLocked", "CourseUnlocked", "LineItemCreated", "LineItemUpdated", "LineItemDeleted",
            "Enrolled", "EnrollmentUpdated", "EnrollmentStatusChanged", "LaunchRecorded", "ToolAccountLinked",
            "ScoreAccepted", "ScoreCleared", "ScoreIgnoredStale", "ScoreRejected",
        ] {
            assert!(types.iter().any(|x| x == t), "the log has no {t}: {types:?}");
        }
        let events = app.event_count().await as u64;
        // Whole log in one chunk, and chunks that split rows' histories.
        for chunk in [projector::REPLAY_CHUNK, 1, 3, 7] {
            let applied = projector::replay_in_chunks(&app.db, chunk, |_| {}).await.unwrap();
            assert_eq!(applied, events);
            assert_eq!(app.tables().await, live, "replay in chunks of {chunk}");
        }
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_replay_of_many_posts_per_cell_equals_the_live_projection(app: TestApp) {
        hist101(&app).await;
        let users = learners(&app, 3).await;
        for k in 0..40usize {
            for u in &users {
                for i in ["hw1", "hw2"] {
                    // Mostly newer posts, some clears and some stale resends.
                    let minute = if k % 7 == 3 { 0 } else { k };
                    let ts = format!("2026-10-01T11:{minute:02}:00Z");
                    let given = (k % 5 != 4).then(|| format!("{}", k % 10));
                    score(&app, u, i, given.as_deref(), "10", &ts).await;
                }
            }
        }
        let live = app.tables().await;
        let posts: i64 = live["rm_scores"]
            .iter()
            .filter(|r| r.contains("user_id=s"))
            .map(|r| r.split("posts=").nth(1).unwrap().split('|').next().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(posts, 40 * 3 * 2);
        for chunk in [projector::REPLAY_CHUNK, 5, 64] {
            projector::replay_in_chunks(&app.db, chunk, |_| {}).await.unwrap();
            assert_eq!(app.tables().await, live, "replay in chunks of {chunk}");
        }
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
        let view = gradebook::projections::tables::queries::load_course_view(&app.db, "HIST-101-2026FA").await.unwrap().unwrap();
        let posts: i64 = view.scores.values().map(|s| s.posts).sum();
        let score_events = gradebook::projections::reports::audit::read_course_events(&app.db, "HIST-101-2026FA")
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
    late_commits(app).await;
}

/// The same while a transaction stays open in another database of the
/// cluster: the projector's horizon leaves that transaction out, and must
/// still hold back for every writer of this database that has not
/// committed yet.
#[sqlx::test(migrations = false)]
async fn the_projector_never_skips_an_event_that_commits_late_past_a_transaction_open_elsewhere(
    opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    use sqlx::{Connection, Executor};
    use std::str::FromStr;
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL for the PostgreSQL tests");
    let other = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    assert_ne!(other.get_database(), connect.get_database());
    let mut elsewhere = sqlx::PgConnection::connect_with(&other).await.unwrap();
    let mut idle = elsewhere.begin().await.unwrap();
    idle.execute("SELECT pg_current_xact_id()").await.unwrap();
    let app = common::TestApp::postgres(opts, connect).await;
    late_commits(app).await;
    idle.rollback().await.unwrap();
}

/// Makes the connection's transaction take an id, and returns it.
async fn take_xid(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The horizon itself, with the moments that matter pulled apart: a
/// transaction open in another database is left out of it, but a writer of
/// this database that was running when the snapshot was taken holds it,
/// even when it commits before the horizon looks at `pg_stat_activity` (a
/// repeatable-read transaction keeps the snapshot of its first statement
/// and reads `pg_stat_activity` at its first look, so the writer can commit
/// in between). Were it left out for not being seen there, its event, which
/// that snapshot does not show, would fall below the horizon and be passed
/// over for good.
#[sqlx::test(migrations = false)]
async fn the_horizon_leaves_out_another_database_but_holds_for_a_writer_here_that_commits_after_the_snapshot(
    opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    use gradebook::projections::projector::events::pg_horizon;
    use sqlx::{Connection, Executor};
    use std::str::FromStr;
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL for the PostgreSQL tests");
    let other = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    assert_ne!(other.get_database(), connect.get_database());
    let pool = opts
        .max_connections(4)
        .connect_with(connect.clone())
        .await
        .unwrap();

    // Another application's transaction, elsewhere on the cluster.
    let mut elsewhere = sqlx::PgConnection::connect_with(&other).await.unwrap();
    elsewhere.execute("BEGIN").await.unwrap();
    let foreign = take_xid(&mut elsewhere).await;
    // A writer of this database, after it.
    let mut writer = sqlx::PgConnection::connect_with(&connect).await.unwrap();
    writer.execute("BEGIN").await.unwrap();
    let mine = take_xid(&mut writer).await;
    assert!(foreign < mine);
    // A later transaction ends, so that both are below the snapshot's xmax.
    let later = take_xid(&mut pool.acquire().await.unwrap()).await;
    assert!(later > mine);

    // Both running: the foreign one is left out, the writer holds the horizon.
    assert_eq!(pg_horizon(&pool).await.unwrap(), mine);

    // A snapshot taken while the writer runs, the writer commits, and only
    // then does the horizon look at who runs where.
    let mut reader = pool.acquire().await.unwrap();
    reader
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    reader.execute("SELECT 1").await.unwrap();
    writer.execute("COMMIT").await.unwrap();
    assert_eq!(pg_horizon(&mut *reader).await.unwrap(), mine);
    reader.execute("COMMIT").await.unwrap();

    // A fresh snapshot sees the writer done; the foreign transaction, still
    // open, holds nothing.
    assert!(pg_horizon(&pool).await.unwrap() > later);
    elsewhere.execute("ROLLBACK").await.unwrap();
}

async fn late_commits(app: common::TestApp) {
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
