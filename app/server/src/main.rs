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
mod background;
mod config;
mod correlation;
mod error;
mod extract;
mod keys;
mod limits;
mod matching;
mod metrics;
mod mood_worker;
mod openapi;
mod revocations;
mod roles;
mod routes;
mod serve;
mod shutdown;
mod state;
mod token;
mod web;

use anyhow::Context as _;
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
    let web = match &config.web_dir {
        Some(dir) => {
            let assets = web::WebAssets::load(dir).with_context(|| {
                format!("cannot serve the web client of --web-dir {}", dir.display())
            })?;
            tracing::info!(dir = %dir.display(), files = assets.asset_count() + 1, "serving the web client at /");
            Some(std::sync::Arc::new(assets))
        }
        None => None,
    };
    let mut started = state::start(&config, handle).await?;
    let app = routes::router(started.state.clone(), web);

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on --addr {}", config.addr))?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on --metrics-addr {}", config.metrics_addr))?;
    tracing::info!(
        addr = %metrics_listener.local_addr()?,
        "metrics listening"
    );
    tracing::info!(
        addr = %listener.local_addr()?,
        store = ?config.store,
        read_models = ?config.read_models,
        bus = ?config.bus,
        roles = %config.roles,
        "listening"
    );
    started.tasks.push(sweeper(
        started.state.clone(),
        config.sweep_interval(),
        started.stop.subscribe(),
    ));

    // One signal stops both listeners.
    let (down_tx, down_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown::signal().await;
        let _ = down_tx.send(true);
    });
    let down = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|d| *d).await;
    };
    let http = config.http();
    let metrics_server = tokio::spawn(serve::serve(
        metrics_listener,
        routes::metrics_router(started.state.clone()),
        http,
        down(down_rx.clone()),
    ));
    serve::serve(listener, app, http, down(down_rx)).await;
    if let Err(e) = metrics_server.await {
        tracing::error!(error = %e, "the metrics listener failed");
    }

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

/// Every `interval`, until `stop`: deletes expired sessions and forgets
/// stale throttling records.
fn sweeper(
    state: state::AppState,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = ticks.tick() => {}
            }
            if let Some(tokens) = &state.inner.tokens {
                match tokens.purge_expired().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "expired sessions deleted"),
                    Err(e) => tracing::warn!(error = %e, "the session sweep failed; next time"),
                }
            }
            state.inner.limits.sweep();
        }
    })
}
