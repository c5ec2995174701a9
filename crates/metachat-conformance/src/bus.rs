//! Event bus checks: order, consumer groups, acknowledgement, at-least-once
//! redelivery, per-key order, the outbox relay and the deduplicator.
//!
//! Topics and groups get random names, so a bus on a shared broker works.
//! Where a check needs "everything up to here", it publishes a sentinel with
//! the same key (stream id) as the events, so per-key order alone suffices.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use metachat_core::bus::{topic_for, Delivery, DeliveryStream, EventBus};
use metachat_core::event::{Envelope, EventId, NewEvent, StreamId, Timestamp};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt};
use metachat_core::relay::{Deduplicator, Relay};
use metachat_core::store::{EventAppender, ExpectedVersion};
use metachat_core::Error;

use crate::fixture::{event, events, ok, patiently, payload_n, unique_name, unique_stream};

/// An envelope of `stream` at `version` and global `position`, payload `n = position`.
pub fn envelope(stream: &StreamId, version: u64, position: u64) -> Envelope {
    Envelope::recorded(
        event(position),
        stream.clone(),
        version,
        position,
        Timestamp::now(),
    )
}

/// A sentinel envelope on `stream` (type `Sentinel`).
fn sentinel(stream: &StreamId) -> Envelope {
    Envelope::recorded(
        NewEvent::new("Sentinel", b"{}".to_vec()),
        stream.clone(),
        u64::MAX,
        u64::MAX,
        Timestamp::now(),
    )
}

/// Takes exactly `n` deliveries, panicking on an error or the end.
async fn take(sub: &mut DeliveryStream, n: usize) -> Vec<Delivery> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match patiently(&format!("delivery {} of {n}", got.len()), sub.next()).await {
            Some(Ok(d)) => got.push(d),
            Some(Err(e)) => panic!("delivery stream failed after {}: {e:?}", got.len()),
            None => panic!("delivery stream ended after {} of {n}", got.len()),
        }
    }
    got
}

/// Takes deliveries up to and including the first for which `last` holds.
async fn take_until(sub: &mut DeliveryStream, last: impl Fn(&Envelope) -> bool) -> Vec<Delivery> {
    let mut got = Vec::new();
    loop {
        let d = take(sub, 1).await.remove(0);
        let done = last(&d.envelope);
        got.push(d);
        if done {
            return got;
        }
    }
}

async fn subscribe<B: EventBus>(bus: &B, topic: &str, group: &str) -> DeliveryStream {
    ok("subscribe", bus.subscribe(topic, group).await)
}

async fn ack_all(ds: Vec<Delivery>) {
    for d in ds {
        ok("ack", d.ack().await);
    }
}

fn ids(ds: &[Delivery]) -> Vec<EventId> {
    ds.iter().map(|d| d.envelope.event_id).collect()
}

fn env_ids(es: &[Envelope]) -> Vec<EventId> {
    es.iter().map(|e| e.event_id).collect()
}

/// Envelopes published before a subscription arrive in order, with their
/// content and topic; envelopes published while it is open arrive live.
pub async fn check_publish_then_subscribe_in_order<B: EventBus>(bus: B) {
    let topic = unique_name("conf.order.");
    let s = unique_stream("order");
    let published: Vec<Envelope> = (0..15).map(|i| envelope(&s, i, i)).collect();
    ok("publish", bus.publish(&topic, &published[..4]).await);
    ok("publish", bus.publish(&topic, &published[4..10]).await);
    let mut sub = subscribe(&bus, &topic, &unique_name("g")).await;
    let got = take(&mut sub, 10).await;
    for (d, e) in got.iter().zip(&published) {
        assert_eq!(&d.envelope, e, "delivered envelope differs from published");
        assert_eq!(d.topic, topic, "delivery names the wrong topic");
    }
    ok("publish live", bus.publish(&topic, &published[10..]).await);
    let live = take(&mut sub, 5).await;
    assert_eq!(
        ids(&live),
        env_ids(&published[10..]),
        "live deliveries in order"
    );
    ack_all(got).await;
    ack_all(live).await;
}

