//! The sled event store's own tests: reopen, durability settings, group
//! commit, bad input, corrupted records, large events.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use metachat_adapters::sled::{Durability, SledConfig, SledDatabase, SledEventStore};
use metachat_core::codec::{Codec, DomainEvent, JsonCodec};
use metachat_core::event::{Envelope, Limits, NewEvent, StreamId};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore};
use metachat_core::store::{Direction, EventAppender, EventReader, ExpectedVersion};
use metachat_core::Error;

fn sid(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

fn ev(ty: &str, payload: &[u8]) -> NewEvent {
    NewEvent::new(ty, payload.to_vec())
}

fn open(path: &Path) -> SledEventStore {
    SledEventStore::open(SledConfig::new(path)).unwrap()
}

async fn all(store: &impl EventReader) -> Vec<Envelope> {
    store.read_all(0, usize::MAX).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_caches_survive_reopen_and_positions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let db = SledDatabase::open(SledConfig::new(dir.path())).unwrap();
        let store = db.event_store();
        let a = store
            .append(
                &sid("a-1"),
                ExpectedVersion::NoStream,
                vec![ev("A", b"1"), ev("A", b"2")],
            )
            .await
            .unwrap();
        store
            .append(&sid("b-1"), ExpectedVersion::NoStream, vec![ev("B", b"3")])
            .await
            .unwrap();
        store
            .append(&sid("a-1"), a.next_expected(), vec![ev("A", b"4")])
            .await
            .unwrap();
        let mut c = Commit::default();
        c.put_json("view", "k", &7u32, DocExpect::Absent).unwrap();
        c.checkpoint = Some(("proj".into(), 4));
        db.read_models().commit(c).await.unwrap();
        all(&store).await
    };
    assert_eq!(before.len(), 4);

    let db = SledDatabase::open(SledConfig::new(dir.path())).unwrap();
    let store = db.event_store();
    // A clean close records how far the index is complete: nothing to redo.
    assert_eq!(store.open_report().reindexed_events, 0);
    assert_eq!(all(&store).await, before);
    assert_eq!(store.next_position().await.unwrap(), 4);
    assert_eq!(store.stream_version(&sid("a-1")).await.unwrap(), Some(2));
    assert_eq!(store.stream_version(&sid("b-1")).await.unwrap(), Some(0));
    let rm = db.read_models();
    assert_eq!(rm.checkpoint("proj").await.unwrap(), Some(4));
    assert_eq!(rm.get("view", "k").await.unwrap().unwrap().version, 1);

    // The rebuilt head cache enforces expectations; positions continue.
    let err = store
        .append(&sid("a-1"), ExpectedVersion::Exact(1), vec![ev("A", b"x")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(2),
                ..
            }
        ),
        "{err}"
    );
    let out = store
        .append(&sid("a-1"), ExpectedVersion::Exact(2), vec![ev("A", b"5")])
        .await
        .unwrap();
    assert_eq!((out.first_version, out.first_position), (3, 4));
    // An idempotent retry of an event from before the reopen returns its outcome.
    let first = before[0].clone();
    let retry = NewEvent {
        event_id: first.event_id,
        event_type: first.event_type.clone(),
        schema_version: first.schema_version,
        payload: first.payload.clone(),
        metadata: first.metadata.clone(),
    };
    let again = store
        .append(&sid("a-1"), ExpectedVersion::Any, vec![retry])
        .await
        .unwrap();
    assert_eq!((again.first_version, again.first_position), (0, 0));
    assert_eq!(store.next_position().await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_durability_settings_persist_acknowledged_appends() {
    for durability in [
        Durability::Sync,
        Durability::Periodic(Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SledConfig::new(dir.path()).durability(durability);
        let mut expected = Vec::new();
        {
            let store = SledEventStore::open(cfg.clone()).unwrap();
            let mut exp = ExpectedVersion::NoStream;
            for i in 0..20u8 {
                let out = store
                    .append(&sid("s-1"), exp, vec![ev("E", &[i])])
                    .await
                    .unwrap();
                exp = out.next_expected();
            }
            if let Durability::Periodic(_) = durability {
                // Give the background barrier a chance to run, then force one.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            store.close().await.unwrap();
            expected.extend(all(&store).await);
        }
        // The last handle's drop released the database: it reopens at once.
        let store = SledEventStore::open(cfg).unwrap();
        assert_eq!(all(&store).await, expected, "{durability:?}");
        assert_eq!(expected.len(), 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_open_of_the_same_database_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = SledEventStore::open(SledConfig::new(dir.path())).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    // The lock goes with the last handle: the directory opens again.
    drop(first);
    let mut reopened = SledEventStore::open(SledConfig::new(dir.path()));
    for _ in 0..100 {
        if reopened.is_ok() {
            break;
        }
        // The writer thread of the first handle may still be closing.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        reopened = SledEventStore::open(SledConfig::new(dir.path()));
    }
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_appenders_get_distinct_consecutive_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for w in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = sid(&format!("writer-{w}"));
            let mut exp = ExpectedVersion::NoStream;
            let mut outs = Vec::new();
            for i in 0..5u8 {
                let out = store.append(&s, exp, vec![ev("E", &[w, i])]).await.unwrap();
                exp = out.next_expected();
                outs.push(out);
            }
            outs
        }));
    }
    let mut positions = BTreeSet::new();
    for t in tasks {
        for (i, out) in t.await.unwrap().into_iter().enumerate() {
            assert_eq!(out.first_version, i as u64);
            assert!(positions.insert(out.first_position));
        }
    }
    assert_eq!(positions, (0..320).collect::<BTreeSet<u64>>());
    let log = all(&store).await;
    assert_eq!(log.len(), 320);
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64);
        assert_eq!(e.payload[1] as u64, e.version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_exact_appends_to_one_stream_in_one_group_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = sid("race-1");
    store
        .append(&s, ExpectedVersion::NoStream, vec![ev("E", b"0")])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        let (store, s) = (store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            store
                .append(&s, ExpectedVersion::Exact(0), vec![ev("E", &[i])])
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => {
                won += 1;
                assert_eq!(out.first_version, 1);
            }
            Err(Error::Conflict { actual, .. }) => assert_eq!(actual, Some(1)),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_typed_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_event_bytes: 1024,
        max_batch_len: 4,
        max_event_type_len: 16,
    };
    let store = SledEventStore::open(SledConfig::new(dir.path()).limits(limits)).unwrap();
    let s = sid("user-1");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![ev("A", b"{}"), ev("A", b"{}")],
        )
        .await
        .unwrap();
    let before = all(&store).await;

    let err = store
        .append(&s, ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyBatch), "{err}");
    let err = store
        .append(&s, ExpectedVersion::Any, vec![ev("A", &[0u8; 2000])])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::EventTooLarge { limit: 1024, .. }),
        "{err}"
    );
    let err = store
        .append(
            &s,
            ExpectedVersion::Any,
            (0..5).map(|_| ev("A", b"{}")).collect(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::BatchTooLarge { len: 5, limit: 4 }),
        "{err}"
    );
    for bad in ["", "WayTooLongEventTypeName", "Bad\nType"] {
        let err = store
            .append(&s, ExpectedVersion::Any, vec![ev(bad, b"{}")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidEventType { .. }),
            "{bad:?}: {err}"
        );
    }
    let dup = ev("A", b"{}");
    let err = store
        .append(&s, ExpectedVersion::Any, vec![dup.clone(), dup])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateInBatch { .. }), "{err}");
    // A batch over the limit is refused whole even if its first events are fine.
    let err = store
        .append(
            &s,
            ExpectedVersion::Any,
            vec![ev("A", b"{}"), ev("A", &[0u8; 4096])],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EventTooLarge { .. }), "{err}");
    for bad in [
        String::new(),
        "x".repeat(StreamId::MAX_LEN + 1),
        "a\u{0}b".into(),
    ] {
        let err = StreamId::new(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidStreamId { .. }), "{err}");
    }
    let err = store
        .append(&s, ExpectedVersion::NoStream, vec![ev("A", b"{}")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{err}"
    );

    assert_eq!(all(&store).await, before);
    assert_eq!(store.next_position().await.unwrap(), 2);
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(1));
    drop(store);
    let store = open(dir.path());
    assert_eq!(all(&store).await, before);
    // Still writable at the right place.
    let out = store
        .append(&s, ExpectedVersion::Exact(1), vec![ev("A", b"{}")])
        .await
        .unwrap();
    assert_eq!((out.first_version, out.first_position), (2, 2));
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data")]
enum Counter {
    Added { n: u32 },
}

