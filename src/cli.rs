//! The command line.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Settings;
use gradebook_projections::db::Db;

#[derive(Debug, Parser)]
#[command(
    name = "gradebook",
    version,
    about = "Event-sourced gradebook reconciliation engine (the SIS side of LTI 1.3 grading)"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations, the projector and the HTTP server.
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Rebuild every read table from the event log.
    Replay,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve => crate::app::serve(settings).await,
        Command::Migrate => {
            let db = Db::connect(&settings.database_url, 2).await?;
            db.migrate().await?;
            println!("migrations applied ({})", db.kind());
            Ok(())
        }
        Command::Replay => replay(&settings).await,
    }
}

async fn replay(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database_url, 4).await?;
    db.migrate().await?;
    let total = gradebook_projections::events::count(&db).await? as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let applied = gradebook_projections::projector::replay(&db, |n| bar.set_position(n)).await?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {applied} events in {secs:.2} s ({:.0} events/s)",
        applied as f64 / secs.max(1e-9)
    );
    Ok(())
}