/// Two consumer groups each receive every envelope.
pub async fn check_two_groups_each_get_everything<B: EventBus>(bus: B) {
    let topic = unique_name("conf.groups.");
    let streams: Vec<StreamId> = (0..3).map(|_| unique_stream("groups")).collect();
    let published: Vec<Envelope> = (0..12u64)
        .map(|i| envelope(&streams[(i % 3) as usize], i / 3, i))
        .collect();
    ok("publish", bus.publish(&topic, &published).await);
    let want: HashSet<EventId> = env_ids(&published).into_iter().collect();
    for group in [unique_name("g1-"), unique_name("g2-")] {
        let mut sub = subscribe(&bus, &topic, &group).await;
        let got = take(&mut sub, published.len()).await;
        let seen: HashSet<EventId> = ids(&got).into_iter().collect();
        assert_eq!(
            seen, want,
            "group {group} did not get everything exactly once"
        );
        ack_all(got).await;
    }
}

/// After acknowledging the first deliveries, a new subscriber of the same
/// group starts right after them; after acknowledging everything, it gets
/// only newer envelopes.
pub async fn check_ack_advances_group<B: EventBus>(bus: B) {
    let topic = unique_name("conf.ack.");
    let group = unique_name("g");
    let s = unique_stream("ack");
    let published: Vec<Envelope> = (0..8).map(|i| envelope(&s, i, i)).collect();
    ok("publish", bus.publish(&topic, &published[..6]).await);
    let mut first = subscribe(&bus, &topic, &group).await;
    let mut got = take(&mut first, 6).await;
    let rest = got.split_off(3);
    ack_all(got).await;
    drop(rest);
    drop(first);
    let mut second = subscribe(&bus, &topic, &group).await;
    let got = take(&mut second, 3).await;
    assert_eq!(
        ids(&got),
        env_ids(&published[3..6]),
        "a new subscriber starts after the acknowledged deliveries"
    );
    ack_all(got).await;
    drop(second);
    ok("publish more", bus.publish(&topic, &published[6..]).await);
    let mut third = subscribe(&bus, &topic, &group).await;
    let got = take(&mut third, 2).await;
    assert_eq!(
        ids(&got),
        env_ids(&published[6..]),
        "after acknowledging everything, only newer envelopes"
    );
    ack_all(got).await;
}

/// Unacknowledged deliveries go to the next subscriber of the group again
/// (at-least-once); a gap in the acknowledgements is not skipped.
pub async fn check_unacked_redelivered<B: EventBus>(bus: B) {
    let topic = unique_name("conf.redeliver.");
    let group = unique_name("g");
    let s = unique_stream("redeliver");
    let published: Vec<Envelope> = (0..4).map(|i| envelope(&s, i, i)).collect();
    ok("publish", bus.publish(&topic, &published).await);
    let mut first = subscribe(&bus, &topic, &group).await;
    let got = take(&mut first, 4).await;
    assert_eq!(ids(&got), env_ids(&published));
    drop(got);
    drop(first);
    let mut second = subscribe(&bus, &topic, &group).await;
    let again = take(&mut second, 4).await;
    assert_eq!(
        ids(&again),
        env_ids(&published),
        "unacknowledged deliveries are redelivered, in order"
    );
    // Acknowledge 0 and 2, not 1 and 3.
    let mut again = again.into_iter();
    let d0 = again.next().expect("four deliveries");
    let _d1 = again.next();
    let d2 = again.next().expect("four deliveries");
    ok("ack 0", d0.ack().await);
    ok("ack 2", d2.ack().await);
    drop(again);
    drop(_d1);
    drop(second);
    let mut third = subscribe(&bus, &topic, &group).await;
    let got = take_until(&mut third, |e| e.event_id == published[3].event_id).await;
    assert_eq!(
        got[0].envelope.event_id, published[1].event_id,
        "the first unacknowledged delivery comes first"
    );
    ack_all(got).await;
}

