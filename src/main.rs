use clap::Parser;
use gradebook::cli::{run, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    gradebook::app::init_tracing();
    run(cli).await
}
