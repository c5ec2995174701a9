//! The sled indexes of the segment log: where each batch starts, each
//! stream's runs, each event id; and how far they reach. They are derived
//! from the log, written without a barrier of their own, and brought back
//! in line with the log on open ([`recover`]).

use std::borrow::Cow;

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
/// complete is recorded only after a barrier ([`insert_mark`]). A stream's
/// runs that follow one another go in as one entry ([`fold_runs`]): with
/// many writers each appending one event, a run per append was one sled
/// insert per event.
pub(crate) fn insert_entries(tree: &sled::Tree, entries: &Entries) -> Result<()> {
    for (k, v) in fold_runs(entries) {
        tree.insert(k, v.as_ref()).map_err(from_sled)?;
    }
    Ok(())
}

/// The entries to put into sled for `entries`: each stream's runs of
/// consecutive versions folded into one entry per up to
/// [`keys::MAX_RUNS_PER_ENTRY`] runs, at the key of the first; every other
/// entry as it is. An entry that does not decode as runs stays as it is.
pub(crate) fn fold_runs(entries: &Entries) -> Vec<(&[u8], Cow<'_, [u8]>)> {
    let mut out: Vec<(&[u8], Cow<'_, [u8]>)> = Vec::with_capacity(entries.len());
    let mut open: Folding<'_> = None;
    for (k, v) in entries {
        let runs = match keys::version_of_stream_key(k) {
            Some(_) => keys::decode_runs(k, v, || "buffered stream index".into()).ok(),
            None => None,
        };
        let Some(runs) = runs else {
            close(&mut open, &mut out);
            out.push((k.as_slice(), Cow::Borrowed(v.as_slice())));
            continue;
        };
        let stream = &k[..k.len() - 8];
        let (first, last) = (runs[0].first_version, runs[runs.len() - 1]);
        match &mut open {
            Some((key, folded, next))
                if key[..key.len() - 8] == *stream
                    && *next == first
                    && folded.len() + runs.len() <= keys::MAX_RUNS_PER_ENTRY
                    && folded
                        .last()
                        .is_some_and(|r| r.position + r.count <= runs[0].position) =>
            {
                folded.extend(runs);
                *next = last.last_version().saturating_add(1);
            }
            _ => {
                close(&mut open, &mut out);
                open = Some((k.as_slice(), runs, last.last_version().saturating_add(1)));
            }
        }
    }
    close(&mut open, &mut out);
    out
}

/// The entry [`fold_runs`] is folding: its key, its runs, the version after them.
type Folding<'a> = Option<(&'a [u8], Vec<keys::Run>, u64)>;

