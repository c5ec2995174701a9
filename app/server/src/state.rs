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

use anyhow::Context as _;
use metachat_adapters::kafka::KafkaEventBus;
use metachat_core::aggregate::Aggregate as _;
use metachat_core::projection::BusProjectionRunner;

use crate::auth::{Authenticator, Tokens};
use crate::backend::{Backends, DynBus, DynReadModels, DynStore};
use crate::background::{self, Priority};
use crate::config::Config;
use crate::error::ApiError;
use crate::keys::Keys;
use crate::revocations::Revocations;
use crate::roles::{Role, RoleSet};
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

/// Shared state: cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// Everything, behind one `Arc`.
    pub(crate) inner: Arc<Inner>,
}

/// What [`AppState`] holds. The parts of a role this process does not play
/// are `None` (their routes are not mounted).
pub(crate) struct Inner {
    /// The roles this process plays.
    pub(crate) roles: RoleSet,
    /// The event store.
    pub(crate) store: Store,
    /// The read models (publishing projection progress).
    pub(crate) read_models: ReadModels,
    /// The users' data keys.
    pub(crate) vault: KeyVault<Keys>,
    /// Registration, erasure, credentials (`user`).
    pub(crate) users: Option<Users<Store, Keys>>,
    /// Diary entries (`diary`).
    pub(crate) diaries: Option<Diaries<Store, Keys>>,
    /// Sessions and the signing key (`user`).
    pub(crate) tokens: Option<Arc<Tokens<ReadModels>>>,
    /// How bearer tokens are checked.
    pub(crate) auth: Authenticator,
    /// Revocations from the bus (distributed processes).
    pub(crate) revocations: Option<Arc<Revocations>>,
    /// Projection checkpoints.
    pub(crate) progress: Progress,
    /// The hash an unknown email's login verifies against.
    pub(crate) dummy_hash: Arc<str>,
    /// The Prometheus recorder's handle.
    pub(crate) metrics: PrometheusHandle,
    /// The mood worker's counters (`None` when mood analysis is off).
    pub(crate) mood_stats: Option<crate::mood_worker::WorkerHandle>,
    /// The matching projection's index (`matching`).
    pub(crate) match_index: Option<metachat_domain::matching::SharedMatchIndex>,
    /// Each user's last write position in this process (read-your-writes).
    pub(crate) last_writes: parking_lot::Mutex<std::collections::HashMap<UserId, u64>>,
    /// The hashing gate, login throttling and registration quota.
    pub(crate) limits: crate::limits::Limits,
    /// The Kafka bus and this process's consumer groups with the topics
    /// they follow (distributed processes), for the consumer lag per
    /// partition in `/metrics`.
    pub(crate) consumers: Option<(KafkaEventBus, Vec<(String, String)>)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("roles", &self.roles.to_string())
            .field("progress", &self.progress)
            .field("mood_stats", &self.mood_stats)
            .finish_non_exhaustive()
    }
}

/// A part of a role this process does not play: its routes are not
/// mounted, so reaching this is a bug, answered 500.
fn missing<'a, T>(part: Option<&'a T>, what: &str) -> Result<&'a T, ApiError> {
    part.ok_or_else(|| ApiError::internal(format!("{what}: a role this process does not play")))
}

impl Inner {
    /// The user service's parts.
    pub(crate) fn users(&self) -> Result<&Users<Store, Keys>, ApiError> {
        missing(self.users.as_ref(), "users")
    }

    /// The diary service's parts.
    pub(crate) fn diaries(&self) -> Result<&Diaries<Store, Keys>, ApiError> {
        missing(self.diaries.as_ref(), "diaries")
    }

    /// The sessions.
    pub(crate) fn tokens(&self) -> Result<&Tokens<ReadModels>, ApiError> {
        missing(self.tokens.as_deref(), "sessions")
    }

