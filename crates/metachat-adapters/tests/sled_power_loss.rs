//! Power loss, simulated: the event log of the store runs on a
//! [`SimStorage`], a disk whose unsynced writes a power loss drops or tears
//! at a random byte (a SIGKILL keeps the page cache, so it cannot show a
//! missing sync; this can). The sled index stays on a real directory and is
//! either kept (under periodic durability it is then ahead of what the log
//! kept) or removed (the store re-indexes the whole log).
//!
//! * A property test over many seeds: every acknowledged append survives
//!   (under `Sync` every `Ok`; under `Periodic` every `Ok` before the last
//!   `close`), no torn batch is visible, positions stay gap-free, and
//!   reopening never panics.
//! * The mutant: with syncs that do nothing, some power loss loses an
//!   acknowledged append.
//! * Counting syncs: when an append returns `Ok`, what the disk holds
//!   durably already contains it; and concurrent appends share syncs.

use std::time::Duration;

use metachat_adapters::sled::segment::SimStorage;
use metachat_adapters::sled::{Durability, SledConfig, SledEventStore};
use metachat_core::event::{EventId, NewEvent, StreamId};
use metachat_core::store::{Direction, EventAppender, EventReader, ExpectedVersion};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A batch of events of these payload sizes to stream `0..3`.
    Append(usize, Vec<usize>),
    /// `close()`: everything acknowledged so far is made durable.
    Close,
    /// Power fails with this seed; the index is kept (`false`) or removed.
    PowerLoss(u64, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, prop::collection::vec(0usize..300, 1..5))
            .prop_map(|(s, sizes)| Op::Append(s, sizes)),
        1 => Just(Op::Close),
        2 => (any::<u64>(), any::<bool>()).prop_map(|(seed, wipe)| Op::PowerLoss(seed, wipe)),
    ]
}

fn config(dir: &std::path::Path, disk: &SimStorage, periodic: bool) -> SledConfig {
    let durability = if periodic {
        // Never fires in a test: only `close` syncs.
        Durability::Periodic(Duration::from_secs(3600))
    } else {
        Durability::Sync
    };
    SledConfig::new(dir)
        .durability(durability)
        .simulated_log(disk.clone())
}

/// A batch as appended: stream and event ids.
type Batch = (StreamId, Vec<EventId>);

