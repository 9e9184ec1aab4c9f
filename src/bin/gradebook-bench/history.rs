//! `history`: does a score post cost more when the line item (or the
//! learner's cell) already holds 10,000 scores than when it holds 10?
//! Baseline: the same posts into the small column, alternating post by
//! post (concurrency 1, through the engine: facts read, command, commit,
//! projection applied).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gradebook::domain::enrollment::{EnrollmentStatus, Person, Role};
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::score::{ActivityProgress, GradingProgress, ScoreOutcome, ScorePost};
use gradebook::domain::{CommandMeta, CourseId, LineItemId, Source, UserId};
use gradebook::engine::Engine;
use rust_decimal::Decimal;

fn meta(source: Source) -> CommandMeta {
    CommandMeta::new(
        "bench",
        source,
        uuid::Uuid::new_v4().to_string(),
        Utc::now(),
    )
}

fn post(given: u32, second: i64) -> ScorePost {
    ScorePost {
        score_given: Some(Decimal::from(given % 101)),
        score_maximum: Some(Decimal::from(100)),
        activity_progress: ActivityProgress::Completed,
        grading_progress: GradingProgress::FullyGraded,
        timestamp: DateTime::from_timestamp(1_790_000_000 + second, 0)
            .unwrap()
            .fixed_offset(),
        comment: None,
        score_given_as_sent: None,
        score_maximum_as_sent: None,
    }
}

struct Rate {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// A side's rate from its posts' own times, with the slowest 1% left out
/// (the p99 column still shows them). The sides alternate post by post, but
/// a stall that has nothing to do with history (a checkpoint, autovacuum)
/// still lands on one side only: once, a single half-second stall among
/// 500 posts put the big column's rate 45% above the small one's at the
/// same median.
fn rate(samples: &mut [Duration]) -> Rate {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let kept = &samples[..samples.len() - samples.len().div_ceil(100)];
    Rate {
        per_sec: kept.len() as f64 / kept.iter().sum::<Duration>().as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Seeds a column: one accepted post per user, not timed.
async fn seed_posts(
    engine: &Engine,
    course: &CourseId,
    item: &LineItemId,
    users: &[UserId],
    start_second: i64,
) -> anyhow::Result<()> {
    for (k, u) in users.iter().enumerate() {
        let out = engine
            .post_score(
                course,
                item,
                u,
                post(k as u32, start_second + k as i64),
                &meta(Source::Ags),
            )
            .await?;
        anyhow::ensure!(out == ScoreOutcome::Accepted, "unexpected outcome {out:?}");
    }
    Ok(())
}

pub async fn run(engine: &Engine, smoke: bool) -> anyhow::Result<()> {
    let (big, measured) = if smoke { (60, 20) } else { (10_000, 500) };
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let course = CourseId::parse(format!("BENCH-{run}"))?;
    engine
        .open_course(
            &course,
            "Benchmark".into(),
            "bench".into(),
            vec![],
            &meta(Source::Sis),
        )
        .await?;
    let small_item = engine
        .create_line_item(
            &course,
            None,
            LineItemSpec::new("Small column", Decimal::from(100)),
            &meta(Source::Sis),
        )
        .await?;
    let big_item = engine
        .create_line_item(
            &course,
            None,
            LineItemSpec::new("Big column", Decimal::from(100)),
            &meta(Source::Sis),
        )
        .await?;
    let people: Vec<UserId> = (0..big + measured)
        .map(|i| UserId::parse(format!("u{i}")).unwrap())
        .collect();
    eprintln!("enrolling {} learners...", people.len());
    for u in &people {
        let p = Person {
            role: Role::Learner,
            status: EnrollmentStatus::Active,
            name: None,
            email: None,
        };
        engine
            .put_enrollment(&course, u, p, &meta(Source::Sis))
            .await?;
    }
    eprintln!("seeding: 10 scores in the small column, {big} in the big one, {big} posts on one learner's cell...");
    seed_posts(engine, &course, &small_item, &people[..10], 0).await?;
    seed_posts(engine, &course, &big_item, &people[..big], 0).await?;
    let heavy = &people[0];
    let light = &people[1];
    for k in 0..10 {
        let p = post(k as u32, 100 + k as i64);
        engine
            .post_score(&course, &small_item, light, p, &meta(Source::Ags))
            .await?;
    }
    for k in 0..big {
        engine
            .post_score(
                &course,
                &small_item,
                heavy,
                post(k as u32, 100 + k as i64),
                &meta(Source::Ags),
            )
            .await?;
    }

    // New learners into both columns, alternating so both see the same
    // conditions (vacuum, checkpoints, other load).
    let fresh: Vec<UserId> = people[big..].to_vec();
    let (mut small_samples, mut big_samples) = (Vec::new(), Vec::new());
    for (k, u) in fresh.iter().enumerate() {
        for (item, samples) in [
            (&small_item, &mut small_samples),
            (&big_item, &mut big_samples),
        ] {
            let t = Instant::now();
            let out = engine
                .post_score(
                    &course,
                    item,
                    u,
                    post(k as u32, 1_000_000 + k as i64),
                    &meta(Source::Ags),
                )
                .await?;
            anyhow::ensure!(out == ScoreOutcome::Accepted, "unexpected outcome {out:?}");
            samples.push(t.elapsed());
        }
    }
    let baseline = rate(&mut small_samples);
    let against_big = rate(&mut big_samples);
    // One learner's cell with a long history against a cell with 10 posts,
    // alternating so both see the same conditions.
    let (mut light_samples, mut heavy_samples) = (Vec::new(), Vec::new());
    for k in 0..measured {
        for (who, samples) in [(light, &mut light_samples), (heavy, &mut heavy_samples)] {
            let t = Instant::now();
            engine
                .post_score(
                    &course,
                    &small_item,
                    who,
                    post(k as u32, 2_000_000 + k as i64),
                    &meta(Source::Ags),
                )
                .await?;
            samples.push(t.elapsed());
        }
    }
    let light_cell = rate(&mut light_samples);
    let heavy_cell = rate(&mut heavy_samples);

    println!();
    println!(
        "history ({}): cost of a post against the history already held",
        engine.db.kind()
    );
    println!(
        "{:<58} {:>10} {:>10} {:>10} {:>8}",
        "history, concurrency 1 (posts/s: slowest 1% left out)",
        "posts/s",
        "p50 ms",
        "p99 ms",
        "ratio"
    );
    let line = |name: &str, r: &Rate, baseline: &Rate| {
        println!(
            "{:<58} {:>10.0} {:>10.2} {:>10.2} {:>8.2}",
            name,
            r.per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.per_sec / baseline.per_sec
        )
    };
    line(
        "baseline: new learners into a column holding 10 scores",
        &baseline,
        &baseline,
    );
    line(
        &format!("new learners into a column holding {big} scores"),
        &against_big,
        &baseline,
    );
    line(
        "baseline: one learner whose cell holds 10 posts",
        &light_cell,
        &light_cell,
    );
    line(
        &format!("one learner whose cell already holds {big} posts"),
        &heavy_cell,
        &light_cell,
    );
    crate::common::verdict(
        &format!("a column of {big} scores within 10% of one of 10"),
        (against_big.per_sec / baseline.per_sec - 1.0).abs() <= 0.10,
    );
    crate::common::verdict(
        &format!("a cell of {big} posts within 10% of one of 10"),
        (heavy_cell.per_sec / light_cell.per_sec - 1.0).abs() <= 0.10,
    );
    Ok(())
}
