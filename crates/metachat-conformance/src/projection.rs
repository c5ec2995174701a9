//! Projection checks: the core
//! [`ProjectionRunner`] over an
//! event store and a read-model store. The store suite runs them with
//! in-memory read models, the read-model suite with an in-memory store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use metachat_core::event::Envelope;
use metachat_core::projection::{Projection, ProjectionRunner, ProjectionTx};
use metachat_core::read_model::{DocExpect, ReadModelStore, ReadModelStoreExt};
use metachat_core::store::{EventStore, ExpectedVersion};
use serde::{Deserialize, Serialize};

use crate::fixture::{events, ok, patiently, payload_n, read_everything, unique_stream};

/// The collection [`CountingProjection`] writes.
pub const COUNTS: &str = "conformance.counts";

/// What [`CountingProjection`] keeps per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Count {
    /// Events seen.
    pub count: u64,
    /// Sum of the payloads' `n`.
    pub sum: u64,
    /// Position of the last event seen.
    pub last_position: u64,
}

/// Counts events per stream into [`COUNTS`] (key: stream id) and records the
/// positions it was handed.
#[derive(Debug, Clone, Default)]
pub struct CountingProjection {
    seen: Arc<Mutex<Vec<u64>>>,
}

impl CountingProjection {
    /// Positions of the events it applied, in order.
    pub fn seen(&self) -> Vec<u64> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Projection for CountingProjection {
    fn name(&self) -> &str {
        "conformance-counter"
    }

    fn collections(&self) -> Vec<String> {
        vec![COUNTS.to_owned()]
    }

    async fn apply(
        &self,
        event: &Envelope,
        tx: &mut ProjectionTx<'_>,
    ) -> metachat_core::Result<()> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.position);
        let key = event.stream_id.as_str();
        let mut c: Count = tx.get_json(COUNTS, key).await?.unwrap_or_default();
        c.count += 1;
        c.sum += payload_n(event).unwrap_or(0);
        c.last_position = event.position;
        tx.put_json(COUNTS, key, &c)
    }
}

/// The counts the projection must hold: a fold of `log`.
pub fn fold(log: &[Envelope]) -> BTreeMap<String, Count> {
    let mut m: BTreeMap<String, Count> = BTreeMap::new();
    for e in log {
        let c = m.entry(e.stream_id.as_str().to_owned()).or_default();
        c.count += 1;
        c.sum += payload_n(e).unwrap_or(0);
        c.last_position = e.position;
    }
    m
}

/// Every document of [`COUNTS`], read back in pages of 7 (exercising `after`).
pub async fn stored_counts<R: ReadModelStore>(read_models: &R) -> BTreeMap<String, Count> {
    let mut m = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = ok(
            "scan_prefix",
            read_models
                .scan_prefix(COUNTS, "", after.as_deref(), 7)
                .await,
        );
        let Some((last, _)) = page.last() else {
            return m;
        };
        after = Some(last.clone());
        for (k, d) in page {
            m.insert(k, ok("decode a count", d.json::<Count>()));
        }
    }
}

/// Appends `batches` batches (sizes 1–4) round-robin over three streams.
async fn fill<S: EventStore>(store: &S, batches: u64, first_n: u64) {
    let streams = [
        unique_stream("proj"),
        unique_stream("proj"),
        unique_stream("proj"),
    ];
    let mut n = first_n;
    for b in 0..batches {
        let size = 1 + b % 4;
        let s = &streams[(b % 3) as usize];
        ok(
            "append",
            store.append(s, ExpectedVersion::Any, events(n, size)).await,
        );
        n += size;
    }
}

/// Asserts the read models hold the fold of the whole log and the checkpoint
/// is the log's length.
async fn assert_matches_log<S: EventStore, R: ReadModelStore>(what: &str, store: &S, rm: &R) {
    let log = read_everything(store).await;
    assert_eq!(
        stored_counts(rm).await,
        fold(&log),
        "{what}: read models != fold of the log"
    );
    assert_eq!(
        ok("checkpoint", rm.checkpoint("conformance-counter").await),
        Some(log.len() as u64),
        "{what}: stored checkpoint"
    );
}

