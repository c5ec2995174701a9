//! [`CassandraReadModels`]: documents and projection checkpoints in Cassandra.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::try_join_all;
use metachat_core::read_model::{
    Commit, DocExpect, Document, ReadModelCapabilities, ReadModelStore, WriteOp,
};
use metachat_core::{Error, Result};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::config::CassandraConfig;
use super::{connect, error, i64_of, lwt_applied, prepare, u64_of};

/// How often a conditional commit re-reads and retries when a concurrent
/// writer changed one of its documents without breaking its conditions.
const LWT_RETRIES: usize = 32;

/// Read models (documents by collection and key, with versions) and
/// projection checkpoints in a Cassandra keyspace.
///
/// See the [module docs](super) for the table layout, how a commit is
/// written and what [`capabilities`](ReadModelStore::capabilities) promises.
/// Cheap to clone: clones share one session.
#[derive(Clone)]
pub struct CassandraReadModels {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    session: Arc<Session>,
    ns: String,
    get: PreparedStatement,
    versions: PreparedStatement,
    scan_after: PreparedStatement,
    scan_from: PreparedStatement,
    put: PreparedStatement,
    delete: PreparedStatement,
    put_if: PreparedStatement,
    delete_if: PreparedStatement,
    checkpoint_get: PreparedStatement,
    checkpoint_put: PreparedStatement,
    checkpoint_delete: PreparedStatement,
    clear: PreparedStatement,
    consistency: scylla::frame::types::Consistency,
    serial: scylla::frame::types::SerialConsistency,
}

impl std::fmt::Debug for CassandraReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraReadModels")
            .field("namespace", &self.inner.ns)
            .finish_non_exhaustive()
    }
}

/// What a commit leaves of one document.
#[derive(Debug, Clone)]
enum Final {
    Put { value: Vec<u8>, version: u64 },
    Delete,
}

/// One document touched by a commit: its stored version when read, and
/// what the commit leaves.
#[derive(Debug, Clone)]
struct Slot {
    read: Option<u64>,
    conditional: bool,
    last: Final,
}

impl CassandraReadModels {
    /// Connects, runs the schema migrations and prepares the statements.
    pub async fn connect(config: &CassandraConfig) -> Result<Self> {
        let session = connect(config).await?;
        Self::with_session(session, config).await
    }

