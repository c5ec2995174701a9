//! Event store checks: expected versions, idempotency, order, positions,
//! reads, round trip, limits and bad input. Each takes a fresh, empty store.

use metachat_core::event::{EventId, Limits, NewEvent, StreamId};
use metachat_core::store::{AppendOutcome, Direction, EventStore, ExpectedVersion};
use metachat_core::Error;

use crate::fixture::{
    assert_nothing_stored, assert_same_event, err, event, events, ok, positions, read_everything,
    rich_event, unique_stream, versions,
};

/// Asserts `e` is `Conflict` on `stream` with these `expected` and `actual`.
#[track_caller]
fn assert_conflict(
    what: &str,
    e: &Error,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: Option<u64>,
) {
    match e {
        Error::Conflict {
            stream: s,
            expected: x,
            actual: a,
        } => {
            assert_eq!(s, stream, "{what}: Conflict names the wrong stream");
            assert_eq!(*x, expected, "{what}: Conflict carries the wrong expected");
            assert_eq!(*a, actual, "{what}: Conflict carries the wrong actual");
        }
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// On an absent stream, `Any` and `NoStream` append at version 0;
/// `StreamExists` and `Exact(n)` fail with `Conflict { actual: None }` and
/// write nothing.
pub async fn check_expected_version_absent_stream<S: EventStore>(store: S) {
    for (i, expected) in [
        ExpectedVersion::StreamExists,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(3),
    ]
    .into_iter()
    .enumerate()
    {
        let s = unique_stream("absent");
        let e = err(
            &format!("{expected:?} on an absent stream"),
            store.append(&s, expected, events(i as u64, 2)).await,
        );
        assert_conflict("absent stream", &e, &s, expected, None);
        assert_nothing_stored(&format!("after a {expected:?} conflict"), &store, &s).await;
    }
    let mut position = 0;
    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
        let s = unique_stream("absent");
        let out = ok(
            &format!("{expected:?} on an absent stream"),
            store.append(&s, expected, events(0, 2)).await,
        );
        assert_eq!(
            out,
            AppendOutcome {
                first_version: 0,
                last_version: 1,
                first_position: position,
                last_position: position + 1,
                recorded_at: out.recorded_at,
            },
            "{expected:?} on an absent stream"
        );
        position += 2;
        assert_eq!(
            ok("stream_version", store.stream_version(&s).await),
            Some(1)
        );
    }
}

/// On a stream at version 2: `Any`, `StreamExists` and `Exact(2)` append;
/// `NoStream`, `Exact(1)` and `Exact(3)` fail with `Conflict { actual:
/// Some(2) }` (then the actual version at that time) and write nothing.
pub async fn check_expected_version_present_stream<S: EventStore>(store: S) {
    let s = unique_stream("present");
    ok(
        "initial append",
        store
            .append(&s, ExpectedVersion::NoStream, events(0, 3))
            .await,
    );
    let mut version = 2;
    let mut next_n = 3;
    let mut stored = 3;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(3),
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(u64::MAX),
    ] {
        let e = err(
            &format!("{expected:?} at version {version}"),
            store.append(&s, expected, events(100, 2)).await,
        );
        assert_conflict("present stream", &e, &s, expected, Some(version));
        assert_eq!(
            ok("next_position", store.next_position().await),
            stored,
            "{expected:?} conflict wrote something"
        );
        assert_eq!(
            ok("stream_version", store.stream_version(&s).await),
            Some(version),
            "{expected:?} conflict changed the stream"
        );
    }
    for kind in 0..3 {
        let expected = match kind {
            0 => ExpectedVersion::Any,
            1 => ExpectedVersion::StreamExists,
            _ => ExpectedVersion::Exact(version),
        };
        let out = ok(
            &format!("{expected:?} at version {version}"),
            store.append(&s, expected, vec![event(next_n)]).await,
        );
        version += 1;
        next_n += 1;
        assert_eq!(out.first_version, version, "{expected:?}: first_version");
        assert_eq!(out.last_version, version, "{expected:?}: last_version");
        assert_eq!(out.first_position, stored, "{expected:?}: first_position");
        stored += 1;
        assert_eq!(out.next_expected(), ExpectedVersion::Exact(version));
    }
    let all = ok(
        "read_stream",
        store.read_stream(&s, 0, Direction::Forward, 100).await,
    );
    assert_eq!(versions(&all), (0..=version).collect::<Vec<_>>());
    let ns: Vec<_> = all.iter().filter_map(crate::fixture::payload_n).collect();
    assert_eq!(
        ns,
        (0..next_n).collect::<Vec<_>>(),
        "conflicting events leaked in"
    );
}

