//! The suite must catch broken backends: each deliberately broken wrapper
//! around an in-memory backend fails the check aimed at its bug, and the
//! model check. (A suite whose checks pass whatever the store does would
//! prove nothing.)

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use metachat_conformance::{bus, model, read_model, store, subscription};
use metachat_core::bus::{Acknowledge, Delivery, DeliveryStream, EventBus};
use metachat_core::event::{Envelope, NewEvent, StreamId};
use metachat_core::memory::{InMemoryEventBus, InMemoryEventStore, InMemoryReadModels};
use metachat_core::read_model::{Commit, Document, ReadModelCapabilities, ReadModelStore};
use metachat_core::store::{
    AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, HeadWatch,
};
use metachat_core::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    /// `Conflict` reports the actual version plus one.
    ConflictActual,
    /// A conflicting append is retried with `Any`: a silent overwrite.
    WritesOnConflict,
    /// Backward reads start one version early.
    BackwardOffByOne,
    /// Appends give every event a fresh id: re-appends store copies.
    FreshIds,
    /// `read_all` ignores its limit.
    ReadAllIgnoresLimit,
}

#[derive(Debug, Clone)]
struct BrokenStore {
    inner: Arc<InMemoryEventStore>,
    bug: Bug,
}

#[async_trait]
impl EventAppender for BrokenStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        if self.bug == Bug::FreshIds {
            for e in &mut events {
                e.event_id = metachat_core::event::EventId::new();
            }
        }
        match self.inner.append(stream, expected, events.clone()).await {
            Err(Error::Conflict { .. }) if self.bug == Bug::WritesOnConflict => {
                self.inner
                    .append(stream, ExpectedVersion::Any, events)
                    .await
            }
            Err(Error::Conflict {
                stream,
                expected,
                actual,
            }) if self.bug == Bug::ConflictActual => Err(Error::Conflict {
                stream,
                expected,
                actual: Some(actual.map_or(0, |v| v + 1)),
            }),
            other => other,
        }
    }
}

#[async_trait]
impl EventReader for BrokenStore {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        let from = if self.bug == Bug::BackwardOffByOne && direction == Direction::Backward {
            from.saturating_sub(1)
        } else {
            from
        };
        self.inner.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let limit = if self.bug == Bug::ReadAllIgnoresLimit {
            usize::MAX
        } else {
            limit
        };
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        self.inner.stream_version(stream).await
    }
    async fn next_position(&self) -> Result<u64> {
        self.inner.next_position().await
    }
    fn head_watch(&self) -> Option<HeadWatch> {
        self.inner.head_watch()
    }
}

fn broken(bug: Bug) -> BrokenStore {
    BrokenStore {
        inner: Arc::new(InMemoryEventStore::new()),
        bug,
    }
}

/// A boxed check future.
type Check = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// True if the check panicked.
async fn fails(check: impl Future<Output = ()>) -> bool {
    AssertUnwindSafe(check).catch_unwind().await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_bugs_are_caught() {
    let cases: Vec<(Bug, &str, Check)> = vec![
        (
            Bug::ConflictActual,
            "expected_version_present_stream",
            Box::pin(store::check_expected_version_present_stream(broken(
                Bug::ConflictActual,
            ))),
        ),
        (
            Bug::WritesOnConflict,
            "expected_version_absent_stream",
            Box::pin(store::check_expected_version_absent_stream(broken(
                Bug::WritesOnConflict,
            ))),
        ),
        (
            Bug::WritesOnConflict,
            "concurrent_exact_appends_one_stream",
            Box::pin(subscription::check_concurrent_exact_appends_one_stream(
                broken(Bug::WritesOnConflict),
                Vec::new(),
            )),
        ),
        (
            Bug::BackwardOffByOne,
            "read_stream_backward",
            Box::pin(store::check_read_stream_backward(broken(
                Bug::BackwardOffByOne,
            ))),
        ),
        (
            Bug::FreshIds,
            "idempotent_reappend",
            Box::pin(store::check_idempotent_reappend(broken(Bug::FreshIds))),
        ),
        (
            Bug::ReadAllIgnoresLimit,
            "read_all_from_any_position",
            Box::pin(store::check_read_all_from_any_position(broken(
                Bug::ReadAllIgnoresLimit,
            ))),
        ),
    ];
    for (bug, check, fut) in cases {
        assert!(fails(fut).await, "{check} passed a store with bug {bug:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_check_catches_every_store_bug() {
    for bug in [
        Bug::ConflictActual,
        Bug::WritesOnConflict,
        Bug::BackwardOffByOne,
        Bug::FreshIds,
        Bug::ReadAllIgnoresLimit,
    ] {
        assert!(
            fails(model::check_against_reference(broken(bug))).await,
            "the model check passed a store with bug {bug:?}"
        );
    }
}

/// Read models that apply a commit op by op while claiming atomic commits.
#[derive(Debug, Clone, Default)]
struct NonAtomic(Arc<InMemoryReadModels>);

#[async_trait]
impl ReadModelStore for NonAtomic {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        self.0.get(collection, key).await
    }
    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        self.0.scan_prefix(collection, prefix, after, limit).await
    }
    async fn commit(&self, commit: Commit) -> Result<()> {
        for op in commit.ops {
            self.0
                .commit(Commit {
                    ops: vec![op],
                    checkpoint: None,
                })
                .await?;
        }
        self.0
            .commit(Commit {
                ops: Vec::new(),
                checkpoint: commit.checkpoint,
            })
            .await
    }
    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        self.0.checkpoint(projection).await
    }
    async fn clear_collection(&self, collection: &str) -> Result<()> {
        self.0.clear_collection(collection).await
    }
    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        self.0.reset_checkpoint(projection).await
    }
    fn capabilities(&self) -> ReadModelCapabilities {
        self.0.capabilities()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_atomic_commit_is_caught() {
    assert!(
        fails(read_model::check_failed_commit_applies_nothing(
            NonAtomic::default()
        ))
        .await,
        "a non-atomic commit passed"
    );
}

/// A bus whose acknowledgements do nothing.
#[derive(Debug, Clone, Default)]
struct IgnoresAcks(InMemoryEventBus);

#[derive(Debug)]
struct NoAck;

#[async_trait]
impl Acknowledge for NoAck {
    async fn ack(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl EventBus for IgnoresAcks {
    async fn publish(&self, topic: &str, events: &[Envelope]) -> Result<()> {
        self.0.publish(topic, events).await
    }
    async fn subscribe(&self, topic: &str, group: &str) -> Result<DeliveryStream> {
        let inner = self.0.subscribe(topic, group).await?;
        Ok(inner
            .map(|d| d.map(|d| Delivery::new(d.envelope, d.topic, Box::new(NoAck))))
            .boxed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_acks_are_caught() {
    assert!(
        fails(bus::check_ack_advances_group(IgnoresAcks::default())).await,
        "a bus ignoring acks passed"
    );
}
