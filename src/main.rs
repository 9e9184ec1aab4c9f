use clap::Parser;
use gradebook::cli::{run, Cli};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    gradebook::app::init_tracing();
    run(cli).await
}