/// Appending the same batch again (same ids, same content) succeeds with the
/// original outcome (its recorded time included) whatever the expected
/// version, stores one copy, and also holds after later appends; a stored
/// consecutive sub-slice re-appends too.
pub async fn check_idempotent_reappend<S: EventStore>(store: S) {
    let s = unique_stream("idem");
    let other = unique_stream("idem");
    let batch = events(0, 3);
    let first = ok(
        "first append",
        store
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await,
    );
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(7),
        ExpectedVersion::StreamExists,
    ] {
        let again = ok(
            &format!("re-append with {expected:?}"),
            store.append(&s, expected, batch.clone()).await,
        );
        assert_eq!(again, first, "re-append with {expected:?}: outcome");
    }
    assert_eq!(ok("next_position", store.next_position().await), 3);
    ok(
        "other stream",
        store
            .append(&other, ExpectedVersion::NoStream, events(10, 2))
            .await,
    );
    ok(
        "more events",
        store
            .append(&s, ExpectedVersion::Exact(2), events(3, 2))
            .await,
    );
    let again = ok(
        "re-append after later appends",
        store
            .append(&s, ExpectedVersion::Exact(4), batch.clone())
            .await,
    );
    assert_eq!(again, first, "re-append after later appends: outcome");
    let tail = ok(
        "re-append of a stored sub-slice",
        store
            .append(&s, ExpectedVersion::Any, batch[1..].to_vec())
            .await,
    );
    let stored = ok(
        "read_stream",
        store.read_stream(&s, 0, Direction::Forward, 100).await,
    );
    assert_eq!(
        first.recorded_at, stored[0].recorded_at,
        "an append's outcome carries the time its events were recorded"
    );
    assert_eq!(
        tail,
        AppendOutcome {
            first_version: 1,
            last_version: 2,
            first_position: 1,
            last_position: 2,
            recorded_at: stored[1].recorded_at,
        },
        "re-append of a stored sub-slice: outcome"
    );
    assert_eq!(versions(&stored), vec![0, 1, 2, 3, 4], "one copy stored");
    for (env, ev) in stored.iter().zip(&batch) {
        assert_same_event("re-appended batch", env, ev);
    }
    assert_eq!(ok("next_position", store.next_position().await), 7);
}

/// A batch that partly matches stored events (a stored batch plus a new event,
/// a new event plus a stored one, stored ids with other content, stored ids
/// out of order) is refused with `PartialReappend` and writes nothing.
pub async fn check_partial_reappend_refused<S: EventStore>(store: S) {
    let s = unique_stream("partial");
    let batch = events(0, 3);
    ok(
        "first append",
        store
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await,
    );
    let changed = {
        let mut e = batch[1].clone();
        e.payload = b"{\"n\":99}".to_vec();
        e
    };
    let cases: Vec<(&str, Vec<NewEvent>)> = vec![
        ("stored batch plus a new event", {
            let mut b = batch.clone();
            b.push(event(3));
            b
        }),
        (
            "a new event plus a stored one",
            vec![event(4), batch[0].clone()],
        ),
        ("stored id with other content", vec![changed]),
        (
            "stored ids out of order",
            vec![batch[1].clone(), batch[0].clone()],
        ),
        (
            "stored ids not consecutive",
            vec![batch[0].clone(), batch[2].clone()],
        ),
    ];
    for (what, b) in cases {
        for expected in [ExpectedVersion::Any, ExpectedVersion::Exact(2)] {
            let e = err(what, store.append(&s, expected, b.clone()).await);
            match e {
                Error::PartialReappend { stream } => {
                    assert_eq!(stream, s, "{what}: PartialReappend names the wrong stream");
                }
                other => panic!("{what}: expected PartialReappend, got {other:?}"),
            }
            assert_eq!(
                ok("next_position", store.next_position().await),
                3,
                "{what}: something was written"
            );
        }
    }
    assert_eq!(
        ok("stream_version", store.stream_version(&s).await),
        Some(2)
    );
}

