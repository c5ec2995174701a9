//! The application state shared by every request, and the background tasks
//! (projection runners) that keep the read models up to date.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metachat_analysis::mood::DefaultMoodAnalyzer;
use metachat_core::projection::{supervise, Projection, ProjectionRunner};
use metachat_core::read_model::ReadModelStore;
use metachat_core::relay::Relay;
use metachat_core::store::EventReader;
use metachat_domain::{
    Diaries, DiaryTimeline, KeyVault, MoodTimeline, MoodWorker, UserDirectory, UserId, Users,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Tokens;
use crate::backend::{Backends, DynReadModels, DynStore};
use crate::config::Config;
use crate::keys::Keys;
use metachat_core::progress::{NotifyingReadModels, Progress};

/// The read-model store every part of the server uses, whatever its backend.
pub(crate) type ReadModels = NotifyingReadModels<DynReadModels>;
/// The event store, whatever its backend.
pub(crate) type Store = DynStore;

/// How long a failed projection, relay or worker waits before it starts
/// again from its checkpoint.
pub(crate) const RESTART_AFTER: Duration = Duration::from_secs(1);

/// The outbox relay's checkpoint name (with `--bus kafka`).
pub(crate) const RELAY: &str = "kafka_relay";

/// The mood worker's checkpoint name.
pub(crate) const MOOD_WORKER: &str = MoodWorker::<Store, ReadModels, DefaultMoodAnalyzer>::NAME;

/// The names of the projections (and the worker) whose progress is tracked.
pub(crate) const PROJECTIONS: [&str; 5] = [
    UserDirectory::NAME,
    DiaryTimeline::NAME,
    MoodTimeline::<Keys>::NAME,
    crate::matching::NAME,
    MOOD_WORKER,
];

/// Shared state: cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// Everything, behind one `Arc`.
    pub(crate) inner: Arc<Inner>,
}

/// What [`AppState`] holds.
pub(crate) struct Inner {
    /// The event store.
    pub(crate) store: Store,
    /// The read models (publishing projection progress).
    pub(crate) read_models: ReadModels,
    /// Registration, erasure, credentials (and the key vault).
    pub(crate) users: Users<Store, Keys>,
    /// Diary entries.
    pub(crate) diaries: Diaries<Store, Keys>,
    /// Bearer tokens.
    pub(crate) tokens: Tokens<ReadModels>,
    /// Projection checkpoints.
    pub(crate) progress: Progress,
    /// The hash an unknown email's login verifies against.
    pub(crate) dummy_hash: Arc<str>,
    /// The Prometheus recorder's handle.
    pub(crate) metrics: PrometheusHandle,
    /// The mood worker's counters (`None` when mood analysis is off).
    pub(crate) mood_stats: Option<crate::mood_worker::WorkerHandle>,
    /// The matching projection's index.
    pub(crate) match_index: metachat_domain::matching::SharedMatchIndex,
    /// Each user's last write position in this process (read-your-writes).
    pub(crate) last_writes: parking_lot::Mutex<std::collections::HashMap<UserId, u64>>,
    /// The hashing gate, login throttling and registration quota.
    pub(crate) limits: crate::limits::Limits,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("progress", &self.progress)
            .field("mood_stats", &self.mood_stats)
            .finish_non_exhaustive()
    }
}

/// A stop signal for background tasks.
#[derive(Debug, Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A signal and its trigger.
    pub(crate) fn new() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }

    /// Completes once stop was requested (or the trigger dropped).
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// The opened backends and state, and the background tasks.
#[derive(Debug)]
pub(crate) struct Started {
    /// The shared state.
    pub(crate) state: AppState,
    /// The backends, to close after the tasks stopped.
    pub(crate) backends: Backends,
    /// Projection runners and workers, stopped by `stop`.
    pub(crate) tasks: Vec<JoinHandle<()>>,
    /// Stops the tasks.
    pub(crate) stop: watch::Sender<bool>,
}

