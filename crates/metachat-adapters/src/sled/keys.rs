//! Key layout of the sled trees (a persisted format: see the module docs).

use metachat_core::event::StreamId;
use metachat_core::Error;

use super::error::corrupted;

/// Tree holding events, indexes and stream heads.
pub(crate) const EVENTS_TREE: &[u8] = b"metachat.events";
/// Tree holding read-model documents and projection checkpoints.
pub(crate) const READ_MODELS_TREE: &[u8] = b"metachat.read_models";

/// `e` + position (u64 BE) → wire record.
pub(crate) const EVENT: u8 = b'e';
/// `s` + stream id + `0x00` + version (u64 BE) → position (u64 BE).
pub(crate) const STREAM: u8 = b's';
/// `h` + stream id → the stream's version (u64 BE).
pub(crate) const HEAD: u8 = b'h';
/// `i` + event id (16 bytes) → position (u64 BE).
pub(crate) const EVENT_ID: u8 = b'i';

/// `d` + collection length (u32 BE) + collection + key → version (u64 BE) + value.
pub(crate) const DOC: u8 = b'd';
/// `c` + projection name → next position (u64 BE).
pub(crate) const CHECKPOINT: u8 = b'c';

pub(crate) fn event(position: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT;
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
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

pub(crate) fn head(stream: &StreamId) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 1);
    k.push(HEAD);
    k.extend_from_slice(stream.as_str().as_bytes());
    k
}

pub(crate) fn event_id(id: &[u8; 16]) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = EVENT_ID;
    k[1..].copy_from_slice(id);
    k
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
    fn doc_keys_keep_collections_apart() {
        assert!(!doc("ab", "c").starts_with(&doc_prefix("a")));
        assert!(doc("a", "k1") < doc("a", "k2"));
    }
}