/// An event id stored in another stream is refused with `DuplicateEventId`
/// naming where it is stored, and nothing is written.
pub async fn check_duplicate_event_id_in_other_stream<S: EventStore>(store: S) {
    let a = unique_stream("dup");
    let b = unique_stream("dup");
    let batch = events(0, 2);
    ok(
        "append to a",
        store
            .append(&a, ExpectedVersion::NoStream, batch.clone())
            .await,
    );
    for (what, attempt) in [
        ("the whole batch", batch.clone()),
        ("its second event", vec![batch[1].clone()]),
        (
            "a new event and its second",
            vec![event(5), batch[1].clone()],
        ),
    ] {
        for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
            let e = err(what, store.append(&b, expected, attempt.clone()).await);
            let want = attempt
                .iter()
                .find_map(|ev| batch.iter().position(|x| x.event_id == ev.event_id))
                .expect("the attempt holds a stored id");
            match e {
                Error::DuplicateEventId {
                    event_id,
                    stream,
                    version,
                } => {
                    assert_eq!(event_id, batch[want].event_id.0, "{what}: event_id");
                    assert_eq!(stream, a, "{what}: the stream where it is stored");
                    assert_eq!(version, want as u64, "{what}: its version there");
                }
                other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
            }
            assert_eq!(ok("stream_version b", store.stream_version(&b).await), None);
            assert_eq!(ok("next_position", store.next_position().await), 2);
        }
    }
}

/// Events of interleaved appends to several streams keep their order per
/// stream (versions 0, 1, 2, …) and get global positions 0..N in append order.
pub async fn check_per_stream_order_and_gap_free_positions<S: EventStore>(store: S) {
    let streams: Vec<StreamId> = (0..3).map(|_| unique_stream("order")).collect();
    let mut appended: Vec<(StreamId, NewEvent)> = Vec::new();
    let mut n = 0;
    for round in 0..6u64 {
        for (i, s) in streams.iter().enumerate() {
            let size = 1 + (round + i as u64) % 3;
            let batch = events(n, size);
            n += size;
            let out = ok(
                "append",
                store.append(s, ExpectedVersion::Any, batch.clone()).await,
            );
            assert_eq!(
                out.first_position,
                appended.len() as u64,
                "first_position is the number of events before"
            );
            assert_eq!(out.last_position - out.first_position, size - 1);
            assert_eq!(out.last_version - out.first_version, size - 1);
            appended.extend(batch.into_iter().map(|e| (s.clone(), e)));
        }
    }
    let all = read_everything(&store).await;
    assert_eq!(
        positions(&all),
        (0..appended.len() as u64).collect::<Vec<_>>(),
        "global positions are 0..N without gaps"
    );
    for (env, (s, ev)) in all.iter().zip(&appended) {
        assert_eq!(
            &env.stream_id, s,
            "read_all: stream of position {}",
            env.position
        );
        assert_same_event("read_all", env, ev);
    }
    for s in &streams {
        let stream = ok(
            "read_stream",
            store.read_stream(s, 0, Direction::Forward, 1_000).await,
        );
        let expected: Vec<&NewEvent> = appended
            .iter()
            .filter(|(x, _)| x == s)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(
            versions(&stream),
            (0..expected.len() as u64).collect::<Vec<_>>()
        );
        for (env, ev) in stream.iter().zip(expected) {
            assert_same_event("read_stream", env, ev);
        }
        let ps = positions(&stream);
        assert!(
            ps.windows(2).all(|w| w[0] < w[1]),
            "positions increase along a stream: {ps:?}"
        );
    }
}

/// Forward reads from every version, with limits, past the end, and on an
/// absent stream.
pub async fn check_read_stream_forward<S: EventStore>(store: S) {
    let s = unique_stream("fwd");
    let noise = unique_stream("fwd");
    ok(
        "append",
        store.append(&s, ExpectedVersion::Any, events(0, 3)).await,
    );
    ok(
        "append",
        store
            .append(&noise, ExpectedVersion::Any, events(50, 2))
            .await,
    );
    ok(
        "append",
        store.append(&s, ExpectedVersion::Any, events(3, 3)).await,
    );
    let len = 6u64;
    for from in 0..=len + 1 {
        for limit in [0usize, 1, 2, 4, 100] {
            let got = ok(
                "read_stream forward",
                store.read_stream(&s, from, Direction::Forward, limit).await,
            );
            let want: Vec<u64> = (from..len).take(limit).collect();
            assert_eq!(
                versions(&got),
                want,
                "read_stream(from {from}, forward, limit {limit})"
            );
            assert!(got.iter().all(|e| e.stream_id == s));
            let ns: Vec<_> = got.iter().filter_map(crate::fixture::payload_n).collect();
            assert_eq!(
                ns, want,
                "payloads of read_stream(from {from}, limit {limit})"
            );
        }
    }
    for from in [u64::MAX, u64::MAX - 1] {
        let got = ok(
            "read_stream far past the end",
            store.read_stream(&s, from, Direction::Forward, 10).await,
        );
        assert!(got.is_empty(), "read_stream(from {from}) past the end");
    }
    let absent = unique_stream("fwd");
    for from in [0, 5] {
        let got = ok(
            "read_stream of an absent stream",
            store
                .read_stream(&absent, from, Direction::Forward, 10)
                .await,
        );
        assert!(got.is_empty(), "an absent stream reads as empty");
    }
}

