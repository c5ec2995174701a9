//! The outbox relay (store → bus), its watermarks, and the consumer-side
//! deduplicator.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::bus::{topic_for, EventBus};
use crate::error::Result;
use crate::event::{Envelope, NewEvent, StreamId, Timestamp};
use crate::read_model::{Commit, DocExpect, ReadModelStore, WriteOp};
use crate::store::{self, EventReader};

/// Tails the store's global log from a checkpoint and publishes each event to
/// `{prefix}{category}`. The checkpoint advances only after the bus accepted
/// the batch, so an appended event is published even if the bus was down at
/// the time (it may be published twice after a crash: consumers dedupe).
///
/// With [`with_watermarks`](Relay::with_watermarks), after each published
/// batch it also [`broadcast`](EventBus::broadcast)s a [`Watermark`] to
/// every partition of the given categories' topics: "every event below
/// global position `next` that belongs to this partition is already in
/// it", so a consumer of several topics knows how far the whole log has
/// reached even on a quiet topic.
pub struct Relay<S, B, R> {
    store: S,
    bus: B,
    checkpoints: R,
    name: String,
    topic_prefix: String,
    batch: usize,
    watermark_topics: Vec<String>,
}

/// The event type of a [`Watermark`] envelope.
pub const WATERMARK_EVENT_TYPE: &str = "metachat.watermark";

/// A relay's promise on one partition of one topic: every event with a
/// global position below `next` that belongs to this partition was
/// published before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The global position the relay has published up to (exclusive).
    pub next: u64,
    /// The partition this watermark was sent to.
    pub partition: u32,
    /// How many partitions the topic has.
    pub partitions: u32,
}

impl Watermark {
    /// The watermark an envelope carries, if it is one
    /// ([`WATERMARK_EVENT_TYPE`] with a well-formed payload).
    pub fn of(envelope: &Envelope) -> Option<Watermark> {
        if envelope.event_type != WATERMARK_EVENT_TYPE {
            return None;
        }
        serde_json::from_slice(&envelope.payload).ok()
    }

    /// The envelope of this watermark on `stream` (a relay uses
    /// `watermark-{its name}`): version and position `next`, a JSON payload.
    pub fn envelope(&self, stream: &StreamId) -> Envelope {
        let payload = format!(
            "{{\"next\":{},\"partition\":{},\"partitions\":{}}}",
            self.next, self.partition, self.partitions
        );
        Envelope::recorded(
            NewEvent::new(WATERMARK_EVENT_TYPE, payload.into_bytes()),
            stream.clone(),
            self.next,
            self.next,
            Timestamp::now(),
        )
    }
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
            watermark_topics: Vec::new(),
        }
    }

    /// Broadcasts a [`Watermark`] to the topics of these `categories`
    /// (`{topic_prefix}{category}`) after each published batch.
    pub fn with_watermarks<'a>(mut self, categories: impl IntoIterator<Item = &'a str>) -> Self {
        self.watermark_topics = categories
            .into_iter()
            .map(|c| format!("{}{c}", self.topic_prefix))
            .collect();
        self
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
        // After the events (publish returned once the bus accepted them):
        // each watermark lands behind them in its partition.
        if !self.watermark_topics.is_empty() {
            let stream = StreamId::from_parts("watermark", &self.name)?;
            let envelope = |partition: u32, partitions: u32| {
                Watermark {
                    next,
                    partition,
                    partitions,
                }
                .envelope(&stream)
            };
            for topic in &self.watermark_topics {
                self.bus.broadcast(topic, &envelope).await?;
            }
        }
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

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::event::NewEvent;
    use crate::memory::{InMemoryEventBus, InMemoryEventStore, InMemoryReadModels};
    use crate::store::{EventAppender, ExpectedVersion};

    #[tokio::test]
    async fn watermarks_follow_each_batch_on_every_watermark_topic() {
        let store = std::sync::Arc::new(InMemoryEventStore::new());
        let bus = std::sync::Arc::new(InMemoryEventBus::new());
        for u in 0..3 {
            let s = StreamId::from_parts("user", u).unwrap();
            store
                .append(
                    &s,
                    ExpectedVersion::NoStream,
                    vec![NewEvent::new("A", b"{}".to_vec())],
                )
                .await
                .unwrap();
        }
        let relay = Relay::new(
            store.clone(),
            bus.clone(),
            InMemoryReadModels::new(),
            "r1",
            "t.",
        )
        .with_watermarks(["user", "quiet"]);
        assert_eq!(relay.catch_up().await.unwrap(), 3);
        // The quiet topic got no event, only the watermark: the log is at 3.
        let mut quiet = bus.subscribe("t.quiet", "g").await.unwrap();
        let d = quiet.next().await.unwrap().unwrap();
        assert_eq!(
            Watermark::of(&d.envelope),
            Some(Watermark {
                next: 3,
                partition: 0,
                partitions: 1
            })
        );
        assert_eq!(d.envelope.stream_id.as_str(), "watermark-r1");
        // The user topic: its three events, then the watermark behind them.
        let mut user = bus.subscribe("t.user", "g").await.unwrap();
        let got: Vec<_> = (&mut user).take(4).collect().await;
        let kinds: Vec<Option<u64>> = got
            .iter()
            .map(|d| Watermark::of(&d.as_ref().unwrap().envelope).map(|w| w.next))
            .collect();
        assert_eq!(kinds, [None, None, None, Some(3)]);
        // Not a watermark: an ordinary event, or a malformed payload.
        let mut bad = d.envelope.clone();
        bad.payload = b"{\"next\":\"x\"}".to_vec();
        assert_eq!(Watermark::of(&bad), None);
    }
}
