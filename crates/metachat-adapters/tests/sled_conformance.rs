//! The shared conformance suite, run against the sled event store and read
//! models (default `Durability::Sync`: every append reaches `fdatasync`).

use std::sync::Arc;

use async_trait::async_trait;
use metachat_adapters::sled::{SledConfig, SledDatabase, SledEventStore, SledReadModels};
use metachat_core::event::{Envelope, NewEvent, StreamId};
use metachat_core::read_model::{Commit, Document, ReadModelCapabilities, ReadModelStore};
use metachat_core::store::{
    AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, HeadWatch,
};
use metachat_core::Result;
use tempfile::TempDir;

/// A backend plus the temporary directory it lives in; the directory is
/// removed after the last clone (and so the database) is dropped.
#[derive(Clone)]
struct InTempDir<T> {
    inner: T,
    _dir: Arc<TempDir>,
}

fn open() -> (SledDatabase, Arc<TempDir>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SledDatabase::open(SledConfig::new(dir.path())).expect("open sled");
    (db, Arc::new(dir))
}

async fn fresh_store() -> InTempDir<SledEventStore> {
    let (db, dir) = open();
    InTempDir {
        inner: db.event_store(),
        _dir: dir,
    }
}

async fn fresh_read_models() -> InTempDir<SledReadModels> {
    let (db, dir) = open();
    InTempDir {
        inner: db.read_models(),
        _dir: dir,
    }
}

#[async_trait]
impl EventAppender for InTempDir<SledEventStore> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.inner.append(stream, expected, events).await
    }
}

#[async_trait]
impl EventReader for InTempDir<SledEventStore> {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        self.inner.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
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

#[async_trait]
impl ReadModelStore for InTempDir<SledReadModels> {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        self.inner.get(collection, key).await
    }
    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        self.inner
            .scan_prefix(collection, prefix, after, limit)
            .await
    }
    async fn commit(&self, commit: Commit) -> Result<()> {
        self.inner.commit(commit).await
    }
    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        self.inner.checkpoint(projection).await
    }
    async fn clear_collection(&self, collection: &str) -> Result<()> {
        self.inner.clear_collection(collection).await
    }
    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        self.inner.reset_checkpoint(projection).await
    }
    fn capabilities(&self) -> ReadModelCapabilities {
        self.inner.capabilities()
    }
}

metachat_conformance::event_store_suite!(fresh_store);
metachat_conformance::read_model_suite!(fresh_read_models);
