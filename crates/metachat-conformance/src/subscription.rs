//! Concurrency checks: catch-up-then-live subscriptions while other tasks
//! append, resuming from a checkpoint, and racing appenders on one stream.
//!
//! Each takes the store and its *peers*: other instances on the same data
//! (for a networked store, separate connections or sessions on the same
//! namespace; for an in-process store, clones). Writers take turns over
//! the peers, so two writers race through the backend, not through one
//! instance's state.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use metachat_core::event::{Envelope, EventId, StreamId};
use metachat_core::store::{subscribe_all, EventStore, ExpectedVersion, SubscriptionOptions};
use metachat_core::Error;
use tokio::sync::Barrier;

use crate::fixture::{
    event, events, index, ok, patiently, positions, read_everything, unique_stream,
};

/// Takes exactly `n` events from a subscription, panicking on an error.
async fn take<S>(sub: &mut metachat_core::store::Subscription<S>, n: usize) -> Vec<Envelope>
where
    S: EventStore + Clone + Unpin + 'static,
{
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let next = patiently(
            &format!("subscription event {} of {n}", got.len()),
            sub.next(),
        )
        .await;
        match next {
            Some(Ok(e)) => got.push(e),
            Some(Err(e)) => panic!("subscription failed after {} events: {e:?}", got.len()),
            None => panic!("subscription ended after {} of {n} events", got.len()),
        }
    }
    got
}

/// The instance writer `w` uses: the peers in turn, or `store` without peers.
pub(crate) fn writer<S: Clone>(store: &S, peers: &[S], w: usize) -> S {
    if peers.is_empty() {
        store.clone()
    } else {
        peers[w % peers.len()].clone()
    }
}

/// Writers used by [`check_catch_up_then_live_under_concurrent_appends`].
pub const WRITERS: u64 = 4;
/// Events each writer appends.
pub const EVENTS_PER_WRITER: u64 = 200;

/// Four writers append 200 events each (batches of 1–3, to their own
/// streams). One subscription from position 0 starts before any append (all
/// live); another starts once every writer is half-way and they resume at
/// once (catch-up racing live appends, pages of 37). Each yields exactly
/// positions `0..800` in order, each event once, matching `read_all`.
/// The writers use the `peers` in turn.
pub async fn check_catch_up_then_live_under_concurrent_appends<S>(store: S, peers: Vec<S>)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
{
    let total = WRITERS * EVENTS_PER_WRITER;
    let opts = SubscriptionOptions {
        page_size: 37,
        ..SubscriptionOptions::default()
    };
    let early = {
        let mut sub = subscribe_all(store.clone(), 0, opts);
        tokio::spawn(async move { take(&mut sub, index(total)).await })
    };
    let half_way = Arc::new(Barrier::new(index(WRITERS) + 1));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = writer(&store, &peers, index(w));
        let half_way = half_way.clone();
        writers.push(tokio::spawn(async move {
            let s = unique_stream("sub");
            let mut n = 0;
            let mut ids = Vec::new();
            let mut paused = false;
            while n < EVENTS_PER_WRITER {
                if !paused && n >= EVENTS_PER_WRITER / 2 {
                    half_way.wait().await;
                    paused = true;
                }
                let size = (1 + (n + w) % 3).min(EVENTS_PER_WRITER - n);
                let batch = events(w * EVENTS_PER_WRITER + n, size);
                ids.extend(batch.iter().map(|e| e.event_id));
                let expected = if n == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(n - 1)
                };
                ok("concurrent append", store.append(&s, expected, batch).await);
                n += size;
                tokio::task::yield_now().await;
            }
            ids
        }));
    }
    // Every writer is half-way; they resume as this subscription starts.
    patiently("the writers to reach half-way", half_way.wait()).await;
    let mut sub = subscribe_all(store.clone(), 0, opts);
    let got = take(&mut sub, index(total)).await;
    let mut appended: HashSet<EventId> = HashSet::new();
    for w in writers {
        let ids = ok("writer task", w.await);
        appended.extend(ids);
    }
    let early = ok("early subscriber", early.await);
    let log = read_everything(&store).await;
    for (what, got) in [("mid-way", got), ("early", early)] {
        assert_eq!(
            positions(&got),
            (0..total).collect::<Vec<_>>(),
            "the {what} subscription yields positions 0..N in order, without gap or duplicate"
        );
        let seen: HashSet<EventId> = got.iter().map(|e| e.event_id).collect();
        assert_eq!(seen.len(), got.len(), "{what}: an event was yielded twice");
        assert_eq!(seen, appended, "{what}: saw other events than appended");
        assert_eq!(log, got, "{what}: the subscription and read_all agree");
    }
}

