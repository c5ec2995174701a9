//! What every peer shares: the event shape, the dataset sizes, timing helpers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metachat_core::event::{wire, Envelope, NewEvent, StreamId, Timestamp};

/// Payload bytes of every event.
pub(crate) const PAYLOAD_LEN: usize = 1024;
/// Event type name of every event.
pub(crate) const EVENT_TYPE: &str = "BenchEvent";
/// Events per append in the batch workload, and per stream of the replay dataset.
pub(crate) const BATCH: usize = 1000;
/// Concurrent writers in the group-commit workload.
pub(crate) const WRITERS: usize = 64;
/// Streams of the replay dataset (each of `BATCH` events): 1,000,000 events in all.
pub(crate) const BIG_STREAMS: usize = 1000;
/// Streams of the replay dataset when the bench runs as a smoke test
/// (`cargo test --benches`): 10,000 events.
pub(crate) const SMOKE_STREAMS: usize = 10;
/// Page size of the replay workload (`read_all` limit).
pub(crate) const REPLAY_PAGE: usize = 4096;
/// Events per projection commit (the runner's default).
pub(crate) const PROJECTION_BATCH: usize = 512;
/// The stream of the replay dataset the aggregate-load workload reads.
pub(crate) const AGGREGATE_STREAM: &str = "bench-0";

/// A 1 KiB payload of pseudo-random (incompressible) bytes.
pub(crate) fn payload() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PAYLOAD_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// A fresh event (new id) with `payload`.
pub(crate) fn new_event(payload: &[u8]) -> NewEvent {
    NewEvent::new(EVENT_TYPE, payload.to_vec())
}

/// Name of stream `i` of a workload.
pub(crate) fn stream_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// A validated stream id.
pub(crate) fn stream_id(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream id")
}

/// The bytes the raw-file baseline appends for one event: a 4-byte length and
/// the event's record in the wire format the sled store persists.
pub(crate) fn raw_frame(payload: &[u8], stream: &str, version: u64, position: u64) -> Vec<u8> {
    let env = Envelope::recorded(
        new_event(payload),
        stream_id(stream),
        version,
        position,
        Timestamp::now(),
    );
    let record = wire::encode(&env);
    let len = u32::try_from(record.len()).expect("record under 4 GiB");
    let mut frame = Vec::with_capacity(4 + record.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&record);
    frame
}

/// Where the bench keeps its stores: `$METACHAT_BENCH_DIR` or the system temp dir.
pub(crate) fn bench_root() -> PathBuf {
    std::env::var_os("METACHAT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A fresh temporary directory under [`bench_root`], removed on drop.
pub(crate) fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(bench_root())
        .expect("create temp dir")
}

/// Times `f`.
pub(crate) fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Prints a line to stderr (progress of dataset generation).
pub(crate) fn note(what: &str, path: &Path, took: Duration) {
    eprintln!(
        "[setup] {what} in {:.1} s ({})",
        took.as_secs_f64(),
        path.display()
    );
}
