//! The JSON shapes of the large reports (course grades, a student's
//! provenance, reconciliation, the audit log), held by snapshots in
//! `tests/snapshots/`. One snapshot serves both stores: what differs from
//! run to run (request ids, times of receipt, log positions, cursors) is
//! redacted, so a change of shape on either store fails the test.

mod common;

use common::fixtures::*;
use common::{meta, TestApp};
use gradebook::domain::{CommandMeta, Source};
use serde_json::Value;

const COURSE: &str = "/api/courses/HIST-101-2026FA";

/// HIST-101 with a history behind its numbers: accepted, stale, refused
/// (while locked), backfilled and cleared posts, and a course-total column
/// a tool fills with its own figure.
async fn history(app: &TestApp) {
    hist101(app).await;
    let e = app.engine();
    let posts = |list: &'static [(
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
    )]| async move {
        for (user, item, given, max, ts) in list {
            score(app, user, item, *given, max, ts).await;
        }
    };
    posts(&[
        ("ada", "midterm", Some("40"), "50", "2026-10-01T10:00:00Z"),
        ("ada", "hw1", Some("7"), "10", "2026-09-10T10:00:00Z"),
        ("ada", "hw1", Some("3"), "10", "2026-09-09T10:00:00Z"),
        ("alan", "midterm", Some("71"), "100", "2026-10-01T11:00:00Z"),
        ("alan", "hw2", Some("10"), "10", "2026-09-20T10:00:00Z"),
    ])
    .await;
    let term_closed = Some("term closed".into());
    e.lock_course(&course(), term_closed, &meta(Source::Registrar))
        .await
        .unwrap();
    posts(&[("ada", "hw1", Some("9"), "10", "2026-09-12T10:00:00Z")]).await;
    e.unlock_course(&course(), None, &meta(Source::Registrar))
        .await
        .unwrap();
    let backfill = CommandMeta::new(
        "token:reg-1",
        Source::Backfill,
        "req-backfill",
        chrono::Utc::now(),
    );
    let hw2 = post(Some("8"), "10", "2026-09-11T10:00:00Z");
    e.post_score(
        &course(),
        &item("hw2"),
        &user("ada"),
        hw2,
        &backfill.with_batch("batch-1"),
    )
    .await
    .unwrap();
    posts(&[
        ("alan", "hw2", None, "10", "2026-09-21T10:00:00Z"),
        ("ada", "hw1", Some("9.5"), "10", "2026-09-14T10:00:00+02:00"),
    ])
    .await;
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

on_both_stores! {
    async fn the_large_reports_keep_their_shape(app: TestApp) {
        history(&app).await;
        let redactions = || {
            let mut s = insta::Settings::clone_current();
            for (field, name) in [
                ("received_at", "[received_at]"),
                ("recorded_at", "[recorded_at]"),
                ("request_id", "[request_id]"),
                ("position", "[position]"),
                ("next_cursor", "[cursor]"),
                ("generated_at", "[generated_at]"),
                ("as_of", "[as_of]"),
                ("locked_at", "[locked_at]"),
            ] {
                s.add_redaction(&format!(".**.{field}"), name);
            }
            s.set_sort_maps(true);
            s
        };
        redactions().bind_async(async {
            insta::assert_json_snapshot!("course_grades", get(&app, &format!("{COURSE}/grades")).await);
            insta::assert_json_snapshot!("provenance", get(&app, &format!("{COURSE}/students/ada/provenance")).await);
            insta::assert_json_snapshot!("reconciliation", get(&app, &format!("{COURSE}/reconciliation")).await);
            insta::assert_json_snapshot!("audit", get(&app, "/api/audit?course_id=HIST-101-2026FA&limit=500").await);
        })
        .await;
        app.stop().await;
    }
}