/// Backward reads from every version, from past the end (`u64::MAX`), with
/// limits, and on an absent stream.
pub async fn check_read_stream_backward<S: EventStore>(store: S) {
    let s = unique_stream("bwd");
    let noise = unique_stream("bwd");
    ok(
        "append",
        store.append(&s, ExpectedVersion::Any, events(0, 2)).await,
    );
    ok(
        "append",
        store
            .append(&noise, ExpectedVersion::Any, events(50, 1))
            .await,
    );
    ok(
        "append",
        store.append(&s, ExpectedVersion::Any, events(2, 3)).await,
    );
    let len = 5u64;
    for from in (0..=len + 2).chain([u64::MAX]) {
        for limit in [0usize, 1, 2, 4, 100] {
            let got = ok(
                "read_stream backward",
                store
                    .read_stream(&s, from, Direction::Backward, limit)
                    .await,
            );
            let start = from.min(len - 1);
            let want: Vec<u64> = (0..=start).rev().take(limit).collect();
            assert_eq!(
                versions(&got),
                want,
                "read_stream(from {from}, backward, limit {limit})"
            );
            let ns: Vec<_> = got.iter().filter_map(crate::fixture::payload_n).collect();
            assert_eq!(ns, want, "payloads of read_stream(from {from}, backward)");
        }
    }
    let absent = unique_stream("bwd");
    for from in [0, 3, u64::MAX] {
        let got = ok(
            "read_stream backward of an absent stream",
            store
                .read_stream(&absent, from, Direction::Backward, 10)
                .await,
        );
        assert!(got.is_empty(), "an absent stream reads as empty backward");
    }
}

/// `read_all` from every position with several limits, and past the end.
pub async fn check_read_all_from_any_position<S: EventStore>(store: S) {
    let a = unique_stream("all");
    let b = unique_stream("all");
    let mut n = 0;
    for i in 0..5u64 {
        let s = if i % 2 == 0 { &a } else { &b };
        ok(
            "append",
            store
                .append(s, ExpectedVersion::Any, events(n, i + 1))
                .await,
        );
        n += i + 1;
    }
    let all = ok("read_all", store.read_all(0, usize::MAX).await);
    assert_eq!(positions(&all), (0..n).collect::<Vec<_>>());
    for from in 0..=n + 1 {
        for limit in [0usize, 1, 3, 7, 1_000] {
            let got = ok("read_all", store.read_all(from, limit).await);
            let want: Vec<u64> = (from..n).take(limit).collect();
            assert_eq!(
                positions(&got),
                want,
                "read_all(from {from}, limit {limit})"
            );
            for e in &got {
                assert_eq!(
                    e,
                    &all[crate::fixture::index(e.position)],
                    "read_all(from {from}) returns the same envelope as from 0"
                );
            }
        }
    }
    let got = ok(
        "read_all far past the end",
        store.read_all(u64::MAX, 10).await,
    );
    assert!(got.is_empty());
}

/// Ids, types, schema versions, payloads (with non-ASCII text) and metadata
/// (correlation, causation, actor, headers) come back as appended, from
/// `read_stream` and `read_all`.
pub async fn check_envelope_round_trip<S: EventStore>(store: S) {
    let s = unique_stream("trip");
    let mut batch: Vec<NewEvent> = (0..3).map(rich_event).collect();
    batch.push(NewEvent::new("Empty", Vec::new()));
    batch.push(NewEvent::new("Binary", (0..=255u8).collect::<Vec<_>>()));
    ok(
        "append",
        store
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await,
    );
    let read = ok(
        "read_stream",
        store.read_stream(&s, 0, Direction::Forward, 100).await,
    );
    assert_eq!(read.len(), batch.len());
    let all = ok("read_all", store.read_all(0, 100).await);
    for ((env, from_all), ev) in read.iter().zip(&all).zip(&batch) {
        assert_same_event("read_stream", env, ev);
        assert_eq!(env, from_all, "read_stream and read_all agree");
        assert_eq!(env.stream_id, s);
    }
}

