//! The [`MoodTimeline`] read model: each user's mood per UTC day, and each
//! entry's latest mood.
//!
//! * [`MOOD_ENTRIES`], key `{author}/{entry_id}`: the entry's last recorded
//!   analysis (revision, day, mood), or a tombstone once it is deleted.
//! * [`MOOD_DAYS`], key `{author}/{YYYY-MM-DD}`: per day of the **entry's
//!   creation** (UTC): entry count, the sum of valences in millionths (an
//!   integer, so replacing a contribution is exact and the result does not
//!   depend on the order of events), counts per dominant emotion.
//! * [`MOOD_ERASED_USERS`], key `{user}`: users whose data is gone.
//!
//! Moods are personal data: an entry's document keeps the event's sealed
//! mood, and a day's document is sealed as a whole with the user's key
//! (associated data `metachat/mood_days/{user}/{date}`), so that a store
//! which keeps old versions of documents (sled does) keeps nothing readable
//! once the key is shredded. The projection and the queries open them with
//! the user's key from the [`KeyVault`]; events of a user whose key is gone
//! are skipped (their erasure removes the documents).
//!
//! A `MoodAnalyzed` replaces the entry's previous contribution, unless it is
//! for an older revision than the one recorded (a late re-analysis), or the
//! entry is deleted, or its author erased. `EntryDeleted` removes the
//! contribution; `UserErased` removes all of the user's documents.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::date::Date;
use super::ids::{EntryId, UserId};
use super::mood::{open_mood, MoodEvent, MoodValue};
use super::mood_route::{MoodChange, MoodRouter};
use metachat_analysis::{Emotion, Mood};
use metachat_core::error::Result;
use metachat_core::event::{Envelope, Timestamp};
use metachat_core::projection::{Projection, ProjectionTx};
use metachat_core::read_model::{ReadModelStore, ReadModelStoreExt};
use metachat_shred::{self as shred, DataKey, KeyStore, KeyVault, Sealed};

/// Collection of per-entry moods, keyed `{author}/{entry_id}`.
pub const MOOD_ENTRIES: &str = "mood_entries";
/// Collection of per-day aggregates, keyed `{author}/{YYYY-MM-DD}`.
pub const MOOD_DAYS: &str = "mood_days";
/// Collection of erased users, keyed by user id.
pub const MOOD_ERASED_USERS: &str = "mood_erased_users";

/// One user's mood on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoodDay {
    /// The day (of the entries' creation).
    pub date: Date,
    /// Entries created that day with a recorded mood.
    pub entries: u64,
    /// Their mean valence, -1 to 1.
    pub mean_valence: f32,
    /// The most counted dominant emotion; ties go to the first in
    /// [`Emotion::ALL`].
    pub dominant_emotion: Emotion,
    /// How many entries had each dominant emotion (only counts above 0).
    pub emotion_counts: BTreeMap<Emotion, u64>,
}

/// An entry's latest recorded mood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzedMood {
    /// The entry revision it was analyzed at.
    pub revision: u64,
    /// The mood.
    pub mood: Mood,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EntryDoc {
    revision: u64,
    day: Option<Date>,
    /// The `MoodAnalyzed` event's sealed mood (opens with the entry id and
    /// `revision`).
    mood: Option<MoodValue>,
    deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DayDoc {
    entries: u64,
    valence_micros: i64,
    counts: BTreeMap<Emotion, u64>,
}

#[derive(Serialize, Deserialize)]
struct Erased {}

/// A valence as an integer number of millionths (non-finite: 0).
#[allow(clippy::cast_possible_truncation)] // within ±1e6 after the clamp
fn micros(valence: f32) -> i64 {
    if !valence.is_finite() {
        return 0;
    }
    let scaled = (f64::from(valence.clamp(-1.0, 1.0)) * 1e6).round();
    scaled as i64
}

impl DayDoc {
    fn add(&mut self, mood: &Mood) {
        self.entries += 1;
        self.valence_micros += micros(mood.valence);
        *self.counts.entry(mood.dominant).or_insert(0) += 1;
    }

    fn remove(&mut self, mood: &Mood) {
        self.entries = self.entries.saturating_sub(1);
        self.valence_micros -= micros(mood.valence);
        if let Some(c) = self.counts.get_mut(&mood.dominant) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.counts.remove(&mood.dominant);
            }
        }
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // a mean in [-1, 1]
    fn view(&self, date: Date) -> MoodDay {
        let dominant_emotion = Emotion::ALL
            .iter()
            .copied()
            .fold((Emotion::Neutral, 0u64), |(best, n), e| {
                let c = self.counts.get(&e).copied().unwrap_or(0);
                if c > n {
                    (e, c)
                } else {
                    (best, n)
                }
            })
            .0;
        // Counts and sums of at most a few million entries: exact in f64.
        let mean = if self.entries == 0 {
            0.0
        } else {
            self.valence_micros as f64 / 1e6 / self.entries as f64
        };
        MoodDay {
            date,
            entries: self.entries,
            mean_valence: mean as f32,
            dominant_emotion,
            emotion_counts: self.counts.clone(),
        }
    }
}