/// A subscription from a checkpoint `k` yields `k, k+1, …` (catch-up), then
/// events appended after it started (live), in order; one from the head
/// yields only new events. The live writer is a peer.
pub async fn check_resume_from_checkpoint<S>(store: S, peers: Vec<S>)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
{
    let s = unique_stream("resume");
    ok(
        "append",
        store
            .append(&s, ExpectedVersion::NoStream, events(0, 10))
            .await,
    );
    for k in [0u64, 1, 7, 9] {
        let mut sub = subscribe_all(store.clone(), k, SubscriptionOptions::default());
        let got = take(&mut sub, index(10 - k)).await;
        assert_eq!(
            positions(&got),
            (k..10).collect::<Vec<_>>(),
            "catch-up from {k}"
        );
        assert_eq!(sub.position(), 10, "position after catch-up from {k}");
    }
    let mut from_head = subscribe_all(store.clone(), 10, SubscriptionOptions::default());
    let mut from_7 = subscribe_all(store.clone(), 7, SubscriptionOptions::default());
    let caught = take(&mut from_7, 3).await;
    assert_eq!(positions(&caught), vec![7, 8, 9]);
    let writer = {
        let store = writer(&store, &peers, 0);
        let s = s.clone();
        tokio::spawn(async move {
            for n in 10..15 {
                ok(
                    "live append",
                    store
                        .append(&s, ExpectedVersion::Exact(n - 1), vec![event(n)])
                        .await,
                );
            }
        })
    };
    let live = take(&mut from_7, 5).await;
    let head = take(&mut from_head, 5).await;
    ok("writer task", writer.await);
    assert_eq!(
        positions(&live),
        (10..15).collect::<Vec<_>>(),
        "live after catch-up"
    );
    assert_eq!(
        positions(&head),
        (10..15).collect::<Vec<_>>(),
        "live from the head"
    );
    let ns: Vec<_> = live.iter().filter_map(crate::fixture::payload_n).collect();
    assert_eq!(ns, (10..15).collect::<Vec<_>>());
}

