//! Mood: the analyzer choice, the worker that analyzes new entry revisions
//! (`MoodWorker`, batches of 32, the model's forward pass off the async
//! threads), and the views served with entries and on the timeline.

use std::collections::BTreeMap;
use std::sync::Arc;

use metachat_analysis::mood::{analyzer_from_model_dir, DefaultMoodAnalyzer, LexiconAnalyzer};
use metachat_analysis::Mood;
use metachat_core::projection::supervise;
use metachat_domain::{
    Date, DiaryTimeline, EntryId, KeyVault, MoodTimeline, MoodWorker, MoodWorkerStats, UserId,
};
use serde::Serialize;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use crate::background::Priority;
use crate::config::{AnalyzerChoice, Config};
use crate::error::ApiError;
use crate::keys::Keys;
use crate::routes::mood::Day;
use crate::state::{AppState, ReadModels, Stop, Store, RESTART_AFTER};

/// Mood analyses recorded.
pub(crate) const ANALYZED: &str = "metachat_mood_analyses_total";
/// Entry revisions not analyzed (author erased, text unreadable).
pub(crate) const SKIPPED: &str = "metachat_mood_analyses_skipped_total";
/// Events between the log's head and the mood worker's checkpoint.
pub(crate) const WORKER_LAG: &str = "metachat_mood_worker_lag_events";

/// The mood of one entry revision.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MoodView {
    /// -1 (negative) to 1 (positive).
    pub(crate) valence: f32,
    /// The three-way valence: `negative`, `neutral` or `positive`.
    #[schema(example = "neutral")]
    pub(crate) valence_label: String,
    /// The probability of `valence_label` where the analyzer gives
    /// calibrated ones (the e5 mood heads); null from the lexicon fallback
    /// and for moods recorded before labels existed.
    pub(crate) valence_probability: Option<f32>,
    /// 0 (calm) to 1 (excited).
    pub(crate) arousal: f32,
    /// The most likely emotion.
    #[schema(example = "joy")]
    pub(crate) dominant_emotion: String,
    /// The dominant emotion's probability.
    pub(crate) confidence: f32,
    /// Probability per emotion label.
    pub(crate) emotions: BTreeMap<String, f32>,
    /// The analyzer that produced it.
    pub(crate) model_id: String,
    /// Text windows analyzed.
    pub(crate) windows: u32,
}

impl From<Mood> for MoodView {
    fn from(m: Mood) -> Self {
        MoodView {
            valence: m.valence,
            valence_label: m.valence_label.name().to_owned(),
            valence_probability: m.valence_probability,
            arousal: m.arousal,
            dominant_emotion: m.dominant.name().to_owned(),
            confidence: m.confidence,
            emotions: m
                .emotions
                .iter()
                .map(|(e, p)| (e.name().to_owned(), *p))
                .collect(),
            model_id: m.model_id,
            windows: m.windows,
        }
    }
}

/// The projections an entry read waits on.
pub(crate) fn entry_projections() -> Vec<&'static str> {
    vec![DiaryTimeline::NAME, MoodTimeline::<Keys>::NAME]
}

/// The projections a timeline read waits on.
pub(crate) fn timeline_projections() -> Vec<&'static str> {
    vec![MoodTimeline::<Keys>::NAME]
}

/// The mood of `entry_id` at domain `revision`, once analyzed.
pub(crate) async fn entry_mood(
    state: &AppState,
    user: UserId,
    entry_id: EntryId,
    revision: u64,
) -> Result<Option<MoodView>, ApiError> {
    let found =
        MoodTimeline::analyzed_mood(&state.inner.read_models, &state.inner.vault, user, entry_id)
            .await
            .map_err(ApiError::store)?;
    Ok(found
        .filter(|a| a.revision == revision)
        .map(|a| a.mood.into()))
}

/// The caller's days between `from` and `to` (inclusive), oldest first.
pub(crate) async fn days(
    state: &AppState,
    user: UserId,
    from: Option<Date>,
    to: Option<Date>,
) -> Result<Vec<Day>, ApiError> {
    let days = MoodTimeline::days(&state.inner.read_models, &state.inner.vault, user, from, to)
        .await
        .map_err(ApiError::store)?;
    Ok(days
        .into_iter()
        .map(|d| Day {
            date: d.date.to_string(),
            entries: d.entries,
            mean_valence: d.mean_valence,
            dominant_emotion: d.dominant_emotion.name().to_owned(),
            emotion_counts: d
                .emotion_counts
                .into_iter()
                .map(|(e, n)| (e.name().to_owned(), n))
                .collect(),
        })
        .collect())
}

/// The analyzer the configuration asks for: e5 from the model directory
/// (the lexicon, loudly, when it is missing or broken), or the lexicon.
/// `None` (with an error in the log) when not even the lexicon file is
/// there: the server then runs without mood analysis.
pub(crate) async fn analyzer(config: &Config) -> Option<DefaultMoodAnalyzer> {
    let found = match config.analyzer {
        AnalyzerChoice::Lexicon => {
            tracing::info!("mood analysis: the lexicon baseline (--analyzer lexicon)");
            LexiconAnalyzer::from_dir(&config.model_dir).map(DefaultMoodAnalyzer::Lexicon)
        }
        AnalyzerChoice::Auto => analyzer_from_model_dir(&config.model_dir).await,
    };
    match found {
        Ok(a) => {
            tracing::info!(
                model = %metachat_core::analysis::TextAnalyzer::model_id(&a),
                fallback = a.is_fallback(),
                "mood analyzer ready"
            );
            Some(a)
        }
        Err(e) => {
            tracing::error!(
                model_dir = %config.model_dir.display(),
                error = %e,
                "MOOD ANALYSIS IS OFF: neither the e5 model nor the lexicon is in the model \
                 directory; entries get no mood until the server is restarted with models \
                 (run scripts/fetch-models, or set METACHAT_MODEL_DIR)"
            );
            None
        }
    }
}

