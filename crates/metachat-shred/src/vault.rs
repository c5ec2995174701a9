//! [`KeyVault`]: one [`DataKey`] per subject, kept in a [`KeyStore`]
//! (a [`DirKeys`](crate::DirKeys) directory, or any read-model store), never
//! in the event log.
//!
//! * [`get_or_create`](KeyVault::get_or_create) makes a subject's key on first
//!   use. Of two concurrent creators the store keeps the first key and both
//!   get it: a subject never has two keys.
//! * [`shred`](KeyVault::shred) destroys the key and leaves a tombstone, so
//!   the key can never be re-created ([`get_or_create`](KeyVault::get_or_create)
//!   then fails with [`ShredError::Shredded`]) and what it sealed stays
//!   unreadable. How thoroughly the old key is gone depends on the store:
//!   see [`keys`](crate::keys).
//! * [`shred_erased`](KeyVault::shred_erased) is the repair sweep: it follows
//!   the log from its own checkpoint and shreds the key of every subject that
//!   an event of the log erases (the caller says which events do), for the
//!   case where a process stopped between appending its erasure event and
//!   calling `shred`. Run it at start-up (it is cheap once caught up).
//!
//! # Durability
//!
//! A key must be durable before anything sealed with it is appended, or a
//! crash could leave events that nobody can open: every [`KeyStore`] write
//! returns only once it is durable ([`DirKeys`](crate::DirKeys) syncs the
//! file and its directory; `SledReadModels` must run under
//! `Durability::Sync`; Cassandra must acknowledge at `QUORUM`).
//!
//! # Cache
//!
//! Keys are cached in memory per vault (clones share the cache). `shred`
//! through this vault replaces the cached key by the tombstone, and a
//! concurrent `get_or_create` never re-inserts a key over it. Another
//! process's vault keeps its cached key until it restarts, so shred in every
//! process that holds one.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use metachat_core::error::{Error, Result};
use metachat_core::event::Envelope;
use metachat_core::store::{self, EventReader, LogSink};
use uuid::Uuid;

use crate::keys::{KeyState, KeyStore, SWEEP_CHECKPOINT};
use crate::seal::{DataKey, ShredError};

/// Most subjects whose key state the cache holds; past it, it starts over.
const CACHE_CAPACITY: usize = 100_000;

#[derive(Clone)]
enum Cached {
    Key(DataKey),
    Shredded,
}

struct Inner<K> {
    keys: K,
    cache: Mutex<HashMap<Uuid, Cached>>,
}

/// The subjects' data keys over a [`KeyStore`] (see the
/// [module docs](self)). Cheap to clone: clones share the store and cache.
pub struct KeyVault<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for KeyVault<K> {
    fn clone(&self) -> Self {
        KeyVault {
            inner: self.inner.clone(),
        }
    }
}

impl<K> fmt::Debug for KeyVault<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault").finish_non_exhaustive()
    }
}

impl<K: KeyStore> KeyVault<K> {
    /// Name of the [`shred_erased`](KeyVault::shred_erased) sweep's checkpoint.
    pub const SWEEP_NAME: &'static str = SWEEP_CHECKPOINT;

    /// A vault over `keys`.
    pub fn new(keys: K) -> Self {
        KeyVault {
            inner: Arc::new(Inner {
                keys,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The store holding the keys.
    pub fn keys(&self) -> &K {
        &self.inner.keys
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

    /// What the vault holds for `subject`.
    pub async fn state(&self, subject: impl Into<Uuid> + Send) -> Result<KeyState> {
        let subject = subject.into();
        match self.cached(subject) {
            Some(Cached::Key(k)) => return Ok(KeyState::Active(k)),
            Some(Cached::Shredded) => return Ok(KeyState::Shredded),
            None => {}
        }
        let state = self.inner.keys.load(subject).await?;
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
        let state = self
            .inner
            .keys
            .create(subject, &DataKey::generate())
            .await?;
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
        self.inner.keys.shred(&[subject], None).await?;
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
        let next = self.inner.keys.sweep_checkpoint().await?.unwrap_or(0);
        let sweep = Sweep {
            vault: self,
            erased,
        };
        store::catch_up(store, next, 512, &sweep).await
    }
}

struct Sweep<'a, K, F> {
    vault: &'a KeyVault<K>,
    erased: F,
}

#[async_trait]
impl<K, F> LogSink for Sweep<'_, K, F>
where
    K: KeyStore,
    F: Fn(&Envelope) -> Result<Option<Uuid>> + Sync,
{
    async fn apply(&self, events: &[Envelope]) -> Result<u64> {
        let mut erased = Vec::new();
        for env in events {
            if let Some(subject) = (self.erased)(env)? {
                self.vault.forget_as_shredded(subject);
                erased.push(subject);
            }
        }
        let next = events.last().map_or(0, |e| e.position + 1);
        self.vault.inner.keys.shred(&erased, Some(next)).await?;
        if !erased.is_empty() {
            tracing::info!(
                subjects = erased.len(),
                "sweep shredded the keys of erased subjects"
            );
        }
        Ok(next)
    }
}
