//! `gradebook backfill`: a file loaded against the configured store, with
//! a progress bar.

use gradebook_domain::CourseId;

use super::{run, Batch, CsvRows, Format, JsonLines, RowSource};
use crate::engine::Engine;

/// `gradebook backfill --course ID FILE [--dry-run]`.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// The course the grades belong to.
    #[arg(long)]
    pub course: String,
    /// A CSV file (header line_item_id,user_id,score_given,score_maximum,timestamp,comment)
    /// or a JSON lines file.
    pub file: std::path::PathBuf,
    /// Check every row and report, appending nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The file's format; by default from its extension (.csv, .jsonl, .ndjson).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    pub format: Option<String>,
}

/// Runs a backfill file against the configured store directly, with a
/// progress bar, and prints the report as JSON on standard output.
pub async fn cli(settings: &crate::config::Settings, args: BackfillArgs) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};

    let course_id = CourseId::parse(args.course.clone())?;
    let format = match args.format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::JsonLines,
        None => Format::from_path(&args.file).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot tell the format of {}: name it .csv or .jsonl, or pass --format",
                args.file.display()
            )
        })?,
    };
    let file = std::fs::File::open(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);

    let db = gradebook_projections::db::Db::connect(&settings.database_url, 4).await?;
    let (engine, projector) = Engine::start(db).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = tokio::spawn(projector.run(async {
        let _ = stopped.await;
    }));

    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let mut batch = Batch::new(course_id, actor, String::new());
    batch.request_id = format!("backfill-{}", batch.batch_id);
    batch.dry_run = args.dry_run;

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} backfill [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = async {
        let mut rows: Box<dyn RowSource + Send> = match format {
            Format::Csv => Box::new(CsvRows::new(file)?),
            Format::JsonLines => Box::new(JsonLines::new(file)),
        };
        let progress_bar = bar.clone();
        run(&engine, &batch, rows.as_mut(), &mut move |n| {
            progress_bar.set_position(n)
        })
        .await
    }
    .await;
    bar.finish_and_clear();
    let _ = stop.send(());
    let _ = projector.await;

    let report = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "{}batch {}: {} accepted, {} unchanged, {} rejected",
        if report.dry_run {
            "dry run, nothing recorded: "
        } else {
            ""
        },
        report.batch_id,
        report.accepted,
        report.unchanged,
        report.rejected
    );
    Ok(())
}
