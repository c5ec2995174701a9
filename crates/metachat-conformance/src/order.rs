//! The log's order, as the store declares it ([`LogOrder`]): one total
//! order, or one order per partition.
//!
//! [`check_total_order_capability`] runs in the
//! [`event_store_suite!`](crate::event_store_suite): a store that declares [`LogOrder::Total`]
//! keeps every stream in partition 0, which is its whole log. The checks of
//! the [`partitioned_log_suite!`](crate::partitioned_log_suite) take a store
//! that declares [`LogOrder::Partitioned`] and check what it promises
//! instead: every event in exactly the partition of its stream, positions
//! dense and in append order within each partition, whole-log reads refused
//! with a typed error, concurrent writers through separate instances, and
//! per-partition followers (subscriptions, projection runners with one
//! checkpoint per partition) that together see everything once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use metachat_core::event::{Envelope, EventId, StreamId};
use metachat_core::projection::ProjectionRunner;
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::{
    partition, subscribe_all, AppendOutcome, Direction, EventReader, EventStore, ExpectedVersion,
    LogOrder, SubscriptionOptions,
};
use metachat_core::Error;
use tokio::sync::Barrier;

use crate::fixture::{event, events, ok, patiently, positions, read_everything};
use crate::projection::{fold, stored_counts, CountingProjection};
use crate::subscription::writer;

