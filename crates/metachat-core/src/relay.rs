//! The outbox relay (store → bus) and the consumer-side deduplicator.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;

use crate::bus::{topic_for, EventBus};
use crate::error::Result;
use crate::event::Envelope;
use crate::read_model::{Commit, DocExpect, ReadModelStore, WriteOp};
use crate::store::{self, EventReader};

/// Tails the store's global log from a checkpoint and publishes each event to
/// `{prefix}{category}`. The checkpoint advances only after the bus accepted
/// the batch, so an appended event is published even if the bus was down at
/// the time (it may be published twice after a crash: consumers dedupe).
pub struct Relay<S, B, R> {
    store: S,
    bus: B,
    checkpoints: R,
    name: String,
    topic_prefix: String,
    batch: usize,
}

impl<S, B, R> fmt::Debug for Relay<S, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("name", &self.name)
            .field("topic_prefix", &self.topic_prefix)
            .finish()
    }
}

impl<S, B, R> Relay<S, B, R>
where
    S: EventReader + Clone + Unpin + 'static,
    B: EventBus,
    R: ReadModelStore,
{
    /// A relay named `name` (its checkpoint key), publishing to `{topic_prefix}{category}`.
    pub fn new(store: S, bus: B, checkpoints: R, name: &str, topic_prefix: &str) -> Self {
        Relay {
            store,
            bus,
            checkpoints,
            name: name.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            batch: 256,
        }
    }

    /// Publishes everything up to the current head; returns the checkpoint.
    pub async fn catch_up(&self) -> Result<u64> {
        let next = self.checkpoint().await?;
        store::catch_up(&self.store, next, self.batch, self).await
    }

    /// Catches up, then relays live until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<u64> {
        let next = self.checkpoint().await?;
        store::follow(&self.store, next, self.batch, shutdown, self).await
    }

    async fn checkpoint(&self) -> Result<u64> {
        Ok(self.checkpoints.checkpoint(&self.name).await?.unwrap_or(0))
    }

    async fn publish(&self, events: &[Envelope]) -> Result<u64> {
        // Group consecutive events by topic, preserving global order per topic.
        let mut start = 0;
        while start < events.len() {
            let topic = topic_for(&self.topic_prefix, &events[start].stream_id);
            let mut end = start + 1;
            while end < events.len()
                && topic_for(&self.topic_prefix, &events[end].stream_id) == topic
            {
                end += 1;
            }
            self.bus.publish(&topic, &events[start..end]).await?;
            start = end;
        }
        let next = events.last().map_or(0, |e| e.position + 1);
        self.checkpoints
            .commit(Commit {
                ops: Vec::new(),
                checkpoint: Some((self.name.clone(), next)),
            })
            .await?;
        Ok(next)
    }
}

/// Makes a consumer's effect single per event id: records handled ids in a
/// read-model collection (`processed.{group}`) in the same commit as the
/// handler's own writes, where the backend commits atomically.
#[derive(Debug, Clone)]
pub struct Deduplicator<R> {
    store: R,
    collection: String,
}

impl<R: ReadModelStore> Deduplicator<R> {
    /// A deduplicator for consumer group `group`.
    pub fn new(store: R, group: &str) -> Self {
        Deduplicator {
            store,
            collection: format!("processed.{group}"),
        }
    }

    /// True if the event was already handled.
    pub async fn seen(&self, event: &Envelope) -> Result<bool> {
        Ok(self
            .store
            .get(&self.collection, &event.event_id.to_string())
            .await?
            .is_some())
    }

    /// Commits `commit` (the handler's writes) and marks `event` handled, in
    /// one commit. A concurrent duplicate fails with a document conflict and
    /// writes nothing (on atomic backends).
    pub async fn commit_handled(&self, event: &Envelope, mut commit: Commit) -> Result<()> {
        commit.ops.push(WriteOp::Put {
            collection: self.collection.clone(),
            key: event.event_id.to_string(),
            value: event.position.to_be_bytes().to_vec(),
            expect: DocExpect::Absent,
        });
        self.store.commit(commit).await
    }
}

#[async_trait]
impl<S, B, R> store::LogSink for Relay<S, B, R>
where
    S: EventReader + Clone + Unpin + 'static,
    B: EventBus,
    R: ReadModelStore,
{
    async fn apply(&self, events: &[Envelope]) -> Result<u64> {
        self.publish(events).await
    }
}
