//! [`KeyStore`]: where a [`KeyVault`](crate::KeyVault) keeps the subjects'
//! keys, and what each store promises about deleting them.
//!
//! Crypto-shredding is only as good as the deletion of the key. Two stores
//! come with this crate:
//!
//! * [`DirKeys`](crate::DirKeys): one file per key in a directory of its own.
//!   Shredding overwrites the file, removes it and syncs the directory:
//!   nothing in the directory holds the key afterwards. Use it with an
//!   embedded store (MetaChat's sled server keeps it in `<data-dir>/keys`).
//! * Any [`ReadModelStore`] (a blanket implementation): the key is a document
//!   of [`DATA_KEYS`], and shredding writes a tombstone over it. **The old
//!   document may survive in the store's files**: sled appends and keeps old
//!   versions until its own compaction, Cassandra keeps the shadowed cell in
//!   SSTables until a compaction after `gc_grace_seconds`, a backup keeps it
//!   until the backup expires. Use it only where that window is acceptable,
//!   and say so to the people whose data it is.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

use metachat_core::error::{Error, Result};
use metachat_core::event::Timestamp;
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt};

use crate::seal::DataKey;

/// Collection of the subjects' keys and tombstones, keyed by subject id,
/// when the vault is over a [`ReadModelStore`].
pub const DATA_KEYS: &str = "data_keys";

/// Name of the [`KeyVault::shred_erased`](crate::KeyVault::shred_erased)
/// sweep's checkpoint.
pub const SWEEP_CHECKPOINT: &str = "key_vault_sweep";

/// What the vault holds for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// The subject's live key.
    Active(DataKey),
    /// No key was ever made for the subject.
    Missing,
    /// The key was destroyed.
    Shredded,
}

/// Durable storage of the subjects' keys (see the [module docs](self) for
/// the two implementations and what deletion means in each).
///
/// Every method returns only once its writes are durable: a key must be on
/// disk before anything sealed with it is appended, and a tombstone before
/// the erasure is reported done.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// What the store holds for `subject`.
    async fn load(&self, subject: Uuid) -> Result<KeyState>;

    /// Stores `key` for `subject` unless the subject has a key or a
    /// tombstone already, and returns what the store holds afterwards: of
    /// two concurrent creators, both get the same (the first) key.
    async fn create(&self, subject: Uuid, key: &DataKey) -> Result<KeyState>;

    /// Destroys the key of each of `subjects` (idempotent; a subject with no
    /// key gets a tombstone, so none is ever made), then, if `sweep_next` is
    /// given, stores it as the sweep's checkpoint.
    async fn shred(&self, subjects: &[Uuid], sweep_next: Option<u64>) -> Result<()>;

    /// The sweep's checkpoint: the next log position it has to read.
    async fn sweep_checkpoint(&self) -> Result<Option<u64>>;
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum KeyDoc {
    Active { key: String, created_at: Timestamp },
    Shredded { shredded_at: Timestamp },
}

impl KeyDoc {
    fn active(key: &DataKey) -> Self {
        KeyDoc::Active {
            key: key.to_base64().as_str().to_owned(),
            created_at: Timestamp::now(),
        }
    }

    fn shredded() -> Self {
        KeyDoc::Shredded {
            shredded_at: Timestamp::now(),
        }
    }

    fn into_state(self) -> Result<KeyState> {
        match &self {
            KeyDoc::Active { key, .. } => {
                // `self` (and the base64 text) is wiped when dropped.
                let parsed = DataKey::from_base64(key);
                parsed.map(KeyState::Active).ok_or_else(|| Error::Decode {
                    event_type: "data_key".into(),
                    source: "stored key is not 32 bytes of base64".into(),
                })
            }
            KeyDoc::Shredded { .. } => Ok(KeyState::Shredded),
        }
    }
}

impl Drop for KeyDoc {
    fn drop(&mut self) {
        if let KeyDoc::Active { key, .. } = self {
            key.zeroize();
        }
    }
}

async fn load_doc<R: ReadModelStore>(store: &R, subject: Uuid) -> Result<KeyState> {
    match store
        .get_json::<KeyDoc>(DATA_KEYS, &subject.to_string())
        .await?
    {
        Some((doc, _)) => doc.into_state(),
        None => Ok(KeyState::Missing),
    }
}

/// Keys as documents of [`DATA_KEYS`]; shredding writes a tombstone over the
/// document, which the store may keep in its history (see the
/// [module docs](self)).
#[async_trait]
impl<R: ReadModelStore> KeyStore for R {
    async fn load(&self, subject: Uuid) -> Result<KeyState> {
        load_doc(self, subject).await
    }

    async fn create(&self, subject: Uuid, key: &DataKey) -> Result<KeyState> {
        let written = self
            .put_json(
                DATA_KEYS,
                &subject.to_string(),
                &KeyDoc::active(key),
                DocExpect::Absent,
            )
            .await;
        match written {
            Ok(()) => Ok(KeyState::Active(key.clone())),
            // Someone else created (or shredded) it first: theirs wins.
            Err(Error::DocumentConflict { .. }) => load_doc(self, subject).await,
            Err(e) => Err(e),
        }
    }

    async fn shred(&self, subjects: &[Uuid], sweep_next: Option<u64>) -> Result<()> {
        let mut commit = Commit::default();
        for subject in subjects {
            commit.put_json(
                DATA_KEYS,
                &subject.to_string(),
                &KeyDoc::shredded(),
                DocExpect::Any,
            )?;
        }
        commit.checkpoint = sweep_next.map(|next| (SWEEP_CHECKPOINT.to_owned(), next));
        if commit.ops.is_empty() && commit.checkpoint.is_none() {
            return Ok(());
        }
        self.commit(commit).await
    }

    async fn sweep_checkpoint(&self) -> Result<Option<u64>> {
        self.checkpoint(SWEEP_CHECKPOINT).await
    }
}
