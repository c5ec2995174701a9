//! Fault tests on a real broker: a consumer killed in the middle of a batch
//! (its uncommitted records go to the next member of the group, and the
//! deduplicator keeps every effect single), and poison records (they land in
//! the dead-letter topic with their reason, and consumption goes on).

mod kafka_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metachat_adapters::kafka::{record, KafkaEventBus};
use metachat_core::bus::EventBus;
use metachat_core::event::{Envelope, EventId, NewEvent, StreamId, Timestamp};
use metachat_core::memory::InMemoryReadModels;
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore};
use metachat_core::relay::Deduplicator;
use metachat_core::Error;
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(120);

fn envelope(stream: &StreamId, version: u64, position: u64) -> Envelope {
    Envelope::recorded(
        NewEvent::new("Tested", format!("{{\"n\":{position}}}").into_bytes()),
        stream.clone(),
        version,
        position,
        Timestamp::now(),
    )
}

/// `streams` streams of `per_stream` events each, interleaved.
fn events(streams: usize, per_stream: u64) -> Vec<Envelope> {
    let ids: Vec<StreamId> = (0..streams)
        .map(|_| StreamId::new(format!("entry-{}", uuid::Uuid::new_v4().simple())).unwrap())
        .collect();
    let mut out = Vec::new();
    for v in 0..per_stream {
        for s in &ids {
            let position = out.len() as u64;
            out.push(envelope(s, v, position));
        }
    }
    out
}

/// What a deduplicating consumer did.
#[derive(Default)]
struct Effects {
    /// Events whose effect was committed.
    applied: AtomicU64,
    /// Deliveries skipped because the event was already handled.
    skipped: AtomicU64,
    /// Commits refused as duplicates (two members racing on one event).
    conflicts: AtomicU64,
}

