//! [`BusProjectionRunner`]: a projection fed from event-bus topics, with a
//! per-stream guard against redeliveries and a checkpoint from the relay's
//! watermarks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use super::{Projection, ProjectionTx};
use crate::bus::{Delivery, EventBus};
use crate::error::Result;
use crate::read_model::ReadModelStore;
use crate::relay::Watermark;

/// Collection prefix of the per-stream guard: `applied.{projection}` holds,
/// per stream id, the last version the projection applied.
pub const APPLIED_PREFIX: &str = "applied.";

/// Runs one projection over topics of an [`EventBus`] that a
/// [`Relay`](crate::relay::Relay) fills from the store, as consumer group
/// `group` (one member: the runner must see every partition of its topics).
///
/// - **Order and duplicates.** A bus keeps each stream's order within a
///   topic, not the global order, and redelivers after a crash or a
///   rebalance. Each envelope passes a per-stream guard first: an event
///   whose version is at or below the last one applied for its stream is a
///   duplicate and skipped, so the projection sees each stream's events
///   once, in order (the guard is committed with the writes, in
///   `applied.{projection}`). Projections fed this way must not rely on
///   the order *between* streams.
/// - **Checkpoint.** The relay's [`Watermark`]s say how far the global log
///   was published on each partition; once every partition of every topic
///   has reported, the checkpoint is the lowest of them: every event below
///   it was applied. It is committed with each batch and never moves back,
///   so [`Progress`](crate::progress::Progress) (through
///   [`NotifyingReadModels`](crate::progress::NotifyingReadModels)) and
///   read-your-writes waits work as with a log-following runner.
/// - **Acknowledgement.** Deliveries are acknowledged after their batch was
///   committed: a crash in between redelivers them, and the guard drops
///   what was applied.
pub struct BusProjectionRunner<B, R, P> {
    bus: B,
    read_models: R,
    projection: P,
    topics: Vec<String>,
    group: String,
    batch: usize,
    linger: Duration,
}

impl<B, R, P: Projection> fmt::Debug for BusProjectionRunner<B, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusProjectionRunner")
            .field("projection", &self.projection.name())
            .field("topics", &self.topics)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// What the runner knows of the relay's watermarks.
#[derive(Debug, Default)]
struct Marks {
    /// Per topic: its partition count and each partition's latest mark.
    topics: HashMap<String, (u32, HashMap<u32, u64>)>,
}

impl Marks {
    fn record(&mut self, topic: &str, w: Watermark) {
        let entry = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| (w.partitions, HashMap::new()));
        if entry.0 != w.partitions {
            // The topic was repartitioned: start its marks over.
            *entry = (w.partitions, HashMap::new());
        }
        let mark = entry.1.entry(w.partition).or_insert(0);
        *mark = (*mark).max(w.next);
    }

    /// The lowest mark once every partition of every topic has one.
    fn low(&self, topics: &[String]) -> Option<u64> {
        let mut low = u64::MAX;
        for t in topics {
            let (partitions, marks) = self.topics.get(t)?;
            for p in 0..*partitions {
                low = low.min(*marks.get(&p)?);
            }
        }
        (low != u64::MAX).then_some(low)
    }
}

