//! How an event is stored in EventStoreDB: stream names, the event data and
//! the metadata JSON, and the way back to an [`Envelope`].
//!
//! | core | EventStoreDB |
//! |---|---|
//! | stream id `user-42` in namespace `ns` | stream `ns:user-42` |
//! | `event_id` | the event's id (the server's idempotency key) |
//! | `event_type` | the event type |
//! | `payload` | the event data, byte for byte; `content-type` `application/json` when it is JSON, else `application/octet-stream` |
//! | `metadata`, `schema_version`, `recorded_at` | the event's custom metadata, a JSON object (below) |
//! | `version` | the event's stream revision |
//! | `position` | the event's ordinal among the namespace's events in `$all` (see the module docs) |
//!
//! The metadata object: `{"metachat":1, "schemaVersion":…, "recordedAt":…,
//! "$correlationId":…, "$causationId":…, "actor":…, "headers":{…}}`, the
//! optional fields left out when empty. `$correlationId` and `$causationId`
//! are EventStoreDB's own names, so its `$by_correlation_id` projection and
//! its UI understand them.

use std::collections::BTreeMap;

use kurrentdb::EventData;
use metachat_core::event::{Envelope, EventId, Metadata, NewEvent, StreamId, Timestamp};
use metachat_core::{Error, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version of the metadata object this adapter writes.
pub(crate) const FORMAT: u32 = 1;

/// The EventStoreDB stream of `stream` in `namespace`.
pub(crate) fn stream_name(namespace: &str, stream: &StreamId) -> String {
    format!("{namespace}:{stream}")
}

/// The core stream id of an EventStoreDB stream of `namespace`; `None` for
/// a stream of another namespace or an id the core refuses.
pub(crate) fn stream_id(namespace: &str, name: &str) -> Option<StreamId> {
    let id = name.strip_prefix(namespace)?.strip_prefix(':')?;
    StreamId::new(id).ok()
}

/// True for event types EventStoreDB reserves (`$streamDeleted`, `$>`,
/// `$metadata`, …): the adapter never writes them and skips them on reads.
pub(crate) fn is_system_type(event_type: &str) -> bool {
    event_type.starts_with('$')
}

/// The custom metadata of one stored event.
///
/// Unknown fields are ignored (a tool may add its own); the `metachat`
/// format number decides how the rest is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireMetadata {
    #[serde(rename = "metachat")]
    format: u32,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "recordedAt")]
    recorded_at: u64,
    #[serde(
        rename = "$correlationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    correlation_id: Option<Uuid>,
    #[serde(
        rename = "$causationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// What the metadata JSON carries besides the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMetadata {
    pub(crate) metadata: Metadata,
    pub(crate) schema_version: u32,
    pub(crate) recorded_at: Timestamp,
}

/// Encodes the custom metadata of one event.
pub(crate) fn encode_metadata(
    metadata: &Metadata,
    schema_version: u32,
    recorded_at: Timestamp,
) -> Result<Vec<u8>> {
    let wire = WireMetadata {
        format: FORMAT,
        schema_version,
        recorded_at: recorded_at.0,
        correlation_id: metadata.correlation_id,
        causation_id: metadata.causation_id,
        actor: metadata.actor.clone(),
        headers: metadata.headers.clone(),
    };
    serde_json::to_vec(&wire).map_err(|e| Error::Encode {
        source: Box::new(e),
    })
}

/// Decodes what [`encode_metadata`] wrote; `location` names the event in
/// the error.
pub(crate) fn decode_metadata(
    bytes: &[u8],
    location: impl Fn() -> String,
) -> Result<StoredMetadata> {
    let wire: WireMetadata = serde_json::from_slice(bytes).map_err(|e| Error::Corrupted {
        location: location(),
        reason: format!("metadata is not a MetaChat metadata object: {e}"),
    })?;
    if wire.format != FORMAT {
        return Err(Error::Corrupted {
            location: location(),
            reason: format!("unknown metadata format {}", wire.format),
        });
    }
    Ok(StoredMetadata {
        metadata: Metadata {
            correlation_id: wire.correlation_id,
            causation_id: wire.causation_id,
            actor: wire.actor,
            headers: wire.headers,
        },
        schema_version: wire.schema_version,
        recorded_at: Timestamp(wire.recorded_at),
    })
}