/// Opens the backends, starts the projections, the mood worker and (with a
/// bus) the outbox relay.
pub(crate) async fn start(config: &Config, metrics: PrometheusHandle) -> anyhow::Result<Started> {
    let backends = Backends::open(config).await?;
    let store = backends.store.clone();
    let raw_read_models = backends.read_models.clone();

    let vault = KeyVault::new(Keys::open(config, &backends)?);
    let index_key = crate::keys::blind_index_key(&config.index_key_file())?;
    // Repairs an erasure interrupted between `UserErased` and the shred.
    let swept = metachat_domain::shred_erased_users(&vault, &store).await?;
    tracing::debug!(next = swept, "key vault sweep done");

    if config.rebuild_projections {
        rebuild(&store, &raw_read_models, &vault).await?;
    }

    let mut start = Vec::new();
    let relay = backends.bus.is_some().then_some(RELAY);
    for name in PROJECTIONS.into_iter().chain(relay) {
        let next = raw_read_models.checkpoint(name).await?.unwrap_or(0);
        start.push((name.to_owned(), next));
    }
    let progress = Progress::new(start);
    let read_models = NotifyingReadModels::new(raw_read_models, progress.clone());

    let (stop_tx, stop) = Stop::new();
    let mut tasks = Vec::new();
    tasks.push(spawn_runner(
        store.clone(),
        read_models.clone(),
        UserDirectory::new(),
        stop.clone(),
    ));
    tasks.push(spawn_runner(
        store.clone(),
        read_models.clone(),
        DiaryTimeline::new(),
        stop.clone(),
    ));
    tasks.push(spawn_runner(
        store.clone(),
        read_models.clone(),
        MoodTimeline::new(vault.clone()),
        stop.clone(),
    ));
    let matching = crate::matching::projection(vault.clone())?;
    let indexed = matching.load_index(&read_models).await?;
    tracing::info!(users = indexed, "matching index loaded");
    let match_index = matching.index();
    tasks.push(spawn_runner(
        store.clone(),
        read_models.clone(),
        matching,
        stop.clone(),
    ));
    tasks.push(crate::metrics::spawn_head_counter(
        store.clone(),
        stop.clone(),
    ));
    if let Some((bus, prefix)) = backends.bus.clone() {
        let relay = Relay::new(store.clone(), bus, read_models.clone(), RELAY, &prefix);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            supervise(RELAY, || stop.wait(), RESTART_AFTER, |s| relay.run(s)).await;
        }));
    }

    let mood_stats = match crate::mood_worker::spawn(
        config,
        store.clone(),
        read_models.clone(),
        vault.clone(),
        stop.clone(),
    )
    .await?
    {
        Some((task, stats)) => {
            tasks.push(task);
            Some(stats)
        }
        None => None,
    };

    let dummy_hash = crate::auth::dummy_hash().await?;
    let inner = Inner {
        users: Users::new(store.clone(), vault.clone(), index_key),
        diaries: Diaries::new(store.clone(), vault),
        tokens: Tokens::new(read_models.clone(), config.token_ttl()),
        store,
        read_models,
        progress,
        dummy_hash,
        metrics,
        mood_stats,
        match_index,
        last_writes: Default::default(),
        limits: crate::limits::Limits::new(config),
    };
    Ok(Started {
        state: AppState {
            inner: Arc::new(inner),
        },
        backends,
        tasks,
        stop: stop_tx,
    })
}

/// Rebuilds every projection from position 0 (`--rebuild-projections`).
/// The mood worker is not rebuilt: it writes events, and its checkpoint
/// keeps it from analyzing an entry revision twice.
async fn rebuild(
    store: &Store,
    read_models: &DynReadModels,
    vault: &KeyVault<Keys>,
) -> anyhow::Result<()> {
    async fn one<P: Projection>(
        store: &Store,
        read_models: &DynReadModels,
        projection: P,
    ) -> anyhow::Result<()> {
        let name = projection.name().to_owned();
        let runner = ProjectionRunner::new(store.clone(), read_models.clone(), projection);
        let next = runner.rebuild().await?;
        tracing::info!(projection = %name, next, "projection rebuilt from 0");
        Ok(())
    }
    tracing::warn!("rebuilding every projection from position 0");
    one(store, read_models, UserDirectory::new()).await?;
    one(store, read_models, DiaryTimeline::new()).await?;
    one(store, read_models, MoodTimeline::new(vault.clone())).await?;
    one(
        store,
        read_models,
        crate::matching::projection(vault.clone())?,
    )
    .await?;
    Ok(())
}

/// Runs `projection` live until `stop`; after an error, logs it and starts
/// again from the stored checkpoint a second later.
pub(crate) fn spawn_runner<P: Projection + 'static>(
    store: Store,
    read_models: ReadModels,
    projection: P,
    stop: Stop,
) -> JoinHandle<()> {
    let runner = ProjectionRunner::new(store, read_models, projection).with_batch_size(512);
    tokio::spawn(async move {
        runner.run_supervised(|| stop.wait(), RESTART_AFTER).await;
    })
}

impl Inner {
    /// Records that `user` wrote at `position`.
    pub(crate) fn wrote(&self, user: UserId, position: u64) {
        let mut map = self.last_writes.lock();
        let p = map.entry(user).or_insert(position);
        *p = (*p).max(position);
    }

    /// `user`'s last write position in this process.
    pub(crate) fn last_write(&self, user: UserId) -> Option<u64> {
        self.last_writes.lock().get(&user).copied()
    }

    /// The store's head (next position) and each projection's lag behind it.
    pub(crate) async fn lags(&self) -> metachat_core::Result<(u64, Vec<(String, u64)>)> {
        let head = self.store.next_position().await?;
        let lags = self
            .progress
            .names()
            .map(|n| (n.to_owned(), head.saturating_sub(self.progress.next(n))))
            .collect();
        Ok((head, lags))
    }
}
