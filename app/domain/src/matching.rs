//! [`MatchingProjection`]: the users' [`MatchProfile`]s kept from the log,
//! persisted in read models, and a shared in-memory [`MatchIndex`] over them.
//!
//! # Read models
//!
//! * [`MATCH_ENTRIES`], key `{author}/{entry_id}`: what one entry
//!   contributes to its author's profile — the revision, the entry's
//!   creation time, the last mood and the last (decrypted) embedding — or a
//!   tombstone once the entry is deleted. Keeping the contribution lets an
//!   edit or a re-analysis **replace** it (subtract the old, add the new)
//!   instead of adding a second one.
//! * [`MATCH_PROFILES`], key `{user}`: the user's [`MatchProfile`] (JSON).
//!
//! The mood, the embedding and the profile are personal data: each entry's
//! contribution and each profile is stored sealed with the user's key
//! (associated data `metachat/match_entries/{user}/{entry}` and
//! `metachat/match_profiles/{user}`), so a store that keeps old versions of
//! documents (sled does) keeps nothing readable once the key is shredded.
//! Only the in-memory index holds them in the clear.
//! * [`MATCH_ERASED_USERS`], key `{user}`: erased users, whose later events
//!   are ignored.
//!
//! # Events
//!
//! * `MoodAnalyzed` (stream `mood-{entry_id}`): ignored for an erased
//!   author, a deleted entry, or a revision older than the one recorded.
//!   The theme is opened with the author's key from the [`KeyVault`]; when
//!   the key is gone (shredded), the theme is absent, or it does not open or
//!   has the wrong dimension, the entry counts with its mood only (a
//!   `tracing` warning says why). Otherwise the entry's previous mood and
//!   embedding are replaced by the new ones.
//! * `EntryDeleted` (stream `entry-{entry_id}`): the entry's contribution is
//!   removed and a tombstone stays.
//! * `UserErased` (stream `user-{user_id}`): the user's profile and entries
//!   are deleted, the user is marked erased, and erased from the index (so
//!   they are never recommended again, nor can they query).
//!
//! # Order between streams
//!
//! An entry's analyses (`mood-{entry}`), its deletion (`entry-{entry}`)
//! and its author's erasure (`user-{author}`) are three streams, which a
//! bus may deliver in any interleaving; the profile must not depend on it.
//! The tombstones above make a late analysis of a deleted entry or an
//! erased author a no-op, and the revision check keeps the newest
//! revision's contribution. The sums of moods and embeddings do not depend
//! on the order they were added in. The *recent* entries would: the profile
//! keeps only the newest [`ProfileConfig::recent_entries`] embeddings and
//! does not bring back an older one when a kept entry is removed, so an
//! entry deleted before or after its analysis arrived would leave different
//! sets. When an embedding leaves the recent entries (a deletion, or an
//! analysis without one), the projection refills them from the author's
//! other stored contributions, newest first: the recent entries are always
//! the newest of the live ones, whatever the order.
//!
//! # The shared index
//!
//! The projection holds a [`SharedMatchIndex`] (`Arc<RwLock<MatchIndex>>`).
//! Each event updates it right after computing the user's new profile, in
//! the same `apply` that writes the profile into the batch. If the batch's
//! commit then fails, the runner applies the same events again, which
//! recomputes the same profile from the committed state: the index's
//! upsert is idempotent, so it ends where the read models end. At start,
//! [`MatchingProjection::load_index`] fills the index from the stored
//! profiles and erased users (after a [rebuild](metachat_core::projection::ProjectionRunner::rebuild),
//! call it again to drop anything the old read models held).
//!
//! # Usage (a server)
//!
//! ```
//! use std::sync::Arc;
//! use metachat_analysis::matching::{IndexConfig, ProfileConfig};
//! use metachat_domain::matching::{top_k_shared, MatchingProjection};
//! use metachat_shred::KeyVault;
//! use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
//! use metachat_core::projection::ProjectionRunner;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(InMemoryEventStore::new());
//! let read_models = Arc::new(InMemoryReadModels::new());
//! let vault = KeyVault::new(read_models.clone());
//! // 384: the embedder's dimension (MiniLM).
//! let matching = MatchingProjection::new(vault, ProfileConfig::new(384)?, IndexConfig::new(384)?)?;
//! let index = matching.index(); // a handle for the HTTP handlers
//! matching.load_index(&*read_models).await?; // what earlier runs stored
//! let runner = ProjectionRunner::new(store, read_models, matching);
//! runner.catch_up().await?; // or `runner.run(shutdown)` in a task
//! // In a handler: the 10 users most like `me`, or a typed error
//! // (unknown user: no profile yet; erased user).
//! # let me = metachat_domain::UserId::new();
//! let best = top_k_shared(&index, me, 10);
//! # let _ = best;
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use metachat_analysis::matching::{
    IndexConfig, Match, MatchError, MatchIndex, MatchProfile, ProfileConfig,
};
use metachat_analysis::Mood;
use metachat_core::event::{Envelope, Timestamp};
use metachat_core::projection::{Projection, ProjectionTx};
use metachat_core::read_model::{ReadModelStore, ReadModelStoreExt};
use metachat_shred::{self as shred, DataKey, KeyStore, KeyVault, Sealed, ShredError};
use serde::{Deserialize, Serialize};

