//! The embedded store's event log on arbitrary segment bytes: its frame
//! body decoder (`segment::decode_body`) and its recovery
//! (`SegmentLog::open`), which reads every frame of the last segment and
//! cuts a torn tail.
//!
//! Input: byte 0 odd = the index says the log was synced up to offset
//! 4 × byte 1 (frames before it are never cut); the rest is segment 0.
//!
//! Invariants: no panic, errors are typed; the end lies within the segment;
//! recovery is idempotent (a second open finds no torn tail, the same end
//! and the same batches); after a recovery with no damage, a new batch
//! appends, syncs and reads back after the old ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_adapters::sled::segment::{decode_body, Location, SegmentLog, SimStorage};

fuzz_target!(|data: &[u8]| {
    let _ = decode_body(data);
    let [ctl, at, bytes @ ..] = data else {
        return;
    };
    let synced = (ctl & 1 == 1).then(|| Location {
        segment: 0,
        offset: u64::from(*at) * 4,
    });
    let disk = SimStorage::new();
    disk.insert_segment(0, bytes.to_vec());
    let Ok((log, first)) = SegmentLog::open(disk.clone(), 4096, synced) else {
        return;
    };
    let end = log.end();
    assert!(end.offset <= bytes.len() as u64 || bytes.is_empty());
    let batches = log.batches().ok();
    drop(log);
    let (mut log, second) = SegmentLog::open(disk, 4096, synced).expect("reopen after recovery");
    assert_eq!(second.torn_at, None, "recovery is not idempotent");
    assert_eq!(log.end(), end);
    assert_eq!(log.batches().ok(), batches);
    if let (Some(mut batches), 0) = (batches, first.damaged) {
        log.append(&[b"after recovery".as_slice()]).expect("append");
        log.sync().expect("sync");
        batches.push(vec![b"after recovery".to_vec()]);
        assert_eq!(log.batches().expect("read back"), batches);
    }
});
