//! Starting the service: connect, migrate, run the projector and serve.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::engine::Engine;
use crate::http::{self, AppState, SharedState};
use gradebook_projections::db::Db;

/// A started service: its address and a way to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub state: SharedState,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    projector: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.projector.await;
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Starts the projector and the HTTP server on an already connected store.
pub async fn start(db: Db, settings: Settings, listener: TcpListener) -> anyhow::Result<Running> {
    let (engine, projector) = Engine::start(db).await?;
    // The platform's signing key exists from the first start on, so the
    // JWKS a tool fetches while being registered already lists it.
    crate::services::platform_keys::signing_key(&engine.db).await?;
    let state: SharedState = Arc::new(AppState { engine, settings });
    let (stop, rx) = watch::channel(false);
    let projector = tokio::spawn(projector.run(stopped(rx.clone())));
    let addr = listener.local_addr()?;
    let app = http::router(state.clone());
    let server = tokio::spawn(http::server::serve(listener, app, stopped(rx)));
    Ok(Running {
        addr,
        state,
        stop,
        server,
        projector,
    })
}

/// `gradebook serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database_url, settings.db_connections).await?;
    let listener = TcpListener::bind(&settings.bind).await?;
    let running = start(db, settings.clone(), listener).await?;
    tracing::info!(addr = %running.addr, public_url = %settings.public_url(), store = running.state.engine.db.kind(), "gradebook is serving");
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Structured JSON logs; `RUST_LOG` picks what to log (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
