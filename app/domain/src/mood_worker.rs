//! [`MoodWorker`]: entry created/edited → mood analysis → `MoodAnalyzed`.
//!
//! The worker follows the global log from its checkpoint (stored in the
//! read-model store under [`MoodWorker::NAME`], like a projection's). It
//! collects `EntryCreated`/`EntryEdited` events into batches of up to
//! [`with_batch_size`](MoodWorker::with_batch_size) texts (32 by default),
//! opens each text with its author's key, analyzes the batch with one
//! [`TextAnalyzer::analyze_with_embeddings`](metachat_core::analysis::TextAnalyzer::analyze_with_embeddings) call, appends one
//! [`MoodEvent::MoodAnalyzed`] per entry revision to `mood-{entry_id}`, and
//! then stores its checkpoint. Entries whose author's key is shredded (or
//! whose text does not open) are skipped and counted.
//!
//! At-least-once, yet exactly one event per `(entry, revision, model)`: a
//! crash after the appends but before the checkpoint re-analyzes the batch,
//! and the re-append carries the same deterministic event id
//! ([`mood_event_id`]). The store answers an identical re-append with the
//! original outcome; a re-append whose payload differs (the theme's nonce is
//! random) is refused with `PartialReappend`, which the worker takes as
//! "already recorded" (the first analysis wins) and counts as a duplicate.
//!
//! An analyzer error stops the worker with that error, its checkpoint at the
//! last completed batch; run it again to retry.
//!
//! # On a bus, as a consumer group
//!
//! [`MoodWorker::run_on_bus`] consumes the diary entries' topic (the
//! relay's `{prefix}entry`) as a member of a consumer group instead of the
//! log: several workers split the topic's partitions, and a worker that
//! dies leaves its partitions (and its unacknowledged deliveries) to the
//! others. Deliveries are acknowledged after their moods were recorded;
//! what a dead or revoked worker had in hand is redelivered and analyzed
//! again, and the deterministic event id makes the store keep one
//! `MoodAnalyzed` per entry revision whoever analyzed it first.
//!
//! The day an edited entry's mood counts for is the entry's creation date.
//! The worker keeps that date itself, in its read models
//! ([`MoodWorker::ENTRY_DATES`], written before the deliveries are
//! acknowledged and removed when the entry is deleted), so a mood service
//! does not read the diary service's streams; only an entry created before
//! the worker kept dates is looked up in its stream once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::diary::{self, DiaryEntry, DiaryEvent, EntryText};
use super::ids::{EntryId, UserId};
use super::mood::{self, mood_event_id, mood_stream, seal_mood, seal_theme, MoodEvent};
use futures::StreamExt;
use metachat_analysis::MoodAnalyzer;
use metachat_core::aggregate::Aggregate;
use metachat_core::bus::EventBus;
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::error::{Error, Result};
use metachat_core::event::{Envelope, EventId, Metadata, NewEvent, StreamId, Timestamp};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt, WriteOp};
use metachat_core::store::{self, Direction, EventStore, ExpectedVersion, LogSink};
use metachat_shred::{DataKey, KeyState, KeyStore, KeyVault, ShredError};

/// Name of the worker's checkpoint ([`MoodWorker::NAME`]), usable without
/// naming the worker's type parameters.
pub const MOOD_WORKER: &str = "mood_worker";
/// Default texts per analyzer call.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Events read from the log per page.
const PAGE: usize = 256;

/// Counters of a [`MoodWorker`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoodWorkerStats {
    /// Entry revisions analyzed and recorded (appends the store
    /// acknowledged; a byte-identical re-append after a crash, possible only
    /// for a mood without a theme, counts again).
    pub analyzed: u64,
    /// Entry revisions skipped: the author's key is shredded or the text
    /// does not open.
    pub skipped: u64,
    /// Re-analyses whose `MoodAnalyzed` was already recorded.
    pub duplicates: u64,
    /// Analyzer calls.
    pub batches: u64,
}

#[derive(Debug, Default)]
struct Counters {
    analyzed: AtomicU64,
    skipped: AtomicU64,
    duplicates: AtomicU64,
    batches: AtomicU64,
}

/// One entry revision to analyze.
struct Job {
    entry_id: EntryId,
    author: UserId,
    revision: u64,
    created_at: Timestamp,
    text: String,
    key: DataKey,
    cause: Metadata,
}

