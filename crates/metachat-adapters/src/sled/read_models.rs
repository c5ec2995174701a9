//! [`SledReadModels`]: documents and projection checkpoints on sled.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use metachat_core::read_model::{Commit, Document, ReadModelCapabilities, ReadModelStore, WriteOp};
use metachat_core::{Error, Result};

use super::config::SledConfig;
use super::durability::Core;
use super::error::{corrupted, from_sled};
use super::keys;

/// Read models on sled: documents by collection and key with versions,
/// ordered prefix scans, and projection checkpoints written in the same
/// atomic sled batch as the documents (so a projection's checkpoint never
/// runs ahead of, or behind, its writes, even across a crash).
///
/// Commits are serialised (version checks and the batch happen together) and
/// follow the database's [`Durability`](super::Durability): under `Sync` a
/// commit returns after the same `fdatasync` barrier as appends (shared with
/// concurrent appends and commits). Read models can be rebuilt from the log,
/// and the log's events are durable before a projection can read them, so
/// a weaker setting only ever costs re-processing, never a wrong read model.
/// Reads may observe a commit a moment before its barrier completed.
///
/// Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct SledReadModels {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    tree: sled::Tree,
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for SledReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledReadModels").finish_non_exhaustive()
    }
}

impl SledReadModels {
    /// Opens (or creates) the database at `config.path` and its read models.
    ///
    /// To use the event store on the same database, open a
    /// [`SledDatabase`](super::SledDatabase) instead.
    pub fn open(config: SledConfig) -> Result<Self> {
        Ok(super::SledDatabase::open(config)?.read_models())
    }

    pub(crate) fn start(core: Arc<Core>) -> Result<Self> {
        let tree = core
            .db()
            .open_tree(keys::READ_MODELS_TREE)
            .map_err(from_sled)?;
        Ok(SledReadModels {
            inner: Arc::new(Inner {
                core,
                tree,
                commit_lock: Mutex::new(()),
            }),
        })
    }
}

fn decode_doc(collection: &str, key: &str, bytes: &[u8]) -> Result<Document> {
    if bytes.len() < 8 {
        return Err(corrupted(
            format!("document `{collection}/{key}`"),
            "shorter than its version",
        ));
    }
    let (v, value) = bytes.split_at(8);
    let version = keys::u64_value(v, || format!("document `{collection}/{key}`"))?;
    Ok(Document {
        value: value.to_vec(),
        version,
    })
}

fn encode_doc(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

impl Inner {
    fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        self.tree
            .get(keys::doc(collection, key))
            .map_err(from_sled)?
            .map(|v| decode_doc(collection, key, &v))
            .transpose()
    }

    fn scan(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        let coll = keys::doc_prefix(collection);
        let full_prefix = keys::doc(collection, prefix);
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(keys::doc(collection, a)),
            _ => Bound::Included(full_prefix.clone()),
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for item in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            let (k, v) = item.map_err(from_sled)?;
            if !k.starts_with(&full_prefix) {
                break;
            }
            let key = std::str::from_utf8(&k[coll.len()..]).map_err(|_| {
                corrupted(
                    format!("a key of collection `{collection}`"),
                    "key is not UTF-8",
                )
            })?;
            out.push((key.to_owned(), decode_doc(collection, key, &v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn commit(&self, commit: Commit) -> Result<()> {
        self.core.syncer.check_healthy()?;
        {
            let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            // The documents as this commit leaves them, checked op by op.
            let mut scratch: BTreeMap<Vec<u8>, Option<(u64, Vec<u8>)>> = BTreeMap::new();
            for op in &commit.ops {
                let (c, k) = op.target();
                let id = keys::doc(c, k);
                let actual = match scratch.get(&id) {
                    Some(d) => d.as_ref().map(|(v, _)| *v),
                    None => self.get(c, k)?.map(|d| d.version),
                };
                match op {
                    WriteOp::Put { value, expect, .. } => {
                        expect.check(c, k, actual)?;
                        scratch.insert(id, Some((actual.unwrap_or(0) + 1, value.clone())));
                    }
                    WriteOp::Delete { expect, .. } => {
                        expect.check(c, k, actual)?;
                        scratch.insert(id, None);
                    }
                }
            }
            let mut batch = sled::Batch::default();
            for (id, doc) in scratch {
                match doc {
                    Some((version, value)) => batch.insert(id, encode_doc(version, &value)),
                    None => batch.remove(id),
                }
            }
            if let Some((name, pos)) = &commit.checkpoint {
                batch.insert(keys::checkpoint(name), &pos.to_be_bytes());
            }
            self.tree
                .apply_batch(batch)
                .map_err(|e| self.core.syncer.fail(from_sled(e)))?;
        }
        if commit.checkpoint.is_some() {
            // Derived from the log: no barrier of its own (see `Durability`).
            return Ok(());
        }
        self.core.syncer.commit_point()
    }

    fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        self.tree
            .get(keys::checkpoint(projection))
            .map_err(from_sled)?
            .map(|v| keys::u64_value(&v, || format!("checkpoint of projection `{projection}`")))
            .transpose()
    }

    fn clear_collection(&self, collection: &str) -> Result<()> {
        let prefix = keys::doc_prefix(collection);
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            for item in self.tree.scan_prefix(&prefix).keys().take(4096) {
                batch.remove(item.map_err(from_sled)?);
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.tree.apply_batch(batch).map_err(from_sled)?;
        }
        drop(_guard);
        self.core.syncer.commit_point()
    }

    fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        {
            let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.tree
                .remove(keys::checkpoint(projection))
                .map_err(from_sled)?;
        }
        self.core.syncer.commit_point()
    }
}

/// Runs a blocking closure (one that may fsync) off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::backend(e.to_string()))?
}

#[async_trait]
impl ReadModelStore for SledReadModels {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        self.inner.get(collection, key)
    }

    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        self.inner.scan(collection, prefix, after, limit)
    }

    async fn commit(&self, commit: Commit) -> Result<()> {
        let inner = self.inner.clone();
        blocking(move || inner.commit(commit)).await
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        self.inner.checkpoint(projection)
    }

    async fn clear_collection(&self, collection: &str) -> Result<()> {
        let inner = self.inner.clone();
        let collection = collection.to_owned();
        blocking(move || inner.clear_collection(&collection)).await
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        let inner = self.inner.clone();
        let projection = projection.to_owned();
        blocking(move || inner.reset_checkpoint(&projection)).await
    }

    fn capabilities(&self) -> ReadModelCapabilities {
        ReadModelCapabilities {
            atomic_commit: true,
        }
    }
}