/// Runs `ops`; `Err` names the first broken promise.
async fn run(ops: &[Op], periodic: bool, ignore_syncs: bool) -> Result<(), String> {
    let mut disk = SimStorage::new();
    disk.ignore_syncs(ignore_syncs);
    let mut dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut store =
        SledEventStore::open(config(dir.path(), &disk, periodic)).map_err(|e| e.to_string())?;
    let streams: Vec<StreamId> = (0..3)
        .map(|i| StreamId::new(format!("s-{i}")).expect("stream id"))
        .collect();
    let mut written: Vec<Batch> = Vec::new();
    let mut durable = 0;
    let mut counter = 0u8;
    for op in ops {
        match op {
            Op::Append(s, sizes) => {
                let events: Vec<NewEvent> = sizes
                    .iter()
                    .map(|&n| {
                        counter = counter.wrapping_add(1);
                        NewEvent::new("E", vec![counter; n])
                    })
                    .collect();
                let ids = events.iter().map(|e| e.event_id).collect();
                store
                    .append(&streams[*s], ExpectedVersion::Any, events)
                    .await
                    .map_err(|e| format!("append: {e}"))?;
                written.push((streams[*s].clone(), ids));
                if !periodic {
                    durable = written.len();
                }
            }
            Op::Close => {
                store.close().await.map_err(|e| format!("close: {e}"))?;
                durable = written.len();
            }
            Op::PowerLoss(seed, wipe) => {
                let after = disk.crash_copy(*seed);
                drop(store);
                if *wipe {
                    dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                }
                disk = after;
                disk.ignore_syncs(ignore_syncs);
                store = SledEventStore::open(config(dir.path(), &disk, periodic))
                    .map_err(|e| format!("reopen: {e}"))?;
                let log = store
                    .read_all(0, usize::MAX)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                // Gap-free positions; whole batches, a prefix of what was written.
                let mut at = 0;
                let mut kept = 0;
                for (stream, ids) in &written {
                    if at == log.len() {
                        break;
                    }
                    for id in ids {
                        let e = log.get(at).ok_or("a torn batch is visible")?;
                        if e.event_id != *id || &e.stream_id != stream {
                            return Err("the log is not a prefix of what was appended".into());
                        }
                        if e.position != at as u64 {
                            return Err(format!("position {} at index {at}", e.position));
                        }
                        at += 1;
                    }
                    kept += 1;
                }
                if at != log.len() {
                    return Err("events stored that no append wrote".into());
                }
                if kept < durable {
                    return Err(format!("{kept} of {durable} acknowledged appends survived"));
                }
                let next = store.next_position().await.map_err(|e| e.to_string())?;
                if next != at as u64 {
                    return Err(format!("next position {next}, {at} events"));
                }
                written.truncate(kept);
                durable = kept;
                // Each stream reads back exactly its surviving events.
                for stream in &streams {
                    let mine: Vec<EventId> = written
                        .iter()
                        .filter(|(s, _)| s == stream)
                        .flat_map(|(_, ids)| ids.iter().copied())
                        .collect();
                    let read = store
                        .read_stream(stream, 0, Direction::Forward, usize::MAX)
                        .await
                        .map_err(|e| format!("read {stream}: {e}"))?;
                    if read.iter().map(|e| e.event_id).collect::<Vec<_>>() != mine {
                        return Err(format!("stream {stream} reads other events"));
                    }
                    let head = store
                        .stream_version(stream)
                        .await
                        .map_err(|e| e.to_string())?;
                    if head != (mine.len() as u64).checked_sub(1) {
                        return Err(format!("stream {stream} at version {head:?}"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn power_loss_keeps_every_acknowledged_append_and_no_torn_batch(
        ops in prop::collection::vec(op(), 1..40),
        periodic in any::<bool>(),
    ) {
        prop_assert_eq!(block_on(run(&ops, periodic, false)), Ok(()));
    }
}

/// The mutant: syncs that report success and do nothing. A power loss must
/// then lose an acknowledged append, or the property could not see a
/// missing sync.
#[test]
fn without_syncs_a_power_loss_loses_acknowledged_appends() {
    let ops: Vec<Op> = (0..5u64)
        .flat_map(|seed| {
            [
                Op::Append(0, vec![40, 50]),
                Op::Append(1, vec![10]),
                Op::PowerLoss(seed, seed % 2 == 0),
            ]
        })
        .collect();
    assert_eq!(
        block_on(run(&ops, false, false)),
        Ok(()),
        "real syncs lose nothing"
    );
    let failure = block_on(run(&ops, false, true)).expect_err("the mutant must be caught");
    assert!(failure.contains("acknowledged"), "{failure}");
}

/// No append returns `Ok` before the sync covering it completed, nor does
/// a concurrent re-append of the same event: at every `Ok`, a store opened
/// on a copy of only the durable bytes holds the event. Concurrent
/// appenders share syncs (fewer syncs than appends).
#[test]
fn no_append_is_acknowledged_before_its_sync() {
    block_on(async {
        let disk = SimStorage::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledEventStore::open(config(dir.path(), &disk, false)).expect("open");
        let before = disk.syncs();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (store, disk) = (store.clone(), disk.clone());
            tasks.push(tokio::spawn(async move {
                let stream = StreamId::new(format!("w-{w}")).expect("stream id");
                let mut acked = Vec::new();
                for i in 0..10u8 {
                    let event = NewEvent::new("E", vec![i; 100]);
                    let id = event.event_id;
                    // The same event twice at once: one append, one
                    // idempotent re-append (answered from the first).
                    let append = || {
                        let (store, stream, event) = (store.clone(), stream.clone(), event.clone());
                        let disk = disk.clone();
                        async move {
                            let out = store
                                .append(&stream, ExpectedVersion::Any, vec![event])
                                .await
                                .expect("append");
                            // What survives a power loss now.
                            (disk.durable_copy(), id, out.first_position)
                        }
                    };
                    let (a, b) = tokio::join!(tokio::spawn(append()), tokio::spawn(append()));
                    let (a, b) = (a.expect("task"), b.expect("task"));
                    assert_eq!(
                        a.2, b.2,
                        "the re-append was answered with the append's position"
                    );
                    acked.push(a);
                    acked.push(b);
                }
                acked
            }));
        }
        let mut checks = Vec::new();
        for t in tasks {
            checks.extend(t.await.expect("task"));
        }
        let syncs = disk.syncs() - before;
        assert!(
            syncs > 0 && syncs <= 80,
            "{syncs} syncs for 80 appends (and 80 re-appends)"
        );
        for (copy, id, position) in checks {
            let dir = tempfile::tempdir().expect("tempdir");
            let reopened =
                SledEventStore::open(config(dir.path(), &copy, false)).expect("open copy");
            let got = reopened.read_all(position, 1).await.expect("read");
            assert_eq!(
                got.first().map(|e| e.event_id),
                Some(id),
                "position {position} was acknowledged before it was durable"
            );
        }
    });
}

/// A re-append of an event whose append is still being synced is answered
/// only once that sync completed (a re-append adds no event, but its `Ok`
/// promises the event is durable).
#[test]
fn a_re_append_during_the_appends_sync_waits_for_it() {
    block_on(async {
        let disk = SimStorage::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledEventStore::open(config(dir.path(), &disk, false)).expect("open");
        disk.sync_latency(std::time::Duration::from_millis(30));
        let stream = StreamId::new("slow-1").expect("stream id");
        for i in 0..5u8 {
            let event = NewEvent::new("E", vec![i; 100]);
            let first = {
                let (store, stream, event) = (store.clone(), stream.clone(), event.clone());
                tokio::spawn(async move {
                    store
                        .append(&stream, ExpectedVersion::Any, vec![event])
                        .await
                })
            };
            // The append is written and its sync under way.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let again = store
                .append(&stream, ExpectedVersion::Any, vec![event.clone()])
                .await
                .expect("re-append");
            let copy = disk.durable_copy();
            let first = first.await.expect("task").expect("append");
            assert_eq!(again.first_position, first.first_position);
            let dir = tempfile::tempdir().expect("tempdir");
            let reopened =
                SledEventStore::open(config(dir.path(), &copy, false)).expect("open copy");
            let got = reopened
                .read_all(first.first_position, 1)
                .await
                .expect("read");
            assert_eq!(
                got.first().map(|e| e.event_id),
                Some(event.event_id),
                "the re-append was acknowledged before the event was durable"
            );
        }
    });
}
