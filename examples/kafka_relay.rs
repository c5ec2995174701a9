//! The outbox relay to Kafka: events appended to a store are published to
//! `{prefix}{category}` topics by a `Relay` that follows the log from its own
//! checkpoint (an event that was stored reaches the bus even if the bus was
//! down when it was appended), and a consumer group reads them back.
//!
//! Run: `eval "$(scripts/kafka start)" && cargo run --example kafka_relay --features kafka`
//! (it needs a broker at `KAFKA_BROKERS`; `scripts/kafka` starts one on
//! 127.0.0.1 from Maven Central's jars).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use metachat::adapters::kafka::{KafkaConfig, KafkaEventBus};
use metachat::bus::{topic_for, EventBus};
use metachat::event::{NewEvent, StreamId};
use metachat::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat::relay::Relay;
use metachat::store::{EventAppender, ExpectedVersion};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // Topics of this run only: `example.<random>.order`.
    let prefix = format!("example.{}.", uuid::Uuid::new_v4().simple());
    let config = KafkaConfig::from_env()
        .context("set KAFKA_BROKERS (eval \"$(scripts/kafka start)\")")?
        .topic_prefix(prefix.clone())
        .build()?;
    let bus = Arc::new(KafkaEventBus::new(config)?);

    // The store of record: any EventStore (sled, Cassandra, ...) works the same.
    let store = Arc::new(InMemoryEventStore::new());
    let checkpoints = Arc::new(InMemoryReadModels::new());
    let order = StreamId::new("order-42")?;
    let events = ["OrderPlaced", "OrderPaid", "OrderShipped"]
        .map(|t| NewEvent::new(t, b"{}".to_vec()))
        .to_vec();
    store
        .append(&order, ExpectedVersion::NoStream, events)
        .await?;

    // The relay publishes everything up to the head and stores its checkpoint.
    let relay = Relay::new(
        store.clone(),
        bus.clone(),
        checkpoints,
        "example_relay",
        &prefix,
    );
    let next = relay.catch_up().await?;
    println!("relayed positions 0..{next} to {prefix}*");

    // A consumer group reads the topic; each delivery is acknowledged after
    // it was handled (at-least-once).
    let topic = topic_for(&prefix, &order);
    let mut deliveries = bus.subscribe(&topic, "example-readers").await?;
    for _ in 0..3 {
        let delivery = tokio::time::timeout(Duration::from_secs(60), deliveries.next())
            .await
            .context("no delivery within 60 s")?
            .context("the subscription ended early")??;
        println!(
            "{} got {} (version {} of {})",
            delivery.topic,
            delivery.envelope.event_type,
            delivery.envelope.version,
            delivery.envelope.stream_id
        );
        delivery.ack().await?;
    }
    Ok(())
}
