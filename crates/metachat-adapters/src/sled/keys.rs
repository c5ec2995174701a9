//! Key layout of the sled trees (a persisted format: see the module docs).

use metachat_core::event::StreamId;
use metachat_core::Error;

use super::error::corrupted;

/// Tree holding chunks of events and their indexes.
pub(crate) const EVENTS_TREE: &[u8] = b"metachat.events";
/// Tree holding read-model documents and projection checkpoints.
pub(crate) const READ_MODELS_TREE: &[u8] = b"metachat.read_models";

/// `e` + first position (u64 BE) → a chunk of consecutive records (see
/// `chunk`): the log of record of earlier versions, moved into the segment
/// log on open.
pub(crate) const EVENT: u8 = b'e';
/// `p` + first position (u64 BE) → where that batch starts in the segment
/// log: segment (u64 BE) + offset (u64 BE).
pub(crate) const BATCH: u8 = b'p';
/// `x` → how far the log is indexed: next position (u64 BE) + the log's
/// end after that batch: segment (u64 BE) + offset (u64 BE).
pub(crate) const INDEXED: &[u8] = b"x";
/// `y` → up to where the log is known synced: segment (u64 BE) + offset (u64 BE).
pub(crate) const SYNCED: &[u8] = b"y";
/// `s` + stream id + `0x00` + first version (u64 BE) → a run: position (u64
/// BE) of that version + number of consecutive versions at consecutive
/// positions (u64 BE).
pub(crate) const STREAM: u8 = b's';
/// `i` + event id (16 bytes): an earlier version's event-id index, removed
/// on open (ids are now indexed beside the log, in
/// [`IdIndex`](super::id_index::IdIndex)).
pub(crate) const EVENT_ID: u8 = b'i';

/// `d` + collection length (u32 BE) + collection + key → version (u64 BE) + value.
pub(crate) const DOC: u8 = b'd';
/// `c` + projection name → next position (u64 BE).
pub(crate) const CHECKPOINT: u8 = b'c';

#[cfg(test)]
pub(crate) fn event(position: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT;
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

pub(crate) fn batch(position: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = BATCH;
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

/// The position in a batch key, if it is one.
pub(crate) fn position_of_batch_key(key: &[u8]) -> Option<u64> {
    match key {
        [BATCH, rest @ ..] => <[u8; 8]>::try_from(rest).ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// Big-endian u64s packed one after another.
pub(crate) fn pack<const N: usize>(values: [u64; N]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// Unpacks `N` big-endian u64s; `location` names the value in the error.
pub(crate) fn unpack<const N: usize>(
    bytes: &[u8],
    location: impl FnOnce() -> String,
) -> Result<[u64; N], Error> {
    if bytes.len() != N * 8 {
        return Err(corrupted(location(), "index value has the wrong length"));
    }
    let mut out = [0u64; N];
    for (v, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *v = u64::from_be_bytes(<[u8; 8]>::try_from(c).unwrap_or_default());
    }
    Ok(out)
}

/// The prefix of a stream's index entries: `s` + id + `0x00`. Stream ids hold
/// no control characters, so no id's prefix is a prefix of another's.
pub(crate) fn stream_prefix(stream: &StreamId) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 10);
    k.push(STREAM);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k
}

pub(crate) fn stream_entry(stream: &StreamId, version: u64) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// An earlier version's event-id key (ids are now indexed beside the log;
/// see [`remove_old_ids`](super::index::remove_old_ids)).
#[cfg(test)]
pub(crate) fn event_id(id: &[u8; 16]) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = EVENT_ID;
    k[1..].copy_from_slice(id);
    k
}

/// A run of a stream: `count` versions from the key's version on, stored at
/// consecutive positions from `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) first_version: u64,
    pub(crate) position: u64,
    pub(crate) count: u64,
}

impl Run {
    pub(crate) fn last_version(&self) -> u64 {
        self.first_version + (self.count - 1)
    }

    pub(crate) fn value(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.position.to_be_bytes());
        v[8..].copy_from_slice(&self.count.to_be_bytes());
        v
    }

    /// Decodes a stream index entry of `stream`: its runs, in version order.
    pub(crate) fn decode_all(
        stream: &StreamId,
        key: &[u8],
        value: &[u8],
    ) -> Result<Vec<Run>, Error> {
        decode_runs(key, value, || format!("stream `{stream}` index"))
    }
}

/// Runs a stream index entry holds at most: the checkpoint folds a
/// stream's consecutive runs into one entry (one sled insert for up to this
/// many appends), a value of 16 bytes per run.
pub(crate) const MAX_RUNS_PER_ENTRY: usize = 256;

/// The value of a stream index entry holding `runs` (consecutive versions,
/// the first one the key's).
pub(crate) fn runs_value(runs: &[Run]) -> Vec<u8> {
    runs.iter().flat_map(|r| r.value()).collect()
}

