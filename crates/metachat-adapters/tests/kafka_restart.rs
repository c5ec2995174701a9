//! Fault test: the broker stops while appends go on into the event store and
//! the outbox relay runs; it starts again, and every event arrives, in order
//! per stream, none lost.
//!
//! It stops and starts the broker with `scripts/kafka`, so it runs only
//! against the broker that script manages (`KAFKA_BROKERS` equal to what
//! `scripts/kafka status` prints); it is its own test binary so that no other
//! test shares the outage.

mod kafka_support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use metachat_core::bus::{topic_for, EventBus};
use metachat_core::event::{EventId, NewEvent, StreamId};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::read_model::ReadModelStore;
use metachat_core::relay::Relay;
use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
use metachat_core::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing_and_keeps_order_per_stream() {
    let Some(brokers) = kafka_support::managed_brokers() else {
        return;
    };
    // Short delivery timeout: publishes during the outage fail as Unavailable
    // and the relay is restarted from its checkpoint.
    let bus = kafka_support::bus_with(
        kafka_support::config(&brokers).delivery_timeout(Duration::from_secs(3)),
    );
    let prefix = bus.config().topic_prefix().to_owned();
    let store = Arc::new(InMemoryEventStore::new());
    let checkpoints = Arc::new(InMemoryReadModels::new());
    let streams: Vec<StreamId> = (0..6)
        .map(|i| {
            let cat = if i % 2 == 0 { "user" } else { "diary" };
            StreamId::new(format!("{cat}-{}", uuid::Uuid::new_v4().simple())).unwrap()
        })
        .collect();
    for s in &streams {
        bus.ensure_topic(&topic_for(&prefix, s))
            .await
            .expect("topic");
    }

    // The relay, restarted whenever the bus is unavailable.
    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicU64::new(0));
    let relay_task = {
        let (store, bus, checkpoints) = (store.clone(), bus.clone(), checkpoints.clone());
        let (stop, unavailable, prefix) = (stop.clone(), unavailable.clone(), prefix.clone());
        tokio::spawn(async move {
            let relay = Relay::new(store, bus, checkpoints, "relay", &prefix);
            loop {
                let stopping = {
                    let stop = stop.clone();
                    async move {
                        while !stop.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                };
                match relay.run(stopping).await {
                    Ok(next) => return Ok::<u64, Error>(next),
                    Err(e @ Error::Unavailable { .. }) => {
                        unavailable.fetch_add(1, Ordering::SeqCst);
                        eprintln!("relay: {e}; restarting from the checkpoint");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    };

    // Appends go on for the whole test: 20 per 100 ms, round-robin over the streams.
    let appending = Arc::new(AtomicBool::new(true));
    let appender = {
        let (store, streams, appending) = (store.clone(), streams.clone(), appending.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while appending.load(Ordering::SeqCst) {
                for _ in 0..20 {
                    let s = &streams[usize::try_from(n).unwrap_or(0) % streams.len()];
                    let e = NewEvent::new("Tested", format!("{{\"n\":{n}}}").into_bytes());
                    store
                        .append(s, ExpectedVersion::Any, vec![e])
                        .await
                        .expect("append");
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(|| kafka_support::script("stop"))
        .await
        .unwrap();
    let appended_while_down_from = store.next_position().await.expect("head");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let appended_while_down_to = store.next_position().await.expect("head");
    let started = tokio::task::spawn_blocking(|| kafka_support::script("start"))
        .await
        .unwrap();
    assert_eq!(started, format!("KAFKA_BROKERS={brokers}"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    appending.store(false, Ordering::SeqCst);
    let appended = appender.await.expect("appender");
    assert!(
        appended_while_down_to > appended_while_down_from,
        "events were appended while the broker was down"
    );

    // Wait until the relay's checkpoint reaches the head, then stop it.
    let head = store.next_position().await.expect("head");
    assert_eq!(head, appended);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let cp = checkpoints.checkpoint("relay").await.expect("checkpoint");
        if cp == Some(head) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay checkpoint {cp:?}, head {head}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    relay_task.await.expect("relay task").expect("relay");
    assert!(
        unavailable.load(Ordering::SeqCst) > 0,
        "the relay never saw the broker down (Error::Unavailable)"
    );

    // Consume everything: every event, first deliveries in order per stream.
    let log = store.read_all(0, 100_000).await.expect("read_all");
    let want: HashSet<EventId> = log.iter().map(|e| e.event_id).collect();
    let mut got: BTreeMap<StreamId, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut deliveries = 0u64;
    for topic in ["user", "diary"].map(|c| format!("{prefix}{c}")) {
        let mut sub = bus
            .subscribe(&topic, "outage-check")
            .await
            .expect("subscribe");
        let of_topic = log
            .iter()
            .filter(|e| topic_for(&prefix, &e.stream_id) == topic)
            .count();
        let mut seen_here = 0;
        while seen_here < of_topic {
            let d = tokio::time::timeout(Duration::from_secs(60), sub.next())
                .await
                .unwrap_or_else(|_| panic!("{topic}: {seen_here} of {of_topic} arrived"))
                .expect("stream goes on")
                .expect("delivery");
            deliveries += 1;
            if seen.insert(d.envelope.event_id) {
                seen_here += 1;
                got.entry(d.envelope.stream_id.clone())
                    .or_default()
                    .push(d.envelope.version);
            }
            d.ack().await.expect("ack");
        }
    }
    assert_eq!(seen, want, "every appended event arrived");
    for s in &streams {
        let versions = got.get(s).cloned().unwrap_or_default();
        let n = log.iter().filter(|e| &e.stream_id == s).count() as u64;
        assert_eq!(
            versions,
            (0..n).collect::<Vec<_>>(),
            "stream {s}: in order, none lost"
        );
    }
    println!(
        "outage test: {appended} events appended ({} while the broker was down), \
         relay restarted {} times after Unavailable, {deliveries} deliveries for {} events \
         ({} duplicates from re-publishing)",
        appended_while_down_to - appended_while_down_from,
        unavailable.load(Ordering::SeqCst),
        want.len(),
        deliveries - want.len() as u64
    );
}
