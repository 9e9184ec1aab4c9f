//! Operating a gradebook's store as a whole: copying it to another store
//! (`gradebook store copy`, e.g. from the embedded SQLite file to
//! PostgreSQL), backing up a SQLite file while the server runs
//! (`gradebook backup`), and exporting and importing the event log as JSON
//! lines (`gradebook log export`, `gradebook log import`). See
//! docs/operations.md.

pub mod backup;
pub mod conn;
pub mod copy;
pub mod log_io;
pub mod schema;

use gradebook_projections::db::Db;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr (drawn only on a terminal).
pub fn progress(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Rebuilds every read table from the log with a progress bar; returns
/// the events applied and the seconds it took.
pub async fn replay_with_progress(db: &Db) -> anyhow::Result<(u64, f64)> {
    let total = gradebook_projections::projector::events::count(db).await? as u64;
    let bar = progress(
        total,
        "{spinner} replaying [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
    );
    let started = std::time::Instant::now();
    let applied = gradebook_projections::projector::replay(db, |n| bar.set_position(n)).await?;
    bar.finish();
    Ok((applied, started.elapsed().as_secs_f64()))
}
