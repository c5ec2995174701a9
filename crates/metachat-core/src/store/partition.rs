//! [`Partition`]: one partition of a store's log, seen as a totally ordered
//! store, so every follower of "the" log (a subscription, a projection
//! runner, the relay) follows one partition unchanged.

use async_trait::async_trait;

use super::{
    AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, HeadWatch, LogOrder,
};
use crate::error::Result;
use crate::event::{Envelope, NewEvent, StreamId};

/// One partition of `store`'s log as a store of its own: its
/// [`read_all`](EventReader::read_all), [`next_position`](EventReader::next_position)
/// and [`head_watch`](EventReader::head_watch) are the partition's; stream
/// reads and appends go to the whole store. Its order is
/// [`LogOrder::Total`]: the partition's own.
///
/// In a totally ordered store, partition 0 is the whole log.
///
/// ```
/// # use metachat_core::{memory::InMemoryEventStore, store::*, event::*};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = std::sync::Arc::new(InMemoryEventStore::new());
/// let s = StreamId::new("user-1").unwrap();
/// store.append(&s, ExpectedVersion::NoStream, vec![NewEvent::new("A", b"{}".to_vec())]).await.unwrap();
/// let p = partition(store.clone(), store.partition_of(&s)).unwrap();
/// assert_eq!(p.read_all(0, 10).await.unwrap().len(), 1);
/// assert!(partition(store, 1).is_err()); // one log: only partition 0
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Partition<S> {
    store: S,
    partition: u32,
}

/// The view of `store`'s partition `partition`, or
/// [`NoSuchPartition`](crate::Error::NoSuchPartition).
pub fn partition<S: EventReader>(store: S, partition: u32) -> Result<Partition<S>> {
    store.log_order().check(partition)?;
    Ok(Partition { store, partition })
}

impl<S> Partition<S> {
    /// The partition's number.
    pub fn number(&self) -> u32 {
        self.partition
    }

    /// The whole store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[async_trait]
impl<S: EventReader> EventReader for Partition<S> {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        self.store.read_stream(stream, from, direction, limit).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        self.store.read_partition(self.partition, from, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        self.store.stream_version(stream).await
    }

    async fn next_position(&self) -> Result<u64> {
        self.store.partition_next_position(self.partition).await
    }

    fn head_watch(&self) -> Option<HeadWatch> {
        self.store.partition_head_watch(self.partition)
    }

    fn log_order(&self) -> LogOrder {
        LogOrder::Total
    }
}

#[async_trait]
impl<S: EventAppender> EventAppender for Partition<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.store.append(stream, expected, events).await
    }
}
