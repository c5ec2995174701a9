//! Read models: documents by collection and key, with a version per document,
//! prefix scans, and projection checkpoints committed with the writes.

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

/// A stored document: bytes (JSON by convention) and a version that starts at
/// 1 and grows by one on every put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The encoded value.
    pub value: Vec<u8>,
    /// 1 after the first put, +1 on each later put.
    pub version: u64,
}

impl Document {
    /// Decodes the value as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.value).map_err(|e| Error::Decode {
            event_type: "document".into(),
            source: Box::new(e),
        })
    }
}

/// A condition on a document's current version for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocExpect {
    /// No check.
    Any,
    /// The document must not exist.
    Absent,
    /// The document must exist at this version.
    Version(u64),
}

impl DocExpect {
    /// Checks `actual` (`None`: absent) against the expectation.
    pub fn check(self, collection: &str, key: &str, actual: Option<u64>) -> Result<()> {
        let ok = match self {
            DocExpect::Any => true,
            DocExpect::Absent => actual.is_none(),
            DocExpect::Version(v) => actual == Some(v),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::DocumentConflict {
                collection: collection.to_owned(),
                key: key.to_owned(),
                expected: self,
                actual,
            })
        }
    }
}

/// One write in a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or replace a document.
    Put {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Encoded value.
        value: Vec<u8>,
        /// Condition.
        expect: DocExpect,
    },
    /// Remove a document (absent is fine under [`DocExpect::Any`]).
    Delete {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Condition.
        expect: DocExpect,
    },
}

impl WriteOp {
    /// Collection and key of the op.
    pub fn target(&self) -> (&str, &str) {
        match self {
            WriteOp::Put {
                collection, key, ..
            }
            | WriteOp::Delete {
                collection, key, ..
            } => (collection, key),
        }
    }
}

/// A set of writes and, optionally, a projection checkpoint, applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// The writes, in order; a later op on the same key sees the earlier one.
    pub ops: Vec<WriteOp>,
    /// `(projection name, next position)` to store with the writes.
    pub checkpoint: Option<(String, u64)>,
}

impl Commit {
    /// Adds a put of `value` encoded as JSON.
    pub fn put_json<T: Serialize>(
        &mut self,
        collection: &str,
        key: &str,
        value: &T,
        expect: DocExpect,
    ) -> Result<()> {
        let value = serde_json::to_vec(value).map_err(|e| Error::Encode {
            source: Box::new(e),
        })?;
        self.ops.push(WriteOp::Put {
            collection: collection.into(),
            key: key.into(),
            value,
            expect,
        });
        Ok(())
    }
}

/// What a backend can promise about [`ReadModelStore::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadModelCapabilities {
    /// All ops and the checkpoint of one commit become visible together or
    /// not at all. Where false, projections must be idempotent per event.
    pub atomic_commit: bool,
}

/// Documents by collection and key, and projection checkpoints.
#[async_trait]
pub trait ReadModelStore: Send + Sync {
    /// The document, if present.
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>>;

    /// Up to `limit` documents whose key starts with `prefix`, in ascending
    /// key order, starting after the key `after` (exclusive) if given.
    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>>;

    /// Applies `commit`. If any condition fails, nothing is applied (on
    /// backends with [`atomic_commit`](ReadModelCapabilities::atomic_commit))
    /// and the error is [`Error::DocumentConflict`].
    async fn commit(&self, commit: Commit) -> Result<()>;

    /// The stored checkpoint of a projection: the next position it will process.
    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>>;

    /// Removes every document of `collection` (for rebuilds).
    async fn clear_collection(&self, collection: &str) -> Result<()>;

    /// Removes a projection's checkpoint (for rebuilds).
    async fn reset_checkpoint(&self, projection: &str) -> Result<()>;

    /// What this backend can promise.
    fn capabilities(&self) -> ReadModelCapabilities;
}

/// JSON conveniences for any [`ReadModelStore`].
#[async_trait]
pub trait ReadModelStoreExt: ReadModelStore {
    /// Gets and decodes a JSON document, with its version.
    async fn get_json<T: DeserializeOwned + Send>(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<(T, u64)>> {
        match self.get(collection, key).await? {
            Some(d) => Ok(Some((d.json()?, d.version))),
            None => Ok(None),
        }
    }

    /// Puts one JSON document.
    async fn put_json<T: Serialize + Sync>(
        &self,
        collection: &str,
        key: &str,
        value: &T,
        expect: DocExpect,
    ) -> Result<()> {
        let mut c = Commit::default();
        c.put_json(collection, key, value, expect)?;
        self.commit(c).await
    }
}

impl<T: ReadModelStore + ?Sized> ReadModelStoreExt for T {}

#[async_trait]
impl<T: ReadModelStore + ?Sized> ReadModelStore for std::sync::Arc<T> {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        (**self).get(collection, key).await
    }
    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        (**self).scan_prefix(collection, prefix, after, limit).await
    }
    async fn commit(&self, commit: Commit) -> Result<()> {
        (**self).commit(commit).await
    }
    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        (**self).checkpoint(projection).await
    }
    async fn clear_collection(&self, collection: &str) -> Result<()> {
        (**self).clear_collection(collection).await
    }
    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        (**self).reset_checkpoint(projection).await
    }
    fn capabilities(&self) -> ReadModelCapabilities {
        (**self).capabilities()
    }
}