/// The handler of the kill test: the effect of an event is one document
/// `effects/{event id}`, committed with the deduplicator's mark.
async fn handle(
    dedup: &Deduplicator<Arc<InMemoryReadModels>>,
    fx: &Effects,
    e: &Envelope,
) -> metachat_core::Result<()> {
    if dedup.seen(e).await? {
        fx.skipped.fetch_add(1, Ordering::SeqCst);
        return Ok(());
    }
    let mut c = Commit::default();
    c.ops.push(metachat_core::read_model::WriteOp::Put {
        collection: "effects".into(),
        key: e.event_id.to_string(),
        value: e.payload.clone(),
        expect: DocExpect::Absent,
    });
    match dedup.commit_handled(e, c).await {
        Ok(()) => {
            fx.applied.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        Err(Error::DocumentConflict { .. }) => {
            fx.conflicts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Member A of a group handles its share, commits the effect of its third
/// event and dies before acknowledging it (its task is aborted in the
/// handler, mid-batch). Member B, in the group from the start, receives A's
/// partitions with everything A had not committed: the event A handled but
/// did not acknowledge comes again and the deduplicator skips it. Every event
/// has exactly one effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_consumer_records_go_to_the_next_member_and_effects_stay_single() {
    let Some(brokers) = kafka_support::brokers() else {
        return;
    };
    let bus = kafka_support::bus(&brokers);
    let topic = format!("{}entry", bus.config().topic_prefix());
    let group = format!("kill-{}", uuid::Uuid::new_v4().simple());
    let published = events(12, 10);
    let total = published.len() as u64;

    let rm = Arc::new(InMemoryReadModels::new());
    let dedup = Deduplicator::new(rm.clone(), &group);
    let fx = Arc::new(Effects::default());
    let a_handled: Arc<Mutex<Vec<EventId>>> = Arc::default();

    // Member B: in the group first, handles until every event has its effect.
    let (stop_b, stop_b_rx) = oneshot::channel::<()>();
    let b = {
        let (bus, topic, group) = (bus.clone(), topic.clone(), group.clone());
        let (dedup, fx) = (dedup.clone(), fx.clone());
        tokio::spawn(async move {
            bus.consume(
                &topic,
                &group,
                move |e| {
                    let (dedup, fx, e) = (dedup.clone(), fx.clone(), e.clone());
                    async move { handle(&dedup, &fx, &e).await }
                },
                async move {
                    let _ = stop_b_rx.await;
                },
            )
            .await
        })
    };
    // Member A: dies inside its handler, after the third event's effect.
    let (dying, dying_rx) = oneshot::channel::<EventId>();
    let dying = Arc::new(Mutex::new(Some(dying)));
    let a = {
        let (bus, topic, group) = (bus.clone(), topic.clone(), group.clone());
        let (dedup, fx) = (dedup.clone(), fx.clone());
        let a_handled = a_handled.clone();
        tokio::spawn(async move {
            bus.consume(
                &topic,
                &group,
                move |e| {
                    let (dedup, fx, e) = (dedup.clone(), fx.clone(), e.clone());
                    let (a_handled, dying) = (a_handled.clone(), dying.clone());
                    async move {
                        handle(&dedup, &fx, &e).await?;
                        let n = {
                            let mut h = a_handled.lock().unwrap();
                            h.push(e.event_id);
                            h.len()
                        };
                        if n == 3 {
                            if let Some(tx) = dying.lock().unwrap().take() {
                                let _ = tx.send(e.event_id);
                            }
                            std::future::pending::<()>().await;
                        }
                        Ok(())
                    }
                },
                std::future::pending(),
            )
            .await
        })
    };
    // Let both join, then publish: partitions are split between them.
    wait_for_members(&bus, &group, 2).await;
    bus.publish(&topic, &published).await.expect("publish");

    let unacked = tokio::time::timeout(PATIENCE, dying_rx)
        .await
        .expect("member A reaches its third event")
        .expect("member A reports it");
    a.abort();
    let _ = a.await;

    // B takes over A's partitions and finishes the job.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fx.applied.load(Ordering::SeqCst) < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {total} effects after A died",
            fx.applied.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The event A handled but never acknowledged must come to B and be skipped.
    while fx.skipped.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {unacked} (handled by A, not acknowledged) was never redelivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_b.send(());
    let report = b.await.expect("member B's task").expect("member B");

    assert_eq!(
        fx.applied.load(Ordering::SeqCst),
        total,
        "one effect per event"
    );
    assert_eq!(
        fx.conflicts.load(Ordering::SeqCst),
        0,
        "no racing duplicate"
    );
    for e in &published {
        assert!(
            dedup.seen(e).await.expect("seen"),
            "{} never handled",
            e.event_id
        );
        assert!(
            rm.get("effects", &e.event_id.to_string())
                .await
                .expect("get")
                .is_some(),
            "{} has no effect",
            e.event_id
        );
    }
    let a_count = a_handled.lock().unwrap().len() as u64;
    assert!(a_count >= 3, "A handled {a_count}");
    assert!(
        report.handled > total - a_count,
        "B handled {} deliveries; it needs at least the {} A never handled plus A's unacknowledged one",
        report.handled,
        total - a_count
    );
    println!(
        "kill test: {total} events, A handled {a_count} then died, B handled {} deliveries \
         ({} redelivered and skipped by the deduplicator), {} effects",
        report.handled,
        fx.skipped.load(Ordering::SeqCst),
        fx.applied.load(Ordering::SeqCst)
    );
}

/// Waits until `group` is stable with `n` members (the broker's group list).
async fn wait_for_members(bus: &KafkaEventBus, group: &str, n: usize) {
    let brokers = bus.config().brokers().to_owned();
    let group = group.to_owned();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let members = tokio::task::spawn_blocking({
            let (brokers, group) = (brokers.clone(), group.clone());
            move || group_members(&brokers, &group)
        })
        .await
        .expect("group lookup");
        if members >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group {group} never reached {n} members"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn group_members(brokers: &str, group: &str) -> usize {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("a client");
    c.fetch_group_list(Some(group), Duration::from_secs(5))
        .ok()
        .and_then(|l| {
            l.groups()
                .iter()
                .find(|g| g.name() == group && g.state() == "Stable")
                .map(|g| g.members().len())
        })
        .unwrap_or(0)
}

/// A record that cannot be decoded (written by kcat, no headers) and an
/// event whose handler fails on every attempt both land in the dead-letter
/// topic with their reason; every other event is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_land_in_the_dead_letter_topic_with_their_reason() {
    let Some(brokers) = kafka_support::brokers() else {
        return;
    };
    let bus = kafka_support::bus(&brokers);
    let topic = format!("{}entry", bus.config().topic_prefix());
    let group = format!("poison-{}", uuid::Uuid::new_v4().simple());
    let good = events(3, 4);
    let (first, rest) = good.split_at(5);
    let bad_event = rest[0].event_id;

    bus.publish(&topic, first).await.expect("publish");
    let poison_key = format!("entry-{}", uuid::Uuid::new_v4().simple());
    kafka_support::kcat(
        &["-P", "-b", &brokers, "-t", &topic, "-K", "|"],
        &format!("{poison_key}|this is not an envelope\n"),
    );
    bus.publish(&topic, rest).await.expect("publish");

    let seen: Arc<Mutex<HashSet<EventId>>> = Arc::default();
    let attempts = Arc::new(AtomicU64::new(0));
    let (done, done_rx) = oneshot::channel::<()>();
    let done = Arc::new(Mutex::new(Some(done)));
    let want = good.len() - 1;
    let dlt = bus.config().dead_letter_topic(&topic);
    let report = {
        let (seen, attempts) = (seen.clone(), attempts.clone());
        bus.consume(
            &topic,
            &group,
            move |e| {
                let (seen, attempts, done) = (seen.clone(), attempts.clone(), done.clone());
                let id = e.event_id;
                async move {
                    if id == bad_event {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        return Err(Error::backend("the handler refuses this event"));
                    }
                    let mut s = seen.lock().unwrap();
                    s.insert(id);
                    if s.len() == want {
                        if let Some(tx) = done.lock().unwrap().take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(())
                }
            },
            {
                // Stop only once every good event was handled *and* both
                // poison records reached the dead-letter topic: the
                // undecodable one may sit on a partition that is fetched
                // after the last good event was handled.
                let (brokers, dlt) = (brokers.clone(), dlt.clone());
                async move {
                    let _ = tokio::time::timeout(PATIENCE, async move {
                        let _ = done_rx.await;
                        loop {
                            let (b, t) = (brokers.clone(), dlt.clone());
                            let dead = tokio::task::spawn_blocking(move || {
                                kafka_support::kcat_read(&b, &t)
                            })
                            .await
                            .expect("kcat");
                            if dead.len() >= 2 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    })
                    .await;
                }
            },
        )
        .await
        .expect("consume")
    };
    let handled: HashSet<EventId> = seen.lock().unwrap().clone();
    assert_eq!(handled.len(), want, "every good event handled: {report:?}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "bounded retries: 3 attempts"
    );
    assert_eq!(report.dead_lettered, 1, "handler failures only: {report:?}");

    // Read the dead-letter topic with kcat.
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while dead.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters: {dead:?}"
        );
        dead = kafka_support::kcat_read(&brokers, &dlt);
    }
    assert_eq!(dead.len(), 2, "{dead:?}");
    let decode = dead
        .iter()
        .find(|r| r.header(record::DLT_REASON) == Some(record::REASON_DECODE))
        .unwrap_or_else(|| panic!("no decode-failed dead letter in {dead:?}"));
    assert_eq!(decode.key.as_deref(), Some(poison_key.as_str()));
    assert_eq!(decode.payload.as_deref(), Some("this is not an envelope"));
    assert_eq!(decode.header(record::DLT_TOPIC), Some(topic.as_str()));
    assert_eq!(decode.header(record::DLT_GROUP), Some(group.as_str()));
    assert!(
        decode
            .header(record::DLT_ERROR)
            .is_some_and(|e| e.contains("headers")),
        "{decode:?}"
    );
    assert!(decode.header(record::DLT_OFFSET).is_some());
    let handler = dead
        .iter()
        .find(|r| r.header(record::DLT_REASON) == Some(record::REASON_HANDLER))
        .unwrap_or_else(|| panic!("no handler-failed dead letter in {dead:?}"));
    assert_eq!(
        handler.header(record::EVENT_ID),
        Some(bad_event.to_string().as_str()),
        "the original headers are kept"
    );
    assert_eq!(handler.header(record::DLT_ATTEMPTS), Some("3"));
    assert!(
        handler
            .header(record::DLT_ERROR)
            .is_some_and(|e| e.contains("refuses this event")),
        "{handler:?}"
    );
    assert_eq!(
        handler.payload.as_deref().map(str::as_bytes),
        Some(rest[0].payload.as_slice())
    );
}
