//! The sled indexes of the segment log: where each batch starts, each
//! stream's runs, each event id; and how far they reach. They are derived
//! from the log, written without a barrier of their own, and brought back
//! in line with the log on open ([`recover`]).

use metachat_core::event::Envelope;
use metachat_core::Result;

use super::error::{corrupted, from_sled};
use super::index_buffer::Entries;
use super::keys;
use super::log::{self, EventLog};
use super::segment::Location;

/// Events indexed per sled batch while re-indexing.
const REINDEX_BATCH: usize = 1 << 16;

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The next position: one past the last event of the log.
    pub(crate) next: u64,
    /// Events of the log the index did not hold, now indexed.
    pub(crate) reindexed: u64,
    /// Index entries for events the log no longer holds, now removed.
    pub(crate) dropped: u64,
}

/// Adds the sled index entries of one batch written at `at`: its location
/// and one run per stretch of one stream's consecutive versions (runs only
/// for positions from `runs_from` on). Event ids are indexed apart
/// ([`IdIndex`](super::id_index::IdIndex)).
pub(crate) fn add_batch(
    batch: &mut sled::Batch,
    at: Location,
    events: &[Envelope],
    runs_from: u64,
) {
    entries(at, events, runs_from, |k, v| batch.insert(k, v));
}

/// The same entries as [`add_batch`], as key-value pairs (for the
/// [`IndexBuffer`](super::index_buffer::IndexBuffer)).
pub(crate) fn batch_entries(at: Location, events: &[Envelope]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(2);
    entries(at, events, 0, |k, v| out.push((k, v)));
    out
}

/// Inserts buffered entries into sled, each on its own: an `apply_batch`
/// holds sled's process-wide write lock (every reader of every tree waits)
/// and writes sled's I/O buffer twice. Not atomic, so how far the index is
/// complete is recorded only after a barrier ([`insert_mark`]).
pub(crate) fn insert_entries(tree: &sled::Tree, entries: &Entries) -> Result<()> {
    for (k, v) in entries {
        tree.insert(k.as_slice(), v.as_slice()).map_err(from_sled)?;
    }
    Ok(())
}

fn entries(
    at: Location,
    events: &[Envelope],
    runs_from: u64,
    mut put: impl FnMut(Vec<u8>, Vec<u8>),
) {
    let Some(first) = events.first() else {
        return;
    };
    put(
        keys::batch(first.position).to_vec(),
        keys::pack([at.segment, at.offset]),
    );
    let mut i = 0;
    while i < events.len() {
        let start = &events[i];
        let mut j = i + 1;
        while j < events.len()
            && events[j].stream_id == start.stream_id
            && events[j].version == start.version + (j - i) as u64
        {
            j += 1;
        }
        if start.position >= runs_from {
            let run = keys::Run {
                first_version: start.version,
                position: start.position,
                count: (j - i) as u64,
            };
            put(
                keys::stream_entry(&start.stream_id, start.version),
                run.value().to_vec(),
            );
        }
        i = j;
    }
}

/// Records how far the log is indexed: up to position `next`, the log
/// ending at `end` after that batch (written with the batch's own entries,
/// which may reach the disk before the log does).
pub(crate) fn mark(batch: &mut sled::Batch, next: u64, end: Location) {
    batch.insert(keys::INDEXED, keys::pack([next, end.segment, end.offset]));
}

/// [`mark`] as a single insert: only once every entry up to `next` is on
/// disk (after a sled flush and barrier), since sled does not promise to
/// keep single inserts in order across a crash.
pub(crate) fn insert_mark(tree: &sled::Tree, next: u64, end: Location) -> Result<()> {
    tree.insert(keys::INDEXED, keys::pack([next, end.segment, end.offset]))
        .map(|_| ())
        .map_err(from_sled)
}

/// Records that the log was synced up to `end`: frames before it are never
/// cut off as a torn write on open.
pub(crate) fn mark_synced(batch: &mut sled::Batch, end: Location) {
    batch.insert(keys::SYNCED, keys::pack([end.segment, end.offset]));
}

/// [`mark_synced`] as a single insert, after the sync it records.
pub(crate) fn insert_synced(tree: &sled::Tree, end: Location) -> Result<()> {
    tree.insert(keys::SYNCED, keys::pack([end.segment, end.offset]))
        .map(|_| ())
        .map_err(from_sled)
}

/// How far the log is indexed (next position, the log's end there), if it is.
pub(crate) fn marker(tree: &sled::Tree) -> Result<Option<(u64, Location)>> {
    let Some(v) = tree.get(keys::INDEXED).map_err(from_sled)? else {
        return Ok(None);
    };
    let [next, segment, offset] = keys::unpack::<3>(&v, || "index marker".into())?;
    Ok(Some((next, Location { segment, offset })))
}

/// Up to where the log is known to have been synced, if recorded.
pub(crate) fn synced(tree: &sled::Tree) -> Result<Option<Location>> {
    let Some(v) = tree.get(keys::SYNCED).map_err(from_sled)? else {
        return Ok(None);
    };
    let [segment, offset] = keys::unpack::<2>(&v, || "synced marker".into())?;
    Ok(Some(Location { segment, offset }))
}

