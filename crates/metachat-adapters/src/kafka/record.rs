//! The Kafka record format of an envelope: key = stream id, value = the
//! payload bytes as they are, everything else in headers (UTF-8 text, so any
//! client can read them).
//!
//! | header | value |
//! |---|---|
//! | `event-id` | UUID |
//! | `event-type` | type name |
//! | `schema-version` | decimal |
//! | `content-type` | e.g. `application/json` |
//! | `stream-version` | decimal, 0-based |
//! | `global-position` | decimal |
//! | `recorded-at` | decimal, µs since the Unix epoch |
//! | `correlation-id`, `causation-id` | UUID, when set |
//! | `actor` | when set |
//! | `meta.{key}` | each free metadata header |
//!
//! Dead-letter records keep the original key, value and headers and add
//! `dlt-reason` (`decode-failed` or `handler-failed`), `dlt-error`,
//! `dlt-topic`, `dlt-partition`, `dlt-offset`, `dlt-group` and `dlt-attempts`.

use std::str::FromStr;

use metachat_core::event::{Envelope, EventId, Metadata, StreamId, Timestamp};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use uuid::Uuid;

use super::error::DecodeError;

/// Header: the event id.
pub const EVENT_ID: &str = "event-id";
/// Header: the event type.
pub const EVENT_TYPE: &str = "event-type";
/// Header: the payload's schema version.
pub const SCHEMA_VERSION: &str = "schema-version";
/// Header: the payload's content type.
pub const CONTENT_TYPE: &str = "content-type";
/// Header: the event's version in its stream.
pub const STREAM_VERSION: &str = "stream-version";
/// Header: the event's global position in the store.
pub const GLOBAL_POSITION: &str = "global-position";
/// Header: when the store recorded the event (µs since the epoch).
pub const RECORDED_AT: &str = "recorded-at";
/// Header: the correlation id.
pub const CORRELATION_ID: &str = "correlation-id";
/// Header: the causation id.
pub const CAUSATION_ID: &str = "causation-id";
/// Header: the actor.
pub const ACTOR: &str = "actor";
/// Prefix of free metadata headers.
pub const META_PREFIX: &str = "meta.";
/// Dead-letter header: why the record is there (`decode-failed`, `handler-failed`).
pub const DLT_REASON: &str = "dlt-reason";
/// Dead-letter header: the error text.
pub const DLT_ERROR: &str = "dlt-error";
/// Dead-letter header: the topic the record came from.
pub const DLT_TOPIC: &str = "dlt-topic";
/// Dead-letter header: its partition there.
pub const DLT_PARTITION: &str = "dlt-partition";
/// Dead-letter header: its offset there.
pub const DLT_OFFSET: &str = "dlt-offset";
/// Dead-letter header: the consumer group that gave up on it.
pub const DLT_GROUP: &str = "dlt-group";
/// Dead-letter header: handler attempts made.
pub const DLT_ATTEMPTS: &str = "dlt-attempts";
/// `dlt-reason` of a record that could not be decoded.
pub const REASON_DECODE: &str = "decode-failed";
/// `dlt-reason` of a record whose handler failed on every attempt.
pub const REASON_HANDLER: &str = "handler-failed";

fn put(h: OwnedHeaders, key: &str, value: &str) -> OwnedHeaders {
    h.insert(Header {
        key,
        value: Some(value.as_bytes()),
    })
}

/// The headers of `e`.
pub(crate) fn headers(e: &Envelope, content_type: &str) -> OwnedHeaders {
    let m = &e.metadata;
    let mut h = OwnedHeaders::new_with_capacity(8 + m.headers.len());
    h = put(h, EVENT_ID, &e.event_id.to_string());
    h = put(h, EVENT_TYPE, &e.event_type);
    h = put(h, SCHEMA_VERSION, &e.schema_version.to_string());
    h = put(h, CONTENT_TYPE, content_type);
    h = put(h, STREAM_VERSION, &e.version.to_string());
    h = put(h, GLOBAL_POSITION, &e.position.to_string());
    h = put(h, RECORDED_AT, &e.recorded_at.0.to_string());
    if let Some(c) = m.correlation_id {
        h = put(h, CORRELATION_ID, &c.to_string());
    }
    if let Some(c) = m.causation_id {
        h = put(h, CAUSATION_ID, &c.to_string());
    }
    if let Some(a) = &m.actor {
        h = put(h, ACTOR, a);
    }
    for (k, v) in &m.headers {
        h = put(h, &format!("{META_PREFIX}{k}"), v);
    }
    h
}

/// Copies `from` (when present) and appends `extra`.
pub(crate) fn with_extra<H: Headers>(from: Option<&H>, extra: &[(&str, &str)]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    if let Some(from) = from {
        for x in from.iter() {
            h = h.insert(Header {
                key: x.key,
                value: x.value,
            });
        }
    }
    for (k, v) in extra {
        h = put(h, k, v);
    }
    h
}

