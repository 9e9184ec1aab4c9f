//! The event-sourced core end to end, on PostgreSQL and on SQLite: commands
//! go through the engine, grades come back over HTTP, and the projection
//! always equals a replay of the log.

mod common;

use common::fixtures::*;
use common::meta;
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::score::{RejectReason, ScoreOutcome};
use gradebook::domain::{DomainError, Source};
use gradebook::engine::EngineError;

on_both_stores! {
    async fn weighted_course_grades_match_a_hand_calculation(app: TestApp) {
        hist101(&app).await;
        // Ada: midterm 40/50 rescaled to 80/100, homework 9/10 and 10/10.
        assert_eq!(score(&app, "ada", "midterm", Some("40"), "50", "2026-10-01T10:00:00Z").await, ScoreOutcome::Accepted);
        score(&app, "ada", "hw1", Some("9"), "10", "2026-09-10T10:00:00Z").await;
        score(&app, "ada", "hw2", Some("10"), "10", "2026-09-17T10:00:00Z").await;
        // Alan: only the midterm, 36/40 -> 90/100.
        score(&app, "alan", "midterm", Some("36"), "40", "2026-10-01T10:00:00Z").await;

        let (status, g) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(status, 200, "{g}");
        assert_eq!(g["scheme"], "weighted");
        assert_eq!(g["as_of"], serde_json::Value::Null);
        // Only learners have rows.
        assert_eq!(g["students"].as_array().unwrap().len(), 2);

        // Exams 80%, Homework 19/20 = 95%: (80 x 60 + 95 x 40) / 100 = 86.00, a B.
        let ada = student(&g, "ada");
        assert_eq!(ada["percent"], "86.00");
        assert_eq!(ada["letter"], "B");
        assert_eq!(ada["points_earned"], "99.00");
        assert_eq!(ada["points_possible"], "120.00");
        assert_eq!(ada["status"], "provisional", "the final is still missing");
        let midterm = &ada["items"][0];
        assert_eq!(midterm["line_item_id"], "midterm");
        assert_eq!(midterm["score"], "80.00");
        assert_eq!(midterm["maximum"], "100.00");
        assert_eq!(midterm["state"], "counted");
        assert_eq!(midterm["counted"], true);
        assert_eq!(ada["items"][1]["state"], "missing");

        // Alan has only exams counted: renormalised over Exams, 90.00.
        let alan = student(&g, "alan");
        assert_eq!(alan["percent"], "90.00");
        assert_eq!(alan["letter"], "B");
        app.stop().await;
    }
}

on_both_stores! {
    async fn a_locked_course_refuses_scores_and_records_the_refusal(app: TestApp) {
        hist101(&app).await;
        let e = app.engine();
        score(&app, "ada", "hw1", Some("5"), "10", "2026-09-10T10:00:00Z").await;
        assert!(e.lock_course(&course(), Some("grades issued".into()), &meta(Source::Registrar)).await.unwrap());
        // Locking twice records nothing.
        let before = app.event_count().await;
        assert!(!e.lock_course(&course(), None, &meta(Source::Registrar)).await.unwrap());
        assert_eq!(app.event_count().await, before);

        let out = score(&app, "ada", "hw1", Some("10"), "10", "2026-09-11T10:00:00Z").await;
        assert_eq!(out, ScoreOutcome::Rejected(RejectReason::CourseLocked));
        assert_eq!(app.event_count().await, before + 1, "the refusal is an event");
        // The tool retries while locked: nothing new is recorded.
        score(&app, "ada", "hw1", Some("10"), "10", "2026-09-11T10:00:00Z").await;
        assert_eq!(app.event_count().await, before + 1);

        let (_, g) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(student(&g, "ada")["items"][2]["score"], "5.00", "the grade did not move");

        // Unlocked, the retry lands.
        assert!(e.unlock_course(&course(), None, &meta(Source::Registrar)).await.unwrap());
        let out = score(&app, "ada", "hw1", Some("10"), "10", "2026-09-11T10:00:00Z").await;
        assert_eq!(out, ScoreOutcome::Accepted);
        let (_, g) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(student(&g, "ada")["items"][2]["score"], "10.00");
        app.stop().await;
    }
}

