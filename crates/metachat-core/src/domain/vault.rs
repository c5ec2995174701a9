//! [`KeyVault`]: one [`DataKey`] per user, kept in the read-model store
//! (collection [`DATA_KEYS`], keyed by user id), never in the event log.
//!
//! * [`get_or_create`](KeyVault::get_or_create) makes a user's key on first
//!   use. The document is written with [`DocExpect::Absent`], so of two
//!   concurrent creators exactly one write wins and the other reads and
//!   returns the winner's key: a user never has two keys.
//! * [`shred`](KeyVault::shred) replaces the key by a tombstone. The
//!   tombstone stays forever, so the key can never be re-created
//!   ([`get_or_create`](KeyVault::get_or_create) then fails with
//!   [`ShredError::Shredded`]) and what it sealed stays unreadable.
//! * [`shred_erased`](KeyVault::shred_erased) is the repair sweep: it follows
//!   the log from its own checkpoint ([`KeyVault::SWEEP_NAME`]) and shreds the
//!   key of every user with a `UserErased` event, for the case where a
//!   process stopped between appending `UserErased` and calling `shred`.
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
//! process that holds one (the embedded server has one process). The
//! collection is nobody's projection collection: a projection rebuild never
//! clears it. Backups of the read-model store contain keys; erasure only
//! reaches a backup when it expires.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::ids::UserId;
use super::shred::{DataKey, ShredError};
use super::user::{User, UserEvent};
use crate::aggregate::Aggregate;
use crate::codec::{Codec, JsonCodec, UnknownTypePolicy};
use crate::error::{Error, Result};
use crate::event::{Envelope, Timestamp};
use crate::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt};
use crate::store::{self, EventReader, LogSink};

/// Collection of the users' keys and tombstones, keyed by user id.
pub const DATA_KEYS: &str = "data_keys";

/// Name of the [`KeyVault::shred_erased`] sweep's checkpoint.
pub const SWEEP_CHECKPOINT: &str = "key_vault_sweep";

/// Most users whose key state the cache holds; past it, it starts over.
const CACHE_CAPACITY: usize = 100_000;

/// What the vault holds for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// The user's live key.
    Active(DataKey),
    /// No key was ever made for the user.
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
    cache: Mutex<HashMap<UserId, Cached>>,
}

