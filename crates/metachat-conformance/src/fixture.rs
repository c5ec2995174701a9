//! Small helpers the checks share: events, unique names, and assertions on
//! errors and envelopes. Public so that a backend's own tests can reuse them.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use metachat_core::event::{Envelope, EventId, Metadata, NewEvent, StreamId};
use metachat_core::store::EventReader;
use metachat_core::Error;

/// How long a check waits for something that must happen (a delivery, a
/// live event) before it reports a hang. A liveness guard, never a timing
/// assertion: passing checks never come near it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A stream id `{category}-{random}`, unique across runs.
pub fn unique_stream(category: &str) -> StreamId {
    StreamId::new(format!("{category}-{}", uuid::Uuid::new_v4().simple()))
        .expect("a valid stream id")
}

/// A name `{prefix}{random}`, unique across runs (topics, groups, collections).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A new event of type `Tested` whose JSON payload carries `n`.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new("Tested", format!("{{\"n\":{n}}}").into_bytes())
}

/// `count` new events with payloads `first..first + count`.
pub fn events(first: u64, count: u64) -> Vec<NewEvent> {
    (first..first + count).map(event).collect()
}

/// The `n` an [`event`] payload carries, if it is one.
pub fn payload_n(envelope: &Envelope) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(&envelope.payload).ok()?;
    v.get("n")?.as_u64()
}

/// An event with rich metadata, for round-trip checks.
pub fn rich_event(n: u64) -> NewEvent {
    let metadata = Metadata::correlated(uuid::Uuid::new_v4())
        .caused_by(uuid::Uuid::new_v4())
        .with_actor(format!("actor-{n}"))
        .with_header("trace", format!("t{n}"))
        .with_header("ünïcode", "✓");
    NewEvent::new(
        "RichTested",
        format!("{{\"n\":{n},\"text\":\"é✓\"}}").into_bytes(),
    )
    .with_metadata(metadata)
    .with_schema_version(3)
    .with_id(EventId::new())
}

/// Awaits `fut` or panics after [`PATIENCE`], naming `what` it waited for.
pub async fn patiently<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("waited {PATIENCE:?} for {what}; it never happened"),
    }
}

/// Unwraps an `Ok`, panicking with the operation's name and the error.
#[track_caller]
pub fn ok<T, E: Debug>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: expected Ok, got Err({e:?})"),
    }
}

/// Unwraps an `Err`, panicking with the operation's name and the value.
#[track_caller]
pub fn err<T: Debug>(what: &str, r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// Asserts that `envelope` holds `event` (id, type, schema, payload, metadata).
#[track_caller]
pub fn assert_same_event(what: &str, envelope: &Envelope, event: &NewEvent) {
    assert!(
        envelope.same_event(event),
        "{what}: stored envelope {envelope:?} differs from appended event {event:?}"
    );
}

/// Versions of a list of envelopes.
pub fn versions(envelopes: &[Envelope]) -> Vec<u64> {
    envelopes.iter().map(|e| e.version).collect()
}

/// Positions of a list of envelopes.
pub fn positions(envelopes: &[Envelope]) -> Vec<u64> {
    envelopes.iter().map(|e| e.position).collect()
}

/// Everything in the global log, read in pages of 1,000.
pub async fn read_everything<S: EventReader>(store: &S) -> Vec<Envelope> {
    let mut all = Vec::new();
    loop {
        let page = ok("read_all", store.read_all(all.len() as u64, 1_000).await);
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Asserts the store holds nothing: no events, next position 0, `stream` absent.
pub async fn assert_nothing_stored<S: EventReader>(what: &str, store: &S, stream: &StreamId) {
    assert_eq!(
        ok("next_position", store.next_position().await),
        0,
        "{what}: next_position moved"
    );
    assert_eq!(
        ok("stream_version", store.stream_version(stream).await),
        None,
        "{what}: the stream exists"
    );
    assert!(
        read_everything(store).await.is_empty(),
        "{what}: read_all shows events"
    );
}

/// A position or count as an index (saturating on 32-bit targets, where a
/// check that large could not run anyway).
pub fn index(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
