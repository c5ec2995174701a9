//! [`KeyVault`]: one [`DataKey`] per subject, kept in the read-model store
//! (collection [`DATA_KEYS`], keyed by subject id), never in the event log.
//!
//! * [`get_or_create`](KeyVault::get_or_create) makes a subject's key on first
//!   use. The document is written with [`DocExpect::Absent`], so of two
//!   concurrent creators exactly one write wins and the other reads and
//!   returns the winner's key: a subject never has two keys.
//! * [`shred`](KeyVault::shred) replaces the key by a tombstone. The
//!   tombstone stays forever, so the key can never be re-created
//!   ([`get_or_create`](KeyVault::get_or_create) then fails with
//!   [`ShredError::Shredded`]) and what it sealed stays unreadable.
//! * [`shred_erased`](KeyVault::shred_erased) is the repair sweep: it follows
//!   the log from its own checkpoint ([`KeyVault::SWEEP_NAME`]) and shreds the
//!   key of every subject that an event of the log erases (the caller says
//!   which events do), for the case where a process stopped between
//!   appending its erasure event and calling `shred`.
//!   Run it at start-up (it is cheap once caught up).
//!
//! # Durability
//!
//! A key must be durable before anything sealed with it is appended, or a
//! crash could leave events that nobody can open. Every vault write is one
//! [`ReadModelStore::commit`] that returns only once the backend acknowledged
//! it: `SledReadModels` under `Durability::Sync` (the default) returns after
//! the same `fdatasync` barrier as appends; under `Durability::Periodic` a
//! crash may lose the last interval's keys, so use `Sync` for the vault.
//! Other backends must acknowledge commits durably (e.g. Cassandra at
//! `QUORUM`).
//!
//! # Cache
//!
//! Keys are cached in memory per vault (clones share the cache). `shred`
//! through this vault replaces the cached key by the tombstone, and a
//! concurrent `get_or_create` never re-inserts a key over it. Another
//! process's vault keeps its cached key until it restarts, so shred in every
//! process that holds one. The
//! collection is nobody's projection collection: a projection rebuild never
//! clears it. Backups of the read-model store contain keys; erasure only
//! reaches a backup when it expires.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use metachat_core::error::{Error, Result};
use metachat_core::event::{Envelope, Timestamp};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt};
use metachat_core::store::{self, EventReader, LogSink};
use uuid::Uuid;

use crate::seal::{DataKey, ShredError};

/// Collection of the subjects' keys and tombstones, keyed by subject id.
pub const DATA_KEYS: &str = "data_keys";

/// Name of the [`KeyVault::shred_erased`] sweep's checkpoint.
pub const SWEEP_CHECKPOINT: &str = "key_vault_sweep";

/// Most subjects whose key state the cache holds; past it, it starts over.
const CACHE_CAPACITY: usize = 100_000;

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

#[derive(Clone)]
enum Cached {
    Key(DataKey),
    Shredded,
}

struct Inner<R> {
    read_models: R,
    cache: Mutex<HashMap<Uuid, Cached>>,
}

/// The subjects' data keys over a [`ReadModelStore`] (see the
/// [module docs](self)). Cheap to clone: clones share the store and cache.
pub struct KeyVault<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for KeyVault<R> {
    fn clone(&self) -> Self {
        KeyVault {
            inner: self.inner.clone(),
        }
    }
}

impl<R> fmt::Debug for KeyVault<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault").finish_non_exhaustive()
    }
}

impl<R: ReadModelStore> KeyVault<R> {
    /// Name of the [`shred_erased`](KeyVault::shred_erased) sweep's checkpoint.
    pub const SWEEP_NAME: &'static str = SWEEP_CHECKPOINT;