/// `payload` as one JSON value if it is exactly that, nothing around it, so
/// that it can be marked `application/json` and still be sent (and come
/// back) byte for byte.
fn exact_json(payload: &[u8]) -> Option<&serde_json::value::RawValue> {
    serde_json::from_slice::<&serde_json::value::RawValue>(payload)
        .ok()
        .filter(|raw| raw.get().as_bytes() == payload)
}

/// The EventStoreDB event of `event`, recorded at `recorded_at`.
pub(crate) fn event_data(event: &NewEvent, recorded_at: Timestamp) -> Result<EventData> {
    let metadata = encode_metadata(&event.metadata, event.schema_version, recorded_at)?;
    let data = match exact_json(&event.payload) {
        Some(raw) => EventData::json(&event.event_type, &raw).map_err(|e| Error::Encode {
            source: Box::new(e),
        })?,
        None => EventData::binary(&event.event_type, event.payload.clone().into()),
    };
    Ok(data.id(event.event_id.0).metadata(metadata.into()))
}

/// The parts of a recorded event the adapter reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded<'a> {
    pub(crate) stream_name: &'a str,
    pub(crate) id: Uuid,
    pub(crate) revision: u64,
    pub(crate) event_type: &'a str,
    pub(crate) data: &'a [u8],
    pub(crate) custom_metadata: &'a [u8],
}

impl<'a> Recorded<'a> {
    /// The parts of a client event.
    pub(crate) fn of(e: &'a kurrentdb::RecordedEvent) -> Self {
        Recorded {
            stream_name: e.stream_id(),
            id: e.id,
            revision: e.revision,
            event_type: &e.event_type,
            data: &e.data,
            custom_metadata: &e.custom_metadata,
        }
    }

    fn location(&self) -> String {
        format!(
            "eventstoredb stream `{}` revision {}",
            self.stream_name, self.revision
        )
    }

