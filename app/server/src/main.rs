//! # metachat-server
//!
//! The MetaChat server: one process with the event store and read models,
//! the projections, the mood-analysis worker, matching, and a JSON REST API
//! with bearer-token authentication (see `API.md`). The store and read
//! models are the embedded sled database by default, or Cassandra, and with
//! `--bus kafka` the outbox relay publishes every event to Kafka
//! (`backend.rs`).
//!
//! Run it with `scripts/serve` (fetches the models, then
//! `cargo run --release -p metachat-server`), or directly:
//!
//! ```sh
//! cargo run --release -p metachat-server -- --data-dir ./data --analyzer lexicon
//! ```
//!
//! `--help` lists every flag and its environment variable.
#![forbid(unsafe_code)]

mod auth;
mod backend;
mod config;
mod error;
mod extract;
mod keys;
mod matching;
mod metrics;
mod mood_worker;
mod openapi;
mod routes;
mod shutdown;
mod state;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);
    mood_worker::init_compute_pool();
    let handle = metrics::install()?;
    let started = state::start(&config, handle).await?;
    let app = routes::router(started.state.clone());

    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        store = ?config.store,
        read_models = ?config.read_models,
        bus = ?config.bus,
        "listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await?;

    tracing::info!("HTTP server stopped; stopping the background tasks");
    let _ = started.stop.send(true);
    for task in started.tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "background task failed");
        }
    }
    drop(started.state);
    started.backends.close().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}