    /// A vault over `read_models`.
    pub fn new(read_models: R) -> Self {
        KeyVault {
            inner: Arc::new(Inner {
                read_models,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The read-model store holding the keys.
    pub fn read_models(&self) -> &R {
        &self.inner.read_models
    }

    fn cached(&self, subject: Uuid) -> Option<Cached> {
        let cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.get(&subject).cloned()
    }

    /// Caches `state` unless a tombstone is cached already; returns what is
    /// cached afterwards.
    fn remember(&self, subject: Uuid, state: &KeyState) -> KeyState {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Cached::Shredded) = cache.get(&subject) {
            return KeyState::Shredded;
        }
        let entry = match state {
            KeyState::Active(k) => Cached::Key(k.clone()),
            KeyState::Shredded => Cached::Shredded,
            KeyState::Missing => return KeyState::Missing,
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(subject, entry);
        state.clone()
    }

    fn forget_as_shredded(&self, subject: Uuid) {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(subject, Cached::Shredded);
    }

    async fn load(&self, subject: Uuid) -> Result<KeyState> {
        match self
            .inner
            .read_models
            .get_json::<KeyDoc>(DATA_KEYS, &subject.to_string())
            .await?
        {
            Some((doc, _)) => doc.into_state(),
            None => Ok(KeyState::Missing),
        }
    }

    /// What the vault holds for `subject`.
    pub async fn state(&self, subject: impl Into<Uuid> + Send) -> Result<KeyState> {
        let subject = subject.into();
        match self.cached(subject) {
            Some(Cached::Key(k)) => return Ok(KeyState::Active(k)),
            Some(Cached::Shredded) => return Ok(KeyState::Shredded),
            None => {}
        }
        let state = self.load(subject).await?;
        Ok(self.remember(subject, &state))
    }

    /// `subject`'s key; `None` if it was never made or was shredded.
    pub async fn get(&self, subject: impl Into<Uuid> + Send) -> Result<Option<DataKey>> {
        let subject = subject.into();
        Ok(match self.state(subject).await? {
            KeyState::Active(k) => Some(k),
            KeyState::Missing | KeyState::Shredded => None,
        })
    }

    /// `subject`'s key, made (durably) on first use. Idempotent, and safe to
    /// call concurrently: every caller gets the same key.
    ///
    /// # Errors
    /// [`ShredError::Shredded`] once the key was shredded;
    /// [`ShredError::Store`] when the store fails.
    pub async fn get_or_create(
        &self,
        subject: impl Into<Uuid> + Send,
    ) -> Result<DataKey, ShredError> {
        let subject = subject.into();
        match self.state(subject).await? {
            KeyState::Active(k) => return Ok(k),
            KeyState::Shredded => return Err(ShredError::Shredded { subject }),
            KeyState::Missing => {}
        }
        let key = DataKey::generate();
        let written = self
            .inner
            .read_models
            .put_json(
                DATA_KEYS,
                &subject.to_string(),
                &KeyDoc::active(&key),
                DocExpect::Absent,
            )
            .await;
        let state = match written {
            Ok(()) => KeyState::Active(key),
            // Someone else created (or shredded) it first: theirs wins.
            Err(Error::DocumentConflict { .. }) => self.load(subject).await?,
            Err(e) => return Err(e.into()),
        };
        match self.remember(subject, &state) {
            KeyState::Active(k) => Ok(k),
            KeyState::Shredded => Err(ShredError::Shredded { subject }),
            KeyState::Missing => Err(Error::Decode {
                event_type: "data_key".into(),
                source: "key document vanished".into(),
            }
            .into()),
        }
    }

    /// Destroys `subject`'s key for good (a tombstone replaces it, durably).
    /// Idempotent; also works for a subject who never had a key (none will be
    /// made). The key reads as shredded in this vault from the call on, even
    /// if the write then fails: retry until it returns `Ok` (or let
    /// [`shred_erased`](KeyVault::shred_erased) finish it).
    pub async fn shred(&self, subject: impl Into<Uuid> + Send) -> Result<()> {
        let subject = subject.into();
        self.forget_as_shredded(subject);
        self.inner
            .read_models
            .put_json(
                DATA_KEYS,
                &subject.to_string(),
                &KeyDoc::Shredded {
                    shredded_at: Timestamp::now(),
                },
                DocExpect::Any,
            )
            .await?;
        // A concurrent cache refill may have raced the write; the tombstone
        // entry is sticky, but set it again to be plain about it.
        self.forget_as_shredded(subject);
        Ok(())
    }

    /// Shreds the key of every subject erased in `store`'s log since the
    /// last sweep, and stores the sweep's checkpoint with the tombstones.
    /// `erased` names the subject an event erases (`None` for every other
    /// event); it decides what "erased" means for the application. Returns
    /// the next position to sweep.
    ///
    /// # Errors
    /// A store error, or the first error `erased` returns (the checkpoint
    /// then stays before that event's page).
    pub async fn shred_erased<S, F>(&self, store: &S, erased: F) -> Result<u64>
    where
        S: EventReader,
        F: Fn(&Envelope) -> Result<Option<Uuid>> + Sync,
    {
        let next = self
            .inner
            .read_models
            .checkpoint(Self::SWEEP_NAME)
            .await?
            .unwrap_or(0);
        let sweep = Sweep {
            vault: self,
            erased,
        };
        store::catch_up(store, next, 512, &sweep).await
    }
}

struct Sweep<'a, R, F> {
    vault: &'a KeyVault<R>,
    erased: F,
}

#[async_trait]
impl<R, F> LogSink for Sweep<'_, R, F>
where
    R: ReadModelStore,
    F: Fn(&Envelope) -> Result<Option<Uuid>> + Sync,
{
    async fn apply(&self, events: &[Envelope]) -> Result<u64> {
        let mut commit = Commit::default();
        let mut erased = Vec::new();
        for env in events {
            if let Some(subject) = (self.erased)(env)? {
                self.vault.forget_as_shredded(subject);
                commit.put_json(
                    DATA_KEYS,
                    &subject.to_string(),
                    &KeyDoc::Shredded {
                        shredded_at: Timestamp::now(),
                    },
                    DocExpect::Any,
                )?;
                erased.push(subject);
            }
        }
        let next = events.last().map_or(0, |e| e.position + 1);
        commit.checkpoint = Some((KeyVault::<R>::SWEEP_NAME.to_owned(), next));
        self.vault.inner.read_models.commit(commit).await?;
        if !erased.is_empty() {
            tracing::info!(
                subjects = erased.len(),
                "sweep shredded the keys of erased subjects"
            );
        }
        Ok(next)
    }
}