/// Envelopes of four streams, interleaved across publish calls, arrive in
/// order per stream (key).
pub async fn check_per_key_order_interleaved<B: EventBus>(bus: B) {
    let topic = unique_name("conf.keys.");
    let streams: Vec<StreamId> = (0..4).map(|_| unique_stream("keys")).collect();
    let mut published = Vec::new();
    let mut versions = [0u64; 4];
    for i in 0..100u64 {
        let k = ((i * 7 + i / 3) % 4) as usize;
        published.push(envelope(&streams[k], versions[k], i));
        versions[k] += 1;
    }
    for chunk in published.chunks(9) {
        ok("publish", bus.publish(&topic, chunk).await);
    }
    let mut sub = subscribe(&bus, &topic, &unique_name("g")).await;
    let got = take(&mut sub, published.len()).await;
    let mut per_stream: BTreeMap<StreamId, Vec<u64>> = BTreeMap::new();
    for d in &got {
        per_stream
            .entry(d.envelope.stream_id.clone())
            .or_default()
            .push(d.envelope.version);
    }
    for (k, s) in streams.iter().enumerate() {
        assert_eq!(
            per_stream.get(s).cloned().unwrap_or_default(),
            (0..versions[k]).collect::<Vec<_>>(),
            "stream {s}: out of order or incomplete"
        );
    }
    ack_all(got).await;
}

/// The outbox [`Relay`] from an in-memory store publishes every event once to
/// `{prefix}{category}`, in order; a relay restarted from its checkpoint
/// publishes only the events appended since.
pub async fn check_relay_publishes_once_and_resumes<B>(bus: B)
where
    B: EventBus + Clone + Send + Sync + 'static,
{
    let store = Arc::new(InMemoryEventStore::new());
    let checkpoints = Arc::new(InMemoryReadModels::new());
    let prefix = unique_name("conf.relay.") + ".";
    let user = unique_stream("user");
    let diary = unique_stream("diary");
    let append = |s: &StreamId, first: u64, count: u64| {
        let store = store.clone();
        let s = s.clone();
        async move {
            ok(
                "append",
                store
                    .append(&s, ExpectedVersion::Any, events(first, count))
                    .await,
            );
        }
    };
    append(&user, 0, 3).await;
    append(&diary, 3, 2).await;
    append(&user, 5, 4).await;
    let relay = Relay::new(
        store.clone(),
        bus.clone(),
        checkpoints.clone(),
        "relay",
        &prefix,
    );
    assert_eq!(ok("relay catch_up", relay.catch_up().await), 9);
    assert_eq!(
        ok("checkpoint", checkpoints.checkpoint("relay").await),
        Some(9)
    );
    let topics = [
        (topic_for(&prefix, &user), user.clone()),
        (topic_for(&prefix, &diary), diary.clone()),
    ];
    for (topic, s) in &topics {
        ok("sentinel", bus.publish(topic, &[sentinel(s)]).await);
    }
    drop(relay);
    append(&diary, 9, 3).await;
    append(&user, 12, 1).await;
    let restarted = Relay::new(
        store.clone(),
        bus.clone(),
        checkpoints.clone(),
        "relay",
        &prefix,
    );
    assert_eq!(
        ok("restarted relay catch_up", restarted.catch_up().await),
        13
    );
    for (topic, s) in &topics {
        ok("sentinel", bus.publish(topic, &[sentinel(s)]).await);
    }
    let log = crate::fixture::read_everything(&store).await;
    for (topic, s) in &topics {
        let mut sub = subscribe(&bus, topic, &unique_name("g")).await;
        let first = take_until(&mut sub, |e| e.event_type == "Sentinel").await;
        let second = take_until(&mut sub, |e| e.event_type == "Sentinel").await;
        let of = |ds: &[Delivery]| -> Vec<u64> {
            ds.iter()
                .filter(|d| d.envelope.event_type != "Sentinel")
                .map(|d| d.envelope.position)
                .collect()
        };
        let want_first: Vec<u64> = log
            .iter()
            .filter(|e| &e.stream_id == s && e.position < 9)
            .map(|e| e.position)
            .collect();
        let want_second: Vec<u64> = log
            .iter()
            .filter(|e| &e.stream_id == s && e.position >= 9)
            .map(|e| e.position)
            .collect();
        assert_eq!(of(&first), want_first, "topic {topic}: the first relay run");
        assert_eq!(
            of(&second),
            want_second,
            "topic {topic}: the restarted relay published other than the rest"
        );
        for d in first.iter().chain(&second) {
            if d.envelope.event_type != "Sentinel" {
                assert_eq!(
                    &d.envelope,
                    &log[crate::fixture::index(d.envelope.position)],
                    "relayed envelope differs from the stored one"
                );
            }
        }
        ack_all(first).await;
        ack_all(second).await;
    }
}

