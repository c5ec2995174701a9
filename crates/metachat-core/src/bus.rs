//! The event bus contract: publish envelopes to topics, consume them as named
//! consumer groups with at-least-once delivery.
//!
//! Publishing is driven from the store's global log by the
//! [`Relay`](crate::relay::Relay) (outbox pattern), never from a request
//! handler after a save. Handlers must be idempotent by event id; see
//! [`Deduplicator`](crate::relay::Deduplicator).

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::Result;
use crate::event::{Envelope, StreamId};

/// Acknowledges one delivery to its backend.
#[async_trait]
pub trait Acknowledge: Send + Sync + std::fmt::Debug {
    /// Marks the delivery handled: it will not be delivered to the group again
    /// (once every earlier delivery of its partition is acknowledged too).
    async fn ack(self: Box<Self>) -> Result<()>;
}

/// One envelope delivered to a consumer group.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// Topic it came from.
    pub topic: String,
    ack: Box<dyn Acknowledge>,
}

impl Delivery {
    /// A delivery with its backend acknowledgement handle.
    pub fn new(envelope: Envelope, topic: String, ack: Box<dyn Acknowledge>) -> Self {
        Delivery {
            envelope,
            topic,
            ack,
        }
    }

    /// Acknowledges it after the handler succeeded.
    pub async fn ack(self) -> Result<()> {
        self.ack.ack().await
    }
}

/// A stream of deliveries for one consumer group member.
pub type DeliveryStream = BoxStream<'static, Result<Delivery>>;

/// Publishes to topics and consumes them as consumer groups.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes `events` to `topic`, keyed by stream id so that order per
    /// stream holds. Returns after the bus accepted all of them.
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()>;

    /// Joins consumer group `group` on `topic`. Deliveries start after the
    /// group's last acknowledged event; unacknowledged ones are redelivered to
    /// the next subscriber.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<DeliveryStream>;

    /// Publishes a marker to *every partition* of `topic`, so that every
    /// member of every group sees it, whichever partitions it owns (a
    /// watermark, a heartbeat): `make(i, n)` builds the envelope for
    /// partition `i` of `n`. Returns after the bus accepted all of them;
    /// each lands behind what was published to its partition before.
    ///
    /// The default is a bus with one log per topic: it publishes `make(0, 1)`.
    async fn broadcast(
        &self,
        topic: &str,
        make: &(dyn Fn(u32, u32) -> Envelope + Sync),
    ) -> Result<()> {
        self.publish(topic, &[make(0, 1)]).await
    }

    /// Joins consumer group `group` on several topics: one stream of their
    /// deliveries. Order holds per topic and key (stream), as for
    /// [`subscribe`](EventBus::subscribe), never across topics; each
    /// delivery names its [`topic`](Delivery::topic). No topics: a stream
    /// that ends at once.
    ///
    /// The default joins the group once per topic and merges the streams (a
    /// member per topic: brokers that assign per topic, as Kafka does, give
    /// the same guarantees); a bus may subscribe once instead.
    ///
    /// ```
    /// # use metachat_core::{bus::EventBus, memory::InMemoryEventBus, event::*};
    /// # use futures::StreamExt;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let bus = InMemoryEventBus::new();
    /// let e = |s: &str| Envelope::recorded(NewEvent::new("A", b"{}".to_vec()),
    ///     StreamId::new(s).unwrap(), 0, 0, Timestamp::now());
    /// bus.publish("app.user", &[e("user-1")]).await.unwrap();
    /// bus.publish("app.entry", &[e("entry-1")]).await.unwrap();
    /// let mut sub = bus.subscribe_topics(&["app.user", "app.entry"], "g").await.unwrap();
    /// let mut topics = vec![
    ///     sub.next().await.unwrap().unwrap().topic,
    ///     sub.next().await.unwrap().unwrap().topic,
    /// ];
    /// topics.sort();
    /// assert_eq!(topics, ["app.entry", "app.user"]);
    /// # });
    /// ```
    async fn subscribe_topics(&self, topics: &[&str], group: &str) -> Result<DeliveryStream> {
        let mut streams = Vec::with_capacity(topics.len());
        for topic in topics {
            streams.push(self.subscribe(topic, group).await?);
        }
        Ok(futures::stream::select_all(streams).boxed())
    }
}

#[async_trait]
impl<T: EventBus + ?Sized> EventBus for std::sync::Arc<T> {
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()> {
        (**self).publish(topic, events).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<DeliveryStream> {
        (**self).subscribe(topic, group).await
    }

    async fn subscribe_topics(&self, topics: &[&str], group: &str) -> Result<DeliveryStream> {
        (**self).subscribe_topics(topics, group).await
    }

    async fn broadcast(
        &self,
        topic: &str,
        make: &(dyn Fn(u32, u32) -> Envelope + Sync),
    ) -> Result<()> {
        (**self).broadcast(topic, make).await
    }
}

/// Topic for a stream: `{prefix}{category}`, e.g. `metachat.user`.
pub fn topic_for(prefix: &str, stream: &StreamId) -> String {
    format!("{prefix}{}", stream.category())
}