impl<B, R, P> BusProjectionRunner<B, R, P>
where
    B: EventBus,
    R: ReadModelStore,
    P: Projection,
{
    /// A runner of `projection` over `topics` as consumer group `group`,
    /// committing at most 512 events per batch.
    pub fn new(bus: B, read_models: R, projection: P, topics: &[&str], group: &str) -> Self {
        BusProjectionRunner {
            bus,
            read_models,
            projection,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            group: group.to_owned(),
            batch: 512,
            linger: Duration::from_millis(20),
        }
    }

    /// Deliveries per commit (at least 1).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The checkpoint: every event of the global log below it was applied.
    pub async fn checkpoint(&self) -> Result<u64> {
        Ok(self
            .read_models
            .checkpoint(self.projection.name())
            .await?
            .unwrap_or(0))
    }

    /// Consumes until `shutdown` completes; returns the checkpoint.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<u64> {
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let mut sub = self.bus.subscribe_topics(&names, &self.group).await?;
        let mut marks = Marks::default();
        let mut checkpoint = self.checkpoint().await?;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let first = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(checkpoint),
                next = sub.next() => next,
            };
            let Some(first) = first else {
                return Ok(checkpoint);
            };
            let mut batch = vec![first?];
            // Gather what is ready (up to `linger`) into one commit.
            let deadline = tokio::time::sleep(self.linger);
            tokio::pin!(deadline);
            while batch.len() < self.batch {
                tokio::select! {
                    biased;
                    () = &mut deadline => break,
                    next = sub.next() => match next {
                        Some(d) => batch.push(d?),
                        None => break,
                    },
                }
            }
            checkpoint = self.apply(&batch, &mut marks, checkpoint).await?;
            for d in batch {
                d.ack().await?;
            }
        }
    }

    /// Applies a batch behind the guard and commits it with the checkpoint.
    async fn apply(&self, batch: &[Delivery], marks: &mut Marks, checkpoint: u64) -> Result<u64> {
        let name = self.projection.name();
        let guard = format!("{APPLIED_PREFIX}{name}");
        let mut tx = ProjectionTx::new(&self.read_models);
        for d in batch {
            let e = &d.envelope;
            if let Some(w) = Watermark::of(e) {
                marks.record(&d.topic, w);
                continue;
            }
            let stream = e.stream_id.as_str();
            let applied: Option<u64> = tx.get_json(&guard, stream).await?;
            if applied.is_some_and(|v| e.version <= v) {
                continue;
            }
            self.projection
                .apply(e, &mut tx)
                .await
                .map_err(|source| crate::Error::Projection {
                    projection: name.to_owned(),
                    position: e.position,
                    source: Box::new(source),
                })?;
            tx.put_json(&guard, stream, &e.version)?;
        }
        let next = marks
            .low(&self.topics)
            .map_or(checkpoint, |low| low.max(checkpoint));
        self.read_models
            .commit(tx.into_commit((name.to_owned(), next)))
            .await?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::event::Envelope;
    use crate::memory::{
        append_n as append, InMemoryEventBus, InMemoryEventStore, InMemoryReadModels,
    };
    use crate::read_model::ReadModelStoreExt;
    use crate::relay::Relay;

    /// Counts events per stream and records the versions it saw.
    #[derive(Debug, Default)]
    struct Count;

    #[async_trait]
    impl Projection for Count {
        fn name(&self) -> &str {
            "count"
        }
        fn collections(&self) -> Vec<String> {
            vec!["counts".into()]
        }
        async fn apply(&self, e: &Envelope, tx: &mut ProjectionTx<'_>) -> Result<()> {
            let mut seen: Vec<u64> = tx
                .get_json("counts", e.stream_id.as_str())
                .await?
                .unwrap_or_default();
            seen.push(e.version);
            tx.put_json("counts", e.stream_id.as_str(), &seen)
        }
    }

    #[tokio::test]
    async fn applies_each_stream_once_in_order_and_checkpoints_the_low_watermark() {
        let store = std::sync::Arc::new(InMemoryEventStore::new());
        let bus = std::sync::Arc::new(InMemoryEventBus::new());
        let rm = std::sync::Arc::new(InMemoryReadModels::new());
        append(&store, "user-1", 3).await;
        append(&store, "entry-1", 2).await;
        append(&store, "user-2", 1).await;
        let relay = Relay::new(
            store.clone(),
            bus.clone(),
            InMemoryReadModels::new(),
            "r",
            "t.",
        )
        .with_watermarks(["user", "entry"]);
        relay.catch_up().await.unwrap();
        // The relay publishes a batch again (a crash before its checkpoint):
        // the guard drops the duplicates.
        let again = Relay::new(
            store.clone(),
            bus.clone(),
            InMemoryReadModels::new(),
            "r",
            "t.",
        )
        .with_watermarks(["user", "entry"]);
        again.catch_up().await.unwrap();

        let runner =
            BusProjectionRunner::new(bus.clone(), rm.clone(), Count, &["t.user", "t.entry"], "g");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(async move {
            runner
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        // Wait for the checkpoint to reach the head (6).
        for _ in 0..200 {
            if rm.checkpoint("count").await.unwrap() == Some(6) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rm.checkpoint("count").await.unwrap(), Some(6));
        for (s, want) in [
            ("user-1", vec![0, 1, 2]),
            ("entry-1", vec![0, 1]),
            ("user-2", vec![0]),
        ] {
            let (seen, _): (Vec<u64>, u64) = rm.get_json("counts", s).await.unwrap().unwrap();
            assert_eq!(seen, want, "{s}: each event once, in order");
        }
        stop_tx.send(()).unwrap();
        assert_eq!(run.await.unwrap().unwrap(), 6);
    }

    #[test]
    fn the_low_mark_needs_every_partition_of_every_topic() {
        let topics = vec!["a".to_owned(), "b".to_owned()];
        let mut m = Marks::default();
        let w = |next, partition, partitions| Watermark {
            next,
            partition,
            partitions,
        };
        assert_eq!(m.low(&topics), None);
        m.record("a", w(10, 0, 2));
        m.record("b", w(7, 0, 1));
        assert_eq!(m.low(&topics), None, "partition 1 of a has not reported");
        m.record("a", w(12, 1, 2));
        assert_eq!(m.low(&topics), Some(7));
        m.record("b", w(5, 0, 1));
        assert_eq!(m.low(&topics), Some(7), "a mark never moves back");
        m.record("b", w(20, 0, 1));
        assert_eq!(m.low(&topics), Some(10));
    }
}
