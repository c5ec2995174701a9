//! Encoding domain events into payloads and back, with schema evolution.
//!
//! A domain event type is a serde enum, adjacently tagged
//! (`#[serde(tag = "type", content = "data")]`): the variant name becomes the
//! stored event type and the variant's content the JSON payload.
//! [`Upcasters`] turn payloads of older schema versions into the current one
//! on read.
//!
//! ```
//! use metachat_core::codec::{Codec, DomainEvent, JsonCodec};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum Counter { Added { n: u32 } }
//!
//! impl DomainEvent for Counter {
//!     fn event_types() -> &'static [&'static str] { &["Added"] }
//! }
//!
//! let codec = JsonCodec::<Counter>::new();
//! let enc = codec.encode(&Counter::Added { n: 2 }).unwrap();
//! assert_eq!(enc.event_type, "Added");
//! assert_eq!(enc.payload, br#"{"n":2}"#);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{BoxError, Error, Result};
use crate::event::Envelope;

/// A domain event enum (adjacently tagged, see the [module docs](self)).
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Every event type name this enum can decode.
    fn event_types() -> &'static [&'static str];

    /// The current schema version of `event_type`. Default 1.
    fn schema_version(_event_type: &str) -> u32 {
        1
    }
}

/// An encoded event: its type, schema version and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Stable type name.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// What to do with an event type the codec does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTypePolicy {
    /// Return [`Error::UnknownEventType`]. The default.
    #[default]
    Fail,
    /// Skip it: `decode` returns `Ok(None)`.
    Skip,
}

/// Turns domain events into payloads and back.
pub trait Codec<E>: Send + Sync {
    /// Encodes `event` at its current schema version.
    fn encode(&self, event: &E) -> Result<Encoded>;
    /// Decodes a stored envelope, upcasting old versions. `Ok(None)`: an
    /// unknown type skipped by policy.
    fn decode(&self, envelope: &Envelope) -> Result<Option<E>>;
}

type UpcastFn = Box<dyn Fn(Value) -> std::result::Result<Value, BoxError> + Send + Sync>;

/// Payload migrations keyed by event type and the schema version they read.
#[derive(Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    /// No upcasters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a step that reads `event_type` at schema version `from` and
    /// returns the payload at version `from + 1`.
    pub fn register<F>(mut self, event_type: &str, from: u32, step: F) -> Self
    where
        F: Fn(Value) -> std::result::Result<Value, BoxError> + Send + Sync + 'static,
    {
        self.steps
            .insert((event_type.to_owned(), from), Box::new(step));
        self
    }

    /// Upcasts `payload` of `event_type` from `from` to `to`.
    pub fn upcast(
        &self,
        event_type: &str,
        from: u32,
        to: u32,
        mut payload: Value,
    ) -> Result<Value> {
        let mut v = from;
        while v < to {
            let step = self.steps.get(&(event_type.to_owned(), v)).ok_or_else(|| {
                Error::UnknownEventType {
                    event_type: event_type.to_owned(),
                    schema_version: v,
                }
            })?;
            payload = step(payload).map_err(|source| Error::Decode {
                event_type: event_type.to_owned(),
                source,
            })?;
            v += 1;
        }
        Ok(payload)
    }
}

/// The default codec: JSON payloads, upcasters, a policy for unknown types.
pub struct JsonCodec<E> {
    upcasters: Upcasters,
    unknown: UnknownTypePolicy,
    _e: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for JsonCodec<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonCodec")
            .field("upcasters", &self.upcasters)
            .field("unknown", &self.unknown)
            .finish()
    }
}

impl<E> Default for JsonCodec<E> {
    fn default() -> Self {
        JsonCodec {
            upcasters: Upcasters::new(),
            unknown: UnknownTypePolicy::Fail,
            _e: PhantomData,
        }
    }
}

impl<E: DomainEvent> JsonCodec<E> {
    /// A codec without upcasters that fails on unknown types.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses these upcasters.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Sets the policy for unknown event types.
    pub fn on_unknown(mut self, policy: UnknownTypePolicy) -> Self {
        self.unknown = policy;
        self
    }
}

impl<E: DomainEvent> Codec<E> for JsonCodec<E> {
    fn encode(&self, event: &E) -> Result<Encoded> {
        let not_tagged = || Error::Encode {
            source:
                "a DomainEvent must be an enum with #[serde(tag = \"type\", content = \"data\")]"
                    .into(),
        };
        let value = serde_json::to_value(event).map_err(|e| Error::Encode {
            source: Box::new(e),
        })?;
        let Value::Object(mut obj) = value else {
            return Err(not_tagged());
        };
        let Some(Value::String(event_type)) = obj.remove("type") else {
            return Err(not_tagged());
        };
        let data = obj.remove("data").unwrap_or(Value::Null);
        let payload = serde_json::to_vec(&data).map_err(|e| Error::Encode {
            source: Box::new(e),
        })?;
        Ok(Encoded {
            schema_version: E::schema_version(&event_type),
            event_type,
            payload,
        })
    }

    fn decode(&self, envelope: &Envelope) -> Result<Option<E>> {
        let ty = envelope.event_type.as_str();
        let decode_err = |source: BoxError| Error::Decode {
            event_type: ty.to_owned(),
            source,
        };
        if !E::event_types().contains(&ty) {
            return match self.unknown {
                UnknownTypePolicy::Skip => Ok(None),
                UnknownTypePolicy::Fail => Err(Error::UnknownEventType {
                    event_type: ty.to_owned(),
                    schema_version: envelope.schema_version,
                }),
            };
        }
        let current = E::schema_version(ty);
        if envelope.schema_version > current {
            return Err(Error::UnknownEventType {
                event_type: ty.to_owned(),
                schema_version: envelope.schema_version,
            });
        }
        let data: Value =
            serde_json::from_slice(&envelope.payload).map_err(|e| decode_err(Box::new(e)))?;
        let data = self
            .upcasters
            .upcast(ty, envelope.schema_version, current, data)?;
        let tagged = serde_json::json!({ "type": ty, "data": data });
        serde_json::from_value(tagged)
            .map(Some)
            .map_err(|e| decode_err(Box::new(e)))
    }
}