/// A counting projection caught up (in batches of 7) holds the fold of the
/// log, with the checkpoint at the head; a second catch-up does nothing.
pub async fn check_catch_up_equals_fold<S, R>(store: S, read_models: R)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
    R: ReadModelStore + Clone + Send + Sync + 'static,
{
    fill(&store, 30, 0).await;
    let head = ok("next_position", store.next_position().await);
    let projection = CountingProjection::default();
    let runner = ProjectionRunner::new(store.clone(), read_models.clone(), projection.clone())
        .with_batch_size(7);
    assert_eq!(ok("catch_up", runner.catch_up().await), head);
    assert_matches_log("after catch-up", &store, &read_models).await;
    assert_eq!(projection.seen(), (0..head).collect::<Vec<_>>());
    assert_eq!(ok("second catch_up", runner.catch_up().await), head);
    assert_eq!(
        projection.seen().len() as u64,
        head,
        "a second catch-up re-applied events"
    );
}

/// After a catch-up, a rebuild from 0 (with a stale document planted in the
/// projection's collection) gives the same read models again.
pub async fn check_rebuild_from_zero<S, R>(store: S, read_models: R)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
    R: ReadModelStore + Clone + Send + Sync + 'static,
{
    fill(&store, 20, 0).await;
    let head = ok("next_position", store.next_position().await);
    let runner = ProjectionRunner::new(
        store.clone(),
        read_models.clone(),
        CountingProjection::default(),
    )
    .with_batch_size(5);
    ok("catch_up", runner.catch_up().await);
    let before = stored_counts(&read_models).await;
    ok(
        "plant a stale document",
        read_models
            .put_json(COUNTS, "stale-doc", &Count::default(), DocExpect::Any)
            .await,
    );
    ok(
        "another collection",
        read_models
            .put_json("conformance.other", "keep", &1u8, DocExpect::Any)
            .await,
    );
    let projection = CountingProjection::default();
    let rebuilder = ProjectionRunner::new(store.clone(), read_models.clone(), projection.clone());
    assert_eq!(ok("rebuild", rebuilder.rebuild().await), head);
    assert_eq!(
        projection.seen(),
        (0..head).collect::<Vec<_>>(),
        "rebuild starts at 0"
    );
    assert_eq!(
        stored_counts(&read_models).await,
        before,
        "rebuild gives the same read models"
    );
    assert_matches_log("after rebuild", &store, &read_models).await;
    assert!(
        ok(
            "get other",
            read_models.get("conformance.other", "keep").await
        )
        .is_some(),
        "a rebuild cleared a collection the projection does not own"
    );
}

/// A runner started on a stored checkpoint processes only the events after it.
pub async fn check_resume_from_checkpoint<S, R>(store: S, read_models: R)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
    R: ReadModelStore + Clone + Send + Sync + 'static,
{
    fill(&store, 10, 0).await;
    let first_head = ok("next_position", store.next_position().await);
    let first = ProjectionRunner::new(
        store.clone(),
        read_models.clone(),
        CountingProjection::default(),
    );
    assert_eq!(ok("catch_up", first.catch_up().await), first_head);
    fill(&store, 9, 1_000).await;
    let head = ok("next_position", store.next_position().await);
    let projection = CountingProjection::default();
    let second = ProjectionRunner::new(store.clone(), read_models.clone(), projection.clone())
        .with_batch_size(4);
    assert_eq!(ok("checkpoint", second.checkpoint().await), first_head);
    assert_eq!(ok("resumed catch_up", second.catch_up().await), head);
    assert_eq!(
        projection.seen(),
        (first_head..head).collect::<Vec<_>>(),
        "a resumed runner processes only the rest"
    );
    assert_matches_log("after resume", &store, &read_models).await;
}

/// `run` with a shutdown future catches up, then applies events appended
/// after it started; on shutdown it returns the stored checkpoint.
pub async fn check_live_run<S, R>(store: S, read_models: R)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
    R: ReadModelStore + Clone + Send + Sync + 'static,
{
    fill(&store, 5, 0).await;
    let projection = CountingProjection::default();
    let runner = Arc::new(
        ProjectionRunner::new(store.clone(), read_models.clone(), projection.clone())
            .with_batch_size(3),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let runner = runner.clone();
        tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        })
    };
    fill(&store, 12, 500).await;
    let head = ok("next_position", store.next_position().await);
    patiently("the live projection to reach the head", async {
        while ok(
            "checkpoint",
            read_models.checkpoint("conformance-counter").await,
        ) != Some(head)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let _ = stop.send(());
    let returned = ok("run", ok("runner task", task.await));
    assert_eq!(returned, head, "run returns the checkpoint it reached");
    assert_eq!(projection.seen(), (0..head).collect::<Vec<_>>());
    assert_matches_log("after a live run", &store, &read_models).await;
}
