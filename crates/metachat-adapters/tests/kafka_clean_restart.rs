//! Fault test: the (only) broker is stopped cleanly and started again while
//! consumers and a producer refresh their metadata often, and every
//! consumer gets what is published after the restart.
//!
//! A lone broker in controlled shutdown answers Metadata requests with no
//! broker at all; librdkafka then forgets every broker it knew and never
//! bootstraps again (confluentinc/librdkafka#5301). The bus notices a client
//! left without a broker (its statistics) and replaces it: a consumer's
//! stream ends with `Unavailable`, and its owner subscribes again, as the
//! members below do; the producer is made again.
//!
//! It stops and starts the broker with `scripts/kafka`, so it runs only
//! against the broker that script manages; it is its own test binary so
//! that no other test shares the outage.

mod kafka_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use metachat_core::bus::EventBus;
use metachat_core::event::{Envelope, EventId, NewEvent, StreamId, Timestamp};
use metachat_core::Error;

const MEMBERS: usize = 6;

fn events(n: u64) -> Vec<Envelope> {
    let stream = StreamId::new(format!("entry-{}", uuid::Uuid::new_v4().simple())).unwrap();
    (0..n)
        .map(|i| {
            Envelope::recorded(
                NewEvent::new("Tested", format!("{{\"n\":{i}}}").into_bytes()),
                stream.clone(),
                i,
                i,
                Timestamp::now(),
            )
        })
        .collect()
}

/// A member of its own group, subscribing again whenever its stream ends
/// with an error, as the application's followers do; records what it saw.
fn member(
    bus: metachat_adapters::kafka::KafkaEventBus,
    topic: String,
    group: String,
    seen: Arc<Mutex<HashSet<EventId>>>,
    resubscribed: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut sub = match bus.subscribe(&topic, &group).await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(d) = sub.next().await {
                match d {
                    Ok(d) => {
                        seen.lock().unwrap().insert(d.envelope.event_id);
                        let _ = d.ack().await;
                    }
                    Err(e) => {
                        resubscribed.lock().unwrap().push(format!("{group}: {e}"));
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_reads_again_after_a_clean_restart_of_the_only_broker() {
    let Some(brokers) = kafka_support::managed_brokers() else {
        return;
    };
    // Metadata asked for every few milliseconds, so that some client asks
    // while the broker is shutting down.
    let bus = kafka_support::bus_with(
        kafka_support::config(&brokers)
            .delivery_timeout(Duration::from_secs(5))
            .set("topic.metadata.refresh.interval.ms", "10"),
    );
    let topic = format!("{}restart", bus.config().topic_prefix());
    bus.ensure_topic(&topic).await.expect("topic");
    let before = events(MEMBERS as u64);
    let resubscribed = Arc::new(Mutex::new(Vec::new()));
    let mut seen = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..MEMBERS {
        let s = Arc::new(Mutex::new(HashSet::new()));
        tasks.push(member(
            bus.clone(),
            topic.clone(),
            format!("restart-{i}-{}", uuid::Uuid::new_v4().simple()),
            s.clone(),
            resubscribed.clone(),
        ));
        seen.push(s);
    }
    bus.publish(&topic, &before).await.expect("publish before");
    let all_seen = |batch: &[Envelope]| {
        seen.iter().all(|s| {
            let s = s.lock().unwrap();
            batch.iter().all(|e| s.contains(&e.event_id))
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !all_seen(&before) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the members did not read the first batch"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tokio::task::spawn_blocking(|| kafka_support::script("stop"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = tokio::task::spawn_blocking(|| kafka_support::script("start"))
        .await
        .unwrap();
    assert_eq!(started, format!("KAFKA_BROKERS={brokers}"));

    // Published after the restart (retried while the producer finds its way).
    let after = events(MEMBERS as u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match bus.publish(&topic, &after).await {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no publish succeeded within 90 s of the restart: {e}"
                );
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !all_seen(&after) {
        if tokio::time::Instant::now() >= deadline {
            let missing: Vec<usize> = seen
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    let s = s.lock().unwrap();
                    !after.iter().all(|e| s.contains(&e.event_id))
                })
                .map(|(i, _)| i)
                .collect();
            panic!(
                "members {missing:?} of {MEMBERS} never read what was published after the restart (stream errors: {:?})",
                resubscribed.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ended = resubscribed.lock().unwrap().clone();
    println!(
        "clean restart: {} stream(s) ended and were subscribed again: {ended:?}",
        ended.len()
    );
    for t in tasks {
        t.abort();
    }
}
