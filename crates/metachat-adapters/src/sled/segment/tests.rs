use proptest::prelude::*;

use super::*;

fn records(batch: &[Vec<u8>]) -> Vec<&[u8]> {
    batch.iter().map(Vec::as_slice).collect()
}

#[test]
fn batches_survive_a_reopen_across_segments_on_real_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = DirStorage::new(dir.path()).expect("storage");
    let (mut log, recovery) = SegmentLog::open(storage.clone(), 256, None).expect("open");
    assert_eq!(recovery, Recovery::default());
    let mut written = Vec::new();
    for i in 0..40u8 {
        let batch: Vec<Vec<u8>> = (0..=i % 3)
            .map(|j| vec![i; usize::from(j) * 20 + 1])
            .collect();
        log.append(&records(&batch)).expect("append");
        written.push(batch);
    }
    // One batch larger than a segment gets a segment of its own.
    let big = vec![vec![7u8; 1000]];
    log.append(&records(&big)).expect("a large batch");
    written.push(big);
    log.sync().expect("sync");
    assert_eq!(log.batches().expect("read"), written);
    drop(log);
    assert!(
        storage.list().expect("list").len() > 2,
        "the log rolled over"
    );
    let (log, recovery) = SegmentLog::open(storage, 256, None).expect("reopen");
    assert_eq!(recovery.torn_at, None);
    assert_eq!(recovery.end, log.end());
    assert_eq!(log.batches().expect("read"), written);
}

#[test]
fn an_empty_batch_is_refused() {
    let (mut log, _) = SegmentLog::open(SimStorage::new(), 1024, None).expect("open");
    assert!(matches!(
        log.append(&[]),
        Err(SegmentError::BadBatch { .. })
    ));
    assert!(log.batches().expect("read").is_empty());
}

#[test]
fn a_sync_is_one_fdatasync_and_none_when_idle() {
    let storage = SimStorage::new();
    let (mut log, _) = SegmentLog::open(storage.clone(), 4096, None).expect("open");
    let before = storage.syncs();
    for _ in 0..10 {
        log.append(&[b"x".as_slice()]).expect("append");
    }
    log.sync().expect("sync");
    assert_eq!(storage.syncs(), before + 1, "ten appends, one sync");
    log.sync().expect("idle sync");
    assert_eq!(storage.syncs(), before + 1, "nothing appended: no sync");
}