use crate::ids::{EntryId, UserId};
use crate::mood::{open_mood, open_theme, MoodEvent, MoodValue};
use crate::mood_route::{MoodChange, MoodRouter};

/// Collection of per-entry contributions, keyed `{author}/{entry_id}`.
pub const MATCH_ENTRIES: &str = "match_entries";
/// Collection of profiles, keyed by user id.
pub const MATCH_PROFILES: &str = "match_profiles";
/// Collection of erased users, keyed by user id.
pub const MATCH_ERASED_USERS: &str = "match_erased_users";

/// The in-memory index shared by the projection (writer) and the queries.
pub type SharedMatchIndex = Arc<RwLock<MatchIndex>>;

/// An entry's contribution, opened.
#[derive(Debug, Clone, PartialEq)]
struct EntryDoc {
    revision: u64,
    at: Timestamp,
    mood: Option<Mood>,
    embedding: Option<Vec<f32>>,
    deleted: bool,
}

/// What [`MATCH_ENTRIES`] stores: the contribution sealed.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    revision: u64,
    at: Timestamp,
    deleted: bool,
    /// [`Contribution`] sealed.
    content: Option<Sealed>,
}

#[derive(Serialize, Deserialize)]
struct Contribution {
    mood: Option<Mood>,
    embedding: Option<Vec<f32>>,
}

fn entry_aad(user: UserId, entry: EntryId) -> Vec<u8> {
    format!("metachat/match_entries/{user}/{entry}").into_bytes()
}

fn profile_aad(user: UserId) -> Vec<u8> {
    format!("metachat/match_profiles/{user}").into_bytes()
}

fn unreadable(what: &str, e: ShredError) -> metachat_core::Error {
    metachat_core::Error::Decode {
        event_type: what.to_owned(),
        source: Box::new(e),
    }
}

#[derive(Serialize, Deserialize)]
struct Erased {}

fn entry_key(user: UserId, entry: EntryId) -> String {
    format!("{user}/{entry}")
}

/// Projection of mood, diary and user events into matching profiles and a
/// shared [`MatchIndex`] (see the [module docs](self)).
pub struct MatchingProjection<R> {
    vault: KeyVault<R>,
    profiles: ProfileConfig,
    index: SharedMatchIndex,
    router: MoodRouter,
}

impl<R> std::fmt::Debug for MatchingProjection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchingProjection")
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

/// The `k` users most similar to `user` in a shared index (a read lock
/// for the duration of the query). For handlers that kept only the handle
/// of [`MatchingProjection::index`].
pub fn top_k_shared(
    index: &SharedMatchIndex,
    user: UserId,
    k: usize,
) -> Result<Vec<Match>, MatchError> {
    read(index).top_k(user.0, k)
}

