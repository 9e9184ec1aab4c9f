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
    /// Manage registrar API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load past grades from a CSV or JSON lines file into a course.
    Backfill(crate::backfill::BackfillArgs),
    /// Manage the platform's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
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
        role: crate::auth::ApiRole,
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
            let key = crate::lti::keys::rotate(&db).await?;
            eprintln!(
                "rotated the platform signing key; the previous key stays in the JWKS for {} days",
                crate::lti::keys::KEY_OVERLAP.num_days()
            );
            println!("{}", key.kid);
            Ok(())
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
            let (info, secret) = crate::auth::create(&db, role, name).await?;
            eprintln!(
                "created token {} with role {}; it is shown only once:",
                info.token_id,
                role.as_str()
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            for t in crate::auth::list(&db).await? {
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
            if crate::auth::revoke(&db, &token_id).await? {
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