#[test]
fn damage_to_a_full_segment_is_reported_by_readers_not_cut_off() {
    let storage = SimStorage::new();
    let (mut log, _) = SegmentLog::open(storage.clone(), 64, None).expect("open");
    log.append(&[[1u8; 30].as_slice()]).expect("append");
    log.append(&[[2u8; 30].as_slice()])
        .expect("append: rolls over");
    log.sync().expect("sync");
    drop(log);
    let first = storage.open(0).expect("segment 0");
    first.write_at(20, &[9]).expect("damage");
    first.sync_data().expect("sync");
    let (log, recovery) = SegmentLog::open(storage, 64, None).expect("open");
    assert_eq!(recovery.torn_at, None, "an earlier segment is never cut");
    let frame = log
        .reader()
        .read(Location::default())
        .expect("read")
        .expect("a frame");
    assert!(!frame.intact);
    match log.batches() {
        Err(SegmentError::Corrupted { at, .. }) => assert_eq!(at, Location::default()),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

/// A damaged frame before the location known to be synced is damage, not a
/// torn write: it is kept with every frame after it.
#[test]
fn a_bad_frame_before_the_synced_location_keeps_what_follows() {
    let storage = SimStorage::new();
    let (mut log, _) = SegmentLog::open(storage.clone(), 4096, None).expect("open");
    for i in 0..3u8 {
        log.append(&[[i; 20].as_slice()]).expect("append");
    }
    log.sync().expect("sync");
    let synced = log.end();
    drop(log);
    storage
        .open(0)
        .expect("segment")
        .write_at(12, &[0xff])
        .expect("damage");
    let (log, recovery) = SegmentLog::open(storage.clone(), 4096, Some(synced)).expect("open");
    assert_eq!((recovery.damaged, recovery.torn_at), (1, None));
    assert_eq!(log.end(), synced);
    let second = log
        .reader()
        .read(Location {
            segment: 0,
            offset: 36,
        })
        .expect("read")
        .expect("frame");
    assert!(second.intact);
    // Without the synced location the same damage reads as a torn tail.
    drop(log);
    let (log, recovery) = SegmentLog::open(storage, 4096, None).expect("open");
    assert_eq!(recovery.torn_at, Some(Location::default()));
    assert!(log.batches().expect("read").is_empty());
}

/// A damaged frame that starts before the synced location and runs past
/// it is kept whole. Cutting its part past the location could leave a frame
/// that the next open reads as intact, a different log (found by the
/// `segment_log` fuzz target).
#[test]
fn a_bad_frame_across_the_synced_location_is_kept_whole_and_recovery_is_idempotent() {
    // The last record is zeros, so the frame with its tail zeroed is intact.
    let frame = encode(&[b"head".as_slice(), [0u8; 40].as_slice()]).expect("frame");
    let keep = 24;
    let mut bytes = frame.clone();
    bytes[keep..].fill(0xca);
    let storage = SimStorage::new();
    storage.insert_segment(0, bytes.clone());
    let synced = Some(Location {
        segment: 0,
        offset: keep as u64,
    });
    let (log, first) = SegmentLog::open(storage.clone(), 4096, synced).expect("open");
    assert_eq!((first.damaged, first.torn_at), (1, None));
    assert_eq!(log.end().offset, frame.len() as u64);
    drop(log);
    let (log, second) = SegmentLog::open(storage.clone(), 4096, synced).expect("reopen");
    assert_eq!(second, first);
    assert_eq!(log.end().offset, frame.len() as u64);
    let mut on_disk = vec![0u8; bytes.len()];
    storage
        .open(0)
        .expect("segment")
        .read_at(0, &mut on_disk)
        .expect("read");
    assert_eq!(on_disk, bytes, "the damaged frame is left as it was");
}

#[derive(Debug, Clone)]
enum Op {
    /// A batch of records of these sizes.
    Append(Vec<usize>),
    Sync,
    /// Power fails (with this seed); the log is reopened.
    PowerLoss(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0usize..200, 1..4).prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => any::<u64>().prop_map(Op::PowerLoss),
    ]
}

/// Runs `ops` with power losses on a simulated disk; checks after every
/// reopen that the log holds a prefix of what was appended (no torn or
/// reordered batch, nothing made up) that includes every batch a sync
/// acknowledged. `Err` names the first violation.
fn run(ops: &[Op], ignore_syncs: bool) -> Result<(), String> {
    let storage = SimStorage::new();
    storage.ignore_syncs(ignore_syncs);
    let (mut log, _) = SegmentLog::open(storage.clone(), 512, None).map_err(|e| e.to_string())?;
    let mut written: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut acked = 0;
    let mut counter = 0u8;
    for op in ops {
        match op {
            Op::Append(sizes) => {
                let batch: Vec<Vec<u8>> = sizes
                    .iter()
                    .map(|&n| {
                        counter = counter.wrapping_add(1);
                        vec![counter; n]
                    })
                    .collect();
                log.append(&records(&batch)).map_err(|e| e.to_string())?;
                written.push(batch);
            }
            Op::Sync => {
                log.sync().map_err(|e| e.to_string())?;
                acked = written.len();
            }
            Op::PowerLoss(seed) => {
                drop(log);
                storage.power_loss(*seed);
                let (reopened, recovery) =
                    SegmentLog::open(storage.clone(), 512, None).map_err(|e| e.to_string())?;
                log = reopened;
                let got = log.batches().map_err(|e| e.to_string())?;
                if got.len() < acked {
                    return Err(format!(
                        "{} of {acked} acknowledged batches survived",
                        got.len()
                    ));
                }
                if got[..] != written[..got.len().min(written.len())] || got.len() > written.len() {
                    return Err("the log is not a prefix of what was appended".into());
                }
                if recovery.end != log.end() {
                    return Err("recovery reported another end".into());
                }
                written.truncate(got.len());
                acked = got.len();
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn power_loss_keeps_every_acknowledged_batch_and_no_torn_one(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        prop_assert_eq!(run(&ops, false), Ok(()));
    }
}

/// The mutant: syncs that do nothing. Some power loss must then lose an
/// acknowledged batch, or the property above could not catch a missing
/// sync.
#[test]
fn without_syncs_a_power_loss_loses_acknowledged_batches() {
    let ops: Vec<Op> = (0..20u64)
        .flat_map(|seed| {
            [
                Op::Append(vec![50, 60]),
                Op::Append(vec![10]),
                Op::Sync,
                Op::PowerLoss(seed),
            ]
        })
        .collect();
    assert_eq!(run(&ops, false), Ok(()), "with real syncs nothing is lost");
    let failure = run(&ops, true).expect_err("the mutant must be caught");
    assert!(failure.contains("acknowledged"), "{failure}");
}

/// A power loss in the middle of an unsynced batch leaves a torn frame:
/// recovery cuts it off, reports it, and keeps the synced batch.
#[test]
fn a_torn_batch_is_cut_off_and_reported() {
    let mut torn = 0;
    for seed in 0..64 {
        let storage = SimStorage::new();
        let (mut log, _) = SegmentLog::open(storage.clone(), 4096, None).expect("open");
        log.append(&[b"synced".as_slice()]).expect("append");
        log.sync().expect("sync");
        log.append(&[[5u8; 300].as_slice(), [6u8; 300].as_slice()])
            .expect("append, never synced");
        drop(log);
        storage.power_loss(seed);
        let (log, recovery) = SegmentLog::open(storage.clone(), 4096, None).expect("reopen");
        let batches = log.batches().expect("read");
        assert_eq!(batches[0], vec![b"synced".to_vec()], "seed {seed}");
        match recovery.torn_at {
            Some(at) => {
                torn += 1;
                assert_eq!(at.segment, 0, "seed {seed}");
                assert!(at.offset > 0, "seed {seed}: after the synced batch");
                assert_eq!(
                    batches.len(),
                    1,
                    "seed {seed}: the torn batch is not served"
                );
                assert!(recovery.torn_bytes > 0);
                // The cut is durable: another power loss changes nothing.
                drop(log);
                storage.power_loss(seed + 1000);
                let (again, second) = SegmentLog::open(storage, 4096, None).expect("reopen again");
                assert_eq!(second.torn_at, None, "seed {seed}");
                assert_eq!(again.batches().expect("read"), batches);
            }
            None => assert!(batches.len() <= 2, "seed {seed}"),
        }
    }
    assert!(torn > 10, "only {torn} of 64 power losses tore the batch");
}