/// `stream_version` is `None` for an absent stream and the last version after
/// appends; `next_position` counts every stored event.
pub async fn check_stream_version_and_next_position<S: EventStore>(store: S) {
    let a = unique_stream("ver");
    let b = unique_stream("ver");
    assert_eq!(ok("stream_version", store.stream_version(&a).await), None);
    assert_eq!(ok("next_position", store.next_position().await), 0);
    ok(
        "append",
        store.append(&a, ExpectedVersion::Any, events(0, 4)).await,
    );
    assert_eq!(
        ok("stream_version", store.stream_version(&a).await),
        Some(3)
    );
    assert_eq!(ok("stream_version", store.stream_version(&b).await), None);
    assert_eq!(ok("next_position", store.next_position().await), 4);
    ok(
        "append",
        store.append(&b, ExpectedVersion::Any, events(4, 1)).await,
    );
    ok(
        "append",
        store.append(&a, ExpectedVersion::Any, events(5, 2)).await,
    );
    assert_eq!(
        ok("stream_version", store.stream_version(&a).await),
        Some(5)
    );
    assert_eq!(
        ok("stream_version", store.stream_version(&b).await),
        Some(0)
    );
    assert_eq!(ok("next_position", store.next_position().await), 7);
}

/// Appends `batch` to a fresh stream of an empty store, expects the error
/// `matches` accepts, and checks nothing was stored.
async fn refused<S: EventStore>(
    store: &S,
    what: &str,
    batch: Vec<NewEvent>,
    matches: impl Fn(&Error) -> bool,
) {
    let s = unique_stream("bad");
    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
        let e = err(what, store.append(&s, expected, batch.clone()).await);
        assert!(matches(&e), "{what}: unexpected error {e:?}");
        assert_nothing_stored(what, store, &s).await;
    }
}

/// An empty batch is `EmptyBatch`; nothing is stored.
pub async fn check_empty_batch_refused<S: EventStore>(store: S) {
    refused(&store, "empty batch", Vec::new(), |e| {
        matches!(e, Error::EmptyBatch)
    })
    .await;
}

/// An event over [`Limits::default`]'s size, alone or among valid events, is
/// `EventTooLarge`; nothing is stored.
pub async fn check_oversized_event_refused<S: EventStore>(store: S) {
    let limit = Limits::default().max_event_bytes;
    let big = NewEvent::new("Big", vec![b'x'; limit + 1]);
    let is_too_large = |e: &Error| matches!(e, Error::EventTooLarge { size, .. } if *size > limit);
    refused(&store, "oversized event", vec![big.clone()], is_too_large).await;
    refused(
        &store,
        "oversized event among valid ones",
        vec![event(0), big, event(1)],
        is_too_large,
    )
    .await;
}

/// A batch over [`Limits::default`]'s batch length is `BatchTooLarge`;
/// nothing is stored.
pub async fn check_batch_too_large_refused<S: EventStore>(store: S) {
    let limit = Limits::default().max_batch_len;
    let batch = events(0, limit as u64 + 1);
    refused(
        &store,
        "batch too large",
        batch,
        |e| matches!(e, Error::BatchTooLarge { len, .. } if *len == limit + 1),
    )
    .await;
}

/// Empty, too long, or control-character event types are `InvalidEventType`,
/// alone or among valid events; nothing is stored.
pub async fn check_invalid_event_type_refused<S: EventStore>(store: S) {
    let too_long = "T".repeat(Limits::default().max_event_type_len + 1);
    for ty in [String::new(), too_long, "Bad\nType".to_owned()] {
        let bad = NewEvent::new(ty.clone(), b"{}".to_vec());
        for batch in [vec![bad.clone()], vec![event(0), bad]] {
            refused(&store, &format!("event type {ty:?}"), batch, |e| {
                matches!(e, Error::InvalidEventType { .. })
            })
            .await;
        }
    }
}

/// One id twice in one batch is `DuplicateInBatch`; nothing is stored.
pub async fn check_duplicate_id_in_batch_refused<S: EventStore>(store: S) {
    let id = EventId::new();
    let batch = vec![event(0).with_id(id), event(1), event(2).with_id(id)];
    refused(
        &store,
        "duplicate id in batch",
        batch,
        |e| matches!(e, Error::DuplicateInBatch { event_id } if *event_id == id.0),
    )
    .await;
}
