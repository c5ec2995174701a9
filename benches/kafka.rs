//! Kafka bench, all in one run against one broker (`KAFKA_BROKERS`, started
//! by `scripts/kafka start`):
//!
//! 1. publish throughput of 1 KiB events through `KafkaEventBus::publish`
//!    (batches of 1,000, each awaited: idempotent producer, acks=all);
//! 2. the baseline: the broker's own `kafka-producer-perf-test`
//!    (`org.apache.kafka.tools.ProducerPerformance` from the libs
//!    `scripts/kafka` installed) with the same record size, acks=all and
//!    idempotence;
//! 3. end-to-end latency append → handler through the outbox relay at
//!    1,000 events/s (in-memory store, relay, one consumer group member).
//!
//! Run: `eval "$(scripts/kafka start)" && cargo bench --features kafka --bench kafka`.
//! `KAFKA_BENCH_EVENTS` sets the events of (1) and (2) (default 100,000).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use metachat_adapters::kafka::{KafkaConfig, KafkaEventBus};
use metachat_core::bus::{topic_for, EventBus};
use metachat_core::event::{Envelope, NewEvent, StreamId, Timestamp};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::relay::Relay;
use metachat_core::store::{EventAppender, ExpectedVersion};

const RECORD: usize = 1024;

fn main() {
    let Ok(brokers) = std::env::var("KAFKA_BROKERS") else {
        eprintln!(
            "kafka bench: KAFKA_BROKERS not set; run `eval \"$(scripts/kafka start)\"` first"
        );
        return;
    };
    let events: u64 = std::env::var("KAFKA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let prefix = format!("bench.{}.", uuid::Uuid::new_v4().simple());
    let config = KafkaConfig::builder(&brokers)
        .topic_prefix(&prefix)
        .linger(Duration::from_millis(5))
        .build()
        .expect("config");
    let bus = KafkaEventBus::new(config).expect("bus");

    // 1. Publish throughput.
    let topic = format!("{prefix}throughput");
    let per_sec = rt.block_on(async {
        bus.ensure_topic(&topic).await.expect("topic");
        let streams: Vec<StreamId> = (0..64)
            .map(|i| StreamId::new(format!("bench-{i}")).expect("stream id"))
            .collect();
        let payload = vec![b'x'; RECORD];
        let batch: Vec<Envelope> = (0..1000u64)
            .map(|i| {
                Envelope::recorded(
                    NewEvent::new("Bench", payload.clone()),
                    streams[(i % 64) as usize].clone(),
                    i,
                    i,
                    Timestamp::now(),
                )
            })
            .collect();
        bus.publish(&topic, &batch[..100]).await.expect("warm-up");
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < events {
            bus.publish(&topic, &batch).await.expect("publish");
            sent += batch.len() as u64;
        }
        sent as f64 / start.elapsed().as_secs_f64()
    });
    println!(
        "kafka/publish_1KiB: {per_sec:.0} events/s ({:.1} MiB/s), {events} events in batches of 1,000",
        per_sec * RECORD as f64 / (1 << 20) as f64
    );

    // 2. Baseline: the broker's own producer perf test, same broker, same size.
    let base = baseline(&brokers, &format!("{prefix}baseline"), events);
    match base {
        Some(b) => println!(
            "kafka/baseline_producer_perf_test: {b:.0} records/s; MetaChat / baseline = {:.2}",
            per_sec / b
        ),
        None => println!("kafka/baseline_producer_perf_test: not run (libs not found)"),
    }

    // 3. End-to-end latency through the relay at 1,000 events/s.
    // Its own bus with linger 0: latency, not batching, is what counts here.
    let low_latency = KafkaConfig::builder(&brokers)
        .topic_prefix(&prefix)
        .linger(Duration::ZERO)
        .build()
        .expect("config");
    let bus = KafkaEventBus::new(low_latency).expect("bus");
    let (p50, p99, max, n) = rt.block_on(e2e(bus, &prefix));
    println!(
        "kafka/e2e_relay_1000_per_s: {n} events, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        p50, p99, max
    );
}

fn libs() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let build = std::env::var_os("METACHAT_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/services"));
    build.join("kafka/libs")
}