/// Projection of mood, diary and user events into [`MOOD_ENTRIES`],
/// [`MOOD_DAYS`] and [`MOOD_ERASED_USERS`] (see the [module docs](self)).
pub struct MoodTimeline<K> {
    router: MoodRouter,
    vault: KeyVault<K>,
}

impl<K> std::fmt::Debug for MoodTimeline<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoodTimeline").finish_non_exhaustive()
    }
}

fn day_aad(user: UserId, date: Date) -> Vec<u8> {
    format!("metachat/mood_days/{user}/{date}").into_bytes()
}

/// A stored sealed value that does not open: the store's damage, not the
/// caller's.
fn unreadable(what: &str, e: shred::ShredError) -> metachat_core::error::Error {
    metachat_core::error::Error::Decode {
        event_type: what.to_owned(),
        source: Box::new(e),
    }
}

fn entry_key(user: UserId, entry_id: EntryId) -> String {
    format!("{user}/{entry_id}")
}

fn day_key(user: UserId, date: Date) -> String {
    format!("{user}/{date}")
}

impl<K: KeyStore> MoodTimeline<K> {
    /// Name of the projection (its checkpoint key).
    pub const NAME: &'static str = "mood_timeline";

    /// The projection, opening moods with keys from `vault`.
    pub fn new(vault: KeyVault<K>) -> Self {
        MoodTimeline {
            router: MoodRouter::new(),
            vault,
        }
    }

    /// The latest mood of `user`'s entry `entry_id`; `None` if none was
    /// recorded, the entry is deleted, it is someone else's, or the user's
    /// key is gone.
    pub async fn entry_mood<R: ReadModelStore + ?Sized>(
        store: &R,
        vault: &KeyVault<K>,
        user: UserId,
        entry_id: EntryId,
    ) -> Result<Option<Mood>> {
        Ok(Self::analyzed_mood(store, vault, user, entry_id)
            .await?
            .map(|a| a.mood))
    }

    /// Like [`entry_mood`](MoodTimeline::entry_mood), with the revision the
    /// mood was analyzed at (older than the entry's while a re-analysis of
    /// an edit is pending).
    pub async fn analyzed_mood<R: ReadModelStore + ?Sized>(
        store: &R,
        vault: &KeyVault<K>,
        user: UserId,
        entry_id: EntryId,
    ) -> Result<Option<AnalyzedMood>> {
        let doc = store
            .get_json::<EntryDoc>(MOOD_ENTRIES, &entry_key(user, entry_id))
            .await?;
        let Some((d, _)) = doc else {
            return Ok(None);
        };
        let Some(sealed) = d.mood.filter(|_| !d.deleted) else {
            return Ok(None);
        };
        let Some(key) = vault.get(user).await? else {
            return Ok(None);
        };
        let mood = open_mood(&key, entry_id, d.revision, &sealed)
            .map_err(|e| unreadable(MOOD_ENTRIES, e))?;
        Ok(Some(AnalyzedMood {
            revision: d.revision,
            mood,
        }))
    }

