//! [`CassandraKeyStore`]: the subjects' data keys in Cassandra.

use std::sync::Arc;

use async_trait::async_trait;
use metachat_core::{Error, Result};
use metachat_shred::{DataKey, KeyState, KeyStore, KEY_LEN, SWEEP_CHECKPOINT};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use metachat_core::read_model::{Commit, ReadModelStore};

use super::config::CassandraConfig;
use super::read_models::CassandraReadModels;
use super::{error, lwt_applied, prepare};

/// The subjects' data keys in a table of their own,
/// `data_keys`, for a [`KeyVault`](metachat_shred::KeyVault) shared by
/// every process of a cluster.
///
/// * **Create** is `INSERT … IF NOT EXISTS` (a lightweight transaction): of
///   two concurrent creators the first key wins and both get it.
/// * **Shred** writes `key = null, shredded = true` (as a lightweight
///   transaction too, so it is ordered with the creates): a cell tombstone
///   over the key and a permanent marker, so the key is never made again.
/// * The sweep's checkpoint is a row of `checkpoints` (kept through the
///   read models)
///   ([`SWEEP_CHECKPOINT`](metachat_shred::SWEEP_CHECKPOINT)).
///
/// # What erasure leaves, and for how long
///
/// Cassandra does not overwrite: the shredded key stays in the SSTables
/// written before the shred until a compaction merges them with the
/// tombstone **after** the table's `gc_grace_seconds`. The table is created
/// with `gc_grace_seconds = 86400` (one day, against ten days for other
/// tables), so the window is one day plus the time until the SSTables
/// holding the key are compacted; `nodetool garbagecollect <keyspace>
/// data_keys` (or a major compaction) after the day closes it at once.
/// Run repairs more often than `gc_grace_seconds`, or a replica that missed
/// the shred could bring the key's bytes back (the `shredded` marker still
/// keeps it from being used). Snapshots and backups keep keys until they
/// expire.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct CassandraKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Arc<Session>,
    ns: String,
    get: PreparedStatement,
    create: PreparedStatement,
    tombstone_new: PreparedStatement,
    tombstone: PreparedStatement,
    /// Where the sweep's checkpoint is kept (the read models' checkpoints).
    checkpoints: CassandraReadModels,
}

impl std::fmt::Debug for CassandraKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraKeyStore")
            .field("namespace", &self.inner.ns)
            .finish_non_exhaustive()
    }
}

impl CassandraKeyStore {
    /// Keys on an open session (the migrations have run); prepares the
    /// statements.
    pub(crate) async fn with_session(
        session: Arc<Session>,
        config: &CassandraConfig,
        checkpoints: CassandraReadModels,
    ) -> Result<Self> {
        let ks = &config.keyspace;
        let c = config.consistency;
        let p = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, c, config.page_size).await }
        };
        let at = "ns = ? AND subject = ?";
        Ok(CassandraKeyStore {
            inner: Arc::new(Inner {
                get: p(format!(
                    "SELECT key, shredded FROM {ks}.data_keys WHERE {at}"
                ))
                .await?,
                create: p(format!(
                    "INSERT INTO {ks}.data_keys (ns, subject, key, shredded) \
                     VALUES (?, ?, ?, false) IF NOT EXISTS"
                ))
                .await?,
                tombstone_new: p(format!(
                    "INSERT INTO {ks}.data_keys (ns, subject, shredded) \
                     VALUES (?, ?, true) IF NOT EXISTS"
                ))
                .await?,
                tombstone: p(format!(
                    "UPDATE {ks}.data_keys SET key = null, shredded = true WHERE {at} IF EXISTS"
                ))
                .await?,
                checkpoints,
                ns: config.namespace.clone(),
                session,
            }),
        })
    }

    async fn shred_one(&self, subject: Uuid) -> Result<()> {
        let i = &self.inner;
        // A key row may exist or not; either way the row ends shredded.
        for _ in 0..8 {
            let r = i
                .session
                .execute_unpaged(&i.tombstone, (&i.ns, subject))
                .await
                .map_err(|e| error::execution("shred key", e))?;
            if lwt_applied(r, "shred key")? {
                return Ok(());
            }
            let r = i
                .session
                .execute_unpaged(&i.tombstone_new, (&i.ns, subject))
                .await
                .map_err(|e| error::execution("shred key", e))?;
            if lwt_applied(r, "shred key")? {
                return Ok(());
            }
            // Created between the two: shred it on the next round.
        }
        Err(Error::unavailable(format!(
            "shredding the key of {subject}: the row kept changing"
        )))
    }
}

#[async_trait]
impl KeyStore for CassandraKeyStore {
    async fn load(&self, subject: Uuid) -> Result<KeyState> {
        let i = &self.inner;
        let rows = i
            .session
            .execute_unpaged(&i.get, (&i.ns, subject))
            .await
            .map_err(|e| error::execution("load key", e))?
            .into_rows_result()
            .map_err(|e| error::shape("load key", e))?;
        let row = rows
            .maybe_first_row::<(Option<Vec<u8>>, Option<bool>)>()
            .map_err(|e| error::shape("load key", e))?;
        match row {
            None => Ok(KeyState::Missing),
            Some((_, Some(true))) => Ok(KeyState::Shredded),
            Some((Some(bytes), _)) => {
                let key: [u8; KEY_LEN] =
                    bytes.as_slice().try_into().map_err(|_| Error::Corrupted {
                        location: format!("data_keys/{subject}"),
                        reason: format!("a key of {} bytes", bytes.len()),
                    })?;
                Ok(KeyState::Active(DataKey::from_bytes(key)))
            }
            Some((None, _)) => Err(Error::Corrupted {
                location: format!("data_keys/{subject}"),
                reason: "neither a key nor shredded".into(),
            }),
        }
    }

    async fn create(&self, subject: Uuid, key: &DataKey) -> Result<KeyState> {
        let i = &self.inner;
        let r = i
            .session
            .execute_unpaged(&i.create, (&i.ns, subject, key.as_bytes().as_slice()))
            .await
            .map_err(|e| error::execution("create key", e))?;
        if lwt_applied(r, "create key")? {
            return Ok(KeyState::Active(key.clone()));
        }
        self.load(subject).await
    }

    async fn shred(&self, subjects: &[Uuid], sweep_next: Option<u64>) -> Result<()> {
        for subject in subjects {
            self.shred_one(*subject).await?;
        }
        match sweep_next {
            Some(next) => {
                let commit = Commit {
                    ops: Vec::new(),
                    checkpoint: Some((SWEEP_CHECKPOINT.to_owned(), next)),
                };
                self.inner.checkpoints.commit(commit).await
            }
            None => Ok(()),
        }
    }

    async fn sweep_checkpoint(&self) -> Result<Option<u64>> {
        self.inner.checkpoints.checkpoint(SWEEP_CHECKPOINT).await
    }
}