fn baseline(brokers: &str, topic: &str, events: u64) -> Option<f64> {
    let libs = libs();
    if !libs.is_dir() {
        return None;
    }
    let java = ["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "java"]
        .into_iter()
        .find(|j| !j.starts_with('/') || std::path::Path::new(j).exists())?;
    // The broker auto-creates the topic with num.partitions=3, as ours has.
    let out = Command::new(java)
        .args([
            "-Xmx512m",
            "-cp",
            &format!("{}/*", libs.display()),
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            &events.to_string(),
            "--record-size",
            &RECORD.to_string(),
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={brokers}"),
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| l.contains("records sent"))?;
    println!("  baseline says: {last}");
    let (rate, _) = last.split_once(" records/sec")?;
    rate.rsplit(", ").next()?.trim().parse().ok()
}

/// Wraps the relay's bus and notes, per global position, when the relay
/// handed the event to Kafka and when the broker acknowledged it.
struct TimedBus {
    inner: KafkaEventBus,
    base: Instant,
    hops: Arc<std::sync::Mutex<std::collections::HashMap<u64, (u64, u64)>>>,
}

#[async_trait::async_trait]
impl EventBus for TimedBus {
    async fn publish(&self, topic: &str, events: &[Envelope]) -> metachat_core::Result<()> {
        let start = nanos(self.base);
        let r = self.inner.publish(topic, events).await;
        let done = nanos(self.base);
        let mut hops = self.hops.lock().expect("hops");
        for e in events {
            hops.insert(e.position, (start, done));
        }
        r
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> metachat_core::Result<metachat_core::bus::DeliveryStream> {
        self.inner.subscribe(topic, group).await
    }
}

fn nanos(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Latency quantiles of one hop, in ms: p50, p99, max.
fn quantiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    // Nearest-rank quantile, `permille` of 1,000: the smallest sample with
    // at least that share of the samples at or below it.
    let q = |permille: usize| v[(v.len() * permille).div_ceil(1000).max(1) - 1];
    (q(500), q(990), q(1000))
}

async fn e2e(bus: KafkaEventBus, prefix: &str) -> (f64, f64, f64, usize) {
    const N: u64 = 5_000;
    let store = Arc::new(InMemoryEventStore::new());
    let checkpoints = Arc::new(InMemoryReadModels::new());
    let stream = |i: u64| StreamId::new(format!("latency-{}", i % 16)).expect("stream id");
    let topic = topic_for(prefix, &stream(0));
    bus.ensure_topic(&topic).await.expect("topic");
    let mut sub = bus.subscribe(&topic, "latency").await.expect("subscribe");
    let base = Instant::now();
    let hops = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let (store, checkpoints) = (store.clone(), checkpoints.clone());
        let bus = TimedBus {
            inner: bus.clone(),
            base,
            hops: hops.clone(),
        };
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            Relay::new(store, bus, checkpoints, "relay", &prefix)
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    // Warm up until the consumer has joined the group and fetched from every
    // partition: the group's join (the broker's initial rebalance delay) and
    // the first offset lookups are start-up costs, not steady-state latency.
    const WARM_UP: u64 = 48;
    for i in 0..WARM_UP {
        let payload = vec![b' '; RECORD];
        store
            .append(
                &stream(i),
                ExpectedVersion::Any,
                vec![NewEvent::new("WarmUp", payload)],
            )
            .await
            .expect("append");
    }
    for _ in 0..WARM_UP {
        let d = sub.next().await.expect("stream").expect("delivery");
        d.ack().await.expect("ack");
    }
    let appender = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..N {
                tick.tick().await;
                let t = nanos(base);
                let mut payload = format!("{{\"t\":{t}}}").into_bytes();
                payload.resize(RECORD, b' ');
                store
                    .append(
                        &stream(i),
                        ExpectedVersion::Any,
                        vec![NewEvent::new("Latency", payload)],
                    )
                    .await
                    .expect("append");
            }
        })
    };
    // (position, appended, received) per delivery.
    let mut seen = Vec::with_capacity(5_000);
    while (seen.len() as u64) < N {
        let d = sub.next().await.expect("stream").expect("delivery");
        let now = nanos(base);
        let v: serde_json::Value = serde_json::from_slice(&d.envelope.payload).expect("json");
        let t = v["t"].as_u64().expect("t");
        seen.push((d.envelope.position, t, now));
        d.ack().await.expect("ack");
    }
    appender.await.expect("appender");
    let _ = stop_tx.send(());
    relay.await.expect("relay").expect("relay run");
    let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
    let hops = hops.lock().expect("hops").clone();
    let (mut wait, mut produce, mut deliver, mut total) = (vec![], vec![], vec![], vec![]);
    for &(pos, t, now) in &seen {
        total.push(ms(t, now));
        if let Some(&(start, done)) = hops.get(&pos) {
            wait.push(ms(t, start));
            produce.push(ms(start, done));
            deliver.push(ms(done, now));
        }
    }
    for (name, v) in [
        ("append -> relay publish", wait),
        ("publish -> broker ack", produce),
        ("broker ack -> handler", deliver),
    ] {
        let (p50, p99, max) = quantiles(v);
        println!("  hop {name}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    }
    // When the slowest 1 % happened (seconds into the run): periodic or not.
    let mut slow: Vec<_> = seen.iter().map(|&(_, t, now)| (ms(t, now), t)).collect();
    slow.sort_by(|a, b| b.0.total_cmp(&a.0));
    let when: Vec<String> = slow
        .iter()
        .take(seen.len() / 100)
        .map(|&(l, t)| format!("{:.2}s:{l:.0}", t as f64 / 1e9))
        .collect();
    println!(
        "  slowest 1% (append time s: latency ms): {}",
        when.join(" ")
    );
    let (p50, p99, max) = quantiles(total);
    (p50, p99, max, seen.len())
}