on_both_stores! {
    async fn stale_equal_and_identical_timestamps_follow_the_rules(app: TestApp) {
        hist101(&app).await;
        assert_eq!(score(&app, "ada", "hw1", Some("7"), "10", "2026-09-10T10:00:00Z").await, ScoreOutcome::Accepted);
        // Same second, different value (Moodle sends whole seconds): applied.
        assert_eq!(score(&app, "ada", "hw1", Some("8"), "10", "2026-09-10T10:00:00Z").await, ScoreOutcome::Accepted);
        // Identical re-send, written with another offset and trailing zeros: nothing new.
        let before = app.event_count().await;
        assert_eq!(score(&app, "ada", "hw1", Some("8.000"), "10", "2026-09-10T12:00:00+02:00").await, ScoreOutcome::Unchanged);
        assert_eq!(app.event_count().await, before);
        // Strictly older: recorded as ignored, not applied.
        assert_eq!(score(&app, "ada", "hw1", Some("1"), "10", "2026-09-10T09:59:59Z").await, ScoreOutcome::IgnoredStale);
        assert_eq!(app.event_count().await, before + 1);
        // A score of 0 is a score; a post without scoreGiven clears it.
        assert_eq!(score(&app, "ada", "hw2", Some("0"), "10", "2026-09-17T10:00:00Z").await, ScoreOutcome::Accepted);
        let (_, g) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        let ada = student(&g, "ada");
        assert_eq!(ada["items"][2]["score"], "8.00");
        assert_eq!(ada["items"][3]["score"], "0.00");
        assert_eq!(ada["items"][3]["state"], "counted");
        assert_eq!(score(&app, "ada", "hw2", None, "10", "2026-09-18T10:00:00Z").await, ScoreOutcome::Cleared);
        let (_, g) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(student(&g, "ada")["items"][3]["state"], "missing");

        // Someone not enrolled as a learner: recorded as an orphan post.
        assert_eq!(
            score(&app, "grace", "hw1", Some("10"), "10", "2026-09-10T10:00:00Z").await,
            ScoreOutcome::Rejected(RejectReason::UserNotEnrolled)
        );
        app.stop().await;
    }
}

on_both_stores! {
    async fn invalid_commands_are_refused_and_append_nothing(app: TestApp) {
        hist101(&app).await;
        let e = app.engine();
        let before = app.event_count().await;
        let unknown = gradebook::domain::CourseId::parse("NOPE-1").unwrap();
        let err = e.create_line_item(&unknown, None, LineItemSpec::new("Quiz", d("10")), &meta(Source::Sis)).await.unwrap_err();
        assert!(matches!(err, EngineError::Domain(DomainError::CourseNotFound)), "{err:?}");
        let err = e.create_line_item(&course(), None, LineItemSpec::new("Quiz", d("-5")), &meta(Source::Sis)).await.unwrap_err();
        assert!(matches!(err, EngineError::Domain(DomainError::InvalidScoreMaximum)), "{err:?}");
        let err = e.create_line_item(&course(), Some(item("hw1")), LineItemSpec::new("Again", d("10")), &meta(Source::Sis)).await.unwrap_err();
        assert!(matches!(err, EngineError::Domain(DomainError::DuplicateLineItem)), "{err:?}");
        let err = e.open_course(&course(), "Twice".into(), "2026FA".into(), vec![], &meta(Source::Sis)).await.unwrap_err();
        assert!(matches!(err, EngineError::Domain(DomainError::CourseAlreadyExists)), "{err:?}");
        let err = e
            .post_score(&course(), &item("nope"), &user("ada"), post(Some("1"), "10", "2026-09-10T10:00:00Z"), &meta(Source::Ags))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Domain(DomainError::LineItemNotFound)), "{err:?}");
        let err = e
            .post_score(&course(), &item("hw1"), &user("ada"), post(Some("-1"), "10", "2026-09-10T10:00:00Z"), &meta(Source::Ags))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Domain(DomainError::InvalidScoreGiven)), "{err:?}");
        assert_eq!(app.event_count().await, before, "refused commands record nothing");

        // Bad input over HTTP gets the JSON error shape.
        let (status, body) = app.get_json("/api/courses/NOPE-1/grades").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"], "course_not_found");
        assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grades?as_of=yesterday").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_as_of");
        let (status, body) = app.get_json("/api/courses/bad%20id/grades").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_id");
        app.stop().await;
    }
}