fn read<T>(index: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    index.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(index: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    index.write().unwrap_or_else(PoisonError::into_inner)
}

impl<R: KeyStore> MatchingProjection<R> {
    /// Name of the projection (its checkpoint key).
    pub const NAME: &'static str = "matching";

    /// A projection opening themes with `vault`'s keys, building profiles
    /// with `profiles` into an empty index configured by `index`. Refused:
    /// different theme dimensions in the two configurations.
    pub fn new(
        vault: KeyVault<R>,
        profiles: ProfileConfig,
        index: IndexConfig,
    ) -> Result<Self, MatchError> {
        if profiles.theme_dim() != index.theme_dim() {
            return Err(MatchError::InvalidConfig {
                reason: format!(
                    "profile theme dimension {} differs from the index's {}",
                    profiles.theme_dim(),
                    index.theme_dim()
                ),
            });
        }
        Ok(MatchingProjection {
            vault,
            profiles,
            index: Arc::new(RwLock::new(MatchIndex::new(index))),
            router: MoodRouter::new(),
        })
    }

    /// The shared index (a clone of the handle).
    pub fn index(&self) -> SharedMatchIndex {
        self.index.clone()
    }

    /// Replaces the shared index's contents by the profiles and erased users
    /// stored in `read_models`. Returns the number of indexed users.
    pub async fn load_index<S: ReadModelStore + ?Sized>(
        &self,
        read_models: &S,
    ) -> metachat_core::Result<usize> {
        let config = *read(&self.index).config();
        let mut fresh = MatchIndex::new(config);
        const PAGE: usize = 1_024;
        let mut after: Option<String> = None;
        loop {
            let page = read_models
                .scan_prefix(MATCH_ERASED_USERS, "", after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (key, _) in page {
                if let Ok(user) = key.parse::<UserId>() {
                    fresh.erase(user.0);
                }
                after = Some(key);
            }
            if !full {
                break;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = read_models
                .scan_prefix(MATCH_PROFILES, "", after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (key, doc) in page {
                let user = key.parse::<UserId>();
                let profile = match (&user, doc.json::<Sealed>()) {
                    (Ok(user), Ok(sealed)) => match self.vault.get(*user).await? {
                        Some(k) => {
                            shred::open_json::<MatchProfile>(&k, &profile_aad(*user), &sealed).ok()
                        }
                        None => None,
                    },
                    _ => None,
                };
                match (user, profile) {
                    (Ok(user), Some(profile)) => {
                        if let Err(e) = fresh.upsert_profile(user.0, &profile) {
                            tracing::warn!(%user, error = %e, "matching: stored profile not indexed");
                        }
                    }
                    _ => tracing::warn!(key, "matching: unreadable stored profile skipped"),
                }
                after = Some(key);
            }
            if !full {
                break;
            }
        }
        let n = fresh.len();
        *write(&self.index) = fresh;
        Ok(n)
    }

    /// The `k` users most similar to `user` in the shared index.
    pub fn top_k(&self, user: UserId, k: usize) -> Result<Vec<Match>, MatchError> {
        Self::top_k_in(&self.index, user, k)
    }

    /// [`top_k_shared`] on this projection's index.
    fn top_k_in(
        index: &SharedMatchIndex,
        user: UserId,
        k: usize,
    ) -> Result<Vec<Match>, MatchError> {
        top_k_shared(index, user, k)
    }

    /// The stored profile of `user`, opened with the user's key from
    /// `vault` (`None` without a profile or a key).
    pub async fn profile<S: ReadModelStore + ?Sized>(
        read_models: &S,
        vault: &KeyVault<R>,
        user: UserId,
    ) -> metachat_core::Result<Option<MatchProfile>> {
        let Some((sealed, _)) = read_models
            .get_json::<Sealed>(MATCH_PROFILES, &user.to_string())
            .await?
        else {
            return Ok(None);
        };
        let Some(key) = vault.get(user).await? else {
            return Ok(None);
        };
        shred::open_json(&key, &profile_aad(user), &sealed)
            .map(Some)
            .map_err(|e| unreadable(MATCH_PROFILES, e))
    }

    async fn load_entry(
        tx: &ProjectionTx<'_>,
        key: Option<&DataKey>,
        user: UserId,
        entry: EntryId,
    ) -> metachat_core::Result<Option<EntryDoc>> {
        let Some(stored) = tx
            .get_json::<StoredEntry>(MATCH_ENTRIES, &entry_key(user, entry))
            .await?
        else {
            return Ok(None);
        };
        let content = match (&stored.content, key) {
            (Some(sealed), Some(k)) => Some(
                shred::open_json::<Contribution>(k, &entry_aad(user, entry), sealed)
                    .map_err(|e| unreadable(MATCH_ENTRIES, e))?,
            ),
            _ => None,
        };
        let (mood, embedding) = content.map_or((None, None), |c| (c.mood, c.embedding));
        Ok(Some(EntryDoc {
            revision: stored.revision,
            at: stored.at,
            mood,
            embedding,
            deleted: stored.deleted,
        }))
    }

    fn store_entry(
        tx: &mut ProjectionTx<'_>,
        key: Option<&DataKey>,
        user: UserId,
        entry: EntryId,
        doc: EntryDoc,
    ) -> metachat_core::Result<()> {
        let content = match key {
            Some(k) if doc.mood.is_some() || doc.embedding.is_some() => Some(
                shred::seal_json(
                    k,
                    &entry_aad(user, entry),
                    &Contribution {
                        mood: doc.mood,
                        embedding: doc.embedding,
                    },
                )
                .map_err(|e| unreadable(MATCH_ENTRIES, e))?,
            ),
            _ => None,
        };
        let stored = StoredEntry {
            revision: doc.revision,
            at: doc.at,
            deleted: doc.deleted,
            content,
        };
        tx.put_json(MATCH_ENTRIES, &entry_key(user, entry), &stored)
    }

    async fn is_erased(tx: &ProjectionTx<'_>, user: UserId) -> metachat_core::Result<bool> {
        Ok(tx
            .get(MATCH_ERASED_USERS, &user.to_string())
            .await?
            .is_some())
    }

    async fn load_profile(
        &self,
        tx: &ProjectionTx<'_>,
        key: &DataKey,
        user: UserId,
    ) -> metachat_core::Result<MatchProfile> {
        match tx
            .get_json::<Sealed>(MATCH_PROFILES, &user.to_string())
            .await?
        {
            Some(sealed) => shred::open_json(key, &profile_aad(user), &sealed)
                .map_err(|e| unreadable(MATCH_PROFILES, e)),
            None => Ok(MatchProfile::new(&self.profiles)),
        }
    }

    /// Stores `profile` and mirrors it into the index.
    fn store_profile(
        &self,
        tx: &mut ProjectionTx<'_>,
        key: &DataKey,
        user: UserId,
        profile: &MatchProfile,
    ) -> metachat_core::Result<()> {
        let mut index = write(&self.index);
        if profile.theme().is_empty() && profile.mood().is_empty() {
            tx.delete(MATCH_PROFILES, &user.to_string());
            index.remove(user.0);
            return Ok(());
        }
        let sealed = shred::seal_json(key, &profile_aad(user), profile)
            .map_err(|e| unreadable(MATCH_PROFILES, e))?;
        tx.put_json(MATCH_PROFILES, &user.to_string(), &sealed)?;
        if let Err(e) = index.upsert_profile(user.0, profile) {
            tracing::warn!(%user, error = %e, "matching: profile not indexed");
        }
        Ok(())
    }

    /// The embedding sealed in `theme`, if it can be opened and fits.
    fn open(
        &self,
        key: &DataKey,
        entry: EntryId,
        revision: u64,
        theme: Option<&Sealed>,
    ) -> Option<Vec<f32>> {
        let sealed = theme?;
        match open_theme(key, entry, revision, sealed) {
            Ok(v) if v.len() == self.profiles.theme_dim() && v.iter().all(|x| x.is_finite()) => {
                Some(v)
            }
            Ok(v) => {
                tracing::warn!(%entry, len = v.len(), "matching: theme of the wrong dimension or not finite; mood only");
                None
            }
            Err(e) => {
                tracing::warn!(%entry, error = %e, "matching: theme does not open; mood only");
                None
            }
        }
    }

    /// Fills `profile`'s recent entries up to the configured number with
    /// the newest of `author`'s other live contributions that have an
    /// embedding (`except` is the entry being changed), so that they do
    /// not depend on the order entries were removed and added in.
    async fn refill_recent(
        &self,
        tx: &ProjectionTx<'_>,
        key: &DataKey,
        author: UserId,
        except: EntryId,
        profile: &mut MatchProfile,
    ) -> metachat_core::Result<()> {
        let missing = self
            .profiles
            .recent_entries()
            .saturating_sub(profile.recent().len());
        if missing == 0 {
            return Ok(());
        }
        const PAGE: usize = 256;
        let prefix = format!("{author}/");
        let mut after: Option<String> = None;
        let mut candidates = Vec::new();
        loop {
            let page = tx
                .scan_prefix(MATCH_ENTRIES, &prefix, after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (k, _) in &page {
                let Some(entry) = k
                    .strip_prefix(&prefix)
                    .and_then(|e| e.parse::<EntryId>().ok())
                else {
                    continue;
                };
                if entry == except || profile.recent().iter().any(|r| r.entry == entry.0) {
                    continue;
                }
                if let Some(EntryDoc {
                    at,
                    embedding: Some(e),
                    deleted: false,
                    ..
                }) = Self::load_entry(tx, Some(key), author, entry).await?
                {
                    candidates.push((at, entry, e));
                }
            }
            after = page.last().map(|(k, _)| k.clone());
            if !full {
                break;
            }
        }
        // Newest first, ties by entry id: the profile's own order.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1 .0.cmp(&b.1 .0)));
        for (at, entry, e) in candidates.into_iter().take(missing) {
            // The profile has no call that only remembers an entry: an
            // "edit" to the same embedding leaves the theme sums as they
            // were and puts the entry back among the recent ones.
            if let Err(err) = profile.edit_entry(entry.0, at, &e, &e) {
                tracing::warn!(%entry, error = %err, "matching: recent entry not restored");
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn analyzed(
        &self,
        tx: &mut ProjectionTx<'_>,
        author: UserId,
        entry: EntryId,
        revision: u64,
        at: Timestamp,
        mood: &MoodValue,
        theme: Option<&Sealed>,
    ) -> metachat_core::Result<()> {
        let Some(key) = self.vault.get(author).await? else {
            return Ok(()); // the author's key is gone: nothing to record
        };
        let mood = match open_mood(&key, entry, revision, mood) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%entry, error = %e, "matching: mood does not open; skipped");
                return Ok(());
            }
        };
        let old = Self::load_entry(tx, Some(&key), author, entry).await?;
        if old
            .as_ref()
            .is_some_and(|o| o.deleted || revision < o.revision)
        {
            return Ok(());
        }
        let embedding = self.open(&key, entry, revision, theme);
        let mut profile = self.load_profile(tx, &key, author).await?;
        if let Some(old) = &old {
            if let Some(m) = &old.mood {
                let _ = profile.remove_mood(old.at, m);
            }
        }
        let old_embedding = old.as_ref().and_then(|o| o.embedding.as_deref());
        let kept_embedding = match (old_embedding, &embedding) {
            (Some(o), Some(n)) => {
                profile.edit_entry(entry.0, at, o, n).is_ok() || {
                    let _ = profile.remove_entry(entry.0, o);
                    profile.add_entry(entry.0, at, n).is_ok()
                }
            }
            (Some(o), None) => {
                let _ = profile.remove_entry(entry.0, o);
                self.refill_recent(tx, &key, author, entry, &mut profile)
                    .await?;
                false
            }
            (None, Some(n)) => profile.add_entry(entry.0, at, n).is_ok(),
            (None, None) => false,
        };
        let kept_mood = match profile.add_mood(at, &mood) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%entry, error = %e, "matching: mood not usable");
                false
            }
        };
        let doc = EntryDoc {
            revision,
            at,
            mood: kept_mood.then_some(mood),
            embedding: if kept_embedding { embedding } else { None },
            deleted: false,
        };
        Self::store_entry(tx, Some(&key), author, entry, doc)?;
        self.store_profile(tx, &key, author, &profile)
    }

    async fn deleted(
        &self,
        tx: &mut ProjectionTx<'_>,
        author: UserId,
        entry: EntryId,
        revision: u64,
    ) -> metachat_core::Result<()> {
        let key = self.vault.get(author).await?;
        let old = Self::load_entry(tx, key.as_ref(), author, entry).await?;
        if let (Some(old), Some(key)) = (old.as_ref().filter(|o| !o.deleted), &key) {
            let mut profile = self.load_profile(tx, key, author).await?;
            if let Some(m) = &old.mood {
                let _ = profile.remove_mood(old.at, m);
            }
            if let Some(e) = &old.embedding {
                let _ = profile.remove_entry(entry.0, e);
                self.refill_recent(tx, key, author, entry, &mut profile)
                    .await?;
            }
            self.store_profile(tx, key, author, &profile)?;
        }
        let tombstone = EntryDoc {
            revision: old.map_or(revision, |o| o.revision.max(revision)),
            at: Timestamp(0),
            mood: None,
            embedding: None,
            deleted: true,
        };
        Self::store_entry(tx, None, author, entry, tombstone)
    }

    async fn erase(&self, tx: &mut ProjectionTx<'_>, user: UserId) -> metachat_core::Result<()> {
        tx.put_json(MATCH_ERASED_USERS, &user.to_string(), &Erased {})?;
        tx.delete(MATCH_PROFILES, &user.to_string());
        let prefix = format!("{user}/");
        loop {
            // Deletions are pending in `tx`, so each scan sees the rest.
            let page = tx.scan_prefix(MATCH_ENTRIES, &prefix, None, 256).await?;
            if page.is_empty() {
                break;
            }
            for (key, _) in page {
                tx.delete(MATCH_ENTRIES, &key);
            }
        }
        write(&self.index).erase(user.0);
        Ok(())
    }
}

#[async_trait]
impl<R: KeyStore> Projection for MatchingProjection<R> {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn collections(&self) -> Vec<String> {
        vec![
            MATCH_ENTRIES.to_owned(),
            MATCH_PROFILES.to_owned(),
            MATCH_ERASED_USERS.to_owned(),
        ]
    }

    async fn apply(&self, env: &Envelope, tx: &mut ProjectionTx<'_>) -> metachat_core::Result<()> {
        let Some(change) = self.router.route(env)? else {
            return Ok(());
        };
        if let Some(author) = change.author() {
            if Self::is_erased(tx, author).await? {
                return Ok(());
            }
        }
        match change {
            MoodChange::Analyzed(MoodEvent::MoodAnalyzed {
                entry_id,
                author,
                entry_revision,
                entry_created_at,
                mood,
                theme,
            }) => {
                self.analyzed(
                    tx,
                    author,
                    entry_id,
                    entry_revision,
                    entry_created_at,
                    &mood,
                    theme.as_ref(),
                )
                .await?;
            }
            MoodChange::EntryDeleted {
                entry_id,
                author,
                revision,
            } => self.deleted(tx, author, entry_id, revision).await?,
            MoodChange::UserErased { user_id } => self.erase(tx, user_id).await?,
        }
        Ok(())
    }
}