    /// `user`'s days from `from` to `to` (inclusive, both optional), oldest
    /// first. Days without a recorded mood are absent.
    pub async fn days<R: ReadModelStore + ?Sized>(
        store: &R,
        vault: &KeyVault<K>,
        user: UserId,
        from: Option<Date>,
        to: Option<Date>,
    ) -> Result<Vec<MoodDay>> {
        let Some(data_key) = vault.get(user).await? else {
            return Ok(Vec::new());
        };
        let prefix = format!("{user}/");
        let mut after = from.map(|f| {
            if f == f.pred() {
                // 0000-01-01: everything of the user.
                prefix.clone()
            } else {
                day_key(user, f.pred())
            }
        });
        let mut out = Vec::new();
        const PAGE: usize = 366;
        loop {
            let page = store
                .scan_prefix(MOOD_DAYS, &prefix, after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (key, doc) in page {
                let Some(date) = key
                    .strip_prefix(&prefix)
                    .and_then(|d| d.parse::<Date>().ok())
                else {
                    continue;
                };
                if to.is_some_and(|t| date > t) {
                    return Ok(out);
                }
                let sealed = doc.json::<Sealed>()?;
                let day: DayDoc = shred::open_json(&data_key, &day_aad(user, date), &sealed)
                    .map_err(|e| unreadable(MOOD_DAYS, e))?;
                out.push(day.view(date));
                after = Some(key);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    async fn change_day(
        tx: &mut ProjectionTx<'_>,
        key: &DataKey,
        user: UserId,
        date: Date,
        change: impl FnOnce(&mut DayDoc),
    ) -> Result<()> {
        let doc_key = day_key(user, date);
        let aad = day_aad(user, date);
        let mut day = match tx.get_json::<Sealed>(MOOD_DAYS, &doc_key).await? {
            Some(sealed) => {
                shred::open_json(key, &aad, &sealed).map_err(|e| unreadable(MOOD_DAYS, e))?
            }
            None => DayDoc::default(),
        };
        change(&mut day);
        if day.entries == 0 {
            tx.delete(MOOD_DAYS, &doc_key);
        } else {
            let sealed = shred::seal_json(key, &aad, &day).map_err(|e| unreadable(MOOD_DAYS, e))?;
            tx.put_json(MOOD_DAYS, &doc_key, &sealed)?;
        }
        Ok(())
    }

    /// The mood an entry document recorded, opened.
    fn recorded(key: &DataKey, entry_id: EntryId, doc: &EntryDoc) -> Result<Option<(Date, Mood)>> {
        match (&doc.mood, doc.day, doc.deleted) {
            (Some(sealed), Some(day), false) => {
                let mood = open_mood(key, entry_id, doc.revision, sealed)
                    .map_err(|e| unreadable(MOOD_ENTRIES, e))?;
                Ok(Some((day, mood)))
            }
            _ => Ok(None),
        }
    }

    async fn analyzed(
        &self,
        tx: &mut ProjectionTx<'_>,
        author: UserId,
        entry_id: EntryId,
        revision: u64,
        created_at: Timestamp,
        sealed: MoodValue,
    ) -> Result<()> {
        let Some(key) = self.vault.get(author).await? else {
            return Ok(()); // the author's key is gone: nothing to record
        };
        let mood = match open_mood(&key, entry_id, revision, &sealed) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(entry = %entry_id, error = %e, "mood timeline: mood does not open; skipped");
                return Ok(());
            }
        };
        let doc_key = entry_key(author, entry_id);
        let old = tx.get_json::<EntryDoc>(MOOD_ENTRIES, &doc_key).await?;
        if let Some(old) = &old {
            if old.deleted || revision < old.revision {
                return Ok(());
            }
            if let Some((day, m)) = Self::recorded(&key, entry_id, old)? {
                Self::change_day(tx, &key, author, day, |d| d.remove(&m)).await?;
            }
        }
        let day = Date::of_timestamp(created_at);
        Self::change_day(tx, &key, author, day, |d| d.add(&mood)).await?;
        let doc = EntryDoc {
            revision,
            day: Some(day),
            mood: Some(sealed),
            deleted: false,
        };
        tx.put_json(MOOD_ENTRIES, &doc_key, &doc)
    }

    async fn deleted(
        &self,
        tx: &mut ProjectionTx<'_>,
        author: UserId,
        entry_id: EntryId,
        revision: u64,
    ) -> Result<()> {
        let doc_key = entry_key(author, entry_id);
        let old = tx.get_json::<EntryDoc>(MOOD_ENTRIES, &doc_key).await?;
        if let (Some(old), Some(key)) = (&old, self.vault.get(author).await?) {
            if let Some((day, m)) = Self::recorded(&key, entry_id, old)? {
                Self::change_day(tx, &key, author, day, |d| d.remove(&m)).await?;
            }
        }
        let doc = EntryDoc {
            revision,
            day: None,
            mood: None,
            deleted: true,
        };
        tx.put_json(MOOD_ENTRIES, &doc_key, &doc)
    }

    async fn erase(&self, tx: &mut ProjectionTx<'_>, user: UserId) -> Result<()> {
        tx.put_json(MOOD_ERASED_USERS, &user.to_string(), &Erased {})?;
        let prefix = format!("{user}/");
        for collection in [MOOD_ENTRIES, MOOD_DAYS] {
            loop {
                // Deletions are pending in `tx`, so each scan sees the rest.
                let page = tx.scan_prefix(collection, &prefix, None, 256).await?;
                if page.is_empty() {
                    break;
                }
                for (key, _) in page {
                    tx.delete(collection, &key);
                }
            }
        }
        Ok(())
    }

    async fn is_erased(tx: &ProjectionTx<'_>, user: UserId) -> Result<bool> {
        Ok(tx
            .get(MOOD_ERASED_USERS, &user.to_string())
            .await?
            .is_some())
    }
}

#[async_trait]
impl<K: KeyStore> Projection for MoodTimeline<K> {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn collections(&self) -> Vec<String> {
        vec![
            MOOD_ENTRIES.to_owned(),
            MOOD_DAYS.to_owned(),
            MOOD_ERASED_USERS.to_owned(),
        ]
    }

    async fn apply(&self, env: &Envelope, tx: &mut ProjectionTx<'_>) -> Result<()> {
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
                ..
            }) => {
                self.analyzed(tx, author, entry_id, entry_revision, entry_created_at, mood)
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
