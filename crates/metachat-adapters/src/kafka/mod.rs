//! The event bus on Apache Kafka ([`KafkaEventBus`]), through `rdkafka`.
//!
//! - **Topics**: one per event category, `{prefix}{category}` (the
//!   [`Relay`](metachat_core::relay::Relay) picks them with
//!   [`topic_for`](metachat_core::bus::topic_for)); the bus creates missing
//!   topics with the configured partitions unless told not to.
//! - **Records**: key = stream id, so order per stream holds; value = the
//!   payload bytes; the event id, type, schema version, content type,
//!   correlation and causation ids and the rest of the envelope in headers
//!   (see [`record`]).
//! - **Producer**: idempotent, `acks=all`; [`publish`](EventBus::publish)
//!   returns after the broker acknowledged every record, or the first error.
//!   A broker that cannot be reached is [`Error::Unavailable`].
//! - **Consumers**: [`subscribe`](EventBus::subscribe) joins a consumer
//!   group; no offset is committed automatically: an acknowledgement commits
//!   up to the first delivery not yet acknowledged (at-least-once). On a
//!   rebalance or when the subscription is dropped, the handled offsets are
//!   committed synchronously before the partitions are given up; deliveries
//!   not acknowledged go to the next member.
//! - **Poison records**: a record that cannot be decoded goes to the
//!   dead-letter topic `{topic}.dlt` with `dlt-*` headers saying why, and
//!   consumption goes on. [`KafkaEventBus::consume`] runs a handler with a
//!   bounded number of attempts and dead-letters what still fails.
//! - **A client that lost every broker** (librdkafka 2.12 forgets them all
//!   when a lone broker in controlled shutdown answers a Metadata request
//!   with none, and never bootstraps again: confluentinc/librdkafka#5301) is
//!   replaced: the producer and the admin client are made again, and a
//!   consumer's stream ends with [`Error::Unavailable`], after which the
//!   caller subscribes again (the group redelivers what was not
//!   acknowledged). Each client reports librdkafka's statistics every
//!   second for this; see `orphan.rs`.
//! - **Outbox**: publish through [`Relay`](metachat_core::relay::Relay) from
//!   the event store; dedupe in consumers with
//!   [`Deduplicator`](metachat_core::relay::Deduplicator).
//!
//! ```no_run
//! use std::sync::Arc;
//! use metachat_adapters::kafka::{KafkaConfig, KafkaEventBus};
//! use metachat_core::bus::EventBus;
//! use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
//! use metachat_core::relay::{Deduplicator, Relay};
//!
//! # async fn run(shutdown: tokio::sync::oneshot::Receiver<()>) -> metachat_core::Result<()> {
//! // KAFKA_BROKERS=127.0.0.1:19092, optionally KAFKA_TOPIC_PREFIX, KAFKA_GROUP_ID.
//! let bus = KafkaEventBus::new(KafkaConfig::from_env()?.build()?)?;
//!
//! // Producer side: the relay tails the store and publishes to `metachat.{category}`.
//! let store = Arc::new(InMemoryEventStore::new());
//! let checkpoints = Arc::new(InMemoryReadModels::new());
//! let relay = Relay::new(store, bus.clone(), checkpoints, "relay", bus.config().topic_prefix());
//! relay.catch_up().await?;
//!
//! // Consumer side: a group member that handles each event once.
//! let read_models = Arc::new(InMemoryReadModels::new());
//! let dedup = Deduplicator::new(read_models, "mood-worker");
//! let report = bus
//!     .consume("metachat.diary", "mood-worker", |event| {
//!         let dedup = dedup.clone();
//!         let event = event.clone();
//!         async move {
//!             if !dedup.seen(&event).await? {
//!                 // ... the handler's writes, committed with the mark:
//!                 dedup.commit_handled(&event, Default::default()).await?;
//!             }
//!             Ok(())
//!         }
//!     }, async { let _ = shutdown.await; })
//!     .await?;
//! println!("{report:?}");
//! # Ok(()) }
//! ```