/// Live counters of the running worker.
#[derive(Clone)]
pub(crate) struct WorkerHandle(Arc<dyn Fn() -> MoodWorkerStats + Send + Sync>);

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WorkerHandle").field(&(self.0)()).finish()
    }
}

impl WorkerHandle {
    /// The counters now.
    pub(crate) fn stats(&self) -> MoodWorkerStats {
        (self.0)()
    }
}

/// Where the worker reads entry revisions from.
#[derive(Clone)]
pub(crate) enum WorkerFeed {
    /// The store's log, from the worker's checkpoint (the embedded server).
    Log,
    /// A Kafka topic, as a member of a consumer group: start a second
    /// worker with the same group and the partitions split; a worker that
    /// dies leaves its partitions to the others.
    Bus {
        /// The bus.
        bus: crate::backend::DynBus,
        /// The entry events' topic.
        topic: String,
        /// The workers' group.
        group: String,
    },
}

/// Loads the analyzer the configuration asks for and starts the mood
/// worker; returns its task and a way to read its counters, or `None` when
/// no analyzer could be loaded (see [`analyzer`]).
///
/// The model is loaded and the worker runs on its own OS thread
/// (`mood-worker`, with a current-thread runtime) at the lowest CPU priority
/// (nice 19), and [`init_compute_pool`] puts rayon's threads, where the
/// model's matrix products run, at the same priority: on a small machine the
/// model would otherwise take the cores from the HTTP threads and the
/// durable writes (the API comes first; the worker catches up when requests
/// leave CPU idle, and `/metrics` reports its lag). Threads inherit the
/// priority of the thread that creates them, so the worker's blocking
/// threads and candle's own pool, created on first use there, are
/// background threads too.
pub(crate) async fn spawn(
    config: &Config,
    store: Store,
    read_models: ReadModels,
    vault: KeyVault<Keys>,
    feed: WorkerFeed,
    stop: Stop,
) -> anyhow::Result<Option<(JoinHandle<()>, WorkerHandle)>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("mood-worker-blocking")
        .build()?;
    let config = config.clone();
    let (ready, on_ready) = tokio::sync::oneshot::channel::<Option<WorkerHandle>>();
    let (finished, on_finish) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("mood-worker".into())
        .spawn(move || {
            background_priority();
            runtime.block_on(async move {
                let Some(analyzer) = analyzer(&config).await else {
                    let _ = ready.send(None);
                    return;
                };
                let worker = Arc::new(
                    MoodWorker::new(store, read_models, vault, analyzer).with_batch_size(32),
                );
                let stats = {
                    let w = worker.clone();
                    WorkerHandle(Arc::new(move || w.stats()))
                };
                if ready.send(Some(stats)).is_ok() {
                    run(worker, feed, stop).await;
                }
            });
            let _ = finished.send(());
        })?;
    let Some(stats) = on_ready
        .await
        .map_err(|_| anyhow::anyhow!("the mood worker thread ended before it was ready"))?
    else {
        return Ok(None);
    };
    let task = tokio::spawn(async move {
        let _ = on_finish.await;
    });
    Ok(Some((task, stats)))
}

async fn run(
    worker: Arc<MoodWorker<Store, ReadModels, DefaultMoodAnalyzer, Keys>>,
    feed: WorkerFeed,
    stop: Stop,
) {
    match feed {
        WorkerFeed::Log => {
            supervise(
                "mood worker",
                || stop.wait(),
                RESTART_AFTER,
                |s| worker.run(s),
            )
            .await;
        }
        WorkerFeed::Bus { bus, topic, group } => {
            tracing::info!(%topic, %group, "mood worker: a member of a Kafka consumer group");
            supervise(
                "mood worker",
                || stop.wait(),
                RESTART_AFTER,
                |s| async {
                    worker.run_on_bus(&bus, &topic, &group, s).await?;
                    Ok(0)
                },
            )
            .await;
        }
    }
}

/// Lowers the calling thread to the lowest CPU priority (on Linux, nice is
/// per thread); a failure is logged and ignored (the worker still runs).
fn background_priority() {
    crate::background::lower_current_thread(Priority::Lowest, "mood worker");
}

/// Builds rayon's global pool (where candle's matrix products run) with
/// threads at background priority; see [`spawn`]. Call it before anything
/// uses rayon; a second call is a no-op.
pub(crate) fn init_compute_pool() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("compute-{i}"))
        .start_handler(|_| background_priority())
        .build_global();
    if let Err(e) = built {
        tracing::debug!(error = %e, "rayon's global pool already exists");
    }
}

/// Publishes the worker's counters and lag as metrics.
pub(crate) async fn export_lag(state: &AppState) {
    if let Some(stats) = &state.inner.mood_stats {
        let s = stats.stats();
        metrics::counter!(ANALYZED).absolute(s.analyzed);
        metrics::counter!(SKIPPED).absolute(s.skipped);
    }
    if let Ok((head, _)) = state.inner.lags().await {
        let next = state
            .inner
            .progress
            .next(MoodWorker::<Store, ReadModels, DefaultMoodAnalyzer>::NAME);
        metrics::gauge!(WORKER_LAG).set(head.saturating_sub(next) as f64);
    }
}
