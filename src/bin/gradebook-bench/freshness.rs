//! `freshness`: while 8 clients post scores as fast as they can, a probe
//! posts a score into its own course and polls the course grade endpoint
//! until the grade shows it. Figure: the time from the post's 200 to the
//! response that shows it. Baseline: the grade endpoint's own latency
//! under the same load.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::common::{ms, verdict, Series, Server};
use crate::ingest::Cells;

/// The score the grade report shows for one learner and item.
fn shown(grades: &Value, user: &str, item: &str) -> Option<Decimal> {
    let student = grades["students"]
        .as_array()?
        .iter()
        .find(|s| s["user_id"] == user)?;
    let cell = student["items"]
        .as_array()?
        .iter()
        .find(|i| i["line_item_id"] == item)?;
    Decimal::from_str(cell["score"].as_str()?).ok()
}

pub async fn run(server: &Arc<Server>, smoke: bool) -> anyhow::Result<(Series, Series)> {
    let (students, items, probes) = if smoke { (5, 3, 10) } else { (40, 20, 300) };
    eprintln!("freshness: setting up the load and the probe course...");
    let load = Arc::new(Cells::make(server, "LOAD", 4, students.max(8), items).await?);
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let course = format!("FRESH-{run}");
    let (scores, users) = server.tool_course(&course, students, items).await?;
    let grades_path = format!("/api/courses/{course}/grades");

    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for _ in 0..8 {
        let (server, load, stop) = (server.clone(), load.clone(), stop.clone());
        loaders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                load.post_next(&server).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let epoch = Utc::now() - TimeDelta::hours(1);
    let mut fresh = Vec::new();
    let mut plain = Vec::new();
    let mut first_try = 0;
    let started = Instant::now();
    for i in 0..probes {
        // A plain read of the same report, for the baseline.
        let t = Instant::now();
        server.get(&grades_path).await?;
        plain.push(t.elapsed());

        let k = i % items;
        let user = users[(i / items) % users.len()].as_str();
        let item = scores[k]
            .rsplit('/')
            .nth(1)
            .context("line item id in the scores path")?;
        let value = 1 + (i * 7 % 98) as u32;
        server
            .post_score(
                &scores[k],
                user,
                value,
                epoch + TimeDelta::seconds(i as i64),
                true,
            )
            .await?;
        let answered = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let g = server.get(&grades_path).await?;
            if shown(&g, user, item) == Some(Decimal::from(value)) {
                break;
            }
            anyhow::ensure!(
                answered.elapsed() < Duration::from_secs(10),
                "the grade did not show a posted score within 10 s"
            );
        }
        if tries == 1 {
            first_try += 1;
        }
        fresh.push(answered.elapsed());
    }
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await??;
    }
    let fresh = Series::new(fresh, wall);
    let plain = Series::new(plain, wall);
    let store = server.engine().db.kind();
    println!();
    println!(
        "freshness ({store}): score post 200 -> course grades show it, under 8 posting clients"
    );
    println!(
        "{:<62} {:>11} {:>9} {:>9}",
        "", "samples", "p50 ms", "p99 ms"
    );
    println!(
        "{:<62} {:>11} {:>9.2} {:>9.2}",
        "baseline: GET course grades (40 learners) under the same load",
        plain.samples.len(),
        plain.p50_ms(),
        plain.p99_ms()
    );
    println!(
        "{:<62} {:>11} {:>9.2} {:>9.2}",
        format!("post 200 -> grades show it ({first_try}/{probes} on the first read)"),
        fresh.samples.len(),
        fresh.p50_ms(),
        fresh.p99_ms()
    );
    verdict("freshness p99 < 50 ms", ms(fresh.quantile(0.99)) < 50.0);
    Ok((plain, fresh))
}
