//! The event bus contract: publish envelopes to topics, consume them as named
//! consumer groups with at-least-once delivery.
//!
//! Publishing is driven from the store's global log by the
//! [`Relay`](crate::relay::Relay) (outbox pattern), never from a request
//! handler after a save. Handlers must be idempotent by event id; see
//! [`Deduplicator`](crate::relay::Deduplicator).

use async_trait::async_trait;
use futures::stream::BoxStream;

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
}

#[async_trait]
impl<T: EventBus + ?Sized> EventBus for std::sync::Arc<T> {
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()> {
        (**self).publish(topic, events).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<DeliveryStream> {
        (**self).subscribe(topic, group).await
    }
}

/// Topic for a stream: `{prefix}{category}`, e.g. `metachat.user`.
pub fn topic_for(prefix: &str, stream: &StreamId) -> String {
    format!("{prefix}{}", stream.category())
}
