//! The aggregate repository against the in-memory store: load, handle,
//! append with the expected version, bounded retries, snapshots, upcasting.

use std::sync::Arc;

use metachat_core::aggregate::{Aggregate, CommandError, Repository};
use metachat_core::codec::{Codec, DomainEvent, JsonCodec, UnknownTypePolicy, Upcasters};
use metachat_core::event::{Metadata, NewEvent, StreamId};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::read_model::{DocExpect, ReadModelStore, ReadModelStoreExt};
use metachat_core::store::{Direction, EventAppender, EventReader, ExpectedVersion};
use metachat_core::Error;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum CounterEvent {
    Added { n: u32 },
    Reset {},
}

impl DomainEvent for CounterEvent {
    fn event_types() -> &'static [&'static str] {
        &["Added", "Reset"]
    }
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "Added" {
            2
        } else {
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CounterError {
    #[error("limit exceeded")]
    Limit,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

enum Cmd {
    Add(u32),
    Reset,
}

impl Aggregate for Counter {
    const KIND: &'static str = "counter";
    type Event = CounterEvent;
    type Command = Cmd;
    type Error = CounterError;

    fn apply(&mut self, e: &CounterEvent) {
        match e {
            CounterEvent::Added { n } => self.total += u64::from(*n),
            CounterEvent::Reset {} => self.total = 0,
        }
    }

    fn handle(&self, c: &Cmd) -> Result<Vec<CounterEvent>, CounterError> {
        match c {
            Cmd::Add(n) if self.total + u64::from(*n) > 1_000_000 => Err(CounterError::Limit),
            Cmd::Add(0) => Ok(vec![]),
            Cmd::Add(n) => Ok(vec![CounterEvent::Added { n: *n }]),
            Cmd::Reset => Ok(vec![CounterEvent::Reset {}]),
        }
    }
}

fn store() -> Arc<InMemoryEventStore> {
    Arc::new(InMemoryEventStore::new())
}

#[tokio::test]
async fn execute_appends_and_load_folds() {
    let repo = Repository::<Counter, _>::new(store());
    for n in [3, 4, 5] {
        repo.execute("a", &Cmd::Add(n), Metadata::default())
            .await
            .unwrap();
    }
    let root = repo.load("a").await.unwrap();
    assert_eq!(root.state.total, 12);
    assert_eq!(root.version, Some(2));
    assert_eq!(root.stream.as_str(), "counter-a");
    let reset = repo
        .execute("a", &Cmd::Reset, Metadata::default())
        .await
        .unwrap();
    assert_eq!((reset.root.state.total, reset.root.version), (0, Some(3)));
    assert_eq!(repo.load("a").await.unwrap().state.total, 0);
}

#[tokio::test]
async fn create_appends_to_a_new_stream_and_otherwise_runs_as_execute() {
    let store = store();
    let repo: Repository<Counter, _> = Repository::new(store.clone());
    let done = repo
        .create("c1", &Cmd::Add(5), Metadata::default())
        .await
        .expect("create");
    assert_eq!(done.root.version, Some(0));
    assert_eq!(done.root.state.total, 5);
    assert_eq!(done.outcome.expect("appended").first_version, 0);

    // The stream exists: the command runs on the loaded aggregate.
    let again = repo
        .create("c1", &Cmd::Add(7), Metadata::default())
        .await
        .expect("create on an existing stream");
    assert_eq!(again.root.version, Some(1));
    assert_eq!(again.root.state.total, 12);
    assert_eq!(repo.load("c1").await.expect("load").state.total, 12);

    // A domain error is judged against the stored state.
    let err = repo
        .create("c1", &Cmd::Add(999_990), Metadata::default())
        .await
        .expect_err("over the limit with what is stored");
    assert!(matches!(err, CommandError::Domain(CounterError::Limit)));

    // Refused on a new aggregate: the domain error, nothing appended.
    let err = repo
        .create("c3", &Cmd::Add(2_000_000), Metadata::default())
        .await
        .expect_err("over the limit");
    assert!(matches!(err, CommandError::Domain(CounterError::Limit)));
    let stream = StreamId::from_parts("counter", "c3").expect("stream");
    assert_eq!(store.stream_version(&stream).await.expect("version"), None);

    // No events on a new aggregate: nothing is appended.
    let none = repo
        .create("c2", &Cmd::Add(0), Metadata::default())
        .await
        .expect("no-op");
    assert!(none.outcome.is_none());
    let stream = StreamId::from_parts("counter", "c2").expect("stream");
    assert_eq!(store.stream_version(&stream).await.expect("version"), None);
}

#[tokio::test]
async fn no_events_means_no_append() {
    let s = store();
    let repo = Repository::<Counter, _>::new(s.clone());
    let out = repo
        .execute("a", &Cmd::Add(0), Metadata::default())
        .await
        .unwrap();
    assert!(out.outcome.is_none());
    assert_eq!(s.next_position().await.unwrap(), 0);
}

#[tokio::test]
async fn domain_error_writes_nothing() {
    let s = store();
    let repo = Repository::<Counter, _>::new(s.clone());
    repo.execute("a", &Cmd::Add(999_999), Metadata::default())
        .await
        .unwrap();
    let err = repo
        .execute("a", &Cmd::Add(2), Metadata::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Domain(CounterError::Limit)));
    assert_eq!(s.next_position().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_retry_and_lose_nothing() {
    let s = store();
    let repo = Arc::new(Repository::<Counter, _>::new(s.clone()).with_max_retries(1_000));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                repo.execute("shared", &Cmd::Add(1), Metadata::default())
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let root = repo.load("shared").await.unwrap();
    assert_eq!(root.state.total, 200);
    assert_eq!(root.version, Some(199));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_retries_surface_conflicts_and_every_ok_is_stored() {
    let s = store();
    let repo = Arc::new(Repository::<Counter, _>::new(s.clone()).with_max_retries(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut conflicts) = (0u64, 0u64);
            for _ in 0..50 {
                match repo.execute("hot", &Cmd::Add(1), Metadata::default()).await {
                    Ok(_) => ok += 1,
                    Err(CommandError::Store(Error::Conflict { .. })) => conflicts += 1,
                    Err(e) => panic!("unexpected error {e}"),
                }
                tokio::task::yield_now().await;
            }
            (ok, conflicts)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap().0;
    }
    let root = repo.load("hot").await.unwrap();
    assert_eq!(root.state.total, ok, "each accepted command is stored once");
}

#[tokio::test]
async fn snapshots_are_used_and_equal_a_full_replay() {
    let s = store();
    let rm = Arc::new(InMemoryReadModels::new());
    let repo = Repository::<Counter, _>::new(s.clone()).with_snapshots(rm.clone(), 10);
    for i in 0..25 {
        repo.execute("a", &Cmd::Add(i), Metadata::default())
            .await
            .unwrap();
    }
    let doc = rm.get("snapshots", "counter-a").await.unwrap().unwrap();
    let snap: serde_json::Value = doc.json().unwrap();
    assert_eq!(snap["version"], 19, "last snapshot after the 20th event");

    let plain = Repository::<Counter, _>::new(s.clone());
    let full = plain.load("a").await.unwrap();
    let fast = repo.load("a").await.unwrap();
    assert_eq!(full, fast);
    assert_eq!(fast.state.total, (0..25).sum::<u64>());
}

#[tokio::test]
async fn unreadable_snapshot_falls_back_to_replay() {
    let s = store();
    let rm = Arc::new(InMemoryReadModels::new());
    let repo = Repository::<Counter, _>::new(s.clone()).with_snapshots(rm.clone(), 2);
    for _ in 0..5 {
        repo.execute("a", &Cmd::Add(2), Metadata::default())
            .await
            .unwrap();
    }
    rm.put_json("snapshots", "counter-a", &"not a snapshot", DocExpect::Any)
        .await
        .unwrap();
    assert_eq!(repo.load("a").await.unwrap().state.total, 10);
}

fn upcasters() -> Upcasters {
    // v1 of Added was { "amount": n }; v2 renamed it to { "n": n }.
    Upcasters::new().register("Added", 1, |mut v| {
        let amount = v
            .get_mut("amount")
            .map(serde_json::Value::take)
            .ok_or("v1 Added without amount")?;
        Ok(serde_json::json!({ "n": amount }))
    })
}

#[tokio::test]
async fn old_schema_versions_are_upcast_on_load() {
    let s = store();
    let stream = StreamId::new("counter-a").unwrap();
    s.append(
        &stream,
        ExpectedVersion::NoStream,
        vec![NewEvent::new("Added", br#"{"amount":7}"#.to_vec()).with_schema_version(1)],
    )
    .await
    .unwrap();
    let repo = Repository::<Counter, _>::new(s.clone())
        .with_codec(JsonCodec::<CounterEvent>::new().with_upcasters(upcasters()));
    repo.execute("a", &Cmd::Add(3), Metadata::default())
        .await
        .unwrap();
    assert_eq!(repo.load("a").await.unwrap().state.total, 10);

    // Without the upcaster the old event is a typed error, not a panic.
    let bare = Repository::<Counter, _>::new(s.clone());
    let err = bare.load("a").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownEventType {
                schema_version: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_types_fail_or_are_skipped_by_choice() {
    let s = store();
    let stream = StreamId::new("counter-a").unwrap();
    s.append(
        &stream,
        ExpectedVersion::NoStream,
        vec![
            NewEvent::new("Added", br#"{"n":1}"#.to_vec()).with_schema_version(2),
            NewEvent::new("Teleported", br#"{}"#.to_vec()),
        ],
    )
    .await
    .unwrap();
    let strict = Repository::<Counter, _>::new(s.clone());
    assert!(matches!(
        strict.load("a").await.unwrap_err(),
        Error::UnknownEventType { ref event_type, .. } if event_type == "Teleported"
    ));
    let lenient = Repository::<Counter, _>::new(s.clone())
        .with_codec(JsonCodec::<CounterEvent>::new().on_unknown(UnknownTypePolicy::Skip));
    let root = lenient.load("a").await.unwrap();
    assert_eq!((root.state.total, root.version), (1, Some(1)));
}

#[tokio::test]
async fn malformed_payloads_are_decode_errors_and_lose_nothing() {
    let s = store();
    let stream = StreamId::new("counter-a").unwrap();
    for payload in [&b"{not json"[..], br#"{"n":"seven"}"#, b"\xff\xfe"] {
        s.append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::new("Added", payload.to_vec()).with_schema_version(2)],
        )
        .await
        .unwrap();
    }
    let repo = Repository::<Counter, _>::new(s.clone());
    assert!(matches!(
        repo.load("a").await.unwrap_err(),
        Error::Decode { .. }
    ));
    let stored = s
        .read_stream(&stream, 0, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
}

proptest! {
    #[test]
    fn encode_decode_round_trips(ns in proptest::collection::vec(any::<u32>(), 0..20), reset in any::<bool>()) {
        let codec = JsonCodec::<CounterEvent>::new();
        let mut events: Vec<CounterEvent> = ns.into_iter().map(|n| CounterEvent::Added { n }).collect();
        if reset { events.push(CounterEvent::Reset {}); }
        for (i, e) in events.iter().enumerate() {
            let enc = codec.encode(e).unwrap();
            let env = metachat_core::event::Envelope::recorded(
                NewEvent::new(enc.event_type, enc.payload).with_schema_version(enc.schema_version),
                StreamId::new("counter-x").unwrap(), i as u64, i as u64, Default::default());
            prop_assert_eq!(codec.decode(&env).unwrap().unwrap(), e.clone());
        }
    }

    #[test]
    fn upcasting_v1_equals_writing_v2(n in any::<u32>()) {
        let codec = JsonCodec::<CounterEvent>::new().with_upcasters(upcasters());
        let v1 = metachat_core::event::Envelope::recorded(
            NewEvent::new("Added", serde_json::to_vec(&serde_json::json!({"amount": n})).unwrap()).with_schema_version(1),
            StreamId::new("counter-x").unwrap(), 0, 0, Default::default());
        prop_assert_eq!(codec.decode(&v1).unwrap().unwrap(), CounterEvent::Added { n });
    }

    #[test]
    fn fold_of_commands_equals_sum(ns in proptest::collection::vec(0u32..1000, 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let total = rt.block_on(async {
            let repo = Repository::<Counter, _>::new(store());
            for n in &ns {
                repo.execute("p", &Cmd::Add(*n), Metadata::default()).await.unwrap();
            }
            let root = repo.load("p").await.unwrap();
            let accepted = ns.iter().filter(|n| **n > 0).count() as u64;
            prop_assert_eq!(root.version.map_or(0, |v| v + 1), accepted);
            Ok(root.state.total)
        })?;
        prop_assert_eq!(total, ns.iter().map(|n| u64::from(*n)).sum::<u64>());
    }
}