/// Every event of one partition, read in pages of 100.
pub async fn read_partition_all<S: EventReader>(store: &S, p: u32) -> Vec<Envelope> {
    let mut out: Vec<Envelope> = Vec::new();
    loop {
        let from = out.len() as u64;
        let page = ok(
            &format!("read_partition({p}, {from})"),
            store.read_partition(p, from, 100).await,
        );
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// A store that declares [`LogOrder::Total`]: every stream is in partition
/// 0; `read_partition(0, …)` is `read_all`; partition 1 does not exist; the
/// partition-0 view reads the same log.
pub async fn check_total_order_capability<S: EventStore + Clone>(store: S) {
    assert_eq!(store.log_order(), LogOrder::Total, "the store's log order");
    let streams: Vec<StreamId> = (0..5)
        .map(|_| crate::fixture::unique_stream("order"))
        .collect();
    for (i, s) in streams.iter().enumerate() {
        ok(
            "append",
            store
                .append(s, ExpectedVersion::NoStream, events(i as u64 * 10, 2))
                .await,
        );
        assert_eq!(store.partition_of(s), 0, "a total order has one partition");
    }
    let all = read_everything(&store).await;
    assert_eq!(positions(&all), (0..10).collect::<Vec<_>>());
    assert_eq!(read_partition_all(&store, 0).await, all, "partition 0");
    assert_eq!(
        ok("partition 0 head", store.partition_next_position(0).await),
        10
    );
    match store.read_partition(1, 0, 10).await {
        Err(Error::NoSuchPartition {
            partition: 1,
            partitions: 1,
        }) => {}
        other => {
            panic!("read_partition(1) of a total order: expected NoSuchPartition, got {other:?}")
        }
    }
    let view = ok("partition view", partition(store.clone(), 0));
    assert_eq!(read_everything(&view).await, all, "the partition-0 view");
    assert!(partition(store, 1).is_err(), "no partition 1 view");
}

/// The store's partition count; panics unless it declares a partitioned log.
fn partitions<S: EventReader>(store: &S) -> u32 {
    match store.log_order() {
        LogOrder::Partitioned { partitions } if partitions >= 2 => partitions,
        other => panic!(
            "the partitioned checks need LogOrder::Partitioned with 2+ partitions, got {other:?}"
        ),
    }
}

/// Checks what a partitioned log promises about `appended` (every event
/// appended, each with its outcome): each partition's log is dense from 0,
/// holds only its streams, orders each stream by version; every appended
/// event is in exactly one partition at the position its outcome gave; the
/// partition heads equal the partition lengths.
async fn assert_partitions_hold<S: EventReader>(
    store: &S,
    appended: &[(StreamId, AppendOutcome, Vec<EventId>)],
) -> Vec<Vec<Envelope>> {
    let n = partitions(store);
    let mut logs = Vec::new();
    let mut seen: HashMap<EventId, (u32, u64)> = HashMap::new();
    for p in 0..n {
        let log = read_partition_all(store, p).await;
        assert_eq!(
            positions(&log),
            (0..log.len() as u64).collect::<Vec<_>>(),
            "partition {p}: positions are dense from 0, in order"
        );
        assert_eq!(
            ok("partition head", store.partition_next_position(p).await),
            log.len() as u64,
            "partition {p}: the head is the number of events"
        );
        let mut last_version: HashMap<&StreamId, u64> = HashMap::new();
        for e in &log {
            assert_eq!(
                store.partition_of(&e.stream_id),
                p,
                "stream `{}` found in partition {p}, not its own",
                e.stream_id
            );
            if let Some(v) = last_version.insert(&e.stream_id, e.version) {
                assert_eq!(
                    e.version,
                    v + 1,
                    "partition {p}: stream `{}` in version order without gaps",
                    e.stream_id
                );
            }
            assert!(
                seen.insert(e.event_id, (p, e.position)).is_none(),
                "event {} is in the log twice",
                e.event_id
            );
        }
        logs.push(log);
    }
    let mut total = 0;
    for (s, out, ids) in appended {
        let p = store.partition_of(s);
        for (j, id) in ids.iter().enumerate() {
            assert_eq!(
                seen.get(id),
                Some(&(p, out.first_position + j as u64)),
                "event {id} of `{s}`: in its stream's partition at the position the append returned"
            );
        }
        total += ids.len();
    }
    assert_eq!(
        seen.len(),
        total,
        "the partitions hold other events than appended"
    );
    logs
}

/// Forty streams, each written by one of four writers through the peers in
/// turn (batches of 1–3): the events spread over at least two partitions;
/// each partition is dense and ordered; whole-log reads are refused with
/// [`Error::PartitionedLog`] and unknown partitions with
/// [`Error::NoSuchPartition`].
pub async fn check_partitions_hold_every_event_in_order<S>(store: S, peers: Vec<S>)
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    let n = partitions(&store);
    let mut tasks = Vec::new();
    for w in 0..4usize {
        let st = writer(&store, &peers, w);
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for k in 0..10u64 {
                let s = crate::fixture::unique_stream("part");
                let mut version: Option<u64> = None;
                for b in 0..3u64 {
                    let batch = events(w as u64 * 1000 + k * 10 + b * 3, 1 + (k + b) % 3);
                    let ids = batch.iter().map(|e| e.event_id).collect();
                    let out = ok(
                        "append",
                        st.append(&s, ExpectedVersion::from_version(version), batch)
                            .await,
                    );
                    version = Some(out.last_version);
                    done.push((s.clone(), out, ids));
                }
            }
            done
        }));
    }
    let mut appended = Vec::new();
    for t in tasks {
        appended.extend(ok("writer task", t.await));
    }
    let logs = assert_partitions_hold(&store, &appended).await;
    let used = logs.iter().filter(|l| !l.is_empty()).count();
    assert!(
        used >= 2,
        "40 streams over {n} partitions landed in {used}: the partition key does not spread"
    );
    for (what, r) in [
        ("read_all", store.read_all(0, 10).await.map(|_| ())),
        ("next_position", store.next_position().await.map(|_| ())),
    ] {
        match r {
            Err(Error::PartitionedLog { partitions }) => assert_eq!(partitions, n),
            other => panic!("{what} on a partitioned log: expected PartitionedLog, got {other:?}"),
        }
    }
    match store.read_partition(n, 0, 10).await {
        Err(Error::NoSuchPartition {
            partition,
            partitions,
        }) => {
            assert_eq!((partition, partitions), (n, n));
        }
        other => panic!("read_partition({n}): expected NoSuchPartition, got {other:?}"),
    }
    assert!(
        partition(store.clone(), n).is_err(),
        "no view of partition {n}"
    );
    // Each stream reads back whole, from whichever partition it is in.
    let mut by_stream: BTreeMap<&StreamId, u64> = BTreeMap::new();
    for (s, out, _) in &appended {
        by_stream.insert(s, out.last_version);
    }
    for (s, last) in by_stream {
        let read = ok(
            "read_stream",
            store.read_stream(s, 0, Direction::Forward, 100).await,
        );
        assert_eq!(read.len() as u64, last + 1, "stream `{s}` reads back whole");
        assert_eq!(
            ok("stream_version", store.stream_version(s).await),
            Some(last)
        );
    }
}