/// Rounds in which eight tasks append to ONE stream at once, all expecting
/// the same version: exactly one wins each round, the others get `Conflict`
/// with `actual` = the winner's version; the stream ends contiguous. The
/// tasks use the `peers` in turn.
pub async fn check_concurrent_exact_appends_one_stream<S>(store: S, peers: Vec<S>)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
{
    const TASKS: usize = 8;
    const ROUNDS: u64 = 40;
    let s: StreamId = unique_stream("race");
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = writer(&store, &peers, t);
        let s = s.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for round in 0..ROUNDS {
                let expected = if round == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(round - 1)
                };
                barrier.wait().await;
                let r = store
                    .append(&s, expected, vec![event(round * 100 + t as u64)])
                    .await;
                results.push((round, expected, r));
                // Everyone finishes the round before the next starts.
                barrier.wait().await;
            }
            results
        }));
    }
    let mut winners = vec![0usize; index(ROUNDS)];
    for task in tasks {
        for (round, expected, r) in ok("racing task", task.await) {
            match r {
                Ok(out) => {
                    assert_eq!(out.first_version, round, "round {round}: winner's version");
                    winners[index(round)] += 1;
                }
                Err(Error::Conflict {
                    stream,
                    expected: x,
                    actual,
                }) => {
                    assert_eq!(stream, s);
                    assert_eq!(x, expected);
                    assert_eq!(
                        actual,
                        Some(round),
                        "round {round}: a loser's Conflict carries the winner's version"
                    );
                }
                Err(other) => panic!("round {round}: expected Ok or Conflict, got {other:?}"),
            }
        }
    }
    assert!(
        winners.iter().all(|&w| w == 1),
        "exactly one winner per round: {winners:?}"
    );
    let stream = ok(
        "read_stream",
        store
            .read_stream(&s, 0, metachat_core::store::Direction::Forward, 1_000)
            .await,
    );
    assert_eq!(
        crate::fixture::versions(&stream),
        (0..ROUNDS).collect::<Vec<_>>(),
        "the stream is contiguous"
    );
    assert_eq!(
        ok("next_position", store.next_position().await),
        ROUNDS,
        "losers wrote nothing"
    );
}

/// Rounds in which two writers, through the peers, append at once an event
/// with the *same id* but different payloads to a fresh stream, expecting
/// `Any` (what a worker does when two of its instances handle the same
/// input during a rebalance, with a deterministic event id): each round
/// stores exactly one event; the writer that lost gets `PartialReappend`
/// (the stored event differs from its own), never a second event.
pub async fn check_concurrent_same_id_appends_once<S>(store: S, peers: Vec<S>)
where
    S: EventStore + Clone + Unpin + Send + Sync + 'static,
{
    const ROUNDS: u64 = 30;
    const TASKS: usize = 2;
    let streams: Arc<Vec<StreamId>> =
        Arc::new((0..ROUNDS).map(|_| unique_stream("sameid")).collect());
    let ids: Arc<Vec<EventId>> = Arc::new((0..ROUNDS).map(|_| EventId::new()).collect());
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let st = writer(&store, &peers, t);
        let (streams, ids, barrier) = (streams.clone(), ids.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for round in 0..ROUNDS {
                let mut e = event(round * 10 + t as u64);
                e.event_id = ids[index(round)];
                barrier.wait().await;
                let r = st
                    .append(
                        &streams[index(round)],
                        ExpectedVersion::Any,
                        vec![e.clone()],
                    )
                    .await;
                results.push((round, e, r));
            }
            results
        }));
    }
    // Per round: each writer's payload and whether its append was stored.
    let mut outcomes: Vec<Vec<(Vec<u8>, bool)>> = vec![Vec::new(); index(ROUNDS)];
    for task in tasks {
        for (round, e, r) in ok("racing task", task.await) {
            let won = match r {
                Ok(out) => {
                    assert_eq!(
                        (out.first_version, out.last_version),
                        (0, 0),
                        "round {round}: the one event is version 0"
                    );
                    true
                }
                Err(Error::PartialReappend { stream }) => {
                    assert_eq!(stream, streams[index(round)]);
                    false
                }
                Err(other) => {
                    panic!("round {round}: expected Ok or PartialReappend, got {other:?}")
                }
            };
            outcomes[index(round)].push((e.payload, won));
        }
    }
    for (round, s) in streams.iter().enumerate() {
        let stored = ok(
            "read_stream",
            store
                .read_stream(s, 0, metachat_core::store::Direction::Forward, 10)
                .await,
        );
        assert_eq!(stored.len(), 1, "round {round}: exactly one event stored");
        assert_eq!(stored[0].event_id, ids[round]);
        let winners: Vec<&Vec<u8>> = outcomes[round]
            .iter()
            .filter(|(_, won)| *won)
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: one writer's append stored"
        );
        assert_eq!(
            winners[0], &stored[0].payload,
            "round {round}: the stored event is the winner's"
        );
    }
}
