//! Reads while the index moves from the [`IndexBuffer`] into sled: every
//! read gives what a model of the log says, whatever part of the index is
//! in memory, being moved, or in sled.

use metachat_core::event::{NewEvent, StreamId};
use metachat_core::store::{Direction, EventAppender, ExpectedVersion};
use proptest::prelude::*;

use super::super::segment::SimStorage;
use super::super::{Durability, SledConfig};
use super::*;

const STREAMS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// This many events to this stream.
    Append(usize, usize),
    /// Moves the buffer into sled; halfway through (after this fraction of
    /// the entries, in tenths) every read is checked.
    Drain(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..STREAMS, 1usize..4).prop_map(|(s, n)| Op::Append(s, n)),
        1 => (0usize..=10).prop_map(Op::Drain),
    ]
}

fn stream(i: usize) -> StreamId {
    StreamId::new(format!("s-{i}")).expect("stream id")
}

/// Every read of every stream (forward and backward, from each version,
/// with a few limits) and of the whole log, against `model`: the stream
/// of each position.
fn check(shared: &StoreShared, model: &[usize]) -> std::result::Result<(), String> {
    let all = shared.read_all(0, usize::MAX).map_err(|e| e.to_string())?;
    let got: Vec<(String, u64)> = all
        .iter()
        .map(|e| (e.stream_id.to_string(), e.position))
        .collect();
    let want: Vec<(String, u64)> = model
        .iter()
        .enumerate()
        .map(|(p, &s)| (stream(s).to_string(), p as u64))
        .collect();
    if got != want {
        return Err(format!("read_all: {got:?}, want {want:?}"));
    }
    for s in 0..STREAMS {
        let positions: Vec<u64> = model
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m == s)
            .map(|(p, _)| p as u64)
            .collect();
        let id = stream(s);
        // (version, position) of each event of the stream, in version order.
        let events: Vec<(u64, u64)> = positions
            .iter()
            .enumerate()
            .map(|(v, &p)| (v as u64, p))
            .collect();
        for from in 0..=positions.len() {
            for limit in [1, 2, usize::MAX] {
                let forward: Vec<_> = events.iter().copied().skip(from).take(limit).collect();
                let backward: Vec<_> = events
                    .iter()
                    .copied()
                    .take(from + 1)
                    .rev()
                    .take(limit)
                    .collect();
                for (direction, want) in [
                    (Direction::Forward, forward),
                    (Direction::Backward, backward),
                ] {
                    let got: Vec<(u64, u64)> = shared
                        .read_stream(&id, from as u64, direction, limit)
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(|e| (e.version, e.position))
                        .collect();
                    if got != want {
                        return Err(format!(
                            "{id} {direction:?} from {from} limit {limit}: {got:?}, want {want:?}"
                        ));
                    }
                }
            }
        }
        let head = shared
            .head_in_tree(&id, u64::MAX)
            .map_err(|e| e.to_string())?;
        let want = positions.len().checked_sub(1).map(|v| v as u64);
        if head != want {
            return Err(format!("{id} head in the index: {head:?}, want {want:?}"));
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> std::result::Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = SledConfig::new(dir.path())
        .durability(Durability::Sync)
        .simulated_log(SimStorage::new());
    let store = SledEventStore::open(config).map_err(|e| e.to_string())?;
    let shared = store.inner.shared.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let mut model = Vec::new();
    for op in ops {
        match *op {
            Op::Append(s, n) => {
                let events = (0..n).map(|_| NewEvent::new("E", vec![1u8; 8])).collect();
                rt.block_on(store.append(&stream(s), ExpectedVersion::Any, events))
                    .map_err(|e| e.to_string())?;
                model.extend(std::iter::repeat_n(s, n));
            }
            Op::Drain(tenths) => {
                let mut midway = Ok(());
                shared
                    .buffer
                    .drain(|entries| {
                        // What `index::insert_entries` puts into sled, a part at a time.
                        let folded = index::fold_runs(entries);
                        let cut = folded.len() * tenths / 10;
                        for (i, (k, v)) in folded.iter().enumerate() {
                            if i == cut {
                                midway = check(&shared, &model);
                            }
                            shared.events.insert(*k, v.as_ref()).map_err(from_sled)?;
                        }
                        if cut == folded.len() {
                            midway = check(&shared, &model);
                        }
                        Ok(())
                    })
                    .map_err(|e| e.to_string())?;
                midway.map_err(|e| format!("while draining: {e}"))?;
            }
        }
        check(&shared, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reads_agree_with_the_log_wherever_the_index_is(ops in prop::collection::vec(op(), 1..30)) {
        run(&ops).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn a_clean_close_moves_the_whole_index_into_sled() {
    let dir = tempfile::tempdir().expect("dir");
    let open = || {
        SledEventStore::open(SledConfig::new(dir.path()).simulated_log(SimStorage::new()))
            .expect("open")
    };
    let store = open();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for i in 0..5 {
        let events = vec![NewEvent::new("E", vec![i; 4])];
        rt.block_on(store.append(&stream(0), ExpectedVersion::Any, events))
            .expect("append");
    }
    let shared = store.inner.shared.clone();
    assert!(shared.buffer.len() > 0, "the index waits in memory first");
    drop(store);
    assert_eq!(shared.buffer.len(), 0);
    assert_eq!(
        index::marker(&shared.events).expect("marker").map(|m| m.0),
        Some(5)
    );
}

/// A store under `Durability::Sync` on a simulated log, its shared state
/// and the directory of its sled database (removed when dropped).
fn sim_store() -> (tempfile::TempDir, SledEventStore, Arc<StoreShared>) {
    let dir = tempfile::tempdir().expect("dir");
    let config = SledConfig::new(dir.path())
        .durability(Durability::Sync)
        .simulated_log(SimStorage::new());
    let store = SledEventStore::open(config).expect("open");
    let shared = store.inner.shared.clone();
    (dir, store, shared)
}

thread_local! {
    /// Called by a forward stream read between finding the entry it starts
    /// at and scanning from there.
    pub(crate) static BETWEEN_LOOKUP_AND_SCAN: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
        const { std::cell::RefCell::new(None) };
}

/// A checkpoint that folds the runs a forward read is about to scan into
/// one entry under another key, between the read's lookup and its scan:
/// the read finds no entry for the version it wants, looks again and gives
/// every version.
#[test]
fn a_read_looks_again_when_a_checkpoint_folds_its_runs_away() {
    let (_dir, store, shared) = sim_store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let id = stream(0);
    for _ in 0..4 {
        let events = vec![NewEvent::new("E", vec![1u8; 8])];
        rt.block_on(store.append(&id, ExpectedVersion::Any, events))
            .expect("append");
    }
    let drains = std::rc::Rc::new(std::cell::Cell::new(0));
    let hook = {
        let (shared, drains) = (shared.clone(), drains.clone());
        move || {
            shared
                .buffer
                .drain(|entries| index::insert_entries(&shared.events, entries))
                .expect("drain");
            drains.set(drains.get() + 1);
        }
    };
    BETWEEN_LOOKUP_AND_SCAN.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    let got = shared.read_stream(&id, 2, Direction::Forward, usize::MAX);
    BETWEEN_LOOKUP_AND_SCAN.with(|h| *h.borrow_mut() = None);
    let versions: Vec<u64> = got.expect("read").iter().map(|e| e.version).collect();
    assert_eq!(versions, [2, 3]);
    assert_eq!(
        drains.get(),
        2,
        "the first scan met a gap and the read looked again"
    );
    let folded = shared.events.scan_prefix(keys::stream_prefix(&id)).count();
    assert_eq!(folded, 1, "the four runs are one entry in sled");
}

/// Stream reads while checkpoints fold the runs they walk into entries
/// under other keys: every read gives the versions asked for, in order,
/// whatever moved between its lookup and its scan.
#[test]
fn reads_stay_whole_while_checkpoints_fold_runs() {
    let (_dir, store, shared) = sim_store();
    let id = stream(0);
    let appends = 600u64;
    let writer = {
        let (store, shared, id) = (store.clone(), shared.clone(), id.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            for i in 0..appends {
                let events = vec![NewEvent::new("E", vec![1u8; 8])];
                rt.block_on(store.append(&id, ExpectedVersion::Any, events))
                    .expect("append");
                if i % 7 == 6 {
                    shared
                        .buffer
                        .drain(|entries| index::insert_entries(&shared.events, entries))
                        .expect("drain");
                }
            }
        })
    };
    let mut reads = 0u64;
    while !writer.is_finished() || reads < 50 {
        let Some(head) = shared.published_head(&id).expect("head") else {
            continue;
        };
        let from = (reads * 13) % (head + 1);
        for direction in [Direction::Forward, Direction::Backward] {
            let got: Vec<u64> = shared
                .read_stream(&id, from, direction, 64)
                .expect("read")
                .iter()
                .map(|e| e.version)
                .collect();
            let want: Vec<u64> = match direction {
                // At least up to the head seen before the read; more if
                // appends were published since.
                Direction::Forward => {
                    let seen = usize::try_from(head - from + 1).unwrap_or(usize::MAX);
                    (from..).take(got.len().max(seen.min(64))).collect()
                }
                Direction::Backward => (0..=from).rev().take(64).collect(),
            };
            assert_eq!(got, want, "{direction:?} from {from}");
        }
        reads += 1;
    }
    writer.join().expect("writer");
    let all = shared
        .read_stream(&id, 0, Direction::Forward, usize::MAX)
        .expect("read");
    assert_eq!(all.len() as u64, appends);
}
