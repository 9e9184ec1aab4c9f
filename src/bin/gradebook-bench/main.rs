//! Benchmarks of the gradebook, each figure printed beside a baseline
//! measured in the same run on the same database.
//!
//! The program builds its own data: a school (500 courses × 40 learners ×
//! 20 line items and 1,000,000 score events) written into the event log in
//! bulk and projected by `gradebook replay`; then it starts the server
//! in-process on a free port and measures it over HTTP as a learning
//! system and registrars would use it. A database that already holds the
//! school from an earlier run is reused.
//!
//! Run: `cargo build --release --bins && ./target/release/gradebook-bench
//! --database-url URL all` (`--smoke` for a seconds-long run on small data;
//! one scenario at a time by name).

mod backfill;
mod common;
mod freshness;
mod grade_changes;
mod history;
mod ingest;
mod queries;
mod replay;
mod school;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use gradebook::projections::db::Db;

// The same allocator as the server binary, since the server runs in-process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "gradebook benchmarks")]
struct Args {
    /// The store to measure: postgres://... (an empty database is best) or
    /// sqlite://FILE.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://bench.db")]
    database_url: String,
    /// Seconds-long run on small data, for CI.
    #[arg(long)]
    smoke: bool,
    /// The `gradebook` binary that `replay` runs; defaults to the one next
    /// to this program.
    #[arg(long)]
    gradebook: Option<PathBuf>,
    /// Rows in the backfill file (default 100,000; 200 with --smoke).
    #[arg(long)]
    backfill_rows: Option<usize>,
    /// Database connections of the server under test.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// What to measure.
    #[arg(value_enum, num_args = 1.., default_values_t = [What::All])]
    what: Vec<What>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum What {
    /// Everything below, in this order.
    All,
    /// Rebuilding the read model from the school's log.
    Replay,
    /// AGS score posts over HTTP at concurrency 1, 8, 32.
    Ingest,
    /// Score post 200 to the grade endpoint showing it, under load.
    Freshness,
    /// Registrar reads on the full school under 8 concurrent clients.
    Queries,
    /// A 100,000-row CSV through the backfill endpoint.
    Backfill,
    /// A post's cost against the history already held.
    History,
    /// Which grades of the whole term changed since a moment.
    GradeChanges,
}

impl What {
    fn wants(list: &[What], w: What) -> bool {
        list.contains(&What::All) || list.contains(&w)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs only when asked (RUST_LOG), e.g. sqlx::query=debug to see every
    // statement of a request with its time.
    if std::env::var_os("RUST_LOG").is_some() {
        gradebook::app::init_tracing();
    }
    let url = args.database_url.clone();
    let sizes = if args.smoke {
        school::Sizes::smoke()
    } else {
        school::Sizes::full()
    };
    let gradebook_bin = match &args.gradebook {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the directory of this program")?
            .join("gradebook"),
    };
    let db = Db::connect(&url, args.connections)
        .await
        .context("connect")?;
    db.migrate().await?;
    println!(
        "store: {} ({})",
        db.kind(),
        if args.smoke { "smoke run" } else { "full run" }
    );

    let needs_school = [What::Replay, What::Queries, What::GradeChanges]
        .iter()
        .any(|w| What::wants(&args.what, *w));
    let mut replayed = false;
    let school = if needs_school {
        match school::existing(&db, sizes).await? {
            Some(s) => Some(s),
            None => {
                eprintln!("writing the school into the event log...");
                let s = school::generate(&db, sizes).await?;
                eprintln!("projecting it with gradebook replay...");
                let r = replay::run_cli(&gradebook_bin, &url).await?;
                let base = replay::stream_baseline(&url).await?;
                replay::report(db.kind(), &r, base);
                replayed = true;
                school::mark(&db, &s).await?;
                Some(s)
            }
        }
    } else {
        None
    };
    if What::wants(&args.what, What::Replay) && !replayed {
        // The plain read first, then the replay, then the read again: the
        // baseline is the better of the two reads.
        let b1 = replay::stream_baseline(&url).await?;
        let r = replay::run_cli(&gradebook_bin, &url).await?;
        let b2 = replay::stream_baseline(&url).await?;
        let base = if b1.1 < b2.1 { b1 } else { b2 };
        replay::report(db.kind(), &r, base);
    }

    let serving = [
        What::Ingest,
        What::Freshness,
        What::Queries,
        What::Backfill,
        What::History,
        What::GradeChanges,
    ]
    .iter()
    .any(|w| What::wants(&args.what, *w));
    if !serving {
        return Ok(());
    }
    let server = Arc::new(common::Server::start(db.clone(), args.connections).await?);
    if What::wants(&args.what, What::Ingest) {
        ingest::run(&server, &url, args.smoke).await?;
    }
    if What::wants(&args.what, What::Freshness) {
        freshness::run(&server, args.smoke).await?;
    }
    if What::wants(&args.what, What::Queries) {
        let school = school.as_ref().context("school")?;
        queries::run(&server, school, args.smoke).await?;
    }
    if What::wants(&args.what, What::Backfill) {
        let rows = args
            .backfill_rows
            .unwrap_or(if args.smoke { 200 } else { 100_000 });
        backfill::run(&server, &url, rows).await?;
    }
    if What::wants(&args.what, What::History) {
        history::run(server.engine(), args.smoke).await?;
    }
    if What::wants(&args.what, What::GradeChanges) {
        let school = school.as_ref().context("school")?;
        grade_changes::run(&server, school, args.smoke).await?;
    }
    match Arc::try_unwrap(server) {
        Ok(s) => s.stop().await,
        Err(_) => anyhow::bail!("a benchmark task still holds the server"),
    }
    Ok(())
}