/// The users' data keys over a [`ReadModelStore`] (see the
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

    fn cached(&self, user: UserId) -> Option<Cached> {
        let cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.get(&user).cloned()
    }

    /// Caches `state` unless a tombstone is cached already; returns what is
    /// cached afterwards.
    fn remember(&self, user: UserId, state: &KeyState) -> KeyState {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Cached::Shredded) = cache.get(&user) {
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
        cache.insert(user, entry);
        state.clone()
    }

    fn forget_as_shredded(&self, user: UserId) {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(user, Cached::Shredded);
    }

    async fn load(&self, user: UserId) -> Result<KeyState> {
        match self
            .inner
            .read_models
            .get_json::<KeyDoc>(DATA_KEYS, &user.to_string())
            .await?
        {
            Some((doc, _)) => doc.into_state(),
            None => Ok(KeyState::Missing),
        }
    }

    /// What the vault holds for `user`.
    pub async fn state(&self, user: UserId) -> Result<KeyState> {
        match self.cached(user) {
            Some(Cached::Key(k)) => return Ok(KeyState::Active(k)),
            Some(Cached::Shredded) => return Ok(KeyState::Shredded),
            None => {}
        }
        let state = self.load(user).await?;
        Ok(self.remember(user, &state))
    }

    /// `user`'s key; `None` if it was never made or was shredded.
    pub async fn get(&self, user: UserId) -> Result<Option<DataKey>> {
        Ok(match self.state(user).await? {
            KeyState::Active(k) => Some(k),
            KeyState::Missing | KeyState::Shredded => None,
        })
    }

    /// `user`'s key, made (durably) on first use. Idempotent, and safe to
    /// call concurrently: every caller gets the same key.
    ///
    /// # Errors
    /// [`ShredError::Shredded`] once the key was shredded;
    /// [`ShredError::Store`] when the store fails.
    pub async fn get_or_create(&self, user: UserId) -> Result<DataKey, ShredError> {
        match self.state(user).await? {
            KeyState::Active(k) => return Ok(k),
            KeyState::Shredded => return Err(ShredError::Shredded { user }),
            KeyState::Missing => {}
        }
        let key = DataKey::generate();
        let written = self
            .inner
            .read_models
            .put_json(
                DATA_KEYS,
                &user.to_string(),
                &KeyDoc::active(&key),
                DocExpect::Absent,
            )
            .await;
        let state = match written {
            Ok(()) => KeyState::Active(key),
            // Someone else created (or shredded) it first: theirs wins.
            Err(Error::DocumentConflict { .. }) => self.load(user).await?,
            Err(e) => return Err(e.into()),
        };
        match self.remember(user, &state) {
            KeyState::Active(k) => Ok(k),
            KeyState::Shredded => Err(ShredError::Shredded { user }),
            KeyState::Missing => Err(Error::Decode {
                event_type: "data_key".into(),
                source: "key document vanished".into(),
            }
            .into()),
        }
    }

    /// Destroys `user`'s key for good (a tombstone replaces it, durably).
    /// Idempotent; also works for a user who never had a key (none will be
    /// made). The key reads as shredded in this vault from the call on, even
    /// if the write then fails: retry until it returns `Ok` (or let
    /// [`shred_erased`](KeyVault::shred_erased) finish it).
    pub async fn shred(&self, user: UserId) -> Result<()> {
        self.forget_as_shredded(user);
        self.inner
            .read_models
            .put_json(
                DATA_KEYS,
                &user.to_string(),
                &KeyDoc::Shredded {
                    shredded_at: Timestamp::now(),
                },
                DocExpect::Any,
            )
            .await?;
        // A concurrent cache refill may have raced the write; the tombstone
        // entry is sticky, but set it again to be plain about it.
        self.forget_as_shredded(user);
        Ok(())
    }

    /// Shreds the key of every user erased in `store`'s log since the last
    /// sweep, and stores the sweep's checkpoint with the tombstones. Returns
    /// the next position to sweep.
    pub async fn shred_erased<S: EventReader>(&self, store: &S) -> Result<u64> {
        let next = self
            .inner
            .read_models
            .checkpoint(Self::SWEEP_NAME)
            .await?
            .unwrap_or(0);
        let sweep = Sweep {
            vault: self,
            codec: JsonCodec::new().on_unknown(UnknownTypePolicy::Skip),
        };
        store::catch_up(store, next, 512, &sweep).await
    }
}

struct Sweep<'a, R> {
    vault: &'a KeyVault<R>,
    codec: JsonCodec<UserEvent>,
}

#[async_trait]
impl<R: ReadModelStore> LogSink for Sweep<'_, R> {
    async fn apply(&self, events: &[Envelope]) -> Result<u64> {
        let mut commit = Commit::default();
        let mut erased = Vec::new();
        for env in events {
            if env.stream_id.category() != User::KIND || env.event_type != "UserErased" {
                continue;
            }
            if let Some(UserEvent::UserErased { user_id }) = self.codec.decode(env)? {
                self.vault.forget_as_shredded(user_id);
                commit.put_json(
                    DATA_KEYS,
                    &user_id.to_string(),
                    &KeyDoc::Shredded {
                        shredded_at: Timestamp::now(),
                    },
                    DocExpect::Any,
                )?;
                erased.push(user_id);
            }
        }
        let next = events.last().map_or(0, |e| e.position + 1);
        commit.checkpoint = Some((KeyVault::<R>::SWEEP_NAME.to_owned(), next));
        self.vault.inner.read_models.commit(commit).await?;
        if !erased.is_empty() {
            tracing::info!(
                users = erased.len(),
                "sweep shredded the keys of erased users"
            );
        }
        Ok(next)
    }
}