mod config;
mod consumer;
mod error;
mod orphan;
pub mod record;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use metachat_core::bus::{Delivery, DeliveryStream, EventBus};
use metachat_core::event::Envelope;
use metachat_core::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

pub use config::{
    KafkaConfig, KafkaConfigBuilder, ENV_BROKERS, ENV_GROUP_ID, ENV_PARTITIONS, ENV_TOPIC_PREFIX,
};
pub use consumer::Origin;
pub use error::{DecodeError, KafkaConfigError, KafkaOpError};

use config::millis;
use consumer::{KafkaAck, MemberConsumer, MemberContext};
use error::map;
use orphan::WatchedContext;

/// How often a consumer waiting for records looks whether its client still
/// has a broker (see `orphan.rs`).
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

/// The event bus on Kafka. Cheap to clone: clones share one producer.
#[derive(Clone)]
pub struct KafkaEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    /// Replaced when it lost every broker (see [`Self::producer`]).
    producer: Mutex<(BusProducer, Arc<orphan::Orphan>)>,
    /// Replaced after a failed topic creation (it may have lost every
    /// broker, and an admin client reports no statistics).
    admin: Mutex<Arc<Admin>>,
    topics: Mutex<HashSet<String>>,
}

impl fmt::Debug for KafkaEventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaEventBus")
            .field("brokers", &self.inner.config.brokers)
            .field("topic_prefix", &self.inner.config.topic_prefix)
            .finish_non_exhaustive()
    }
}

/// What [`KafkaEventBus::consume`] did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumeReport {
    /// Deliveries whose handler succeeded.
    pub handled: u64,
    /// Deliveries sent to the dead-letter topic after every attempt failed.
    pub dead_lettered: u64,
}

/// One delivery with where it came from (partition and offset).
#[derive(Debug)]
pub struct KafkaDelivery {
    /// The delivery (envelope, topic, acknowledgement).
    pub delivery: Delivery,
    /// Its partition and offset.
    pub origin: Origin,
}

fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", &config.client_id)
        // Reconnect soon after a broker restart (default backs off to 10 s).
        .set("reconnect.backoff.max.ms", "1000")
        // For the orphan watch (orphan.rs).
        .set("statistics.interval.ms", orphan::STATS_INTERVAL_MS);
    c
}

/// The bus's producer type: its context watches for the loss of every broker.
type BusProducer = FutureProducer<WatchedContext>;

/// A producer, with the handle on its context's loss watch.
fn make_producer(config: &KafkaConfig) -> Result<(BusProducer, Arc<orphan::Orphan>)> {
    let mut pc = client_config(config);
    pc.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", millis(config.delivery_timeout))
        .set("linger.ms", millis(config.linger));
    let context = WatchedContext::default();
    let watch = context.orphan.clone();
    let producer = with_extra(pc, config)
        .create_with_context(context)
        .map_err(|e| map("create producer", e))?;
    Ok((producer, watch))
}

type Admin = AdminClient<DefaultClientContext>;

fn make_admin(config: &KafkaConfig) -> Result<Admin> {
    with_extra(client_config(config), config)
        .create()
        .map_err(|e| map("create admin client", e))
}

fn with_extra(mut c: ClientConfig, config: &KafkaConfig) -> ClientConfig {
    for (k, v) in &config.extra {
        c.set(k, v);
    }
    c
}