    /// The envelope of this event, at global `position` of `namespace`.
    pub(crate) fn envelope(&self, namespace: &str, position: u64) -> Result<Envelope> {
        let stream_id = stream_id(namespace, self.stream_name).ok_or_else(|| Error::Corrupted {
            location: self.location(),
            reason: format!("not a stream of namespace `{namespace}`"),
        })?;
        let stored = decode_metadata(self.custom_metadata, || self.location())?;
        Ok(Envelope {
            event_id: EventId(self.id),
            stream_id,
            version: self.revision,
            position,
            event_type: self.event_type.to_owned(),
            schema_version: stored.schema_version,
            payload: self.data.to_vec(),
            metadata: stored.metadata,
            recorded_at: stored.recorded_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_metadata() -> impl Strategy<Value = Metadata> {
        (
            proptest::option::of(any::<u128>()),
            proptest::option::of(any::<u128>()),
            proptest::option::of(".{0,20}"),
            proptest::collection::btree_map(".{0,8}", ".{0,12}", 0..5),
        )
            .prop_map(|(corr, cause, actor, headers)| Metadata {
                correlation_id: corr.map(Uuid::from_u128),
                causation_id: cause.map(Uuid::from_u128),
                actor,
                headers,
            })
    }

    proptest! {
        #[test]
        fn metadata_round_trips(m in arb_metadata(), sv in any::<u32>(), t in any::<u64>()) {
            let bytes = encode_metadata(&m, sv, Timestamp(t)).unwrap();
            let back = decode_metadata(&bytes, String::new).unwrap();
            prop_assert_eq!(back, StoredMetadata { metadata: m, schema_version: sv, recorded_at: Timestamp(t) });
        }

        #[test]
        fn envelope_round_trips(
            m in arb_metadata(),
            sv in any::<u32>(),
            t in any::<u64>(),
            id in any::<u128>(),
            stream in "[a-z]{1,10}-[a-zA-Z0-9:$/ é-]{0,30}",
            ty in "[A-Za-z][A-Za-z0-9.]{0,20}",
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            revision in 0u64..(i64::MAX as u64),
            position in any::<u64>(),
        ) {
            let stream_id = StreamId::new(stream).unwrap();
            let name = stream_name("ns_1", &stream_id);
            let meta = encode_metadata(&m, sv, Timestamp(t)).unwrap();
            let r = Recorded {
                stream_name: &name,
                id: Uuid::from_u128(id),
                revision,
                event_type: &ty,
                data: &payload,
                custom_metadata: &meta,
            };
            let e = r.envelope("ns_1", position).unwrap();
            let new = NewEvent { event_id: EventId(Uuid::from_u128(id)), event_type: ty.clone(), schema_version: sv, payload: payload.clone(), metadata: m };
            prop_assert!(e.same_event(&new));
            prop_assert_eq!(e.stream_id, stream_id);
            prop_assert_eq!((e.version, e.position, e.recorded_at), (revision, position, Timestamp(t)));
        }

        #[test]
        fn arbitrary_metadata_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_metadata(&bytes, String::new);
        }

        #[test]
        fn json_payloads_are_sent_verbatim(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            // A payload marked JSON is sent as the raw value serialises:
            // exactly its own bytes.
            if let Some(raw) = exact_json(&payload) {
                prop_assert_eq!(serde_json::to_vec(raw).unwrap(), payload);
            }
        }
    }

    #[test]
    fn json_detection() {
        assert!(exact_json(br#"{"n":1}"#).is_some());
        assert!(exact_json(br#"[1, 2]"#).is_some());
        assert!(
            exact_json(br#" {"n":1}"#).is_none(),
            "surrounding whitespace"
        );
        assert!(exact_json(b"").is_none());
        assert!(exact_json(&[0, 159, 146, 150]).is_none());
    }

    #[test]
    fn stream_names_carry_the_namespace() {
        let s = StreamId::new("user-42").unwrap();
        assert_eq!(stream_name("ns", &s), "ns:user-42");
        assert_eq!(stream_id("ns", "ns:user-42"), Some(s));
        assert_eq!(
            stream_id("ns", "ns:a:b"),
            Some(StreamId::new("a:b").unwrap())
        );
        assert_eq!(stream_id("ns", "ns2:user-42"), None);
        assert_eq!(stream_id("ns", "nsuser-42"), None);
        assert_eq!(stream_id("ns", "ns:"), None, "an empty id");
        assert_eq!(stream_id("ns", "$ce-ns"), None);
    }

    #[test]
    fn metadata_uses_eventstoredb_names_and_is_strict() {
        let m = Metadata::correlated(Uuid::from_u128(1)).with_actor("a");
        let bytes = encode_metadata(&m, 2, Timestamp(5)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["$correlationId"], Uuid::from_u128(1).to_string());
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["recordedAt"], 5);
        assert_eq!(v["metachat"], FORMAT);
        assert!(v.get("$causationId").is_none());
        for bad in [
            &br#"{"schemaVersion":1,"recordedAt":1}"#[..],
            br#"{"metachat":2,"schemaVersion":1,"recordedAt":1}"#,
            br#"{"metachat":1,"schemaVersion":1,"recordedAt":-1}"#,
            b"",
        ] {
            let e = decode_metadata(bad, || "here".into()).unwrap_err();
            assert!(
                matches!(e, Error::Corrupted { ref location, .. } if location == "here"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn system_types_are_recognised() {
        assert!(is_system_type("$streamDeleted"));
        assert!(is_system_type("$>"));
        assert!(!is_system_type("UserRegistered"));
    }
}
