//! `grade-changes`: the registrar's "which final grades changed after we
//! issued transcripts?" over the whole 500-course term, over HTTP with an
//! auditor token. Transcripts are issued at a moment T; then 1,000 score
//! changes arrive across the school, and `GET /api/grade-changes?term=…&since=T`
//! lists every learner whose course grade moved. Also, as context, the same
//! question over the second half of the term (every change since mid-term:
//! most learners, tens of thousands of events). Baseline: a plain SELECT of
//! the same window's grade history rows, on the same database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gradebook::domain::score::{ActivityProgress, GradingProgress, ScorePost};
use gradebook::domain::{CommandMeta, CourseId, LineItemId, Source, UserId};
use gradebook_projections::with_db;
use rust_decimal::Decimal;

use crate::common::{verdict, Server};
use crate::school::{course_id, item_id, user_id, School};

const TARGET_MS: f64 = 1000.0;

fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The report's time (best and worst of `n`), its bytes and how many
/// learners it lists.
async fn timed_report(
    server: &Server,
    since: DateTime<Utc>,
    n: usize,
) -> anyhow::Result<(Duration, Duration, usize, usize)> {
    let path = format!("/api/grade-changes?term=2026FA&since={}", q(since));
    let mut times = Vec::new();
    let mut last = (0, 0);
    for _ in 0..n {
        let t = Instant::now();
        let res = server
            .client
            .get(server.url(&path))
            .bearer_auth(&server.auditor)
            .send()
            .await?;
        let status = res.status();
        let body = res.bytes().await?;
        times.push(t.elapsed());
        anyhow::ensure!(status.as_u16() == 200, "GET {path}: {status}");
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        last = (body.len(), v["changes"].as_array().map_or(0, Vec::len));
    }
    times.sort();
    Ok((times[0], times[times.len() - 1], last.0, last.1))
}

/// The baseline: the window's history rows, read with one plain SELECT.
async fn baseline(
    server: &Server,
    since: DateTime<Utc>,
    n: usize,
) -> anyhow::Result<(Duration, usize)> {
    let db = &server.engine().db;
    let mut best = Duration::MAX;
    let mut rows = 0;
    for _ in 0..n {
        let t = Instant::now();
        rows = with_db!(db, pool => {
            sqlx::query("SELECT course_id, user_id, tx_id, position, received_at, event_type, before_percent, before_letter, before_status, after_percent, after_letter, after_status FROM rm_grade_history WHERE received_at > $1")
                .bind(q(since))
                .fetch_all(pool)
                .await?
                .len()
        });
        best = best.min(t.elapsed());
    }
    Ok((best, rows))
}

pub async fn run(server: &Arc<Server>, school: &School, smoke: bool) -> anyhow::Result<()> {
    let sizes = school.sizes;
    let changes = if smoke { 20 } else { 1_000 };
    let issued = Utc::now();
    // Score changes after the transcripts, spread over the school: a new
    // score for a (course, learner, item), newer than anything the tool
    // sent before.
    let engine = server.engine();
    for k in 0..changes {
        let c = (k * 7919) % sizes.courses;
        let u = (k * 104_729) % sizes.students;
        let i = (k * 31) % sizes.items;
        let post = ScorePost {
            score_given: Some(Decimal::from((k * 37 % 101) as u32)),
            score_maximum: Some(Decimal::from(100)),
            activity_progress: ActivityProgress::Completed,
            grading_progress: GradingProgress::FullyGraded,
            timestamp: Utc::now().fixed_offset(),
            comment: None,
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        };
        engine
            .post_score(
                &CourseId::parse(course_id(c))?,
                &LineItemId::parse(item_id(i))?,
                &UserId::parse(user_id(c, u))?,
                post,
                &CommandMeta::new(
                    "bench",
                    Source::Ags,
                    uuid::Uuid::new_v4().to_string(),
                    Utc::now(),
                ),
            )
            .await?;
    }
    let runs = if smoke { 2 } else { 5 };
    let (base_after, base_rows_after) = baseline(server, issued, runs).await?;
    let (best, worst, bytes, learners) = timed_report(server, issued, runs).await?;
    let (base_mid, base_rows_mid) = baseline(server, school.as_of, runs.min(3)).await?;
    let (mid_best, mid_worst, mid_bytes, mid_learners) =
        timed_report(server, school.as_of, runs.min(3)).await?;

    let store = engine.db.kind();
    println!();
    println!(
        "grade-changes ({store}): the whole term of {} courses x {} learners, one client",
        sizes.courses, sizes.students
    );
    println!(
        "{:<66} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "", "best ms", "worst ms", "learners", "bytes/rows", "target"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<66} {:>10.1} {:>10} {:>10} {:>12} {:>9}",
        format!("baseline: SELECT the history rows since the transcripts"),
        ms(base_after),
        "-",
        "-",
        base_rows_after,
        "-"
    );
    println!(
        "{:<66} {:>10.1} {:>10.1} {:>10} {:>12} {:>9}",
        format!("changed since the transcripts ({changes} score changes after)"),
        ms(best),
        ms(worst),
        learners,
        bytes,
        format!("<{TARGET_MS}")
    );
    println!(
        "{:<66} {:>10.1} {:>10} {:>10} {:>12} {:>9}",
        "  context: baseline, SELECT the history rows since mid-term",
        ms(base_mid),
        "-",
        "-",
        base_rows_mid,
        "-"
    );
    println!(
        "{:<66} {:>10.1} {:>10.1} {:>10} {:>12} {:>9}",
        "  context: changed since mid-term (half the term's history)",
        ms(mid_best),
        ms(mid_worst),
        mid_learners,
        mid_bytes,
        "-"
    );
    verdict(
        &format!("grade changes of a whole term since the transcripts, worst < {TARGET_MS} ms"),
        ms(worst) < TARGET_MS,
    );
    Ok(())
}