impl KafkaEventBus {
    /// Connects a producer and an admin client (lazily: nothing fails here if
    /// the broker is down; publishing then returns [`Error::Unavailable`]).
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let producer = Mutex::new(make_producer(&config)?);
        let admin = Mutex::new(Arc::new(make_admin(&config)?));
        Ok(KafkaEventBus {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                topics: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// A bus configured from the environment (`KAFKA_BROKERS`, …); see
    /// [`KafkaConfig::from_env`].
    pub fn from_env() -> Result<Self> {
        Self::new(KafkaConfig::from_env()?.build()?)
    }

    /// Its configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// The producer, made again first if it has had no broker for a while
    /// (librdkafka may forget its only broker; see `orphan.rs`).
    fn producer(&self) -> BusProducer {
        let mut p = self
            .inner
            .producer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if p.1.is_orphaned() {
            match make_producer(&self.inner.config) {
                Ok(fresh) => {
                    tracing::warn!(
                        "kafka producer: no broker left in the client (librdkafka#5301); made a new one"
                    );
                    orphan::drop_detached(std::mem::replace(&mut *p, fresh).0, "producer");
                }
                Err(e) => tracing::warn!(error = %e, "kafka producer: could not make a new one"),
            }
        }
        p.0.clone()
    }

    fn known_topics(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates `topic` with the configured partitions if it does not exist
    /// (once per topic and bus), and waits until its metadata is visible.
    pub async fn ensure_topic(&self, topic: &str) -> Result<()> {
        let c = &self.inner.config;
        if !c.create_topics || self.known_topics().contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(topic, c.partitions, TopicReplication::Fixed(c.replication));
        let opts = AdminOptions::new().request_timeout(Some(c.delivery_timeout));
        let admin = self
            .inner
            .admin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let results = match admin.create_topics([&new], &opts).await {
            Ok(r) => r,
            Err(e) => {
                // A client that lost every broker fails this for good
                // (orphan.rs): the next call gets a new one.
                let fresh = make_admin(&self.inner.config)?;
                let old = std::mem::replace(
                    &mut *self.inner.admin.lock().unwrap_or_else(|p| p.into_inner()),
                    Arc::new(fresh),
                );
                orphan::drop_detached(old, "admin client");
                return Err(map("create topic", e));
            }
        };
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(map("create topic", KafkaError::AdminOp(code))),
            }
        }
        self.wait_for_metadata(topic).await?;
        self.known_topics().insert(topic.to_owned());
        Ok(())
    }

    /// How long one broker query of [`high_watermarks`](Self::high_watermarks)
    /// or [`consumer_lag`](Self::consumer_lag) may take.
    fn query_timeout(&self) -> Duration {
        self.inner
            .config
            .delivery_timeout
            .min(Duration::from_secs(5))
    }

    /// Each partition of `topic` with its high watermark (the offset its
    /// next record will get), asked of the broker now: a consumer that has
    /// read every partition up to these offsets has seen everything
    /// published to the topic before this call.
    ///
    /// A topic that does not exist yet has no partitions (an empty list).
    pub async fn high_watermarks(&self, topic: &str) -> Result<Vec<(i32, i64)>> {
        let producer = self.producer();
        let topic = topic.to_owned();
        let timeout = self.query_timeout();
        tokio::task::spawn_blocking(move || {
            let client = producer.client();
            let md = client
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| map("topic metadata", e))?;
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                return Ok(Vec::new());
            };
            if t.error().is_some() {
                // Unknown topic (or not yet visible): nothing published.
                return Ok(Vec::new());
            }
            let mut out = Vec::with_capacity(t.partitions().len());
            for p in t.partitions() {
                let (_, high) = client
                    .fetch_watermarks(&topic, p.id(), timeout)
                    .map_err(|e| map("watermarks", e))?;
                out.push((p.id(), high));
            }
            out.sort_unstable();
            Ok(out)
        })
        .await
        .map_err(|e| Error::backend(format!("watermark task failed: {e}")))?
    }

    /// Each partition of `topic` with consumer group `group`'s lag: the
    /// records published to it that the group has not committed (the high
    /// watermark minus the committed offset; the whole partition when the
    /// group has committed nothing there yet). Asked of the broker now,
    /// by a short-lived client that does not join the group.
    ///
    /// A topic that does not exist yet has no partitions (an empty list).
    pub async fn consumer_lag(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>> {
        let highs = self.high_watermarks(topic).await?;
        if highs.is_empty() {
            return Ok(highs);
        }
        let mut c = client_config(&self.inner.config);
        c.set("group.id", group).set("enable.auto.commit", "false");
        let c = with_extra(c, &self.inner.config);
        let topic = topic.to_owned();
        let timeout = self.query_timeout();
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer =
                c.create().map_err(|e| map("lag client", e))?;
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (p, _) in &highs {
                tpl.add_partition(&topic, *p);
            }
            let committed = consumer
                .committed_offsets(tpl, timeout)
                .map_err(|e| map("committed offsets", e))?;
            Ok(highs
                .into_iter()
                .map(|(p, high)| {
                    let at = committed.find_partition(&topic, p).map(|e| e.offset());
                    let lag = match at {
                        Some(rdkafka::Offset::Offset(o)) => (high - o).max(0),
                        _ => high,
                    };
                    (p, lag)
                })
                .collect())
        })
        .await
        .map_err(|e| Error::backend(format!("lag task failed: {e}")))?
    }

    async fn wait_for_metadata(&self, topic: &str) -> Result<()> {
        let producer = self.producer();
        let topic = topic.to_owned();
        let timeout = self.inner.config.delivery_timeout;
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                let md = producer
                    .client()
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                    .map_err(|e| map("topic metadata", e))?;
                let ready = md.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if ready {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(map(
                        "topic metadata",
                        KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .map_err(Error::backend)?
    }

    /// How many partitions `topic` has, from the broker's metadata.
    async fn partition_count(&self, topic: &str) -> Result<u32> {
        let producer = self.producer();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .map_err(|e| map("topic metadata", e))?;
            md.topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| u32::try_from(t.partitions().len()).unwrap_or(u32::MAX))
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    map(
                        "topic metadata",
                        KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
                    )
                })
        })
        .await
        .map_err(Error::backend)?
    }

    /// Sends one record through `producer` (one [`producer`](Self::producer)
    /// lookup per batch), waiting for room in its queue when it is full.
    async fn send<'a>(
        producer: &BusProducer,
        mut record: FutureRecord<'a, str, [u8]>,
    ) -> Result<DeliveryFuture> {
        loop {
            match producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(map("publish", e)),
            }
        }
    }

    /// Awaits every delivery report; returns the first error.
    async fn await_all(pending: Vec<DeliveryFuture>) -> Result<()> {
        let mut first = None;
        for f in pending {
            let r = match f.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(map("publish", e)),
                Err(_canceled) => Err(Error::Closed),
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Writes a record to the dead-letter topic of `topic`: the original key,
    /// value and headers plus `dlt-*` headers with the reason.
    #[allow(clippy::too_many_arguments)]
    async fn dead_letter<H: Headers>(
        &self,
        origin: &Origin,
        group: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<&H>,
        reason: &str,
        error: &str,
        attempts: u32,
    ) -> Result<()> {
        let dlt = self.inner.config.dead_letter_topic(&origin.topic);
        self.ensure_topic(&dlt).await?;
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let attempts = attempts.to_string();
        let h = record::with_extra(
            headers,
            &[
                (record::DLT_REASON, reason),
                (record::DLT_ERROR, error),
                (record::DLT_TOPIC, &origin.topic),
                (record::DLT_PARTITION, &partition),
                (record::DLT_OFFSET, &offset),
                (record::DLT_GROUP, group),
                (record::DLT_ATTEMPTS, &attempts),
            ],
        );
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dlt).headers(h);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        let f = match self.producer().send_result(rec) {
            Ok(f) => f,
            Err((e, _)) => return Err(map("dead-letter", e)),
        };
        Self::await_all(vec![f]).await
    }

    /// Joins group `group` on `topic`, like [`EventBus::subscribe`], and
    /// gives each delivery with its partition and offset.
    pub async fn subscribe_with_origin(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<BoxStream<'static, Result<KafkaDelivery>>> {
        self.subscribe_topics_with_origin(&[topic], group).await
    }

    /// Joins group `group` on every topic of `topics` as one member (one
    /// consumer subscribed to all of them, so the group assigns them
    /// together: a member per topic would make each later join revoke and
    /// redeliver what the earlier ones had not acknowledged), and gives each
    /// delivery with its partition and offset.
    pub async fn subscribe_topics_with_origin(
        &self,
        topics: &[&str],
        group: &str,
    ) -> Result<BoxStream<'static, Result<KafkaDelivery>>> {
        for topic in topics {
            self.ensure_topic(topic).await?;
        }
        let c = &self.inner.config;
        let mut cc = client_config(c);
        cc.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", millis(c.session_timeout))
            .set("heartbeat.interval.ms", millis(c.session_timeout / 4));
        let consumer: MemberConsumer = with_extra(cc, c)
            .create_with_context(MemberContext::default())
            .map_err(|e| map("create consumer", e))?;
        consumer
            .subscribe(topics)
            .map_err(|e| map("subscribe", e))?;
        let state = (self.clone(), Some(Arc::new(consumer)), group.to_owned());
        let stream = futures::stream::unfold(state, |(bus, consumer, group)| async move {
            let consumer = consumer?;
            match bus.next_delivery(&consumer, &group).await {
                Some(item) => Some((item, (bus, Some(consumer), group))),
                None => {
                    // The owner subscribes again, with a new client; the
                    // group redelivers what this one had not committed.
                    tracing::warn!(%group, "kafka consumer: no broker left in the client (librdkafka#5301); ending its stream");
                    orphan::drop_detached(consumer, "consumer");
                    let e = Error::unavailable(format!(
                        "the Kafka consumer of group {group} lost every broker; subscribe again"
                    ));
                    Some((Err(e), (bus, None, group)))
                }
            }
        });
        Ok(stream.boxed())
    }

    /// The next decodable record of `consumer`, dead-lettering the others;
    /// `None` when the client lost every broker (see `orphan.rs`).
    async fn next_delivery(
        &self,
        consumer: &Arc<MemberConsumer>,
        group: &str,
    ) -> Option<Result<KafkaDelivery>> {
        loop {
            // Waits for a record, and looks now and then whether the client
            // still has a broker (`recv` is cancellation safe).
            let received = tokio::select! {
                r = consumer.recv() => Some(r),
                () = tokio::time::sleep(ORPHAN_CHECK) => None,
            };
            let Some(received) = received else {
                if consumer.context().orphan.is_orphaned() {
                    return None;
                }
                continue;
            };
            let msg = match received {
                Ok(m) => m.detach(),
                Err(KafkaError::MessageConsumptionFatal(code)) => {
                    return Some(Err(map(
                        "consume",
                        KafkaError::MessageConsumptionFatal(code),
                    )));
                }
                Err(e) => {
                    // Transient (the broker went away, a rebalance): librdkafka retries.
                    tracing::debug!(error = %e, "kafka consumer: transient error");
                    continue;
                }
            };
            let origin = Origin {
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                offset: msg.offset(),
            };
            let Some(generation) = consumer.context().tracker().delivered(&origin) else {
                // Fetched before a revoke: the partition's new owner gets it.
                continue;
            };
            let ack = KafkaAck::new(consumer, origin.clone(), generation);
            match record::decode(msg.key(), msg.payload(), msg.headers()) {
                Ok(envelope) => {
                    let delivery = Delivery::new(envelope, origin.topic.clone(), Box::new(ack));
                    return Some(Ok(KafkaDelivery { delivery, origin }));
                }
                Err(why) => {
                    tracing::warn!(topic = %origin.topic, partition = origin.partition, offset = origin.offset, error = %why, "kafka: undecodable record to the dead-letter topic");
                    let dlt = self
                        .dead_letter(
                            &origin,
                            group,
                            msg.key(),
                            msg.payload(),
                            msg.headers(),
                            record::REASON_DECODE,
                            &why.to_string(),
                            0,
                        )
                        .await;
                    // Not acknowledged if the dead-letter write failed: the
                    // record stays uncommitted and comes back to the group.
                    if let Err(e) = dlt.and_then(|()| ack.ack_now()) {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// Runs `handler` on every delivery of group `group` on `topic`, one at a
    /// time, until `shutdown` completes; then commits what was handled and
    /// leaves the group.
    ///
    /// A handler that fails is tried again, up to the configured attempts
    /// (with a doubling pause); after the last failure the record goes to the
    /// dead-letter topic with reason `handler-failed` and the error, and
    /// consumption goes on. Returns an error if the consumer or the
    /// dead-letter write fails (the record then stays uncommitted).
    pub async fn consume<F, Fut>(
        &self,
        topic: &str,
        group: &str,
        mut handler: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<ConsumeReport>
    where
        F: FnMut(&Envelope) -> Fut + Send,
        Fut: Future<Output = Result<()>> + Send,
    {
        let mut report = ConsumeReport::default();
        let mut stream = self.subscribe_with_origin(topic, group).await?;
        let mut shutdown = std::pin::pin!(shutdown);
        let attempts = self.inner.config.max_handler_attempts;
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => break,
                next = stream.next() => next,
            };
            let Some(next) = next else { break };
            let KafkaDelivery { delivery, origin } = next?;
            let mut pause = self.inner.config.retry_backoff;
            let mut last_error = None;
            for attempt in 1..=attempts {
                match handler(&delivery.envelope).await {
                    Ok(()) => {
                        last_error = None;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(attempt, error = %e, "kafka consume: handler failed");
                        last_error = Some(e);
                        if attempt < attempts {
                            tokio::time::sleep(pause).await;
                            pause = pause.saturating_mul(2);
                        }
                    }
                }
            }
            if let Some(e) = last_error {
                let env = &delivery.envelope;
                let headers: OwnedHeaders = record::headers(env, &self.inner.config.content_type);
                self.dead_letter(
                    &origin,
                    group,
                    Some(env.stream_id.as_str().as_bytes()),
                    Some(&env.payload),
                    Some(&headers),
                    record::REASON_HANDLER,
                    &e.to_string(),
                    attempts,
                )
                .await?;
                report.dead_lettered += 1;
            } else {
                report.handled += 1;
            }
            delivery.ack().await?;
        }
        // Dropping the stream closes the member: the revoke commits what was handled.
        drop(stream);
        Ok(report)
    }
}

#[async_trait]
impl EventBus for KafkaEventBus {
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.ensure_topic(topic).await?;
        let ct = &self.inner.config.content_type;
        let producer = self.producer();
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let mut rec = FutureRecord::to(topic)
                .key(e.stream_id.as_str())
                .payload(e.payload.as_slice())
                .headers(record::headers(e, ct));
            if let Ok(ms) = i64::try_from(e.recorded_at.0 / 1000) {
                rec = rec.timestamp(ms);
            }
            match Self::send(&producer, rec).await {
                Ok(f) => pending.push(f),
                Err(e) => {
                    // Let what is in flight finish; report the enqueue error.
                    let _ = Self::await_all(pending).await;
                    return Err(e);
                }
            }
        }
        Self::await_all(pending).await
    }

    /// One record per partition of the topic (the count from the broker's
    /// metadata), each sent to its partition explicitly.
    async fn broadcast(
        &self,
        topic: &str,
        make: &(dyn Fn(u32, u32) -> Envelope + Sync),
    ) -> Result<()> {
        self.ensure_topic(topic).await?;
        let n = self.partition_count(topic).await?;
        let ct = &self.inner.config.content_type;
        let envelopes: Vec<Envelope> = (0..n).map(|i| make(i, n)).collect();
        let producer = self.producer();
        let mut pending = Vec::with_capacity(envelopes.len());
        for (i, e) in (0..n).zip(&envelopes) {
            let partition = i32::try_from(i).map_err(Error::backend)?;
            let rec = FutureRecord::to(topic)
                .partition(partition)
                .key(e.stream_id.as_str())
                .payload(e.payload.as_slice())
                .headers(record::headers(e, ct));
            match Self::send(&producer, rec).await {
                Ok(f) => pending.push(f),
                Err(e) => {
                    let _ = Self::await_all(pending).await;
                    return Err(e);
                }
            }
        }
        Self::await_all(pending).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<DeliveryStream> {
        let s = self.subscribe_with_origin(topic, group).await?;
        Ok(s.map(|r| r.map(|d| d.delivery)).boxed())
    }

    async fn subscribe_topics(&self, topics: &[&str], group: &str) -> Result<DeliveryStream> {
        let s = self.subscribe_topics_with_origin(topics, group).await?;
        Ok(s.map(|r| r.map(|d| d.delivery)).boxed())
    }
}
