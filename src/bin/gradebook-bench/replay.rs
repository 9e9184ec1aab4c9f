//! `replay`: the real `gradebook replay` command, run as a child process
//! (so its peak memory is its own), against streaming the same events
//! table in the same order with a plain SELECT in this process.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures::TryStreamExt;
use gradebook::projections::db::Db;
use sqlx::Row;

pub struct Replayed {
    pub events: u64,
    pub wall: Duration,
    pub peak_rss_kib: u64,
}

/// The peak resident set of a live process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `gradebook replay` and watches its peak memory. The high-water
/// mark only grows, so sampling it every few milliseconds until exit
/// misses at most the growth of the last few milliseconds.
pub async fn run_cli(gradebook: &Path, url: &str) -> anyhow::Result<Replayed> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(gradebook)
        .arg("--database-url")
        .arg(url)
        .arg("replay")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", gradebook.display()))?;
    let pid = child.id().context("child pid")?;
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        tokio::select! {
            s = child.wait() => break s?,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    let wall = started.elapsed();
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use tokio::io::AsyncReadExt;
        so.read_to_string(&mut out).await?;
    }
    ensure!(status.success(), "gradebook replay failed: {status} {out}");
    // "replayed N events in ..."
    let events = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected replay output: {out}"))?;
    Ok(Replayed {
        events,
        wall,
        peak_rss_kib: peak,
    })
}

/// Streams every event in log order with one plain SELECT; returns how
/// many and how long. Decoding is left to the replay: this is the read.
/// It reads through a connection opened as `gradebook replay` opens its
/// own (on SQLite, without the server's memory map), so the two differ only
/// in what they do with the rows.
pub async fn stream_baseline(url: &str) -> anyhow::Result<(u64, Duration)> {
    let db = Db::connect_for_replay(url, 1).await?;
    let read = stream_all(&db).await;
    gradebook_projections::with_db!(&db, pool => pool.close().await);
    read
}

async fn stream_all(db: &Db) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    match db {
        Db::Postgres(pool) => {
            let mut rows = sqlx::query("SELECT tx_id::text::bigint AS tx, position, aggregate_type, aggregate_id, sequence, event_type, payload::text AS payload, metadata::text AS metadata FROM events ORDER BY tx_id, position").fetch(pool);
            while let Some(r) = rows.try_next().await? {
                bytes += r.get::<&str, _>("payload").len();
                n += 1;
            }
        }
        Db::Sqlite(pool) => {
            let mut rows = sqlx::query("SELECT 0 AS tx, position, aggregate_type, aggregate_id, sequence, event_type, payload, metadata FROM events ORDER BY position").fetch(pool);
            while let Some(r) = rows.try_next().await? {
                bytes += r.get::<&str, _>("payload").len();
                n += 1;
            }
        }
    }
    std::hint::black_box(bytes);
    Ok((n, started.elapsed()))
}

pub fn report(store: &str, r: &Replayed, baseline: (u64, Duration)) {
    let rate = r.events as f64 / r.wall.as_secs_f64();
    let base = baseline.0 as f64 / baseline.1.as_secs_f64();
    println!();
    println!("replay ({store}): gradebook replay as a child process vs a plain SELECT of the same events");
    println!(
        "{:<62} {:>11} {:>9} {:>9} {:>7}",
        "", "events/s", "seconds", "peak MB", "ratio"
    );
    println!(
        "{:<62} {:>11.0} {:>9.2} {:>9} {:>7}",
        format!("baseline: SELECT streaming {} events", baseline.0),
        base,
        baseline.1.as_secs_f64(),
        "-",
        "1.00"
    );
    let mb = r.peak_rss_kib as f64 / 1024.0;
    println!(
        "{:<62} {:>11.0} {:>9.2} {:>9.0} {:>7.2}",
        format!("gradebook replay of {} events", r.events),
        rate,
        r.wall.as_secs_f64(),
        mb,
        rate / base
    );
    crate::common::verdict("replay >= 30% of the SELECT rate", rate / base >= 0.30);
    crate::common::verdict("replay peak memory < 300 MB", mb < 300.0);
}