on_both_stores! {
    async fn grades_as_of_a_moment_show_what_the_engine_held_then(app: TestApp) {
        hist101(&app).await;
        let (_, before_any_score) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        score(&app, "ada", "midterm", Some("70"), "100", "2026-10-01T10:00:00Z").await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let between = chrono::DateTime::parse_from_rfc3339(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // A backfill today of an older grade does not show in the past view.
        score(&app, "ada", "midterm", Some("95"), "100", "2026-10-02T10:00:00Z").await;

        let q = format!("/api/courses/HIST-101-2026FA/grades?as_of={}", between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let (status, past) = app.get_json(&q).await;
        assert_eq!(status, 200, "{past}");
        assert_eq!(student(&past, "ada")["items"][0]["score"], "70.00");
        let echoed = chrono::DateTime::parse_from_rfc3339(past["as_of"].as_str().unwrap()).unwrap();
        assert_eq!(echoed, between);
        let (_, now) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
        assert_eq!(student(&now, "ada")["items"][0]["score"], "95.00");

        // As of a moment before the course existed: 404. In the future: now.
        let (status, _) = app.get_json("/api/courses/HIST-101-2026FA/grades?as_of=2000-01-01T00:00:00Z").await;
        assert_eq!(status, 404);
        let (_, future) = app.get_json("/api/courses/HIST-101-2026FA/grades?as_of=2999-01-01T00:00:00Z").await;
        assert_eq!(future["students"], now["students"]);
        assert_ne!(before_any_score["students"], now["students"]);
        app.stop().await;
    }
}

on_both_stores! {
    async fn the_time_travel_fold_of_the_whole_log_equals_the_live_view(app: TestApp) {
        hist101(&app).await;
        score(&app, "ada", "midterm", Some("40"), "50", "2026-10-01T10:00:00Z").await;
        score(&app, "ada", "midterm", Some("1"), "50", "2026-09-01T10:00:00Z").await; // stale
        score(&app, "grace", "hw1", Some("1"), "10", "2026-09-01T10:00:00Z").await; // orphan
        score(&app, "alan", "hw2", None, "10", "2026-09-01T10:00:00Z").await; // cleared
        let e = app.engine();
        e.delete_line_item(&course(), &item("final"), &meta(Source::Sis)).await.unwrap();
        e.drop_enrollment(&course(), &user("alan"), &meta(Source::Sis)).await.unwrap();
        e.lock_course(&course(), None, &meta(Source::Registrar)).await.unwrap();
        score(&app, "ada", "hw1", Some("3"), "10", "2026-10-01T10:00:00Z").await; // rejected

        let live = gradebook::projections::tables::queries::load_course_view(&app.db, "HIST-101-2026FA").await.unwrap().unwrap();
        let folded = gradebook::projections::tables::queries::course_view_as_of(&app.db, "HIST-101-2026FA", chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live, folded);
        app.stop().await;
    }
}

/// With the database refusing connections, reads and writes answer 503 in
/// the JSON error shape (never a panic), and the server recovers by itself
/// once the database is back.
#[sqlx::test(migrations = false)]
async fn a_database_that_is_down_gives_503_and_the_server_recovers(
    opts: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let admin_url = std::env::var("DATABASE_URL").unwrap();
    let dbname = connect.get_database().unwrap().to_string();
    let app = common::TestApp::postgres(
        opts.max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(1)),
        connect,
    )
    .await;
    hist101(&app).await;
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    let cut = |allow: bool| {
        let admin = admin.clone();
        let dbname = dbname.clone();
        async move {
            sqlx::query(&format!(
                "ALTER DATABASE \"{dbname}\" ALLOW_CONNECTIONS {allow}"
            ))
            .execute(&admin)
            .await
            .unwrap();
            if !allow {
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
                    .bind(&dbname)
                    .execute(&admin)
                    .await
                    .unwrap();
            }
        }
    };
    cut(false).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    // The token check itself needs the database: 503, not 401 or 500.
    let (status, body) = app.get_json("/api/courses/HIST-101-2026FA/grades").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "unavailable");
    let err = app
        .engine()
        .post_score(
            &course(),
            &item("hw1"),
            &user("ada"),
            post(Some("5"), "10", "2026-10-01T10:00:00Z"),
            &meta(Source::Ags),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    // A write that goes straight to the event store says the same.
    let err = app
        .engine()
        .lock_course(&course(), None, &meta(Source::Registrar))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");

    cut(true).await;
    let mut ready = false;
    for _ in 0..50 {
        if app.get_json("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not recover");
    assert_eq!(
        score(&app, "ada", "hw1", Some("5"), "10", "2026-10-01T10:00:00Z").await,
        ScoreOutcome::Accepted
    );
    app.stop().await;
}

on_both_stores! {
    async fn the_platform_signing_key_is_made_at_first_start_and_kept(app: TestApp) {
        let count = || async {
            gradebook::projections::with_db!(&app.db, pool => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM platform_keys").fetch_one(pool).await.unwrap()
            })
        };
        assert_eq!(count().await, 1, "made at start, before any request");
        let kid = gradebook::services::platform_keys::signing_key(&app.db).await.unwrap().kid;
        let (status, jwks) = app.get_json("/.well-known/jwks.json").await;
        assert_eq!(status, 200);
        assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
        assert!(jwks["keys"][0].get("d").is_none(), "never the private half");
        assert_eq!(count().await, 1, "kept, not made again");
        app.stop().await;
    }
}

on_both_stores! {
    /// A backfill chunk is appended in one go; if another writer got to one
    /// of its cells first, the whole chunk is refused as a conflict (and
    /// then redone from fresh reads), with nothing of it written.
    async fn a_batch_append_that_meets_a_written_event_is_refused_whole(app: TestApp) {
        use gradebook::domain::ids::aggregate_id;
        use gradebook::domain::score::Score;
        use gradebook::projections::projector::events::AnyEvent;
        hist101(&app).await;
        score(&app, "ada", "hw1", Some("9"), "10", "2026-09-10T10:00:00Z").await;
        score(&app, "alan", "hw1", Some("7"), "10", "2026-09-10T10:00:00Z").await;
        let first = |who: &str| {
            let id = aggregate_id::score(&course(), &item("hw1"), &user(who));
            let db = app.db.clone();
            async move {
                let events = gradebook::projections::reports::audit::read_aggregate(&db, "score", &id).await.unwrap();
                let AnyEvent::Score(e) = events[0].event.clone() else { panic!("not a score event") };
                (id, e)
            }
        };
        let batch_meta = meta(Source::Backfill).with_batch("b-1");
        let serialize = |id: &str, sequence: usize, payload| {
            let envelope = cqrs_es::EventEnvelope::<Score> {
                aggregate_id: id.to_string(),
                sequence,
                payload,
                metadata: batch_meta.to_map(),
            };
            cqrs_es::persist::SerializedEvent::try_from(&envelope).unwrap()
        };
        let (alan_id, alan_event) = first("alan").await;
        let (ada_id, ada_event) = first("ada").await;
        // Alan's next post is new; Ada's cell already holds sequence 1.
        let next = serialize(&alan_id, 2, alan_event);
        let clash = serialize(&ada_id, 1, ada_event);
        let before = app.event_count().await;

        let append = |events: Vec<cqrs_es::persist::SerializedEvent>| {
            let db = app.db.clone();
            async move { gradebook::store::append_behind_gates::<Score>(&db, &events, course().as_str(), &[]).await }
        };
        let refused = append(vec![next.clone(), clash]).await;
        assert!(matches!(refused, Err(cqrs_es::AggregateError::AggregateConflict)), "{refused:?}");
        assert_eq!(app.event_count().await, before, "nothing of a refused chunk is written");

        assert!(append(vec![next]).await.unwrap());
        assert_eq!(app.event_count().await, before + 1);
        let alan = gradebook::projections::reports::audit::read_aggregate(&app.db, "score", &alan_id).await.unwrap();
        assert_eq!(alan.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(alan[1].event, alan[0].event, "the row holds the event as the store crate would");
        assert_eq!(alan[1].meta.request_id, batch_meta.request_id);
        assert_eq!(alan[1].meta.batch_id.as_deref(), Some("b-1"));
        app.stop().await;
    }
}

on_both_stores! {
    /// A cell's stream crosses two snapshots (one every 20 events). Each post
    /// is judged on the state loaded from the latest snapshot and the events
    /// after it, and the rows written are the store crate's own: its plain
    /// event-by-event load reads back the very same aggregate.
    async fn a_long_score_stream_is_judged_the_same_across_its_snapshots(app: TestApp) {
        use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
        use cqrs_es::EventStore;
        use gradebook::domain::ids::aggregate_id;
        use gradebook::domain::score::Score;
        use gradebook::projections::db::Db;
        hist101(&app).await;
        for k in 0..45 {
            let ts = format!("2026-09-10T10:{k:02}:00Z");
            let given = (k % 10).to_string();
            let outcome = score(&app, "ada", "hw1", Some(&given), "10", &ts).await;
            assert_eq!(outcome, ScoreOutcome::Accepted, "post {k}");
        }
        // The kept timestamp came through both snapshots: an older post is stale...
        let older = score(&app, "ada", "hw1", Some("3"), "10", "2026-09-10T10:30:30Z").await;
        assert_eq!(older, ScoreOutcome::IgnoredStale);
        // ...and so did the kept score: the last post sent again changes nothing.
        let same = score(&app, "ada", "hw1", Some("4"), "10", "2026-09-10T10:44:00Z").await;
        assert_eq!(same, ScoreOutcome::Unchanged);

        let id = aggregate_id::score(&course(), &item("hw1"), &user("ada"));
        let snapshot: (i64, i64) = gradebook::projections::with_db!(&app.db, pool => {
            sqlx::query_as("SELECT last_sequence, current_snapshot FROM snapshots WHERE aggregate_type = 'score' AND aggregate_id = $1")
                .bind(&id)
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(snapshot, (40, 2), "a snapshot at every 20th event");

        let ours = gradebook::store::AggStore::<Score>::new(&app.db).load(&id).await.unwrap();
        // The crate's plain event store: every event, one by one, no snapshot.
        async fn crate_load<R: PersistedEventRepository>(repo: R, id: &str) -> (usize, Score) {
            let context = PersistedEventStore::<R, Score>::new_event_store(repo)
                .load_aggregate(id)
                .await
                .unwrap();
            (context.current_sequence, context.aggregate)
        }
        let (sequence, theirs) = match &app.db {
            Db::Postgres(pool) => crate_load(postgres_es::PostgresEventRepository::new(pool.clone()), &id).await,
            Db::Sqlite(pool) => crate_load(sqlite_es::SqliteEventRepository::new(pool.clone()), &id).await,
        };
        assert_eq!(sequence, 46);
        assert_eq!(ours, theirs);
        app.stop().await;
    }
}