    /// Read models on an open session (shared, e.g., with a
    /// [`CassandraEventStore`](super::CassandraEventStore)); runs the
    /// migrations and prepares the statements.
    pub(crate) async fn with_session(
        session: Arc<Session>,
        config: &CassandraConfig,
    ) -> Result<Self> {
        super::schema::migrate(&session, config).await?;
        let ks = &config.keyspace;
        let c = config.consistency;
        let p = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, c, config.page_size).await }
        };
        let doc = "ns = ? AND collection = ?";
        Ok(CassandraReadModels {
            inner: Arc::new(Inner {
                get: p(format!("SELECT value, version FROM {ks}.documents WHERE {doc} AND key = ?")).await?,
                versions: p(format!("SELECT key, version FROM {ks}.documents WHERE {doc} AND key IN ?")).await?,
                scan_after: p(format!(
                    "SELECT key, value, version FROM {ks}.documents WHERE {doc} AND key > ? LIMIT ?"
                ))
                .await?,
                scan_from: p(format!(
                    "SELECT key, value, version FROM {ks}.documents WHERE {doc} AND key >= ? LIMIT ?"
                ))
                .await?,
                put: p(format!(
                    "UPDATE {ks}.documents SET value = ?, version = ? WHERE {doc} AND key = ?"
                ))
                .await?,
                delete: p(format!("DELETE FROM {ks}.documents WHERE {doc} AND key = ?")).await?,
                put_if: p(format!(
                    "UPDATE {ks}.documents SET value = ?, version = ? WHERE {doc} AND key = ? IF version = ?"
                ))
                .await?,
                delete_if: p(format!(
                    "DELETE FROM {ks}.documents WHERE {doc} AND key = ? IF version = ?"
                ))
                .await?,
                checkpoint_get: p(format!(
                    "SELECT next_position FROM {ks}.checkpoints WHERE ns = ? AND projection = ?"
                ))
                .await?,
                checkpoint_put: p(format!(
                    "UPDATE {ks}.checkpoints SET next_position = ? WHERE ns = ? AND projection = ?"
                ))
                .await?,
                checkpoint_delete: p(format!(
                    "DELETE FROM {ks}.checkpoints WHERE ns = ? AND projection = ?"
                ))
                .await?,
                clear: p(format!("DELETE FROM {ks}.documents WHERE {doc}")).await?,
                consistency: c.driver(),
                serial: c.serial(),
                ns: config.namespace.clone(),
                session,
            }),
        })
    }

    /// The namespace these read models live in.
    pub fn namespace(&self) -> &str {
        &self.inner.ns
    }

    /// Read models in another namespace of the same keyspace, on the same
    /// session and prepared statements (they bind the namespace): what
    /// several services of one process, or one service's instances, use to
    /// keep their documents and checkpoints apart without another
    /// connection. The namespace is validated like the configuration's.
    ///
    /// ```no_run
    /// # use metachat_adapters::cassandra::{CassandraConfig, CassandraReadModels};
    /// # async fn run() -> metachat_core::Result<()> {
    /// let shared = CassandraReadModels::connect(&CassandraConfig::from_env()?.build()?).await?;
    /// let diary = shared.in_namespace("prod_diary")?;
    /// let matching = shared.in_namespace("prod_matching_1")?;
    /// # let _ = (diary, matching); Ok(()) }
    /// ```
    pub fn in_namespace(&self, namespace: &str) -> Result<Self> {
        super::config::check_namespace(namespace)?;
        let mut inner = (*self.inner).clone();
        inner.ns = namespace.to_owned();
        Ok(CassandraReadModels {
            inner: Arc::new(inner),
        })
    }

    /// Stored versions of `keys` in `collection` (absent keys are missing).
    async fn read_versions(
        &self,
        collection: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, u64>> {
        let i = &self.inner;
        let mut out = HashMap::new();
        // IN lists stay small enough for the coordinator.
        for chunk in keys.chunks(256) {
            let rows = i
                .session
                .execute_unpaged(&i.versions, (&i.ns, collection, chunk))
                .await
                .map_err(|e| error::execution("commit", e))?
                .into_rows_result()
                .map_err(|e| error::shape("commit", e))?;
            for row in rows
                .rows::<(String, i64)>()
                .map_err(|e| error::shape("commit", e))?
            {
                let (k, v) = row.map_err(|e| error::shape("commit", e))?;
                out.insert(k, u64_of(v, "document version")?);
            }
        }
        Ok(out)
    }

    /// Reads the touched documents' versions and plays the ops over them:
    /// the first failing condition is the error; else what each document
    /// ends as, by collection.
    async fn plan(&self, ops: &[WriteOp]) -> Result<BTreeMap<String, BTreeMap<String, Slot>>> {
        let mut keys: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for op in ops {
            let (c, k) = op.target();
            let list = keys.entry(c).or_default();
            if !list.iter().any(|x| x == k) {
                list.push(k.to_owned());
            }
        }
        let reads =
            try_join_all(keys.into_iter().map(|(c, ks)| async move {
                Ok::<_, Error>((c, self.read_versions(c, ks).await?))
            }))
            .await?;
        let stored: HashMap<&str, HashMap<String, u64>> = reads.into_iter().collect();
        let mut plan: BTreeMap<String, BTreeMap<String, Slot>> = BTreeMap::new();
        let mut current: HashMap<(&str, &str), Option<u64>> = HashMap::new();
        for op in ops {
            let (c, k) = op.target();
            let read = stored.get(c).and_then(|m| m.get(k)).copied();
            let now = *current.entry((c, k)).or_insert(read);
            let (expect, last) = match op {
                WriteOp::Put { value, expect, .. } => {
                    let version = now.map_or(1, |v| v + 1);
                    (
                        *expect,
                        Final::Put {
                            value: value.clone(),
                            version,
                        },
                    )
                }
                WriteOp::Delete { expect, .. } => (*expect, Final::Delete),
            };
            expect.check(c, k, now)?;
            current.insert(
                (c, k),
                match &last {
                    Final::Put { version, .. } => Some(*version),
                    Final::Delete => None,
                },
            );
            let slot = plan
                .entry(c.to_owned())
                .or_default()
                .entry(k.to_owned())
                .or_insert(Slot {
                    read,
                    conditional: false,
                    last: Final::Delete,
                });
            slot.conditional |= expect != DocExpect::Any;
            slot.last = last;
        }
        Ok(plan)
    }

    /// One conditional (LWT) batch over one collection's partition: every
    /// touched document must still be at the version the plan read.
    async fn commit_conditional(
        &self,
        collection: &str,
        slots: &BTreeMap<String, Slot>,
    ) -> Result<bool> {
        let i = &self.inner;
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_consistency(i.consistency);
        batch.set_serial_consistency(Some(i.serial));
        let mut values: Vec<DocValues<'_>> = Vec::with_capacity(slots.len());
        for (key, slot) in slots {
            let read = slot
                .read
                .map(|v| i64_of(v, "document version"))
                .transpose()?;
            match &slot.last {
                Final::Put { value, version } => {
                    batch.append_statement(i.put_if.clone());
                    values.push(DocValues::PutIf(
                        value,
                        i64_of(*version, "document version")?,
                        &i.ns,
                        collection,
                        key,
                        read,
                    ));
                }
                Final::Delete => {
                    batch.append_statement(i.delete_if.clone());
                    values.push(DocValues::DeleteIf(&i.ns, collection, key, read));
                }
            }
        }
        let result = i
            .session
            .batch(&batch, values)
            .await
            .map_err(|e| error::execution("commit", e))?;
        lwt_applied(result, "commit")
    }

    async fn commit_plain(
        &self,
        plan: &BTreeMap<String, BTreeMap<String, Slot>>,
        checkpoint: Option<&(String, u64)>,
    ) -> Result<()> {
        let i = &self.inner;
        let partitions = plan.len() + usize::from(checkpoint.is_some());
        if partitions == 0 {
            return Ok(());
        }
        // One write alone needs no batch.
        let writes: usize = plan.values().map(BTreeMap::len).sum();
        if writes == 1 && checkpoint.is_none() {
            let first = plan
                .iter()
                .find_map(|(c, slots)| slots.iter().next().map(|(k, s)| (c, k, s)));
            if let Some((collection, key, slot)) = first {
                let r = match &slot.last {
                    Final::Put { value, version } => {
                        i.session
                            .execute_unpaged(
                                &i.put,
                                (
                                    value,
                                    i64_of(*version, "document version")?,
                                    &i.ns,
                                    collection,
                                    key,
                                ),
                            )
                            .await
                    }
                    Final::Delete => {
                        i.session
                            .execute_unpaged(&i.delete, (&i.ns, collection, key))
                            .await
                    }
                };
                r.map_err(|e| error::execution("commit", e))?;
                return Ok(());
            }
        }
        // A LOGGED batch across partitions: the batch log makes it all or
        // nothing, also if the coordinator fails half-way.
        let mut batch = Batch::new(if partitions > 1 {
            BatchType::Logged
        } else {
            BatchType::Unlogged
        });
        batch.set_consistency(i.consistency);
        let mut values: Vec<DocValues<'_>> = Vec::new();
        for (collection, slots) in plan {
            for (key, slot) in slots {
                match &slot.last {
                    Final::Put { value, version } => {
                        batch.append_statement(i.put.clone());
                        values.push(DocValues::Put(
                            value,
                            i64_of(*version, "document version")?,
                            &i.ns,
                            collection,
                            key,
                        ));
                    }
                    Final::Delete => {
                        batch.append_statement(i.delete.clone());
                        values.push(DocValues::Delete(&i.ns, collection, key));
                    }
                }
            }
        }
        if let Some((projection, next)) = checkpoint {
            batch.append_statement(i.checkpoint_put.clone());
            values.push(DocValues::Checkpoint(
                i64::from_be_bytes(next.to_be_bytes()),
                &i.ns,
                projection,
            ));
        }
        i.session
            .batch(&batch, values)
            .await
            .map_err(|e| error::execution("commit", e))?;
        Ok(())
    }
}