    /// The matching index.
    pub(crate) fn match_index(
        &self,
    ) -> Result<&metachat_domain::matching::SharedMatchIndex, ApiError> {
        missing(self.match_index.as_ref(), "matching")
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

/// The topics a distributed process's followers read: the categories
/// whose events the projections and the worker fold.
pub(crate) const FOLLOWED: [&str; 3] = ["user", "entry", "mood"];

/// The categories the relay sends watermarks to (every topic a follower
/// or the revocations read).
const WATERMARKED: [&str; 5] = ["user", "entry", "mood", "session", "email"];

/// How long a check waits for the revocations to catch up with Kafka, and
/// how long a logout waits for its revocation to come back from Kafka.
pub(crate) const REVOCATION_WAIT: Duration = Duration::from_secs(5);

/// Where the followers of this process read events from.
#[derive(Clone)]
pub(crate) enum Feed {
    /// The store's log (the embedded server).
    Log,
    /// Kafka topics `{prefix}{category}`, as consumer groups named
    /// `{prefix}{role}[.{instance}].{follower}`.
    Bus {
        /// The bus.
        bus: DynBus,
        /// The topic prefix.
        prefix: String,
        /// This process's instance name.
        instance: String,
        /// The consumer groups started so far, with a topic each follows
        /// (for the lag in `/metrics`).
        groups: Arc<parking_lot::Mutex<Vec<(String, String)>>>,
        /// With `--rebuild-projections`: a suffix that makes the followers'
        /// groups new ones (they read from the earliest record).
        generation: Option<String>,
    },
}

impl Feed {
    fn topics(prefix: &str) -> Vec<String> {
        FOLLOWED.iter().map(|c| format!("{prefix}{c}")).collect()
    }
}

/// Starts `projection` on the feed: a log-following runner, or a bus
/// runner as group `group`.
fn spawn_follower<P: Projection + 'static>(
    feed: &Feed,
    store: &Store,
    read_models: &ReadModels,
    projection: P,
    group: &str,
    stop: &Stop,
) -> std::io::Result<JoinHandle<()>> {
    match feed {
        Feed::Log => spawn_runner(store.clone(), read_models.clone(), projection, stop.clone()),
        Feed::Bus {
            bus,
            prefix,
            groups,
            generation,
            ..
        } => {
            let topics = Feed::topics(prefix);
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let name = projection.name().to_owned();
            let group = match generation {
                Some(g) => format!("{prefix}{group}.{name}.{g}"),
                None => format!("{prefix}{group}.{name}"),
            };
            groups
                .lock()
                .extend(topics.iter().map(|t| (group.clone(), t.clone())));
            let runner = BusProjectionRunner::new(
                bus.clone(),
                read_models.clone(),
                projection,
                &names,
                &group,
            );
            let stop = stop.clone();
            let thread = thread_name(&name);
            background::spawn(&thread, Priority::Low, async move {
                supervise(&name, || stop.wait(), RESTART_AFTER, |s| runner.run(s)).await;
            })
        }
    }
}

/// The name of a projection's thread (Linux keeps 15 bytes of it).
fn thread_name(projection: &str) -> String {
    format!("proj-{projection}")
}

/// Opens the backends and starts what the roles call for: the projections,
/// the mood worker, the outbox relay, the revocations.
pub(crate) async fn start(config: &Config, metrics: PrometheusHandle) -> anyhow::Result<Started> {
    let roles = config.roles;
    let backends = Backends::open(config).await?;
    let store = backends.store.clone();
    let raw_read_models = backends.read_models.clone();
    let feed = if roles.is_embedded() {
        Feed::Log
    } else {
        let (bus, prefix) = backends
            .bus
            .clone()
            .context("a distributed process needs --bus kafka")?;
        Feed::Bus {
            bus,
            prefix,
            instance: config.instance.clone(),
            groups: Arc::default(),
            generation: config
                .rebuild_projections
                .then(|| format!("rebuilt{}", crate::token::now_secs())),
        }
    };

    let vault = KeyVault::new(Keys::open(config, &backends)?);
    if roles.has(Role::User) {
        // Repairs an erasure interrupted between `UserErased` and the shred.
        let swept = metachat_domain::shred_erased_users(&vault, &store).await?;
        tracing::debug!(next = swept, "key vault sweep done");
    }

    if config.rebuild_projections {
        if roles.is_embedded() {
            rebuild(&store, &raw_read_models, &vault).await?;
        } else {
            reset_followers(roles, &raw_read_models, &vault).await?;
        }
    }

    // The followers this process runs, for progress and readiness.
    let mut names: Vec<&str> = Vec::new();
    if roles.has(Role::User) {
        names.push(UserDirectory::NAME);
    }
    if roles.has(Role::Diary) {
        names.extend([DiaryTimeline::NAME, MoodTimeline::<Keys>::NAME]);
    }
    if roles.has(Role::Matching) {
        names.extend(crate::matching::projections());
    }
    if roles.has(Role::Mood) {
        names.push(MOOD_WORKER);
    }
    if roles.has(Role::Relay) && backends.bus.is_some() {
        names.push(RELAY);
    }
    names.sort_unstable();
    names.dedup();
    let mut start = Vec::new();
    for name in names {
        let next = raw_read_models.checkpoint(name).await?.unwrap_or(0);
        start.push((name.to_owned(), next));
    }
    let progress = Progress::new(start);
    let read_models = NotifyingReadModels::new(raw_read_models, progress.clone());

    let (stop_tx, stop) = Stop::new();
    let mut tasks = Vec::new();
    let group = |role: Role| match role {
        Role::Matching => format!("{}.{}", role.name(), config.instance),
        _ => role.name().to_owned(),
    };
    if roles.has(Role::User) || roles.has(Role::Matching) {
        let owner = if roles.has(Role::User) {
            Role::User
        } else {
            Role::Matching
        };
        tasks.push(spawn_follower(
            &feed,
            &store,
            &read_models,
            UserDirectory::new(),
            &group(owner),
            &stop,
        )?);
    }
    if roles.has(Role::Diary) {
        tasks.push(spawn_follower(
            &feed,
            &store,
            &read_models,
            DiaryTimeline::new(),
            &group(Role::Diary),
            &stop,
        )?);
        tasks.push(spawn_follower(
            &feed,
            &store,
            &read_models,
            MoodTimeline::new(vault.clone()),
            &group(Role::Diary),
            &stop,
        )?);
    }
    let mut match_index = None;
    if roles.has(Role::Matching) {
        let matching = crate::matching::projection(vault.clone())?;
        let indexed = matching.load_index(&read_models).await?;
        tracing::info!(users = indexed, "matching index loaded");
        match_index = Some(matching.index());
        tasks.push(spawn_follower(
            &feed,
            &store,
            &read_models,
            matching,
            &group(Role::Matching),
            &stop,
        )?);
    }
    tasks.push(crate::metrics::spawn_head_counter(
        store.clone(),
        stop.clone(),
    ));
    if roles.has(Role::Relay) {
        if let Some((bus, prefix)) = backends.bus.clone() {
            let mut relay = Relay::new(store.clone(), bus, read_models.clone(), RELAY, &prefix);
            if !roles.is_embedded() {
                relay = relay.with_watermarks(WATERMARKED);
            }
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                supervise(RELAY, || stop.wait(), RESTART_AFTER, |s| relay.run(s)).await;
            }));
        }
    }

    let mut mood_stats = None;
    if roles.has(Role::Mood) {
        let worker_feed = match &feed {
            Feed::Log => crate::mood_worker::WorkerFeed::Log,
            Feed::Bus {
                bus,
                prefix,
                groups,
                ..
            } => {
                let topic = format!("{prefix}{}", metachat_domain::DiaryEntry::KIND);
                let group = format!("{prefix}{}", Role::Mood.name());
                groups.lock().push((group.clone(), topic.clone()));
                crate::mood_worker::WorkerFeed::Bus {
                    bus: bus.clone(),
                    topic,
                    group,
                }
            }
        };
        if let Some((task, stats)) = crate::mood_worker::spawn(
            config,
            store.clone(),
            read_models.clone(),
            vault.clone(),
            worker_feed,
            stop.clone(),
        )
        .await?
        {
            tasks.push(task);
            mood_stats = Some(stats);
        }
    }

    // Tokens: the user role signs and keeps sessions; the others verify
    // with the public key and learn revocations from the bus.
    let tokens = if roles.has(Role::User) {
        let signer = crate::token::load_signer(&config.token_key_file())?;
        Some(Arc::new(Tokens::new(
            read_models.clone(),
            Arc::new(signer),
            config.token_ttl(),
            config.refresh_ttl(),
        )))
    } else {
        None
    };
    let revocations = match (&feed, &backends.kafka) {
        (
            Feed::Bus {
                prefix, instance, ..
            },
            Some(kafka),
        ) => {
            let revocations = Revocations::new(kafka.clone(), prefix, REVOCATION_WAIT);
            let group = format!(
                "{prefix}revocations.{}.{instance}.{}",
                roles.to_string().replace(',', "-"),
                uuid::Uuid::new_v4().simple()
            );
            tasks.push(tokio::spawn(revocations.clone().run(group, stop.clone())));
            Some(revocations)
        }
        _ => None,
    };
    let auth = match (&tokens, &revocations) {
        (Some(tokens), _) => Authenticator::Sessions(tokens.clone()),
        (None, Some(revocations)) => Authenticator::Remote {
            verifier: crate::token::load_verifier(&config.token_public_key_file())?,
            revocations: revocations.clone(),
        },
        (None, None) => anyhow::bail!(
            "no way to check tokens: a process without the user role needs --bus kafka"
        ),
    };

    let consumers = match (&feed, &backends.kafka) {
        (Feed::Bus { groups, .. }, Some(kafka)) => Some((kafka.clone(), groups.lock().clone())),
        _ => None,
    };
    let dummy_hash = crate::auth::dummy_hash().await?;
    let inner = Inner {
        roles,
        users: if roles.has(Role::User) {
            Some(Users::new(store.clone(), vault.clone(), index_key(config)?))
        } else {
            None
        },
        diaries: roles.has(Role::Diary).then(|| {
            let diaries = Diaries::new(store.clone(), vault.clone());
            if roles.is_embedded() {
                diaries
            } else {
                // The author is vouched for by a checked token (not erased,
                // session live) and the key vault (not shredded): the
                // diary service reads no user stream.
                diaries.trusting_authors()
            }
        }),
        vault,
        tokens,
        auth,
        revocations,
        store,
        read_models,
        progress,
        dummy_hash,
        metrics,
        mood_stats,
        match_index,
        last_writes: Default::default(),
        limits: crate::limits::Limits::new(config),
        consumers,
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

/// The blind-index key, for the user role.
fn index_key(config: &Config) -> anyhow::Result<metachat_domain::BlindIndexKey> {
    crate::keys::blind_index_key(&config.index_key_file())
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

/// `--rebuild-projections` in a distributed process: clears the read models
/// of the projections its roles run (their collections, per-stream guards
/// and checkpoints); they then read their topics from the start as new
/// consumer groups ([`Feed::Bus`]'s generation).
async fn reset_followers(
    roles: RoleSet,
    read_models: &DynReadModels,
    vault: &KeyVault<Keys>,
) -> anyhow::Result<()> {
    async fn one<P: Projection>(read_models: &DynReadModels, projection: P) -> anyhow::Result<()> {
        let name = projection.name().to_owned();
        for c in projection.collections() {
            read_models.clear_collection(&c).await?;
        }
        read_models
            .clear_collection(&format!(
                "{}{name}",
                metachat_core::projection::APPLIED_PREFIX
            ))
            .await?;
        read_models.reset_checkpoint(&name).await?;
        tracing::info!(projection = %name, "projection cleared: it reads its topics again from the start");
        Ok(())
    }
    tracing::warn!("rebuilding this process's projections from the bus");
    if roles.has(Role::User) || roles.has(Role::Matching) {
        one(read_models, UserDirectory::new()).await?;
    }
    if roles.has(Role::Diary) {
        one(read_models, DiaryTimeline::new()).await?;
        one(read_models, MoodTimeline::new(vault.clone())).await?;
    }
    if roles.has(Role::Matching) {
        one(read_models, crate::matching::projection(vault.clone())?).await?;
    }
    Ok(())
}

/// How long a live projection waits after a small batch before taking the
/// next: under a stream of writes each projection commits about a hundred
/// times a second instead of once per write group (every commit is a sled
/// batch, which makes sled write out its buffer). `scripts/loadtest`: 6.4k
/// and 6.8k durable writes/s without it, 9.3k and 9.4k with 10 ms
/// (benches/README.md, Server load). Reads that wait for the caller's own
/// writes wait up to this much longer.
const PROJECTION_LINGER: Duration = Duration::from_millis(10);

/// Runs `projection` live until `stop`; after an error, logs it and starts
/// again from the stored checkpoint a second later.
pub(crate) fn spawn_runner<P: Projection + 'static>(
    store: Store,
    read_models: ReadModels,
    projection: P,
    stop: Stop,
) -> std::io::Result<JoinHandle<()>> {
    let thread = thread_name(projection.name());
    let runner = ProjectionRunner::new(store, read_models, projection)
        .with_batch_size(512)
        .with_linger(PROJECTION_LINGER);
    background::spawn(&thread, Priority::Low, async move {
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