/// A consumer using [`Deduplicator`] handles events, "crashes" before
/// acknowledging, and its successor gets them redelivered: each event's effect
/// is applied once; a concurrent duplicate commit is refused.
pub async fn check_deduplicator_single_effect<B: EventBus>(bus: B) {
    let topic = unique_name("conf.dedup.");
    let group = unique_name("g");
    let s = unique_stream("dedup");
    let published: Vec<Envelope> = (0..5).map(|i| envelope(&s, i, i)).collect();
    ok("publish", bus.publish(&topic, &published).await);
    let rm = Arc::new(InMemoryReadModels::new());
    let dedup = Deduplicator::new(rm.clone(), &group);
    let handle = |d: &Delivery| {
        let rm = rm.clone();
        let dedup = dedup.clone();
        let envelope = d.envelope.clone();
        async move {
            if ok("seen", dedup.seen(&envelope).await) {
                return;
            }
            let total =
                ok("get total", rm.get_json::<u64>("effects", "total").await).map_or(0, |(v, _)| v);
            let mut c = Commit::default();
            ok(
                "encode",
                c.put_json("effects", "total", &(total + 1), DocExpect::Any),
            );
            ok(
                "encode",
                c.put_json(
                    "effects",
                    &envelope.event_id.to_string(),
                    &payload_n(&envelope),
                    DocExpect::Absent,
                ),
            );
            ok("commit_handled", dedup.commit_handled(&envelope, c).await);
        }
    };
    let mut first = subscribe(&bus, &topic, &group).await;
    let got = take(&mut first, 5).await;
    for d in &got {
        handle(d).await;
    }
    // Crash: nothing acknowledged.
    drop(got);
    drop(first);
    let mut second = subscribe(&bus, &topic, &group).await;
    let again = take(&mut second, 5).await;
    assert_eq!(
        ids(&again),
        env_ids(&published),
        "redelivered after the crash"
    );
    for d in &again {
        handle(d).await;
    }
    let e = patiently(
        "a duplicate commit",
        dedup.commit_handled(&published[0], Commit::default()),
    )
    .await;
    assert!(
        matches!(e, Err(Error::DocumentConflict { .. })),
        "a duplicate commit_handled must be a DocumentConflict, got {e:?}"
    );
    ack_all(again).await;
    let total = ok("get total", rm.get_json::<u64>("effects", "total").await);
    assert_eq!(
        total.map(|(v, _)| v),
        Some(5),
        "each event's effect applied once"
    );
    for e in &published {
        assert!(
            ok("seen", dedup.seen(e).await),
            "event {} not marked handled",
            e.event_id
        );
    }
}

