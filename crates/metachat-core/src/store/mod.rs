//! The event store contract: an [`EventAppender`] and an [`EventReader`],
//! joined by the blanket [`EventStore`].
//!
//! # Versions and positions
//! A stream's events have versions `0, 1, 2, …`; a stream's *version* is the
//! version of its last event (`None` while it has none). Every event also gets
//! a global position, `0, 1, 2, …` in append order across all streams.
//! A reader never sees position `N + 1` before `N`: stores assign positions in
//! the same atomic write as the events.
//!
//! # Order: total or per partition
//! A store declares its [`LogOrder`]. Most stores ([`LogOrder::Total`]) keep
//! one log: positions `0, 1, 2, …` across every stream, read with
//! [`read_all`](EventReader::read_all). A store whose log is split into
//! partitions ([`LogOrder::Partitioned`]) keeps one such log *per
//! partition*: every stream lives in exactly one partition
//! ([`partition_of`](EventReader::partition_of)), positions are dense and
//! ordered within a partition, and nothing orders two partitions. Its
//! followers read each partition ([`read_partition`](EventReader::read_partition),
//! or a [`partition`] view, which is an ordinary totally ordered reader),
//! each with its own checkpoint. The conformance suite checks whichever
//! order a store declares.
//!
//! # Idempotency
//! Appending a batch whose events (by id) are all already stored, in the same
//! order at consecutive versions of the same stream, succeeds without writing
//! and returns the original outcome, whatever the expected version. A batch
//! that only partly matches is refused with
//! [`PartialReappend`](crate::Error::PartialReappend); an id stored in
//! another stream with [`DuplicateEventId`](crate::Error::DuplicateEventId).

mod follow;
mod partition;
mod subscription;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{Envelope, NewEvent, StreamId, Timestamp};

pub use follow::{catch_up, follow, LogSink};
pub use partition::{partition, Partition};
pub use subscription::{subscribe_all, HeadWatch, Subscription, SubscriptionOptions};

/// What the caller believes about the stream before an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist (have no events).
    NoStream,
    /// The stream must exist, at any version.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Checks `actual` (the stream's version, `None` if absent) against the expectation.
    pub fn check(self, stream: &StreamId, actual: Option<u64>) -> Result<()> {
        let ok = match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Conflict {
                stream: stream.clone(),
                expected: self,
                actual,
            })
        }
    }

    /// The expectation that holds after a stream reached `version` (`None`: absent).
    pub fn from_version(version: Option<u64>) -> Self {
        version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// What an append wrote (or, for an idempotent re-append, had written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// Version of the batch's first event.
    pub first_version: u64,
    /// Version of the batch's last event: the stream's version after the append.
    pub last_version: u64,
    /// Global position of the first event.
    pub first_position: u64,
    /// Global position of the last event.
    pub last_position: u64,
    /// When the store recorded the batch: the events' `recorded_at` (for an
    /// idempotent re-append, the original time).
    pub recorded_at: Timestamp,
}

impl AppendOutcome {
    /// The expectation to pass to the next append on the same stream.
    pub fn next_expected(&self) -> ExpectedVersion {
        ExpectedVersion::Exact(self.last_version)
    }
}

/// How a store orders its log: the capability a store declares and the
/// conformance suite checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogOrder {
    /// One log: every event has a global position `0, 1, 2, …` in append
    /// order across all streams.
    Total,
    /// `partitions` logs: each stream lives in one partition; positions are
    /// `0, 1, 2, …` in append order within each partition, and no order
    /// holds between partitions.
    Partitioned {
        /// How many partitions (at least 2).
        partitions: u32,
    },
}

impl LogOrder {
    /// How many logs: 1 for [`LogOrder::Total`].
    pub fn partitions(self) -> u32 {
        match self {
            LogOrder::Total => 1,
            LogOrder::Partitioned { partitions } => partitions,
        }
    }

    /// `Ok` when `partition` is one of this order's partitions, else
    /// [`Error::NoSuchPartition`].
    pub fn check(self, partition: u32) -> Result<()> {
        let partitions = self.partitions();
        if partition < partitions {
            Ok(())
        } else {
            Err(Error::NoSuchPartition {
                partition,
                partitions,
            })
        }
    }
}

/// Reading direction within a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending versions, starting at `from`.
    Forward,
    /// Descending versions, starting at `from` (use `u64::MAX` for the end).
    Backward,
}

/// Appends batches of events to streams.
#[async_trait]
pub trait EventAppender: Send + Sync {
    /// Appends `events` to `stream` atomically if it is at the `expected` version.
    ///
    /// Returns once the events are durable as the store's settings define it.
    /// Errors: [`Error::Conflict`] (nothing written), limits
    /// ([`Error::EmptyBatch`], [`Error::EventTooLarge`], …), idempotency
    /// violations, backend failures.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome>;
}

/// Reads streams and the global log.
#[async_trait]
pub trait EventReader: Send + Sync {
    /// Up to `limit` events of `stream`, from version `from` (inclusive) in `direction`.
    /// An absent stream reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>>;