/// The bound values of one statement of a commit's batch.
enum DocValues<'a> {
    Put(&'a [u8], i64, &'a str, &'a str, &'a str),
    Delete(&'a str, &'a str, &'a str),
    PutIf(&'a [u8], i64, &'a str, &'a str, &'a str, Option<i64>),
    DeleteIf(&'a str, &'a str, &'a str, Option<i64>),
    Checkpoint(i64, &'a str, &'a str),
}

impl scylla::serialize::row::SerializeRow for DocValues<'_> {
    fn serialize(
        &self,
        ctx: &scylla::serialize::row::RowSerializationContext<'_>,
        writer: &mut scylla::serialize::writers::RowWriter<'_>,
    ) -> std::result::Result<(), scylla::serialize::SerializationError> {
        match self {
            DocValues::Put(v, n, ns, c, k) => (v, n, ns, c, k).serialize(ctx, writer),
            DocValues::Delete(ns, c, k) => (ns, c, k).serialize(ctx, writer),
            DocValues::PutIf(v, n, ns, c, k, r) => (v, n, ns, c, k, r).serialize(ctx, writer),
            DocValues::DeleteIf(ns, c, k, r) => (ns, c, k, r).serialize(ctx, writer),
            DocValues::Checkpoint(n, ns, p) => (n, ns, p).serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

#[async_trait]
impl ReadModelStore for CassandraReadModels {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Document>> {
        let i = &self.inner;
        let rows = i
            .session
            .execute_unpaged(&i.get, (&i.ns, collection, key))
            .await
            .map_err(|e| error::execution("get", e))?
            .into_rows_result()
            .map_err(|e| error::shape("get", e))?;
        let row = rows
            .maybe_first_row::<(Option<Vec<u8>>, i64)>()
            .map_err(|e| error::shape("get", e))?;
        row.map(|(value, version)| {
            Ok(Document {
                value: value.unwrap_or_default(),
                version: u64_of(version, "document version")?,
            })
        })
        .transpose()
    }

    async fn scan_prefix(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Document)>> {
        let i = &self.inner;
        let mut out = Vec::new();
        // Keys are clustered in byte order within the collection's partition:
        // read from the later of `prefix` and `after`, stop at the first key
        // without the prefix.
        let (mut cursor, mut inclusive) = match after {
            Some(a) if a >= prefix => (a.to_owned(), false),
            _ => (prefix.to_owned(), true),
        };
        while out.len() < limit {
            let want = i32::try_from((limit - out.len()).min(1000)).unwrap_or(1000);
            let stmt = if inclusive {
                &i.scan_from
            } else {
                &i.scan_after
            };
            let rows = i
                .session
                .execute_unpaged(stmt, (&i.ns, collection, &cursor, want))
                .await
                .map_err(|e| error::execution("scan_prefix", e))?
                .into_rows_result()
                .map_err(|e| error::shape("scan_prefix", e))?;
            let mut n = 0;
            for row in rows
                .rows::<(String, Option<Vec<u8>>, i64)>()
                .map_err(|e| error::shape("scan_prefix", e))?
            {
                let (key, value, version) = row.map_err(|e| error::shape("scan_prefix", e))?;
                n += 1;
                if !key.starts_with(prefix) {
                    return Ok(out);
                }
                cursor.clone_from(&key);
                out.push((
                    key,
                    Document {
                        value: value.unwrap_or_default(),
                        version: u64_of(version, "document version")?,
                    },
                ));
            }
            inclusive = false;
            if n < usize::try_from(want).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(out)
    }

    async fn commit(&self, commit: Commit) -> Result<()> {
        if commit.ops.is_empty() && commit.checkpoint.is_none() {
            return Ok(());
        }
        let conditional = commit.ops.iter().any(|op| {
            !matches!(
                op,
                WriteOp::Put {
                    expect: DocExpect::Any,
                    ..
                } | WriteOp::Delete {
                    expect: DocExpect::Any,
                    ..
                }
            )
        });
        if !conditional {
            let plan = self.plan(&commit.ops).await?;
            return self.commit_plain(&plan, commit.checkpoint.as_ref()).await;
        }
        // Conditions: all checked on the versions read before anything is
        // written, then enforced by one LWT batch per collection that
        // requires every touched document to still be at the version read.
        // A collection whose batch lost a race is re-planned alone (its ops
        // depend on no other collection) and retried.
        let plan = self.plan(&commit.ops).await?;
        for (collection, mut slots) in plan {
            let mut tries = 0;
            while !self.commit_conditional(&collection, &slots).await? {
                tries += 1;
                if tries >= LWT_RETRIES {
                    return Err(Error::unavailable(error::shape(
                        "commit",
                        format!("conditional commit lost {LWT_RETRIES} races in a row"),
                    )));
                }
                let ops: Vec<WriteOp> = commit
                    .ops
                    .iter()
                    .filter(|op| op.target().0 == collection)
                    .cloned()
                    .collect();
                slots = self
                    .plan(&ops)
                    .await?
                    .remove(&collection)
                    .unwrap_or_default();
            }
        }
        if let Some((projection, next)) = &commit.checkpoint {
            let i = &self.inner;
            i.session
                .execute_unpaged(
                    &i.checkpoint_put,
                    (i64::from_be_bytes(next.to_be_bytes()), &i.ns, projection),
                )
                .await
                .map_err(|e| error::execution("commit", e))?;
        }
        Ok(())
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<u64>> {
        let i = &self.inner;
        let rows = i
            .session
            .execute_unpaged(&i.checkpoint_get, (&i.ns, projection))
            .await
            .map_err(|e| error::execution("checkpoint", e))?
            .into_rows_result()
            .map_err(|e| error::shape("checkpoint", e))?;
        Ok(rows
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(|e| error::shape("checkpoint", e))?
            .and_then(|(n,)| n)
            .map(|n| u64::from_be_bytes(n.to_be_bytes())))
    }

    async fn clear_collection(&self, collection: &str) -> Result<()> {
        let i = &self.inner;
        i.session
            .execute_unpaged(&i.clear, (&i.ns, collection))
            .await
            .map_err(|e| error::execution("clear_collection", e))?;
        Ok(())
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<()> {
        let i = &self.inner;
        i.session
            .execute_unpaged(&i.checkpoint_delete, (&i.ns, projection))
            .await
            .map_err(|e| error::execution("reset_checkpoint", e))?;
        Ok(())
    }

    fn capabilities(&self) -> ReadModelCapabilities {
        ReadModelCapabilities {
            atomic_commit: false,
        }
    }
}
