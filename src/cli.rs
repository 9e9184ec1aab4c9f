//! The command line.

use clap::{Parser, Subcommand};

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
    /// Manage registrar API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load past grades from a CSV or JSON lines file into a course.
    Backfill(crate::backfill::BackfillArgs),
    /// Manage the platform's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Move a whole gradebook to another store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write a consistent copy of a SQLite store to PATH while the server
    /// runs (on PostgreSQL: print the pg_dump command to use).
    Backup { path: std::path::PathBuf },
    /// Export or import the event log as JSON lines.
    #[command(subcommand)]
    Log(LogCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the event log and everything kept beside it from one store to
    /// another, empty one, rebuild the read tables there and check that
    /// both give the same grades.
    Copy {
        /// The store to copy (read in one snapshot, never written).
        #[arg(long)]
        from: String,
        /// The empty store to copy into (a SQLite file is created).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Write the event log, in log order, one event a line.
    Export {
        /// Only this course's events.
        #[arg(long)]
        course: Option<String>,
        /// A new file to write (default: standard output).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Append the events of an exported file, checked first: nothing is
    /// written unless every line is good.
    Import { file: std::path::PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key; the old one stays published for the overlap.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        #[arg(long, value_enum)]
        role: crate::services::api_tokens::ApiRole,
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke { token_id: String },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve => crate::app::serve(settings).await,
        Command::Migrate => {
            let db = open_store(&settings).await?;
            println!("migrations applied ({})", db.kind());
            Ok(())
        }
        Command::Replay => replay(&settings).await,
        Command::Token(cmd) => token(&settings, cmd).await,
        Command::Backfill(args) => crate::backfill::cli(&settings, args).await,
        Command::Keys(KeysCommand::Rotate) => {
            let db = open_store(&settings).await?;
            let key = crate::services::platform_keys::rotate(&db).await?;
            eprintln!(
                "rotated the platform signing key; the previous key stays in the JWKS for {} days",
                crate::services::platform_keys::KEY_OVERLAP.num_days()
            );
            println!("{}", key.kid);
            Ok(())
        }
        Command::Store(StoreCommand::Copy { from, to }) => {
            let report = crate::ops::copy::run(&from, &to).await?;
            print!("{report}");
            if !report.check.passed() {
                anyhow::bail!(
                    "the copy was written, but its check found differences (listed above)"
                );
            }
            Ok(())
        }
        Command::Backup { path } => backup(&settings, &path).await,
        Command::Log(LogCommand::Export { course, output }) => {
            let n = crate::ops::log_io::export_to(
                &settings.database_url,
                course.as_deref(),
                output.as_deref(),
            )
            .await?;
            eprintln!(
                "exported {n} event(s){}",
                output
                    .map(|p| format!(" to {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Command::Log(LogCommand::Import { file }) => {
            let done = crate::ops::log_io::import(&settings.database_url, &file).await?;
            println!(
                "imported {} event(s) of {} aggregate(s) in {} course(s); a running server applies \
                 them within a moment, otherwise the next `serve` or `replay` does",
                done.events, done.aggregates, done.courses
            );
            Ok(())
        }
    }
}

async fn backup(settings: &Settings, path: &std::path::Path) -> anyhow::Result<()> {
    use crate::ops::backup::Backup;
    match crate::ops::backup::run(&settings.database_url, path).await? {
        Backup::Written {
            path,
            events,
            bytes,
        } => {
            println!(
                "backed up {events} event(s) and everything kept beside them to {} ({bytes} bytes)",
                path.display()
            );
            Ok(())
        }
        Backup::UsePgDump { command } => {
            println!("{command}");
            anyhow::bail!(
                "nothing was written: back up PostgreSQL with pg_dump, as printed above \
                 (see docs/operations.md)"
            )
        }
    }
}

async fn open_store(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database_url, 2).await?;
    db.migrate().await?;
    Ok(db)
}

async fn token(settings: &Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let db = open_store(settings).await?;
    match cmd {
        TokenCommand::Create { role, name } => {
            let (info, secret) = crate::services::api_tokens::create(&db, role, name).await?;
            eprintln!(
                "created token {} with role {}; it is shown only once:",
                info.token_id,
                role.as_str()
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            for t in crate::services::api_tokens::list(&db).await? {
                println!(
                    "{}\t{}\t{}\tcreated {}{}",
                    t.token_id,
                    t.role.as_str(),
                    t.name.as_deref().unwrap_or("-"),
                    t.created_at,
                    t.revoked_at
                        .map(|r| format!("\trevoked {r}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { token_id } => {
            if crate::services::api_tokens::revoke(&db, &token_id).await? {
                println!("revoked {token_id}");
            } else {
                anyhow::bail!("no live token with id {token_id}");
            }
        }
    }
    Ok(())
}

async fn replay(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect_for_replay(&settings.database_url, 2).await?;
    db.migrate().await?;
    let (applied, secs) = crate::ops::replay_with_progress(&db).await?;
    println!(
        "replayed {applied} events in {secs:.2} s ({:.0} events/s)",
        applied as f64 / secs.max(1e-9)
    );
    Ok(())
}
