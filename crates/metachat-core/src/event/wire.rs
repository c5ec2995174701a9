//! The binary record format adapters persist envelopes in.
//!
//! Layout (all integers big-endian), format version 1:
//!
//! | field | bytes |
//! |---|---|
//! | format version (`1`) | 1 |
//! | event id | 16 |
//! | stream version, global position, recorded-at (µs) | 8 + 8 + 8 |
//! | schema version | 4 |
//! | stream id, event type | 2-byte length + UTF-8, each |
//! | correlation id, causation id | 1-byte flag + 16, each |
//! | actor | 1-byte flag + 2-byte length + UTF-8 |
//! | header count, then per header key and value | 2, then 2-byte length + UTF-8 and 4-byte length + UTF-8 |
//! | payload | 4-byte length + bytes |
//! | CRC-32 of everything above | 4 |
//!
//! A golden file in the tests pins this format: a change that cannot read
//! records written by an earlier release fails there.

use uuid::Uuid;

use super::{Envelope, EventId, Metadata, StreamId, Timestamp};
use crate::error::{Error, Result};

const FORMAT_V1: u8 = 1;

/// Encodes an envelope into a self-checking record.
pub fn encode(e: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_hint(e));
    encode_into(e, &mut out);
    out
}

/// A buffer size for the record of `e`: enough for [`encode`]'s bytes when
/// `e` has no actor and no metadata headers (a little short when it has).
pub fn encoded_len_hint(e: &Envelope) -> usize {
    96 + e.payload.len() + e.stream_id.as_str().len() + e.event_type.len()
}

