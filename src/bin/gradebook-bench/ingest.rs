//! `ingest`: AGS score posts over HTTP (bearer token from `/lti/token`,
//! JSON validation, the event appended, the projection applied before the
//! 200) at concurrency 1, 8 and 32, against raw single-row INSERTs on the
//! same database at the same concurrency. The two sides alternate in
//! halves so both see the same background load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{Duration as TimeDelta, Utc};

use crate::common::{
    header, insert_baseline, row, run_concurrent, verdict, CpuSpent, Series, Server,
};

/// Score cells to post into: (scores path, user id).
pub struct Cells {
    pub cells: Vec<(String, String)>,
    /// Posts so far; each post gets a newer timestamp than the last.
    pub posted: AtomicUsize,
    pub epoch: chrono::DateTime<Utc>,
}

impl Cells {
    /// `courses` courses of `students` × `items` made for this run.
    pub async fn make(
        server: &Server,
        prefix: &str,
        courses: usize,
        students: usize,
        items: usize,
    ) -> anyhow::Result<Cells> {
        let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let mut per_course = Vec::new();
        for c in 0..courses {
            per_course.push(
                server
                    .tool_course(&format!("{prefix}-{run}-{c}"), students, items)
                    .await?,
            );
        }
        // Interleaved so that neighbouring posts hit different courses.
        let mut cells = Vec::new();
        for j in 0..students {
            for k in 0..items {
                for (scores, users) in &per_course {
                    cells.push((scores[k].clone(), users[j].as_str().to_string()));
                }
            }
        }
        Ok(Cells {
            cells,
            posted: AtomicUsize::new(0),
            epoch: Utc::now() - TimeDelta::days(1),
        })
    }

    /// Posts the next score; the latency of its 200.
    pub async fn post_next(&self, server: &Server) -> anyhow::Result<std::time::Duration> {
        let g = self.posted.fetch_add(1, Ordering::Relaxed);
        let (scores, user) = &self.cells[g % self.cells.len()];
        let at = self.epoch + TimeDelta::milliseconds(g as i64 * 5);
        server
            .post_score(scores, user, (g % 101) as u32, at, false)
            .await
    }
}

pub async fn posts(
    server: &Arc<Server>,
    cells: &Arc<Cells>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Series> {
    let (server, cells) = (server.clone(), cells.clone());
    run_concurrent(n, concurrency, move |_| {
        let (server, cells) = (server.clone(), cells.clone());
        async move { cells.post_next(&server).await }
    })
    .await
}

/// `n` GETs of `/healthz` on `concurrency` workers.
pub async fn http_floor(
    server: &Arc<Server>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Series> {
    let server = server.clone();
    run_concurrent(n, concurrency, move |_| {
        let server = server.clone();
        async move { server.healthz().await }
    })
    .await
}

/// The line under a side's figures: its CPU time per operation, the whole
/// machine's (server, database and client) and this process's own (server
/// and client; on SQLite the database too).
fn cpu_row(spent: CpuSpent, n: usize) {
    let (machine, process) = spent.per_op(n);
    println!("    CPU ms per operation: {machine:.3} machine, {process:.3} this process");
}

pub async fn run(
    server: &Arc<Server>,
    url: &str,
    smoke: bool,
) -> anyhow::Result<Vec<(usize, Series, Series)>> {
    let (courses, students, items) = if smoke { (2, 8, 4) } else { (8, 40, 20) };
    eprintln!(
        "ingest: setting up {courses} courses of {students} learners x {items} line items..."
    );
    let cells = Arc::new(Cells::make(server, "ING", courses, students, items).await?);
    let store = server.engine().db.kind();
    header(&format!(
        "ingest ({store}): AGS score posts over HTTP vs single-row INSERTs, same concurrency"
    ));
    let mut results = Vec::new();
    for (concurrency, n) in [(1usize, 1500usize), (8, 4000), (32, 4000)] {
        let n = if smoke { 40 } else { n };
        let half = n / 2;
        // Warm the connections of both sides first.
        insert_baseline(url, concurrency, concurrency).await?;
        posts(server, &cells, concurrency, concurrency).await?;
        // What each side costs in CPU, over both of its halves: on two
        // cores shared by the server and the database, a side whose
        // operation costs twice the CPU cannot run at half the rate once
        // the cores are busy.
        let (mut base_cpu, mut post_cpu) = (CpuSpent::default(), CpuSpent::default());
        let (mut base, mut post) = (Series::default(), Series::default());
        for _half in 0..2 {
            let b = base_cpu
                .meter(insert_baseline(url, half, concurrency))
                .await?;
            base = Series::merge(base, b);
            let p = post_cpu
                .meter(posts(server, &cells, half, concurrency))
                .await?;
            post = Series::merge(post, p);
        }
        row(
            &format!("baseline: single-row INSERT, concurrency {concurrency}"),
            &base,
            None,
        );
        cpu_row(base_cpu, base.samples.len());
        row(
            &format!("score posts over HTTP, concurrency {concurrency}"),
            &post,
            Some(&base),
        );
        cpu_row(post_cpu, post.samples.len());
        // Context, not part of the ratio: the same client at the same
        // concurrency on a route that does no database work, the floor
        // that HTTP alone sets for any request.
        let floor = http_floor(server, half, concurrency).await?;
        row(
            &format!("  context: GET /healthz (no database), concurrency {concurrency}"),
            &floor,
            Some(&base),
        );
        results.push((concurrency, base, post));
    }
    for (c, base, post) in &results {
        verdict(
            &format!("ingest >= 50% of baseline at concurrency {c}"),
            post.per_sec() / base.per_sec() >= 0.5,
        );
    }
    Ok(results)
}
