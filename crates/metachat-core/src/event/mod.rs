//! Events as stored and transported: ids, stream ids, metadata and the [`Envelope`].

mod limits;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

pub use limits::Limits;

/// The client-generated id of one event; the idempotency key of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A new random (v4) id.
    pub fn new() -> Self {
        EventId(Uuid::new_v4())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of one stream: non-empty, at most [`StreamId::MAX_LEN`] bytes of UTF-8,
/// no control characters. By convention `category-id` (e.g. `user-3f2a…`);
/// the part before the first `-` is the [`category`](StreamId::category).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates and wraps a stream id.
    ///
    /// ```
    /// use metachat_core::event::StreamId;
    /// assert_eq!(StreamId::new("user-42").unwrap().category(), "user");
    /// assert!(StreamId::new("").is_err());
    /// ```
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() {
            return Err(Error::InvalidStreamId {
                reason: "empty".into(),
            });
        }
        if id.len() > Self::MAX_LEN {
            return Err(Error::InvalidStreamId {
                reason: format!("{} bytes, more than {}", id.len(), Self::MAX_LEN),
            });
        }
        if id.chars().any(char::is_control) {
            return Err(Error::InvalidStreamId {
                reason: "contains a control character".into(),
            });
        }
        Ok(StreamId(id))
    }

    /// Builds `category-id`.
    pub fn from_parts(category: &str, id: impl fmt::Display) -> Result<Self> {
        Self::new(format!("{category}-{id}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `-`, or the whole id.
    pub fn category(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StreamId::new(s).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        StreamId::new(s)
    }
}

/// Microseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Seconds since the epoch.
    pub fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }
}

/// Tracing and provenance data carried with each event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Id shared by every event caused by one request.
    pub correlation_id: Option<Uuid>,
    /// Id of the event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// Who caused it (a user id, a service name).
    pub actor: Option<String>,
    /// Free headers.
    pub headers: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata with a correlation id.
    pub fn correlated(correlation_id: Uuid) -> Self {
        Metadata {
            correlation_id: Some(correlation_id),
            ..Default::default()
        }
    }

    /// Sets the actor.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the causation id.
    pub fn caused_by(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Bytes these metadata take in the wire format (for size limits).
    pub fn encoded_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| 6 + k.len() + v.len())
            .sum();
        34 + 2 + self.actor.as_ref().map_or(0, String::len) + 2 + headers
    }
}

/// An event to append: everything but what the store assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Idempotency key.
    pub event_id: EventId,
    /// Stable type name, e.g. `UserRegistered`.
    pub event_type: String,
    /// Version of the payload's schema for this type (starts at 1).
    pub schema_version: u32,
    /// Encoded payload (JSON by default).
    pub payload: Vec<u8>,
    /// Metadata.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a fresh id, schema version 1 and empty metadata.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        NewEvent {
            event_id: EventId::new(),
            event_type: event_type.into(),
            schema_version: 1,
            payload: payload.into(),
            metadata: Metadata::default(),
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: EventId) -> Self {
        self.event_id = id;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the schema version.
    pub fn with_schema_version(mut self, v: u32) -> Self {
        self.schema_version = v;
        self
    }

    /// Size counted against [`Limits::max_event_bytes`].
    pub fn encoded_len(&self) -> usize {
        self.payload.len() + self.event_type.len() + self.metadata.encoded_len()
    }
}

/// A stored event: the [`NewEvent`] plus what the store assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Idempotency key.
    pub event_id: EventId,
    /// Stream it belongs to.
    pub stream_id: StreamId,
    /// 0-based version within the stream.
    pub version: u64,
    /// 0-based position in the global log; strictly increasing in append order.
    pub position: u64,
    /// Stable type name.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u32,
    /// Encoded payload.
    pub payload: Vec<u8>,
    /// Metadata.
    pub metadata: Metadata,
    /// When the store recorded it.
    pub recorded_at: Timestamp,
}

impl Envelope {
    /// Builds the stored form of `event`.
    pub fn recorded(
        event: NewEvent,
        stream_id: StreamId,
        version: u64,
        position: u64,
        recorded_at: Timestamp,
    ) -> Self {
        Envelope {
            event_id: event.event_id,
            stream_id,
            version,
            position,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            metadata: event.metadata,
            recorded_at,
        }
    }

    /// True if `event` has the same id, type, schema, payload and metadata.
    pub fn same_event(&self, event: &NewEvent) -> bool {
        self.event_id == event.event_id
            && self.event_type == event.event_type
            && self.schema_version == event.schema_version
            && self.payload == event.payload
            && self.metadata == event.metadata
    }
}