/// One subscription to two topics (`subscribe_topics`): every envelope of
/// both arrives once, naming its topic, in order per stream; after the
/// acknowledgements a new member of the group gets only what is published
/// later, from both topics.
pub async fn check_subscribe_topics<B: EventBus>(bus: B) {
    let topics = [unique_name("conf.multi.a."), unique_name("conf.multi.b.")];
    let group = unique_name("g");
    let streams: Vec<StreamId> = (0..4).map(|_| unique_stream("multi")).collect();
    // Streams 0 and 1 on the first topic, 2 and 3 on the second.
    let batch = |first: u64| -> Vec<(usize, Envelope)> {
        (0..12u64)
            .map(|i| {
                let s = (i % 4) as usize;
                (s / 2, envelope(&streams[s], first + i / 4, first * 4 + i))
            })
            .collect()
    };
    let publish = |b: Vec<(usize, Envelope)>| {
        let bus = &bus;
        let topics = &topics;
        async move {
            for (t, topic) in topics.iter().enumerate() {
                let mine: Vec<Envelope> = b
                    .iter()
                    .filter(|(x, _)| *x == t)
                    .map(|(_, e)| e.clone())
                    .collect();
                ok("publish", bus.publish(topic, &mine).await);
            }
            b
        }
    };
    let first = publish(batch(0)).await;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut sub = ok(
        "subscribe_topics",
        bus.subscribe_topics(&names, &group).await,
    );
    let got = take(&mut sub, first.len()).await;
    let mut per_stream: BTreeMap<StreamId, Vec<u64>> = BTreeMap::new();
    for d in &got {
        let (t, _) = first
            .iter()
            .find(|(_, e)| e.event_id == d.envelope.event_id)
            .unwrap_or_else(|| panic!("delivered an envelope never published: {:?}", d.envelope));
        assert_eq!(d.topic, topics[*t], "a delivery names the wrong topic");
        per_stream
            .entry(d.envelope.stream_id.clone())
            .or_default()
            .push(d.envelope.version);
    }
    let unique: HashSet<EventId> = got.iter().map(|d| d.envelope.event_id).collect();
    assert_eq!(unique.len(), first.len(), "every envelope once");
    for (s, versions) in &per_stream {
        assert_eq!(versions, &vec![0, 1, 2], "stream `{s}` in order");
    }
    ack_all(got).await;
    drop(sub);
    let later = publish(batch(100)).await;
    let mut sub = ok(
        "subscribe_topics again",
        bus.subscribe_topics(&names, &group).await,
    );
    let got = take(&mut sub, later.len()).await;
    let want: HashSet<EventId> = later.iter().map(|(_, e)| e.event_id).collect();
    let seen: HashSet<EventId> = got.iter().map(|d| d.envelope.event_id).collect();
    assert_eq!(
        seen, want,
        "after the acks, only the later envelopes, from both topics"
    );
    ack_all(got).await;
}

/// `broadcast` reaches every partition: a member of a new group receives
/// exactly one marker per partition the bus reported (`make(i, n)` for
/// each `i < n`), each behind the events published to the topic before it.
pub async fn check_broadcast_reaches_every_partition<B: EventBus>(bus: B) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let topic = unique_name("conf.broadcast.");
    let streams: Vec<StreamId> = (0..6).map(|_| unique_stream("bcast")).collect();
    let before: Vec<Envelope> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| envelope(s, 0, i as u64))
        .collect();
    ok("publish", bus.publish(&topic, &before).await);
    let reported = AtomicU32::new(0);
    let marker = StreamId::new("marker-broadcast").expect("a stream id");
    let make = |i: u32, n: u32| {
        reported.store(n, Ordering::SeqCst);
        Envelope::recorded(
            NewEvent::new("Marker", format!("{{\"n\":{i}}}").into_bytes()),
            marker.clone(),
            u64::from(i),
            1_000 + u64::from(i),
            Timestamp::now(),
        )
    };
    ok("broadcast", bus.broadcast(&topic, &make).await);
    let n = reported.load(Ordering::SeqCst);
    assert!(n >= 1, "broadcast built no marker");
    let mut sub = subscribe(&bus, &topic, &unique_name("g")).await;
    let got = take(&mut sub, before.len() + n as usize).await;
    let markers: Vec<u64> = got
        .iter()
        .filter(|d| d.envelope.event_type == "Marker")
        .filter_map(|d| payload_n(&d.envelope))
        .collect();
    let mut sorted = markers.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..u64::from(n)).collect::<Vec<_>>(),
        "one marker per partition, each once"
    );
    let events: HashSet<EventId> = got
        .iter()
        .filter(|d| d.envelope.event_type != "Marker")
        .map(|d| d.envelope.event_id)
        .collect();
    assert_eq!(
        events,
        before.iter().map(|e| e.event_id).collect(),
        "every event once"
    );
    ack_all(got).await;
}