/// Analyzes new entry revisions (see the [module docs](self)).
pub struct MoodWorker<S, R, A, V = R> {
    store: S,
    read_models: R,
    vault: KeyVault<V>,
    analyzer: A,
    batch: usize,
    diary: JsonCodec<DiaryEvent>,
    counters: Arc<Counters>,
}

impl<S, R, A: MoodAnalyzer, V> fmt::Debug for MoodWorker<S, R, A, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MoodWorker")
            .field("model_id", &self.analyzer.model_id())
            .field("batch", &self.batch)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S, R, A, V> MoodWorker<S, R, A, V> {
    /// Name of the worker's checkpoint in the read-model store.
    pub const NAME: &'static str = MOOD_WORKER;
    /// The worker's read-model collection of entry creation dates (key:
    /// the entry id; value: its `EntryCreated` time).
    pub const ENTRY_DATES: &'static str = "mood_entry_dates";

    /// The counters so far.
    pub fn stats(&self) -> MoodWorkerStats {
        let c = &self.counters;
        MoodWorkerStats {
            analyzed: c.analyzed.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
        }
    }

    /// The analyzer.
    pub fn analyzer(&self) -> &A {
        &self.analyzer
    }
}

impl<S, R, A, V> MoodWorker<S, R, A, V>
where
    S: EventStore + Clone + Unpin + 'static,
    R: ReadModelStore,
    A: MoodAnalyzer,
    V: KeyStore,
{
    /// A worker reading and appending to `store`, its checkpoint in
    /// `read_models`, keys from `vault`.
    pub fn new(store: S, read_models: R, vault: KeyVault<V>, analyzer: A) -> Self {
        MoodWorker {
            store,
            read_models,
            vault,
            analyzer,
            batch: DEFAULT_BATCH_SIZE,
            diary: diary::lenient_codec(),
            counters: Arc::default(),
        }
    }

    /// Texts per analyzer call (at least 1). Default [`DEFAULT_BATCH_SIZE`].
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The next log position the worker will read.
    pub async fn checkpoint(&self) -> Result<u64> {
        Ok(self.read_models.checkpoint(Self::NAME).await?.unwrap_or(0))
    }

    /// Processes the log up to its current head; returns the new checkpoint.
    pub async fn catch_up(&self) -> Result<u64> {
        let next = self.checkpoint().await?;
        store::catch_up(&self.store, next, PAGE, self).await
    }

    /// Catches up, then follows the log until `shutdown` completes; the
    /// batch in progress is finished and its checkpoint stored first.
    /// Returns the checkpoint.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<u64> {
        let next = self.checkpoint().await?;
        store::follow(&self.store, next, PAGE, shutdown, self).await
    }

    /// Analyzes the entry events among `events` and records their moods,
    /// without a checkpoint: for a driver that keeps its own position (a
    /// consumer group on a bus). Events of other categories are ignored;
    /// each entry's events must come in their stream's order.
    pub async fn handle(&self, events: &[Envelope]) -> Result<()> {
        self.process(events, false).await
    }

    /// Analyzes and records the moods of `events` a batch at a time, then
    /// keeps the entries' dates; with `checkpoints`, stores the checkpoint
    /// after each full batch (the caller stores the last one).
    async fn process(&self, events: &[Envelope], checkpoints: bool) -> Result<()> {
        let mut jobs = Vec::new();
        let mut seen = HashMap::new();
        let mut deleted = Vec::new();
        for env in events {
            if env.stream_id.category() != DiaryEntry::KIND {
                continue;
            }
            if let Some(job) = self.job(env, &mut seen, &mut deleted).await? {
                jobs.push(job);
            }
            if jobs.len() >= self.batch {
                self.flush(&mut jobs).await?;
                if checkpoints {
                    self.store_checkpoint(env.position + 1).await?;
                }
            }
        }
        self.flush(&mut jobs).await?;
        let created: Vec<(EntryId, Timestamp)> = seen.into_iter().collect();
        self.keep_dates(&created, &deleted).await
    }

    /// Consumes `topic` (the entries' topic, `{prefix}entry`) as a member of
    /// consumer group `group` until `shutdown` completes: up to a batch of
    /// deliveries (or what arrived within 50 ms) at a time, analyzed and
    /// recorded, then acknowledged. See the [module docs](self#on-a-bus-as-a-consumer-group).
    pub async fn run_on_bus<B: EventBus>(
        &self,
        bus: &B,
        topic: &str,
        group: &str,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let mut sub = bus.subscribe(topic, group).await?;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let first = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                next = sub.next() => next,
            };
            let Some(first) = first else {
                return Ok(());
            };
            let mut batch = vec![first?];
            let linger = tokio::time::sleep(std::time::Duration::from_millis(50));
            tokio::pin!(linger);
            while batch.len() < self.batch {
                tokio::select! {
                    biased;
                    () = &mut linger => break,
                    next = sub.next() => match next {
                        Some(d) => batch.push(d?),
                        None => break,
                    },
                }
            }
            let envelopes: Vec<Envelope> = batch.iter().map(|d| d.envelope.clone()).collect();
            self.handle(&envelopes).await?;
            for d in batch {
                d.ack().await?;
            }
        }
    }

    /// Records the creation dates of `created` and forgets `deleted`'s.
    async fn keep_dates(
        &self,
        created: &[(EntryId, Timestamp)],
        deleted: &[EntryId],
    ) -> Result<()> {
        if created.is_empty() && deleted.is_empty() {
            return Ok(());
        }
        let mut commit = Commit::default();
        for (entry, at) in created {
            commit.put_json(Self::ENTRY_DATES, &entry.to_string(), at, DocExpect::Any)?;
        }
        for entry in deleted {
            commit.ops.push(WriteOp::Delete {
                collection: Self::ENTRY_DATES.to_owned(),
                key: entry.to_string(),
                expect: DocExpect::Any,
            });
        }
        self.read_models.commit(commit).await
    }

    async fn store_checkpoint(&self, next: u64) -> Result<()> {
        self.read_models
            .commit(Commit {
                ops: Vec::new(),
                checkpoint: Some((Self::NAME.to_owned(), next)),
            })
            .await
    }

    /// When `entry_id` was created: from this page if seen, else from the
    /// first event of its stream.
    async fn created_at(
        &self,
        entry_id: EntryId,
        seen: &HashMap<EntryId, Timestamp>,
    ) -> Result<Option<Timestamp>> {
        if let Some(t) = seen.get(&entry_id) {
            return Ok(Some(*t));
        }
        if let Some((t, _)) = self
            .read_models
            .get_json::<Timestamp>(Self::ENTRY_DATES, &entry_id.to_string())
            .await?
        {
            return Ok(Some(t));
        }
        let stream = StreamId::from_parts(DiaryEntry::KIND, entry_id)?;
        let first = self
            .store
            .read_stream(&stream, 0, Direction::Forward, 1)
            .await?;
        Ok(first.first().map(|e| e.recorded_at))
    }

    /// The job for one diary envelope, if it sets a text that can be read.
    async fn job(
        &self,
        env: &Envelope,
        seen: &mut HashMap<EntryId, Timestamp>,
        deleted: &mut Vec<EntryId>,
    ) -> Result<Option<Job>> {
        let Some(event) = self.diary.decode(env)? else {
            return Ok(None);
        };
        let created_at = match &event {
            DiaryEvent::EntryCreated { entry_id, .. } => {
                seen.insert(*entry_id, env.recorded_at);
                env.recorded_at
            }
            DiaryEvent::EntryEdited { entry_id, .. } => {
                match self.created_at(*entry_id, seen).await? {
                    Some(t) => t,
                    None => env.recorded_at,
                }
            }
            DiaryEvent::EntryDeleted { entry_id, .. } => {
                seen.remove(entry_id);
                deleted.push(*entry_id);
                return Ok(None);
            }
        };
        let Some(text) = event.text() else {
            return Ok(None);
        };
        let (entry_id, author) = (event.entry_id(), event.author());
        let key = match self.vault.state(author).await? {
            KeyState::Active(k) => k,
            // An entry of schema version 1 (plain text) by an author who
            // never sealed anything: the mood is sealed, so make the key.
            KeyState::Missing => match self.vault.get_or_create(author).await {
                Ok(k) => k,
                Err(ShredError::Shredded { .. }) => return Ok(self.skip()),
                Err(ShredError::Store(e)) => return Err(e),
                Err(e) => {
                    return Err(Error::Encode {
                        source: Box::new(e),
                    })
                }
            },
            KeyState::Shredded => return Ok(self.skip()),
        };
        let opened = match text {
            EntryText::Plain(t) => Ok(t.clone()),
            EntryText::Sealed(_) => text.open(Some(&key), entry_id),
        };
        let Ok(text) = opened else {
            tracing::warn!(entry = %entry_id, "entry text does not open; not analyzed");
            return Ok(self.skip());
        };
        let mut cause = Metadata::default().caused_by(env.event_id.0);
        cause.correlation_id = env.metadata.correlation_id;
        cause.actor = Some(Self::NAME.to_owned());
        Ok(Some(Job {
            entry_id,
            author,
            revision: event.revision(),
            created_at,
            text,
            key,
            cause,
        }))
    }

    fn skip(&self) -> Option<Job> {
        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Analyzes `jobs` with one analyzer call and records the moods.
    async fn flush(&self, jobs: &mut Vec<Job>) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = jobs.iter().map(|j| j.text.clone()).collect();
        let results = self.analyzer.analyze_with_embeddings(&texts).await?;
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        if results.len() != jobs.len() {
            return Err(Error::Decode {
                event_type: "MoodAnalyzed".into(),
                source: format!(
                    "analyzer {} returned {} moods for {} texts",
                    self.analyzer.model_id(),
                    results.len(),
                    jobs.len()
                )
                .into(),
            });
        }
        let model_id = self.analyzer.model_id().to_owned();
        let mut appends = Vec::with_capacity(jobs.len());
        for (job, (mood, embedding)) in jobs.drain(..).zip(results) {
            let sealing = |e: ShredError| Error::Encode {
                source: Box::new(e),
            };
            let theme = embedding
                .map(|v| seal_theme(&job.key, job.entry_id, job.revision, &v))
                .transpose()
                .map_err(sealing)?;
            let mood = seal_mood(&job.key, job.entry_id, job.revision, &mood).map_err(sealing)?;
            let event = MoodEvent::MoodAnalyzed {
                entry_id: job.entry_id,
                author: job.author,
                entry_revision: job.revision,
                entry_created_at: job.created_at,
                mood,
                theme,
            };
            let id = mood_event_id(job.entry_id, job.revision, &model_id);
            appends.push(self.append(job.entry_id, id, event, job.cause));
        }
        for outcome in futures::future::join_all(appends).await {
            outcome?;
        }
        Ok(())
    }

    async fn append(
        &self,
        entry_id: EntryId,
        id: EventId,
        event: MoodEvent,
        metadata: Metadata,
    ) -> Result<()> {
        let (correlation, causation) = (metadata.correlation_id, metadata.causation_id);
        let enc = mood::codec().encode(&event)?;
        let new = NewEvent::new(enc.event_type, enc.payload)
            .with_schema_version(enc.schema_version)
            .with_id(id)
            .with_metadata(metadata);
        let stream = mood_stream(entry_id)?;
        match self
            .store
            .append(&stream, ExpectedVersion::Any, vec![new])
            .await
        {
            Ok(_) => {
                self.counters.analyzed.fetch_add(1, Ordering::Relaxed);
                // Follows a request across the Kafka hops (the server's
                // `correlation.rs`): opt in with `metachat::trace=debug`.
                tracing::debug!(
                    target: "metachat::trace",
                    entry = %entry_id,
                    event_id = %id.0,
                    correlation_id = ?correlation,
                    causation_id = ?causation,
                    "mood recorded"
                );
                Ok(())
            }
            // Recorded before (a re-analysis after a crash): the first wins.
            Err(Error::PartialReappend { .. }) => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl<S, R, A, V> LogSink for MoodWorker<S, R, A, V>
where
    S: EventStore + Clone + Unpin + 'static,
    R: ReadModelStore,
    A: MoodAnalyzer,
    V: KeyStore,
{
    async fn apply(&self, events: &[Envelope]) -> Result<u64> {
        self.process(events, true).await?;
        let next = events.last().map_or(0, |e| e.position + 1);
        self.store_checkpoint(next).await?;
        Ok(next)
    }
}
