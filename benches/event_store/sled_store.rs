//! MetaChat's sled store, through the public API only: `EventAppender::append`,
//! `EventReader::read_stream`/`read_all`, and `ProjectionRunner::rebuild` with a
//! counting projection over `SledReadModels`. Default options
//! (`Durability::Sync`: every acknowledged append is behind an `fdatasync`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metachat_adapters::sled::{SledConfig, SledDatabase, SledEventStore, SledReadModels};
use metachat_core::event::{Envelope, NewEvent};
use metachat_core::projection::{Projection, ProjectionRunner, ProjectionTx};
use metachat_core::store::{Direction, EventAppender, EventReader, ExpectedVersion};
use tokio::runtime::Runtime;

use crate::common::{
    new_event, stream_id, stream_name, AGGREGATE_STREAM, BATCH, PROJECTION_BATCH, REPLAY_PAGE,
    WRITERS,
};

/// The sled event store and read models of one database.
pub(crate) struct SledPeer {
    store: SledEventStore,
    read_models: SledReadModels,
    payload: Arc<Vec<u8>>,
    _db: SledDatabase,
}

impl SledPeer {
    /// Opens (creates) a database in `dir` with default options.
    pub(crate) fn open(dir: &Path, payload: &[u8]) -> Self {
        Self::open_with(SledConfig::new(dir), payload)
    }

    /// Opens a database with `config`.
    pub(crate) fn open_with(config: SledConfig, payload: &[u8]) -> Self {
        let db = SledDatabase::open(config).expect("open sled");
        SledPeer {
            store: db.event_store(),
            read_models: db.read_models(),
            payload: Arc::new(payload.to_vec()),
            _db: db,
        }
    }

    fn event(&self) -> NewEvent {
        new_event(&self.payload)
    }

    /// `iters` appends of one event each to one stream.
    pub(crate) fn append_each(&self, rt: &Runtime, stream: &str, iters: u64) -> Duration {
        let stream = stream_id(stream);
        rt.block_on(async {
            let mut expected = ExpectedVersion::from_version(
                self.store.stream_version(&stream).await.expect("version"),
            );
            let start = Instant::now();
            for _ in 0..iters {
                let outcome = self
                    .store
                    .append(&stream, expected, vec![self.event()])
                    .await
                    .expect("append");
                expected = outcome.next_expected();
            }
            start.elapsed()
        })
    }

    /// [`WRITERS`] tasks, each appending `iters` single events to its own stream.
    pub(crate) fn append_concurrent(&self, rt: &Runtime, round: usize, iters: u64) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let store = self.store.clone();
                    let payload = self.payload.clone();
                    let stream = stream_id(&format!("w{round}-{w}"));
                    tokio::spawn(async move {
                        let mut expected = ExpectedVersion::NoStream;
                        for _ in 0..iters {
                            let outcome = store
                                .append(&stream, expected, vec![new_event(&payload)])
                                .await
                                .expect("append");
                            expected = outcome.next_expected();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("writer task");
            }
            start.elapsed()
        })
    }

    /// `iters` appends of [`BATCH`] events, each to a new stream (events built before timing).
    pub(crate) fn append_batches(&self, rt: &Runtime, round: usize, iters: u64) -> Duration {
        let batches: Vec<_> = (0..iters)
            .map(|i| {
                let stream = stream_id(&format!("b{round}-{i}"));
                let events: Vec<NewEvent> = (0..BATCH).map(|_| self.event()).collect();
                (stream, events)
            })
            .collect();
        rt.block_on(async {
            let start = Instant::now();
            for (stream, events) in batches {
                self.store
                    .append(&stream, ExpectedVersion::NoStream, events)
                    .await
                    .expect("append");
            }
            start.elapsed()
        })
    }

    /// Writes the replay dataset: `streams` streams of [`BATCH`] events, one append each.
    pub(crate) fn generate(&self, rt: &Runtime, streams: usize) {
        rt.block_on(async {
            for s in 0..streams {
                let stream = stream_id(&stream_name("bench", s));
                let events: Vec<NewEvent> = (0..BATCH).map(|_| self.event()).collect();
                self.store
                    .append(&stream, ExpectedVersion::NoStream, events)
                    .await
                    .expect("append");
            }
        });
    }

    /// Reads the events of [`AGGREGATE_STREAM`] (`read_stream`, forwards from 0); returns how many.
    pub(crate) async fn load_aggregate(&self) -> usize {
        let stream = stream_id(AGGREGATE_STREAM);
        let events = self
            .store
            .read_stream(&stream, 0, Direction::Forward, 4096)
            .await
            .expect("read");
        std::hint::black_box(&events);
        events.len()
    }

    /// Reads the global log through `read_all` in pages of [`REPLAY_PAGE`]; returns how many.
    pub(crate) async fn replay(&self) -> u64 {
        let (mut from, mut count) = (0u64, 0u64);
        loop {
            let page = self
                .store
                .read_all(from, REPLAY_PAGE)
                .await
                .expect("read_all");
            let Some(last) = page.last() else {
                return count;
            };
            from = last.position + 1;
            count += u64::try_from(page.len()).expect("fits");
            std::hint::black_box(&page);
        }
    }

    /// Rebuilds the counting projection from position 0 with the
    /// `ProjectionRunner` (commits of [`PROJECTION_BATCH`] events); returns the checkpoint.
    pub(crate) async fn project(&self) -> u64 {
        let runner = ProjectionRunner::new(self.store.clone(), self.read_models.clone(), Counts)
            .with_batch_size(PROJECTION_BATCH);
        runner.rebuild().await.expect("rebuild")
    }
}

/// Counts the events of each stream: per event, read-modify-write one document.
struct Counts;

#[async_trait]
impl Projection for Counts {
    fn name(&self) -> &str {
        "counts"
    }

    fn collections(&self) -> Vec<String> {
        vec!["counts".to_owned()]
    }

    async fn apply(
        &self,
        event: &Envelope,
        tx: &mut ProjectionTx<'_>,
    ) -> metachat_core::Result<()> {
        let key = event.stream_id.as_str();
        let n: u64 = tx.get_json("counts", key).await?.unwrap_or(0);
        tx.put_json("counts", key, &(n + 1))
    }
}
