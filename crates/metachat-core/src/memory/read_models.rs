use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::Result;
use crate::read_model::{Commit, Document, ReadModelCapabilities, ReadModelStore, WriteOp};

/// Read models in memory; commits are atomic.
#[derive(Debug, Default)]
pub struct InMemoryReadModels {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    docs: BTreeMap<(String, String), Document>,
    checkpoints: HashMap<String, u64>,
}

impl InMemoryReadModels {
    /// Empty read models.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ReadModelStore for InMemoryReadModels {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        Ok(self
            .lock()
            .docs
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        let st = self.lock();
        let start = (collection.to_owned(), prefix.to_owned());
        Ok(st
            .docs
            .range(start..)
            .take_while(|((c, k), _)| c == collection && k.starts_with(prefix))
            .filter(|((_, k), _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|((_, k), d)| (k.clone(), d.clone()))
            .collect())
    }

    async fn commit(&self, commit: Commit) -> Result<()> {
        let mut st = self.lock();
        // Apply to a scratch copy of the touched documents, then publish.
        let mut scratch: BTreeMap<(String, String), Option<Document>> = BTreeMap::new();
        for op in &commit.ops {
            let (c, k) = op.target();
            let id = (c.to_owned(), k.to_owned());
            let current = match scratch.get(&id) {
                Some(d) => d.clone(),
                None => st.docs.get(&id).cloned(),
            };
            let actual = current.as_ref().map(|d| d.version);
            match op {
                WriteOp::Put { value, expect, .. } => {
                    expect.check(c, k, actual)?;
                    let version = actual.unwrap_or(0) + 1;
                    scratch.insert(
                        id,
                        Some(Document {
                            value: value.clone(),
                            version,
                        }),
                    );
                }
                WriteOp::Delete { expect, .. } => {
                    expect.check(c, k, actual)?;
                    scratch.insert(id, None);
                }
            }
        }
        for (id, doc) in scratch {
            match doc {
                Some(d) => st.docs.insert(id, d),
                None => st.docs.remove(&id),
            };
        }
        if let Some((name, pos)) = commit.checkpoint {
            st.checkpoints.insert(name, pos);
        }
        Ok(())
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        Ok(self.lock().checkpoints.get(projection).copied())
    }

    async fn clear_collection(&self, collection: &str) -> Result<()> {
        self.lock().docs.retain(|(c, _), _| c != collection);
        Ok(())
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        self.lock().checkpoints.remove(projection);
        Ok(())
    }

    fn capabilities(&self) -> ReadModelCapabilities {
        ReadModelCapabilities {
            atomic_commit: true,
        }
    }
}