    /// Up to `limit` events of the global log with position `>= from`, ascending.
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>>;

    /// The stream's version, `None` if it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>>;

    /// The position the next appended event will get: the number of events
    /// visible to readers.
    async fn next_position(&self) -> Result<u64>;

    /// A watch on [`next_position`](EventReader::next_position) that wakes
    /// subscribers when events are appended; `None` makes subscriptions poll.
    fn head_watch(&self) -> Option<HeadWatch> {
        None
    }

    /// How this store orders its log. Default: [`LogOrder::Total`].
    fn log_order(&self) -> LogOrder {
        LogOrder::Total
    }

    /// The partition that holds `stream`: always 0 in a totally ordered log.
    fn partition_of(&self, _stream: &StreamId) -> u32 {
        0
    }

    /// Up to `limit` events of one partition's log with position `>= from`,
    /// ascending. In a totally ordered log partition 0 is the whole log
    /// ([`read_all`](EventReader::read_all)); another number is
    /// [`Error::NoSuchPartition`].
    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        self.log_order().check(partition)?;
        self.read_all(from, limit).await
    }

    /// The position the next event appended to `partition` will get.
    async fn partition_next_position(&self, partition: u32) -> Result<u64> {
        self.log_order().check(partition)?;
        self.next_position().await
    }

    /// A watch on one partition's next position; `None` makes its
    /// subscriptions poll.
    fn partition_head_watch(&self, partition: u32) -> Option<HeadWatch> {
        if partition == 0 {
            self.head_watch()
        } else {
            None
        }
    }
}

/// A store that both reads and appends; implemented for every such type.
pub trait EventStore: EventReader + EventAppender {}

impl<T: EventReader + EventAppender + ?Sized> EventStore for T {}

#[async_trait]
impl<T: EventAppender + ?Sized> EventAppender for std::sync::Arc<T> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        (**self).append(stream, expected, events).await
    }
}

#[async_trait]
impl<T: EventReader + ?Sized> EventReader for std::sync::Arc<T> {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        (**self).read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        (**self).read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        (**self).stream_version(stream).await
    }
    async fn next_position(&self) -> Result<u64> {
        (**self).next_position().await
    }
    fn head_watch(&self) -> Option<HeadWatch> {
        (**self).head_watch()
    }
    fn log_order(&self) -> LogOrder {
        (**self).log_order()
    }
    fn partition_of(&self, stream: &StreamId) -> u32 {
        (**self).partition_of(stream)
    }
    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        (**self).read_partition(partition, from, limit).await
    }
    async fn partition_next_position(&self, partition: u32) -> Result<u64> {
        (**self).partition_next_position(partition).await
    }
    fn partition_head_watch(&self, partition: u32) -> Option<HeadWatch> {
        (**self).partition_head_watch(partition)
    }
}

/// Checks a re-append against what the stream already holds: `Ok(Some(outcome))`
/// for a whole idempotent match, `Ok(None)` when no event of the batch is stored,
/// an error for a partial match. `stored` yields, for each event id of the batch
/// in order, the stored envelope with that id, if any.
///
/// Stores call this before checking the expected version.
pub fn check_reappend(
    stream: &StreamId,
    events: &[NewEvent],
    stored: &[Option<Envelope>],
) -> Result<Option<AppendOutcome>> {
    debug_assert_eq!(events.len(), stored.len());
    let found = stored.iter().filter(|s| s.is_some()).count();
    if found == 0 {
        return Ok(None);
    }
    if let Some(other) = stored.iter().flatten().find(|e| &e.stream_id != stream) {
        return Err(Error::DuplicateEventId {
            event_id: other.event_id.0,
            stream: other.stream_id.clone(),
            version: other.version,
        });
    }
    let all: Vec<&Envelope> = stored.iter().flatten().collect();
    let consecutive = found == events.len()
        && all.windows(2).all(|w| w[1].version == w[0].version + 1)
        && all.iter().zip(events).all(|(s, e)| s.same_event(e));
    if !consecutive {
        return Err(Error::PartialReappend {
            stream: stream.clone(),
        });
    }
    let (first, last) = (all[0], all[all.len() - 1]);
    Ok(Some(AppendOutcome {
        first_version: first.version,
        last_version: last.version,
        first_position: first.position,
        last_position: last.position,
        recorded_at: first.recorded_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_order_checks_partition_numbers() {
        assert_eq!(LogOrder::Total.partitions(), 1);
        assert!(LogOrder::Total.check(0).is_ok());
        assert!(matches!(
            LogOrder::Total.check(1),
            Err(Error::NoSuchPartition {
                partition: 1,
                partitions: 1
            })
        ));
        let p = LogOrder::Partitioned { partitions: 4 };
        assert_eq!(p.partitions(), 4);
        assert!((0..4).all(|n| p.check(n).is_ok()));
        assert!(matches!(
            p.check(4),
            Err(Error::NoSuchPartition {
                partition: 4,
                partitions: 4
            })
        ));
    }
}