/// A batch read back: its events, where it starts, where the next starts.
pub(crate) struct ReadBatch {
    pub(crate) events: Vec<Envelope>,
    pub(crate) at: Location,
    pub(crate) next: Option<Location>,
}

/// The batch at `at` (or, at the end of a segment's frames, the first of
/// the next segment), decoded; it must be whole and start at position
/// `first`. `None` past the end of the log.
pub(crate) fn read_batch(log: &EventLog, at: Location, first: u64) -> Result<Option<ReadBatch>> {
    let Some(frame) = log.reader().read(at)? else {
        return Ok(None);
    };
    let at = frame.at;
    let where_ = || format!("event log segment {} offset {}", at.segment, at.offset);
    let records = match (frame.intact, frame.records) {
        (true, Some(r)) => r,
        _ => return Err(corrupted(where_(), "batch fails its check")),
    };
    let mut events = Vec::with_capacity(records.len());
    for r in &records {
        let env = log::decode_record(r, true, where_)?;
        if env.position != first + events.len() as u64 {
            return Err(corrupted(where_(), "batch holds unexpected positions"));
        }
        events.push(env);
    }
    Ok(Some(ReadBatch {
        events,
        at,
        next: frame.next,
    }))
}

/// Brings the index in line with the log (which [`EventLog::open`] synced
/// whole, so the marker it leaves says synced): indexes batches past the marker,
/// or (after a power loss took back batches written but never synced, under
/// periodic durability) removes entries of events the log no longer holds.
/// Runs and ids are only written from position `runs_from` on (the older
/// ones exist: see the legacy migration).
pub(crate) fn recover(tree: &sled::Tree, log: &EventLog, runs_from: u64) -> Result<Recovered> {
    let end = log.writer().end();
    let (mut next, mut at) = marker(tree)?.unwrap_or_default();
    if at > end {
        return drop_beyond(tree, log, end);
    }
    let mut out = Recovered::default();
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    while at < end {
        let Some(read) = read_batch(log, at, next)? else {
            break;
        };
        let n = read.events.len();
        add_batch(&mut batch, read.at, &read.events, runs_from);
        next += n as u64;
        out.reindexed += n as u64;
        pending += n;
        at = read.next.unwrap_or(end);
        if pending >= REINDEX_BATCH {
            mark(&mut batch, next, at);
            mark_synced(&mut batch, at);
            tree.apply_batch(std::mem::take(&mut batch))
                .map_err(from_sled)?;
            pending = 0;
        }
    }
    if out.reindexed > 0 {
        mark(&mut batch, next, end);
        mark_synced(&mut batch, end);
        tree.apply_batch(batch).map_err(from_sled)?;
        tracing::info!(
            events = out.reindexed,
            "event log: indexed what the index lacked"
        );
    }
    out.next = next;
    Ok(out)
}

/// Removes the event-id entries an earlier version kept in sled (ids are
/// now indexed beside the log). Returns how many there were.
pub(crate) fn remove_old_ids(tree: &sled::Tree) -> Result<u64> {
    let mut removed = 0u64;
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in tree
            .scan_prefix([keys::EVENT_ID])
            .keys()
            .take(REINDEX_BATCH)
        {
            batch.remove(k.map_err(from_sled)?);
            n += 1;
        }
        if n == 0 {
            return Ok(removed);
        }
        tree.apply_batch(batch).map_err(from_sled)?;
        removed += n;
    }
}

/// The index reaches past the log's end: find the last batch the log holds
/// and remove every entry after it.
fn drop_beyond(tree: &sled::Tree, log: &EventLog, end: Location) -> Result<Recovered> {
    let indexed = marker(tree)?.map_or(0, |(n, _)| n);
    let mut next = 0;
    for item in tree.scan_prefix([keys::BATCH]).rev() {
        let (k, v) = item.map_err(from_sled)?;
        let first = keys::position_of_batch_key(&k)
            .ok_or_else(|| corrupted("batch index".into(), "malformed key"))?;
        let [segment, offset] = keys::unpack::<2>(&v, || format!("batch index of {first}"))?;
        let at = Location { segment, offset };
        if at < end {
            let read = read_batch(log, at, first)?
                .ok_or_else(|| corrupted(format!("global position {first}"), "batch is missing"))?;
            next = first + read.events.len() as u64;
            break;
        }
    }
    let mut batch = sled::Batch::default();
    for item in tree.range(keys::batch(next)..keys::batch(u64::MAX)) {
        batch.remove(item.map_err(from_sled)?.0);
    }
    for item in tree.scan_prefix([keys::STREAM]) {
        let (k, v) = item.map_err(from_sled)?;
        let [position, _] = keys::unpack::<2>(&v, || "stream index".into())?;
        if position >= next {
            batch.remove(k);
        }
    }
    let dropped = indexed.saturating_sub(next);
    mark(&mut batch, next, end);
    mark_synced(&mut batch, end);
    tree.apply_batch(batch).map_err(from_sled)?;
    tracing::warn!(
        events = dropped,
        next,
        "event log: batches never synced were lost; removed their index entries"
    );
    Ok(Recovered {
        next,
        reindexed: 0,
        dropped,
    })
}