/// The version in a stream index key, if it is one.
pub(crate) fn version_of_stream_key(key: &[u8]) -> Option<u64> {
    match key {
        [STREAM, rest @ ..] => rest
            .len()
            .checked_sub(8)
            .and_then(|at| <[u8; 8]>::try_from(&rest[at..]).ok())
            .map(u64::from_be_bytes),
        _ => None,
    }
}

/// Decodes the runs of a stream index entry: one or more 16-byte runs, the
/// first at the key's version, each next one at the version after the one
/// before ends and at a later position. `location` names the entry in the
/// error.
pub(crate) fn decode_runs(
    key: &[u8],
    value: &[u8],
    location: impl Fn() -> String,
) -> Result<Vec<Run>, Error> {
    let bad = |reason: &str| corrupted(location(), reason);
    let mut version = version_of_stream_key(key).ok_or_else(|| bad("malformed key"))?;
    if value.is_empty() || !value.len().is_multiple_of(16) {
        return Err(bad("index value is not a whole number of 16-byte runs"));
    }
    let mut runs = Vec::with_capacity(value.len() / 16);
    let mut after = 0u64;
    for chunk in value.chunks_exact(16) {
        let [position, count] = unpack::<2>(chunk, &location)?;
        let end = position.checked_add(count);
        let last = version.checked_add(count);
        let (Some(end), Some(next)) = (end, last) else {
            return Err(bad("run out of range"));
        };
        if count == 0 || position < after {
            return Err(bad("run out of range"));
        }
        runs.push(Run {
            first_version: version,
            position,
            count,
        });
        version = next;
        after = end;
    }
    Ok(runs)
}

pub(crate) fn doc_prefix(collection: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(collection.len() + 5);
    k.push(DOC);
    // Collection names longer than u32::MAX bytes cannot exist in memory we accept.
    let len = u32::try_from(collection.len()).unwrap_or(u32::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(collection.as_bytes());
    k
}

pub(crate) fn doc(collection: &str, key: &str) -> Vec<u8> {
    let mut k = doc_prefix(collection);
    k.extend_from_slice(key.as_bytes());
    k
}

pub(crate) fn checkpoint(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(CHECKPOINT);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Decodes a big-endian u64 value; `location` names it in the error.
pub(crate) fn u64_value(bytes: &[u8], location: impl FnOnce() -> String) -> Result<u64, Error> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupted(location(), "index value is not 8 bytes"))
}

/// The position in an event key, if it is one.
pub(crate) fn position_of_event_key(key: &[u8]) -> Option<u64> {
    match key {
        [EVENT, rest @ ..] => <[u8; 8]>::try_from(rest).ok().map(u64::from_be_bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_prefixes_do_not_overlap() {
        let a = StreamId::new("ab").unwrap();
        let b = StreamId::new("abc").unwrap();
        assert!(!stream_entry(&b, 0).starts_with(&stream_prefix(&a)));
        assert!(stream_entry(&a, u64::MAX) < stream_entry(&b, 0));
    }

    #[test]
    fn event_keys_sort_by_position() {
        assert!(event(255) < event(256));
        assert_eq!(position_of_event_key(&event(42)), Some(42));
        assert_eq!(position_of_event_key(b"x"), None);
    }

    #[test]
    fn runs_round_trip_and_bad_ones_are_corrupted() {
        let s = StreamId::new("s-1").unwrap();
        let run = Run {
            first_version: 7,
            position: 1000,
            count: 3,
        };
        let key = stream_entry(&s, 7);
        assert_eq!(Run::decode_all(&s, &key, &run.value()).unwrap(), vec![run]);
        assert_eq!(run.last_version(), 9);
        let zero = Run { count: 0, ..run };
        assert!(Run::decode_all(&s, &key, &zero.value()).is_err());
        assert!(Run::decode_all(&s, &key, &run.value()[..15]).is_err());
        assert!(Run::decode_all(&s, b"s", &run.value()).is_err());
        assert!(Run::decode_all(&s, &key, &[]).is_err());
        let next = Run {
            first_version: 10,
            position: 2000,
            count: 1,
        };
        let two = runs_value(&[run, next]);
        assert_eq!(Run::decode_all(&s, &key, &two).unwrap(), vec![run, next]);
        // A later run must start after the one before it ends.
        let overlapping = Run {
            position: 1001,
            ..next
        };
        assert!(Run::decode_all(&s, &key, &runs_value(&[run, overlapping])).is_err());
    }

    #[test]
    fn doc_keys_keep_collections_apart() {
        assert!(!doc("ab", "c").starts_with(&doc_prefix("a")));
        assert!(doc("a", "k1") < doc("a", "k2"));
    }
}