/// Rounds in which eight writers, through the peers in turn, append to the
/// same four streams (spread over the partitions) expecting the same
/// version: per stream and round exactly one wins and the others get a
/// `Conflict` carrying the winner's version; afterwards every partition is
/// dense and holds each winner once.
pub async fn check_concurrent_writers_across_instances<S>(store: S, peers: Vec<S>)
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    const TASKS: usize = 8;
    const ROUNDS: u64 = 15;
    partitions(&store);
    let streams: Arc<Vec<StreamId>> = Arc::new(
        (0..4)
            .map(|_| crate::fixture::unique_stream("race"))
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let st = writer(&store, &peers, t);
        let streams = streams.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for round in 0..ROUNDS {
                let expected = ExpectedVersion::from_version(round.checked_sub(1));
                barrier.wait().await;
                for (i, s) in streams.iter().enumerate() {
                    let e = event(round * 1000 + i as u64 * 100 + t as u64);
                    let id = e.event_id;
                    let r = st.append(s, expected, vec![e]).await;
                    results.push((round, i, expected, id, r));
                }
                barrier.wait().await;
            }
            results
        }));
    }
    let mut winners: HashMap<(u64, usize), usize> = HashMap::new();
    let mut appended = Vec::new();
    for task in tasks {
        for (round, i, expected, id, r) in ok("racing task", task.await) {
            match r {
                Ok(out) => {
                    assert_eq!(
                        out.first_version, round,
                        "round {round}: the winner's version"
                    );
                    *winners.entry((round, i)).or_default() += 1;
                    appended.push((streams[i].clone(), out, vec![id]));
                }
                Err(Error::Conflict {
                    stream,
                    expected: x,
                    actual,
                }) => {
                    assert_eq!((&stream, x), (&streams[i], expected));
                    assert_eq!(actual, Some(round), "round {round}: the winner's version");
                }
                Err(other) => panic!("round {round}: expected Ok or Conflict, got {other:?}"),
            }
        }
    }
    for round in 0..ROUNDS {
        for i in 0..streams.len() {
            assert_eq!(
                winners.get(&(round, i)),
                Some(&1),
                "round {round}, stream {i}: exactly one winner"
            );
        }
    }
    assert_partitions_hold(&store, &appended).await;
}

/// One subscription and one projection runner per partition (each with its
/// own checkpoint, `conformance-counter@{p}`), while a peer appends: the
/// subscriptions together yield every event once, each partition in order;
/// the runners' read models equal the fold of every partition, and each
/// checkpoint is its partition's head.
pub async fn check_per_partition_followers<S, R>(store: S, peers: Vec<S>, read_models: R)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
    R: ReadModelStore + Clone,
{
    let n = partitions(&store);
    let st = writer(&store, &peers, 1);
    let streams: Vec<StreamId> = (0..12)
        .map(|_| crate::fixture::unique_stream("follow"))
        .collect();
    // Half before the followers start (catch-up), half after (live).
    let fill = |st: S, streams: Vec<StreamId>, first: u64| async move {
        let mut total = 0u64;
        for (i, s) in streams.iter().enumerate() {
            let size = 1 + i as u64 % 3;
            ok(
                "append",
                st.append(s, ExpectedVersion::Any, events(first + i as u64 * 10, size))
                    .await,
            );
            total += size;
        }
        total
    };
    let before = fill(st.clone(), streams.clone(), 0).await;
    let heads: Vec<u64> = {
        let mut h = Vec::new();
        for p in 0..n {
            h.push(ok("partition head", store.partition_next_position(p).await));
        }
        h
    };
    let mut subs = Vec::new();
    for p in 0..n {
        let view = ok("partition view", partition(store.clone(), p));
        subs.push(subscribe_all(view, 0, SubscriptionOptions::default()));
    }
    let after = fill(st, streams, 500).await;
    let total = before + after;
    let mut got: Vec<Envelope> = Vec::new();
    let mut per_partition = Vec::new();
    for (p, sub) in (0..n).zip(subs.iter_mut()) {
        let want = read_partition_all(&store, p).await;
        let mut mine = Vec::new();
        while mine.len() < want.len() {
            match patiently(&format!("partition {p} subscription"), sub.next()).await {
                Some(Ok(e)) => mine.push(e),
                other => panic!("partition {p} subscription ended or failed: {other:?}"),
            }
        }
        assert_eq!(
            mine, want,
            "partition {p}: the subscription yields its log in order"
        );
        per_partition.push(mine.len() as u64);
        got.extend(mine);
    }
    assert_eq!(
        got.len() as u64,
        total,
        "the partitions together hold every event"
    );
    let ids: HashSet<EventId> = got.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), got.len(), "an event was yielded twice");
    assert!(
        heads.iter().zip(&per_partition).all(|(h, n)| h <= n),
        "partition heads never move back"
    );

    let projection = CountingProjection::default();
    let mut runners = Vec::new();
    for p in 0..n {
        let view = ok("partition view", partition(store.clone(), p));
        runners.push(ProjectionRunner::for_partition(
            view,
            p,
            read_models.clone(),
            projection.clone(),
        ));
    }
    for r in &runners {
        ok("catch_up", r.catch_up().await);
    }
    assert_eq!(
        stored_counts(&read_models).await,
        fold(&got),
        "read models != fold of every partition"
    );
    for (p, r) in runners.iter().enumerate() {
        assert_eq!(
            ok("checkpoint", r.checkpoint().await),
            per_partition[p],
            "partition {p}'s runner checkpoint"
        );
        assert_eq!(
            ok(
                "stored checkpoint",
                read_models
                    .checkpoint(&format!("conformance-counter@{p}"))
                    .await
            ),
            (per_partition[p] > 0).then_some(per_partition[p]),
            "partition {p}'s checkpoint is stored under its own name"
        );
    }
}