/// Ends the entry being folded, if any, as one entry of `out`.
fn close<'a>(open: &mut Folding<'a>, out: &mut Vec<(&'a [u8], Cow<'a, [u8]>)>) {
    if let Some((k, runs, _)) = open.take() {
        out.push((k, Cow::Owned(keys::runs_value(&runs))));
    }
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
        match cut_runs(&k, &v, next)? {
            Cut::Keep => {}
            Cut::Remove => batch.remove(k),
            Cut::Rewrite(value) => batch.insert(k, value),
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

/// What becomes of a stream index entry when the log ends before position `next`.
#[derive(Debug, PartialEq, Eq)]
enum Cut {
    Keep,
    Remove,
    /// Rewritten with its runs below `next`.
    Rewrite(Vec<u8>),
}

fn cut_runs(key: &[u8], value: &[u8], next: u64) -> Result<Cut> {
    let runs = keys::decode_runs(key, value, || "stream index".into())?;
    // Runs are in position order, each inside one batch.
    let kept = runs.iter().take_while(|r| r.position < next).count();
    Ok(if kept == 0 {
        Cut::Remove
    } else if kept < runs.len() {
        Cut::Rewrite(keys::runs_value(&runs[..kept]))
    } else {
        Cut::Keep
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use metachat_core::event::StreamId;

    fn run(first_version: u64, position: u64, count: u64) -> keys::Run {
        keys::Run {
            first_version,
            position,
            count,
        }
    }

    #[test]
    fn a_folded_entry_keeps_the_runs_the_log_still_holds() {
        let s = StreamId::new("s").unwrap();
        let key = keys::stream_entry(&s, 0);
        let runs = [run(0, 10, 2), run(2, 20, 1), run(3, 30, 4)];
        let value = keys::runs_value(&runs);
        assert_eq!(cut_runs(&key, &value, 40).unwrap(), Cut::Keep);
        assert_eq!(cut_runs(&key, &value, 34).unwrap(), Cut::Keep);
        assert_eq!(
            cut_runs(&key, &value, 30).unwrap(),
            Cut::Rewrite(keys::runs_value(&runs[..2]))
        );
        assert_eq!(
            cut_runs(&key, &value, 11).unwrap(),
            Cut::Rewrite(keys::runs_value(&runs[..1]))
        );
        assert_eq!(cut_runs(&key, &value, 10).unwrap(), Cut::Remove);
        assert!(cut_runs(&key, &value[..20], 40).is_err());
    }

    #[test]
    fn runs_of_a_stream_that_follow_one_another_are_folded() {
        let (a, b) = (StreamId::new("a").unwrap(), StreamId::new("b").unwrap());
        let mut entries = Entries::new();
        let mut put = |s: &StreamId, r: keys::Run| {
            entries.insert(keys::stream_entry(s, r.first_version), r.value().to_vec());
        };
        // a: versions 0..=4 in three appends, then a version missing (6).
        put(&a, run(0, 0, 2));
        put(&a, run(2, 5, 1));
        put(&a, run(3, 9, 2));
        put(&a, run(6, 20, 1));
        // b: one run.
        put(&b, run(0, 2, 3));
        entries.insert(keys::batch(0).to_vec(), vec![7; 16]);
        let folded: Vec<(Vec<u8>, Vec<u8>)> = fold_runs(&entries)
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.into_owned()))
            .collect();
        let want = vec![
            (keys::batch(0).to_vec(), vec![7; 16]),
            (
                keys::stream_entry(&a, 0),
                keys::runs_value(&[run(0, 0, 2), run(2, 5, 1), run(3, 9, 2)]),
            ),
            (keys::stream_entry(&a, 6), run(6, 20, 1).value().to_vec()),
            (keys::stream_entry(&b, 0), run(0, 2, 3).value().to_vec()),
        ];
        assert_eq!(folded, want);
    }

    #[test]
    fn a_folded_entry_holds_at_most_its_share_of_runs() {
        let s = StreamId::new("s").unwrap();
        let mut entries = Entries::new();
        let n = keys::MAX_RUNS_PER_ENTRY as u64 + 3;
        for v in 0..n {
            entries.insert(keys::stream_entry(&s, v), run(v, 2 * v, 1).value().to_vec());
        }
        let folded = fold_runs(&entries);
        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0].1.len(), 16 * keys::MAX_RUNS_PER_ENTRY);
        assert_eq!(
            folded[1].0,
            keys::stream_entry(&s, keys::MAX_RUNS_PER_ENTRY as u64).as_slice()
        );
        assert_eq!(folded[1].1.len(), 16 * 3);
    }

    proptest::proptest! {
        /// Folding keeps every (stream, version) → position the runs gave,
        /// and each folded entry decodes.
        #[test]
        fn folding_keeps_every_version_where_it_was(
            appends in proptest::collection::vec((0usize..3, 1u64..4, 0u64..3), 1..120),
        ) {
            let streams: Vec<StreamId> =
                (0..3).map(|i| StreamId::new(format!("s{i}")).unwrap()).collect();
            let mut entries = Entries::new();
            let mut want = std::collections::BTreeMap::new();
            let (mut position, mut heads) = (0u64, [0u64; 3]);
            for (s, count, skip) in appends {
                // A skipped version: an append of the stream's whose run
                // is not in this drain (moved by an earlier one).
                heads[s] += skip;
                position += skip;
                let r = run(heads[s], position, count);
                entries.insert(keys::stream_entry(&streams[s], r.first_version), r.value().to_vec());
                for i in 0..count {
                    want.insert((s, heads[s] + i), position + i);
                }
                heads[s] += count;
                position += count;
            }
            let mut got = std::collections::BTreeMap::new();
            let folded = fold_runs(&entries);
            proptest::prop_assert!(folded.len() <= entries.len());
            for (k, v) in folded {
                let s = streams.iter().position(|id| k.starts_with(&keys::stream_prefix(id))).unwrap();
                let runs = keys::Run::decode_all(&streams[s], k, &v).unwrap();
                proptest::prop_assert!(runs.len() <= keys::MAX_RUNS_PER_ENTRY);
                for r in runs {
                    for i in 0..r.count {
                        proptest::prop_assert!(got.insert((s, r.first_version + i), r.position + i).is_none());
                    }
                }
            }
            proptest::prop_assert_eq!(got, want);
        }
    }
}