impl DomainEvent for Counter {
    fn event_types() -> &'static [&'static str] {
        &["Added"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payloads_and_unknown_types_fail_to_decode_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = sid("counter-1");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![
                ev("Added", br#"{"n":1}"#),
                ev("Added", br#"{"n":"not a number"}"#),
                ev("Renamed", br#"{}"#),
            ],
        )
        .await
        .unwrap();
    let codec = JsonCodec::<Counter>::new();
    let events = store
        .read_stream(&s, 0, Direction::Forward, 10)
        .await
        .unwrap();
    assert!(matches!(
        codec.decode(&events[0]),
        Ok(Some(Counter::Added { n: 1 }))
    ));
    let err = codec.decode(&events[1]).unwrap_err();
    assert!(
        matches!(err, Error::Decode { ref event_type, .. } if event_type == "Added"),
        "{err}"
    );
    let err = codec.decode(&events[2]).unwrap_err();
    assert!(
        matches!(err, Error::UnknownEventType { ref event_type, .. } if event_type == "Renamed"),
        "{err}"
    );
    // The bytes are kept exactly; nothing else changed.
    assert_eq!(events[1].payload, br#"{"n":"not a number"}"#);
    assert_eq!(store.next_position().await.unwrap(), 3);
}

/// Replaces the stored record at `position` in the event log's first
/// segment directly, using the documented format (`log/` + 20-digit segment
/// id + `.seg`; frames of length (u32 BE) + CRC (u32 BE) + body: record
/// count (u32 BE), then each record as length (u32 BE) + bytes). The frame's
/// CRC is left as it was, as damage on the disk would leave it.
fn damage_record(path: &Path, position: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let file = path.join("log").join(format!("{:020}.seg", 0));
    let bytes = std::fs::read(&file).unwrap();
    let u32_at =
        |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let mut out = Vec::with_capacity(bytes.len());
    let (mut offset, mut at) = (0usize, 0u64);
    let mut f = Some(f);
    loop {
        let n = u32_at(&bytes, offset);
        if n < 4 {
            break;
        }
        let body = &bytes[offset + 8..offset + 8 + n];
        let count = u32_at(body, 0);
        let mut new_body = body[..4].to_vec();
        let mut rest = 4;
        for _ in 0..count {
            let len = u32_at(body, rest);
            let mut record = body[rest + 4..rest + 4 + len].to_vec();
            rest += 4 + len;
            if at == position {
                if let Some(f) = f.take() {
                    f(&mut record);
                }
            }
            new_body.extend_from_slice(&u32::try_from(record.len()).unwrap().to_be_bytes());
            new_body.extend_from_slice(&record);
            at += 1;
        }
        out.extend_from_slice(&u32::try_from(new_body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&bytes[offset + 4..offset + 8]);
        out.extend_from_slice(&new_body);
        offset += 8 + n;
    }
    assert!(f.is_none(), "no record at position {position}");
    out.resize(bytes.len(), 0);
    std::fs::write(&file, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_record_is_reported_by_position_and_other_streams_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (sid("a-1"), sid("b-1"));
    {
        let store = open(dir.path());
        store
            .append(
                &a,
                ExpectedVersion::NoStream,
                vec![ev("A", b"a0"), ev("A", b"a1")],
            )
            .await
            .unwrap();
        store
            .append(&b, ExpectedVersion::NoStream, vec![ev("B", b"b0")])
            .await
            .unwrap();
        store
            .append(&a, ExpectedVersion::Exact(1), vec![ev("A", b"a2")])
            .await
            .unwrap();
    }
    // Flip one byte of the payload of a's version 1 (global position 1).
    damage_record(dir.path(), 1, |v| {
        let i = v.len() - 6;
        v[i] ^= 0x40;
    });

    let store = open(dir.path());
    let err = store
        .read_stream(&a, 0, Direction::Forward, 10)
        .await
        .unwrap_err();
    match &err {
        Error::Corrupted { location, .. } => {
            assert!(location.contains("global position 1"), "{location}");
            assert!(location.contains("a-1"), "{location}");
        }
        other => panic!("expected Corrupted, got {other}"),
    }
    let err = store.read_all(0, 10).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { location, .. } if location.contains("global position 1")),
        "{err}"
    );
    // Around the damage everything reads.
    let b_events = store
        .read_stream(&b, 0, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(b_events.len(), 1);
    assert_eq!(b_events[0].payload, b"b0");
    let a0 = store
        .read_stream(&a, 0, Direction::Forward, 1)
        .await
        .unwrap();
    assert_eq!(a0[0].payload, b"a0");
    let a2 = store
        .read_stream(&a, 2, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(a2[0].payload, b"a2");
    let tail = store.read_all(2, 10).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2, 3]
    );
    // The store still appends after the damage.
    let out = store
        .append(&b, ExpectedVersion::Exact(0), vec![ev("B", b"b1")])
        .await
        .unwrap();
    assert_eq!(out.first_position, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_record_is_corrupted_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .append(&sid("a-1"), ExpectedVersion::NoStream, vec![ev("A", b"a0")])
            .await
            .unwrap();
    }
    damage_record(dir.path(), 0, |v| v.truncate(3));
    let store = open(dir.path());
    let err = store.read_all(0, 10).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { location, .. } if location.contains("global position 0")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_across_segment_rolls_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = sid("big-1");
    let payloads: Vec<Vec<u8>> = (0..6u8)
        .map(|i| {
            (0..600_000u32)
                .map(|j| j.to_le_bytes()[0].wrapping_mul(i + 1))
                .collect()
        })
        .collect();
    {
        let store = open(dir.path());
        let mut exp = ExpectedVersion::NoStream;
        for p in &payloads {
            exp = store
                .append(&s, exp, vec![ev("Big", p)])
                .await
                .unwrap()
                .next_expected();
        }
    }
    // The first segment is 1 MiB: the log rolled over to larger ones.
    let segments = std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert!(segments > 2, "expected several segments, found {segments}");
    let store = open(dir.path());
    let read = store
        .read_stream(&s, 0, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(
        read.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
        payloads
    );
}

/// Appends of `n` batches of 100 1 KiB events (enough to fill several
/// segments), returning each batch's stream, events and first position.
async fn fill_segments(store: &SledEventStore, n: usize) -> Vec<(StreamId, Vec<NewEvent>, u64)> {
    let mut out = Vec::new();
    for b in 0..n {
        let stream = sid(&format!("fill-{b}"));
        let events: Vec<NewEvent> = (0..100).map(|_| ev("Filled", &[b'x'; 1024])).collect();
        let outcome = store
            .append(&stream, ExpectedVersion::NoStream, events.clone())
            .await
            .unwrap();
        out.push((stream, events, outcome.first_position));
    }
    out
}

/// Re-appends every batch: each must be recognised by its event ids and
/// answered with its original positions, adding nothing.
async fn reappend_all(store: &SledEventStore, batches: &[(StreamId, Vec<NewEvent>, u64)]) {
    let next = store.next_position().await.unwrap();
    for (stream, events, first) in batches {
        let again = store
            .append(stream, ExpectedVersion::NoStream, events.clone())
            .await
            .unwrap();
        assert_eq!(again.first_position, *first, "re-append of {stream}");
    }
    assert_eq!(
        store.next_position().await.unwrap(),
        next,
        "re-appends added events"
    );
}

fn id_tables(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut tables: Vec<_> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ids"))
        .collect();
    tables.sort();
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_in_sealed_segments_are_found_with_their_tables_missing_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let batches = {
        let store = open(dir.path());
        let batches = fill_segments(&store, 160).await;
        reappend_all(&store, &batches).await;
        batches
    };
    let tables = id_tables(dir.path());
    assert!(
        tables.len() >= 3,
        "sealed segments have id tables: {tables:?}"
    );

    // Reopened with every table in place.
    {
        let store = open(dir.path());
        reappend_all(&store, &batches).await;
    }
    // One table gone, one torn, one with a flipped byte: rebuilt from the log.
    std::fs::remove_file(&tables[0]).unwrap();
    let torn = std::fs::read(&tables[1]).unwrap();
    std::fs::write(&tables[1], &torn[..torn.len() / 2]).unwrap();
    let mut flipped = std::fs::read(&tables[2]).unwrap();
    flipped[40] ^= 1;
    std::fs::write(&tables[2], &flipped).unwrap();
    std::fs::write(dir.path().join("log").join("leftover.ids.tmp"), b"half").unwrap();
    {
        let store = open(dir.path());
        reappend_all(&store, &batches).await;
        assert_eq!(all(&store).await.len(), 16_000);
    }
    assert_eq!(id_tables(dir.path()), tables, "the tables were rebuilt");
    assert!(!dir.path().join("log").join("leftover.ids.tmp").exists());
    let store = open(dir.path());
    reappend_all(&store, &batches).await;
}
