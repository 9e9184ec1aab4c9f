//! `backfill`: a registrar's CSV of past grades posted to the backfill
//! endpoint of an unlocked course, rows per second, against the ingest
//! baseline (single-row INSERTs at concurrency 1) measured around it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::ensure;
use chrono::{Duration as TimeDelta, Utc};
use gradebook::domain::line_item::LineItemSpec;
use gradebook::domain::{CourseId, LineItemId, Source, UserId};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::common::{header, insert_baseline, learner, meta, row, verdict, Series, Server};

pub async fn run(server: &Arc<Server>, url: &str, rows: usize) -> anyhow::Result<()> {
    let (students, items) = if rows < 10_000 { (10, 5) } else { (250, 40) };
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let course = CourseId::parse(format!("BF-{run}"))?;
    eprintln!("backfill: setting up {course} with {students} learners x {items} line items...");
    let engine = server.engine();
    engine
        .open_course(
            &course,
            "Backfill".into(),
            "2026SP".into(),
            vec![],
            &meta(Source::Sis),
        )
        .await?;
    let users: Vec<UserId> = (0..students)
        .map(|j| UserId::parse(format!("past-{j:04}")).unwrap())
        .collect();
    for u in &users {
        engine
            .put_enrollment(&course, u, learner(), &meta(Source::Sis))
            .await?;
    }
    let mut item_ids = Vec::new();
    for k in 0..items {
        let id = LineItemId::parse(format!("past-item-{k:02}"))?;
        engine
            .create_line_item(
                &course,
                Some(id.clone()),
                LineItemSpec::new(format!("Past {k}"), Decimal::from(100)),
                &meta(Source::Sis),
            )
            .await?;
        item_ids.push(id);
    }
    // Each cell gets rows/cells posts, each newer than the last.
    let cells = students * items;
    let epoch = Utc::now() - TimeDelta::days(200);
    let mut csv =
        String::from("line_item_id,user_id,score_given,score_maximum,timestamp,comment\n");
    for r in 0..rows {
        let cell = r % cells;
        let (item, user) = (&item_ids[cell % items], &users[cell / items]);
        let at = epoch + TimeDelta::seconds(r as i64);
        csv.push_str(&format!(
            "{},{},{},100,{},\n",
            item.as_str(),
            user.as_str(),
            (r * 13) % 101,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }

    let n_base = rows.clamp(100, 2000);
    let b1 = insert_baseline(url, n_base / 2, 1).await?;
    let started = Instant::now();
    let res = server
        .client
        .post(server.url(&format!("/api/courses/{course}/backfill")))
        .bearer_auth(&server.registrar)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    let wall = started.elapsed();
    ensure!(status.as_u16() == 200, "backfill: {status} {body}");
    ensure!(
        body["accepted"].as_u64() == Some(rows as u64),
        "backfill did not accept every row: {body}"
    );
    let b2 = insert_baseline(url, n_base / 2, 1).await?;
    let base = Series::merge(b1, b2);
    let rate = rows as f64 / wall.as_secs_f64();
    header(&format!(
        "backfill ({}): {rows}-row CSV over HTTP into an unlocked course",
        engine.db.kind()
    ));
    row("baseline: single-row INSERT, concurrency 1", &base, None);
    println!(
        "{:<62} {:>11.0} {:>9} {:>9} {:>7.2}",
        format!(
            "backfill rows ({:.1} s for the request)",
            wall.as_secs_f64()
        ),
        rate,
        "-",
        "-",
        rate / base.per_sec()
    );
    verdict("backfill >= 50% of baseline", rate / base.per_sec() >= 0.5);
    Ok(())
}
