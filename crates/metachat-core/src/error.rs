//! Typed errors of the core contracts.
//!
//! Every adapter maps its native failures onto [`Error`] once, by error code,
//! so callers can match on the variant whatever the backend.

use crate::event::StreamId;
use crate::store::ExpectedVersion;

/// A boxed error from a backend or a codec, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the core [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a store, bus, read-model or codec operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream was not at the expected version. Nothing was written.
    #[error("wrong expected version on stream `{stream}`: expected {expected}, actual {}", fmt_actual(*.actual))]
    Conflict {
        /// The stream the append targeted.
        stream: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's version at the time of the check; `None` if the stream does not exist.
        actual: Option<u64>,
    },
    /// A stream id that is empty, too long or holds control characters.
    #[error("invalid stream id: {reason}")]
    InvalidStreamId {
        /// Why the id was refused.
        reason: String,
    },
    /// An append with no events.
    #[error("an append needs at least one event")]
    EmptyBatch,
    /// A batch with more events than the store accepts in one append.
    #[error("batch of {len} events exceeds the limit of {limit}")]
    BatchTooLarge {
        /// Events in the batch.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// One event is larger than the store accepts.
    #[error("event of {size} bytes exceeds the limit of {limit} bytes")]
    EventTooLarge {
        /// Encoded size of the event (payload plus metadata).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An event type name that is empty or too long.
    #[error("invalid event type: {reason}")]
    InvalidEventType {
        /// Why the name was refused.
        reason: String,
    },
    /// The event id is already stored in another stream, or at another place in this one.
    #[error("event id {event_id} is already stored in stream `{stream}` at version {version}")]
    DuplicateEventId {
        /// The id.
        event_id: uuid::Uuid,
        /// Where it is stored.
        stream: StreamId,
        /// Its version there.
        version: u64,
    },
    /// The same event id appears twice in one batch.
    #[error("event id {event_id} appears twice in one batch")]
    DuplicateInBatch {
        /// The id.
        event_id: uuid::Uuid,
    },
    /// Part of a batch is already stored and part is not: not an idempotent retry.
    #[error(
        "batch partly matches events already stored in `{stream}`; refusing a partial re-append"
    )]
    PartialReappend {
        /// The stream.
        stream: StreamId,
    },
    /// No decoder knows this event type (or this schema version of it).
    #[error("unknown event type `{event_type}` (schema version {schema_version})")]
    UnknownEventType {
        /// The stored type name.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
    },
    /// A payload that is not valid for its event type.
    #[error("cannot decode event `{event_type}`: {source}")]
    Decode {
        /// The stored type name.
        event_type: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// A value that could not be encoded.
    #[error("cannot encode: {source}")]
    Encode {
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// A stored record failed its integrity check.
    #[error("corrupted record at {location}: {reason}")]
    Corrupted {
        /// Where: e.g. `global position 42`.
        location: String,
        /// What was wrong.
        reason: String,
    },
    /// A read-model document was not at the expected version.
    #[error("document `{collection}/{key}` conflict: expected {expected:?}, actual {actual:?}")]
    DocumentConflict {
        /// Collection name.
        collection: String,
        /// Document key.
        key: String,
        /// The expectation that failed.
        expected: crate::read_model::DocExpect,
        /// The document's version; `None` if absent.
        actual: Option<u64>,
    },
    /// A projection failed on an event; its checkpoint stays before that event.
    #[error("projection `{projection}` failed at position {position}: {source}")]
    Projection {
        /// The projection's name.
        projection: String,
        /// The global position of the event.
        position: u64,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// A whole-log read (`read_all`, `next_position`) on a store whose log
    /// is split into partitions: read each partition instead
    /// ([`EventReader::read_partition`](crate::store::EventReader::read_partition),
    /// or a [`store::partition`](crate::store::partition) view).
    #[error("the log is split into {partitions} partitions: read one partition at a time")]
    PartitionedLog {
        /// How many partitions the log has.
        partitions: u32,
    },
    /// A partition number outside the store's partitions.
    #[error("no partition {partition}: the log has {partitions}")]
    NoSuchPartition {
        /// The partition asked for.
        partition: u32,
        /// How many partitions the log has.
        partitions: u32,
    },
    /// The backend cannot be reached now (a broker or database that went away). Retryable.
    #[error("backend unavailable: {source}")]
    Unavailable {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The store or bus was closed.
    #[error("closed")]
    Closed,
    /// Any other backend failure (I/O, driver).
    #[error("backend error: {source}")]
    Backend {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

fn fmt_actual(actual: Option<u64>) -> String {
    match actual {
        Some(v) => v.to_string(),
        None => "no stream".to_owned(),
    }
}

impl Error {
    /// Wraps any backend error.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            source: source.into(),
        }
    }

    /// Wraps a driver error that means the backend is unreachable.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            source: source.into(),
        }
    }

    /// True for errors a caller may retry: conflicts and unavailability.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::Unavailable { .. })
    }
}