/// Appends the record [`encode`] returns to `out`, after what it holds
/// already (an adapter that writes many records into one buffer saves a
/// copy and an allocation per record).
///
/// ```
/// # use metachat_core::event::{wire, Envelope, NewEvent, StreamId, Timestamp};
/// let stream = StreamId::new("diary-1").unwrap();
/// let event = NewEvent::new("EntryWritten", b"{}".to_vec());
/// let e = Envelope::recorded(event, stream, 0, 0, Timestamp::now());
/// let mut out = b"header".to_vec();
/// wire::encode_into(&e, &mut out);
/// assert_eq!(&out[6..], wire::encode(&e).as_slice());
/// ```
pub fn encode_into(e: &Envelope, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(FORMAT_V1);
    out.extend_from_slice(e.event_id.0.as_bytes());
    out.extend_from_slice(&e.version.to_be_bytes());
    out.extend_from_slice(&e.position.to_be_bytes());
    out.extend_from_slice(&e.recorded_at.0.to_be_bytes());
    out.extend_from_slice(&e.schema_version.to_be_bytes());
    put_str16(out, e.stream_id.as_str());
    put_str16(out, &e.event_type);
    put_uuid_opt(out, e.metadata.correlation_id);
    put_uuid_opt(out, e.metadata.causation_id);
    match &e.metadata.actor {
        Some(a) => {
            out.push(1);
            put_str16(out, a);
        }
        None => out.push(0),
    }
    put_len16(out, e.metadata.headers.len());
    for (k, v) in &e.metadata.headers {
        put_str16(out, k);
        put_bytes32(out, v.as_bytes());
    }
    put_bytes32(out, &e.payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Decodes a record written by [`encode`]. `location` names the record in the
/// error if it is corrupted (e.g. `global position 42`).
pub fn decode(bytes: &[u8], location: impl Fn() -> String) -> Result<Envelope> {
    decode_checking(bytes, location, true)
}

/// Decodes a record written by [`encode`] whose bytes a check around it has
/// already verified (an adapter's CRC over a whole batch of records): the
/// record's own CRC is not computed again. Every other check is made, and
/// bytes that do not parse are a [`Error::Corrupted`], never a panic. Use
/// [`decode`] for bytes nothing else has checked.
pub fn decode_verified(bytes: &[u8], location: impl Fn() -> String) -> Result<Envelope> {
    decode_checking(bytes, location, false)
}

fn decode_checking(bytes: &[u8], location: impl Fn() -> String, crc: bool) -> Result<Envelope> {
    let corrupted = |reason: &str| Error::Corrupted {
        location: location(),
        reason: reason.to_owned(),
    };
    if bytes.len() < 5 {
        return Err(corrupted("record shorter than its header"));
    }
    let (body, stored) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(stored.try_into().map_err(|_| corrupted("crc"))?);
    if crc && crc32fast::hash(body) != stored {
        return Err(corrupted("checksum mismatch"));
    }
    let mut r = Reader { buf: body };
    let format = r.u8().ok_or_else(|| corrupted("truncated"))?;
    if format != FORMAT_V1 {
        return Err(corrupted(&format!("unknown record format {format}")));
    }
    parse_v1(&mut r).ok_or_else(|| corrupted("truncated or malformed field"))?
}

fn parse_v1(r: &mut Reader<'_>) -> Option<Result<Envelope>> {
    let event_id = EventId(Uuid::from_bytes(r.take(16)?.try_into().ok()?));
    let version = r.u64()?;
    let position = r.u64()?;
    let recorded_at = Timestamp(r.u64()?);
    let schema_version = r.u32()?;
    let stream = r.str16()?;
    let event_type = r.str16()?.to_owned();
    let correlation_id = r.uuid_opt()?;
    let causation_id = r.uuid_opt()?;
    let actor = match r.u8()? {
        0 => None,
        1 => Some(r.str16()?.to_owned()),
        _ => return None,
    };
    let n = r.u16()?;
    let mut headers = std::collections::BTreeMap::new();
    for _ in 0..n {
        let k = r.str16()?.to_owned();
        let v = std::str::from_utf8(r.bytes32()?).ok()?.to_owned();
        headers.insert(k, v);
    }
    let payload = r.bytes32()?.to_vec();
    if !r.buf.is_empty() {
        return None;
    }
    let stream_id = match StreamId::new(stream) {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(Envelope {
        event_id,
        stream_id,
        version,
        position,
        event_type,
        schema_version,
        payload,
        metadata: Metadata {
            correlation_id,
            causation_id,
            actor,
            headers,
        },
        recorded_at,
    }))
}

fn put_len16(out: &mut Vec<u8>, len: usize) {
    // Lengths were bounded by `Limits` and `StreamId`; saturate defensively.
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    put_len16(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&b[..len as usize]);
}

fn put_uuid_opt(out: &mut Vec<u8>, id: Option<Uuid>) {
    match id {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.as_bytes());
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str16(&mut self) -> Option<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn bytes32(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn uuid_opt(&mut self) -> Option<Option<Uuid>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(Uuid::from_bytes(self.take(16)?.try_into().ok()?))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        (
            any::<u128>(),
            "[a-z]{1,10}-[a-z0-9]{0,20}",
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            "[A-Za-z]{1,30}",
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of(any::<u128>()),
            proptest::option::of(".{0,20}"),
            proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
        )
            .prop_map(
                |(id, s, v, p, t, sv, ty, payload, corr, actor, headers)| Envelope {
                    event_id: EventId(Uuid::from_u128(id)),
                    stream_id: StreamId::new(s).unwrap(),
                    version: v,
                    position: p,
                    event_type: ty,
                    schema_version: sv,
                    payload,
                    metadata: Metadata {
                        correlation_id: corr.map(Uuid::from_u128),
                        causation_id: None,
                        actor,
                        headers,
                    },
                    recorded_at: Timestamp(t),
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(e in arb_envelope()) {
            let bytes = encode(&e);
            prop_assert_eq!(decode(&bytes, String::new).unwrap(), e);
        }

        #[test]
        fn any_single_byte_flip_is_detected(e in arb_envelope(), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = encode(&e);
            let i = idx.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let err = decode(&bytes, || "global position 7".into()).unwrap_err();
            let is_corrupted = matches!(err, Error::Corrupted { ref location, .. } if location == "global position 7");
            prop_assert!(is_corrupted);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, String::new);
            let _ = decode_verified(&bytes, String::new);
        }

        /// Without the record's own CRC the fields still decode to the same
        /// envelope, and a damaged CRC is the only thing it lets through.
        #[test]
        fn verified_decoding_skips_only_the_crc(e in arb_envelope(), bit in 0u8..8) {
            let mut bytes = encode(&e);
            prop_assert_eq!(decode_verified(&bytes, String::new).unwrap(), e.clone());
            let last = bytes.len() - 1;
            bytes[last] ^= 1 << bit;
            prop_assert!(decode(&bytes, String::new).is_err());
            prop_assert_eq!(decode_verified(&bytes, String::new).unwrap(), e);
        }

        /// Cut short, a record is a typed error either way.
        #[test]
        fn a_truncated_record_is_corrupted_either_way(e in arb_envelope(), idx in any::<prop::sample::Index>()) {
            let bytes = encode(&e);
            let cut = &bytes[..idx.index(bytes.len())];
            let is_corrupted = |r: Result<Envelope>| matches!(r, Err(Error::Corrupted { .. }));
            prop_assert!(is_corrupted(decode(cut, String::new)));
            prop_assert!(is_corrupted(decode_verified(cut, String::new)));
        }
    }
}