fn text<'a>(key: &str, v: Option<&'a [u8]>) -> Result<&'a str, DecodeError> {
    let v = v.ok_or_else(|| DecodeError(format!("header `{key}` has no value")))?;
    std::str::from_utf8(v).map_err(|e| DecodeError(format!("header `{key}` is not UTF-8: {e}")))
}

fn parse<T: FromStr>(key: &str, v: &str) -> Result<T, DecodeError>
where
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e| DecodeError(format!("header `{key}` = `{v}`: {e}")))
}

/// Decodes a record back into the envelope it was made from.
pub(crate) fn decode<H: Headers>(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Option<&H>,
) -> Result<Envelope, DecodeError> {
    let key = key.ok_or_else(|| DecodeError("record has no key (stream id)".into()))?;
    let key =
        std::str::from_utf8(key).map_err(|e| DecodeError(format!("key is not UTF-8: {e}")))?;
    let stream_id =
        StreamId::new(key).map_err(|e| DecodeError(format!("key is not a stream id: {e}")))?;
    let headers = headers.ok_or_else(|| DecodeError("record has no headers".into()))?;
    let (mut event_id, mut event_type, mut schema, mut version, mut position, mut recorded) =
        (None, None, None, None, None, None);
    let mut metadata = Metadata::default();
    for h in headers.iter() {
        let v = text(h.key, h.value)?;
        match h.key {
            EVENT_ID => event_id = Some(EventId(parse::<Uuid>(h.key, v)?)),
            EVENT_TYPE => event_type = Some(v.to_owned()),
            SCHEMA_VERSION => schema = Some(parse::<u32>(h.key, v)?),
            STREAM_VERSION => version = Some(parse::<u64>(h.key, v)?),
            GLOBAL_POSITION => position = Some(parse::<u64>(h.key, v)?),
            RECORDED_AT => recorded = Some(Timestamp(parse::<u64>(h.key, v)?)),
            CORRELATION_ID => metadata.correlation_id = Some(parse::<Uuid>(h.key, v)?),
            CAUSATION_ID => metadata.causation_id = Some(parse::<Uuid>(h.key, v)?),
            ACTOR => metadata.actor = Some(v.to_owned()),
            CONTENT_TYPE => {}
            k => {
                if let Some(name) = k.strip_prefix(META_PREFIX) {
                    metadata.headers.insert(name.to_owned(), v.to_owned());
                }
            }
        }
    }
    let missing = |name: &str| DecodeError(format!("header `{name}` is missing"));
    Ok(Envelope {
        event_id: event_id.ok_or_else(|| missing(EVENT_ID))?,
        stream_id,
        version: version.ok_or_else(|| missing(STREAM_VERSION))?,
        position: position.ok_or_else(|| missing(GLOBAL_POSITION))?,
        event_type: event_type.ok_or_else(|| missing(EVENT_TYPE))?,
        schema_version: schema.ok_or_else(|| missing(SCHEMA_VERSION))?,
        payload: value.map(<[u8]>::to_vec).unwrap_or_default(),
        metadata,
        recorded_at: recorded.ok_or_else(|| missing(RECORDED_AT))?,
    })
}

#[cfg(test)]
mod tests {
    use metachat_core::event::NewEvent;

    use super::*;

    fn rich() -> Envelope {
        let m = Metadata::correlated(Uuid::new_v4())
            .caused_by(Uuid::new_v4())
            .with_actor("ann")
            .with_header("trace", "t1")
            .with_header("ünïcode", "✓");
        let e = NewEvent::new("Rich", b"{\"n\":1}".to_vec())
            .with_metadata(m)
            .with_schema_version(4);
        Envelope::recorded(e, StreamId::new("user-1").unwrap(), 7, 42, Timestamp(99))
    }

    #[test]
    fn round_trip() {
        let e = rich();
        let h = headers(&e, "application/json");
        let back = decode(Some(b"user-1".as_slice()), Some(&e.payload), Some(&h)).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn bad_records_are_decode_errors() {
        let e = rich();
        let h = headers(&e, "application/json");
        assert!(decode(None, Some(b"x".as_slice()), Some(&h)).is_err());
        assert!(decode(Some(b"".as_slice()), Some(b"x".as_slice()), Some(&h)).is_err());
        assert!(decode(Some(b"\xff".as_slice()), Some(b"x".as_slice()), Some(&h)).is_err());
        assert!(decode::<OwnedHeaders>(Some(b"user-1".as_slice()), None, None).is_err());
        let no_id = OwnedHeaders::new().insert(Header {
            key: EVENT_TYPE,
            value: Some(b"T".as_slice()),
        });
        let err = decode(Some(b"user-1".as_slice()), None, Some(&no_id)).unwrap_err();
        assert!(err.0.contains(EVENT_ID), "{err}");
        let bad_id = with_extra(Some(&h), &[(EVENT_ID, "not-a-uuid")]);
        assert!(decode(Some(b"user-1".as_slice()), None, Some(&bad_id)).is_err());
    }
}
