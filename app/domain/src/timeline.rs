//! The [`DiaryTimeline`] read model: each user's live entries, newest first,
//! paged by an opaque cursor.
//!
//! Keys of [`DIARY_TIMELINE`] are `{author}/{u64::MAX - position:020}/{entry_id}`,
//! where `position` is the global position of the `EntryCreated` event: a
//! prefix scan of `{author}/` in ascending key order yields the newest entry
//! first, the order is the log's (never a clock's), and a rebuild writes the
//! same keys. Edits update the document in place; deletions remove it. When
//! the author is erased, all their entries are removed and later events of
//! theirs are ignored.
//!
//! The documents hold the text as the events carry it, sealed
//! ([`EntryText`]); [`DiaryTimeline::page`] and [`DiaryTimeline::entry`]
//! open it with the author's key from a [`KeyVault`] at read time. Once the
//! key is shredded they return nothing for that user (never ciphertext, never
//! an error); an entry that does not open (tampered) is left out with a
//! warning.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::diary::{self, DiaryEntry, DiaryEvent, EntryText};
use super::erasure::ErasedUsers;
use super::ids::{EntryId, UserId};
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::error::{Error, Result};
use metachat_core::event::{Envelope, Timestamp};
use metachat_core::projection::{Projection, ProjectionTx};
use metachat_core::read_model::{ReadModelStore, ReadModelStoreExt};
use metachat_shred::DataKey;
use metachat_shred::{KeyState, KeyStore, KeyVault};

/// Collection of [`TimelineEntry`]s, keyed for newest-first scans.
pub const DIARY_TIMELINE: &str = "diary_timeline";
/// Collection of [`EntryLocation`]s, keyed by entry id.
pub const DIARY_ENTRIES: &str = "diary_entries";
/// Collection of erased authors, keyed by user id.
pub const DIARY_ERASED_AUTHORS: &str = "diary_erased_authors";
/// Most entries one [`DiaryTimeline::page`] returns.
pub const MAX_PAGE_SIZE: usize = 100;

/// One entry as the timeline shows it, its text opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The entry.
    pub entry_id: EntryId,
    /// Its author.
    pub author: UserId,
    /// The current text (personal data), opened.
    pub text: String,
    /// The entry's revision (1 when created, +1 per edit).
    pub revision: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
    /// The cursor that pages on after this entry.
    pub cursor: String,
}

/// A document of [`DIARY_TIMELINE`]: an entry with its text as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TimelineDoc {
    entry_id: EntryId,
    author: UserId,
    text: DocText,
    revision: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
    cursor: String,
}

/// The text of a document; documents written before the text was sealed
/// held a bare string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum DocText {
    Text(EntryText),
    Legacy(String),
}

impl TimelineDoc {
    /// The entry with its text opened; `None` if it does not open.
    fn open(self, key: Option<&DataKey>) -> Option<TimelineEntry> {
        let text = match &self.text {
            DocText::Text(t) => match t.open(key, self.entry_id) {
                Ok(t) => t,
                Err(err) => {
                    if key.is_some() {
                        tracing::warn!(entry = %self.entry_id, %err, "timeline entry does not open");
                    }
                    return None;
                }
            },
            DocText::Legacy(t) => t.clone(),
        };
        Some(TimelineEntry {
            entry_id: self.entry_id,
            author: self.author,
            text,
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
            cursor: self.cursor,
        })
    }
}

/// Where an entry lives in [`DIARY_TIMELINE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryLocation {
    /// The author.
    pub author: UserId,
    /// The key in [`DIARY_TIMELINE`].
    pub key: String,
}

/// One page of a user's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelinePage {
    /// Entries, newest first.
    pub entries: Vec<TimelineEntry>,
    /// Pass to the next [`DiaryTimeline::page`] call; `None`: no more entries.
    pub next_cursor: Option<String>,
}

/// Why a timeline query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimelineError {
    /// The cursor was not made by this timeline.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The read-model store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

#[derive(Serialize, Deserialize)]
struct Erased {}

/// Projection of diary and user events into [`DIARY_TIMELINE`],
/// [`DIARY_ENTRIES`] and [`DIARY_ERASED_AUTHORS`]. Unknown event types are
/// skipped.
#[derive(Debug)]
pub struct DiaryTimeline {
    entries: JsonCodec<DiaryEvent>,
    erased: ErasedUsers,
}

impl Default for DiaryTimeline {
    fn default() -> Self {
        Self::new()
    }
}

fn cursor_of(position: u64, entry_id: EntryId) -> String {
    format!("{:020}/{entry_id}", u64::MAX - position)
}

fn valid_cursor(cursor: &str) -> bool {
    let Some((inv, id)) = cursor.split_once('/') else {
        return false;
    };
    inv.len() == 20 && inv.bytes().all(|b| b.is_ascii_digit()) && id.parse::<EntryId>().is_ok()
}

impl DiaryTimeline {
    /// Name of the projection (its checkpoint key).
    pub const NAME: &'static str = "diary_timeline";

    /// The projection.
    pub fn new() -> Self {
        DiaryTimeline {
            entries: diary::lenient_codec(),
            erased: ErasedUsers::new(),
        }
    }

    /// Up to `limit` (clamped to `1..=`[`MAX_PAGE_SIZE`]) of `user`'s
    /// entries, newest first, after `after` (a `next_cursor` or an entry's
    /// `cursor`; `None`: from the newest), their text opened with `user`'s
    /// key from `vault`. Empty once the key is shredded. A page can hold
    /// fewer than `limit` entries while `next_cursor` is set (entries that
    /// did not open are left out).
    pub async fn page<R: ReadModelStore + ?Sized, V: KeyStore>(
        store: &R,
        vault: &KeyVault<V>,
        user: UserId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<TimelinePage, TimelineError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let prefix = format!("{user}/");
        let after = match after {
            Some(c) if valid_cursor(c) => Some(format!("{prefix}{c}")),
            Some(_) => return Err(TimelineError::InvalidCursor),
            None => None,
        };
        let key = match vault.state(user).await? {
            KeyState::Active(k) => Some(k),
            KeyState::Missing => None,
            KeyState::Shredded => {
                return Ok(TimelinePage {
                    entries: Vec::new(),
                    next_cursor: None,
                })
            }
        };
        let mut docs = store
            .scan_prefix(DIARY_TIMELINE, &prefix, after.as_deref(), limit + 1)
            .await?;
        let more = docs.len() > limit;
        docs.truncate(limit);
        let docs = docs
            .into_iter()
            .map(|(_, d)| d.json::<TimelineDoc>())
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = more
            .then(|| docs.last().map(|e| e.cursor.clone()))
            .flatten();
        let entries = docs
            .into_iter()
            .filter_map(|d| d.open(key.as_ref()))
            .collect();
        Ok(TimelinePage {
            entries,
            next_cursor,
        })
    }

    /// `author`'s live entry `entry_id`, its text opened; `None` if it does
    /// not exist, was deleted, belongs to someone else, or does not open
    /// (the key was shredded).
    pub async fn entry<R: ReadModelStore + ?Sized, V: KeyStore>(
        store: &R,
        vault: &KeyVault<V>,
        author: UserId,
        entry_id: EntryId,
    ) -> Result<Option<TimelineEntry>> {
        let Some((loc, _)) = store
            .get_json::<EntryLocation>(DIARY_ENTRIES, &entry_id.to_string())
            .await?
        else {
            return Ok(None);
        };
        if loc.author != author {
            return Ok(None);
        }
        let Some((doc, _)) = store
            .get_json::<TimelineDoc>(DIARY_TIMELINE, &loc.key)
            .await?
        else {
            return Ok(None);
        };
        let key = match vault.state(author).await? {
            KeyState::Active(k) => Some(k),
            KeyState::Missing => None,
            KeyState::Shredded => return Ok(None),
        };
        Ok(doc.open(key.as_ref()))
    }

    async fn apply_entry(
        &self,
        env: &Envelope,
        event: DiaryEvent,
        tx: &mut ProjectionTx<'_>,
    ) -> Result<()> {
        let author = event.author();
        if tx
            .get(DIARY_ERASED_AUTHORS, &author.to_string())
            .await?
            .is_some()
        {
            return Ok(());
        }
        let id_key = event.entry_id().to_string();
        match event {
            DiaryEvent::EntryCreated {
                entry_id,
                author,
                text,
                revision,
            } => {
                let cursor = cursor_of(env.position, entry_id);
                let key = format!("{author}/{cursor}");
                let doc = TimelineDoc {
                    entry_id,
                    author,
                    text: DocText::Text(text),
                    revision,
                    created_at: env.recorded_at,
                    updated_at: env.recorded_at,
                    cursor,
                };
                tx.put_json(DIARY_TIMELINE, &key, &doc)?;
                tx.put_json(DIARY_ENTRIES, &id_key, &EntryLocation { author, key })?;
            }
            DiaryEvent::EntryEdited { text, revision, .. } => {
                let Some(loc) = tx.get_json::<EntryLocation>(DIARY_ENTRIES, &id_key).await? else {
                    return Ok(());
                };
                let Some(mut doc) = tx.get_json::<TimelineDoc>(DIARY_TIMELINE, &loc.key).await?
                else {
                    return Ok(());
                };
                doc.text = DocText::Text(text);
                doc.revision = revision;
                doc.updated_at = env.recorded_at;
                tx.put_json(DIARY_TIMELINE, &loc.key, &doc)?;
            }
            DiaryEvent::EntryDeleted { .. } => {
                if let Some(loc) = tx.get_json::<EntryLocation>(DIARY_ENTRIES, &id_key).await? {
                    tx.delete(DIARY_TIMELINE, &loc.key);
                    tx.delete(DIARY_ENTRIES, &id_key);
                }
            }
        }
        Ok(())
    }

    async fn erase_author(&self, user_id: UserId, tx: &mut ProjectionTx<'_>) -> Result<()> {
        tx.put_json(DIARY_ERASED_AUTHORS, &user_id.to_string(), &Erased {})?;
        let prefix = format!("{user_id}/");
        loop {
            // Deletions are pending in `tx`, so each scan sees the rest.
            let page = tx
                .scan_prefix(DIARY_TIMELINE, &prefix, None, MAX_PAGE_SIZE)
                .await?;
            if page.is_empty() {
                return Ok(());
            }
            for (key, doc) in page {
                let entry = doc.json::<TimelineDoc>()?;
                tx.delete(DIARY_ENTRIES, &entry.entry_id.to_string());
                tx.delete(DIARY_TIMELINE, &key);
            }
        }
    }
}

#[async_trait]
impl Projection for DiaryTimeline {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn collections(&self) -> Vec<String> {
        vec![
            DIARY_TIMELINE.to_owned(),
            DIARY_ENTRIES.to_owned(),
            DIARY_ERASED_AUTHORS.to_owned(),
        ]
    }

    async fn apply(&self, env: &Envelope, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let category = env.stream_id.category();
        if category == DiaryEntry::KIND {
            if let Some(event) = self.entries.decode(env)? {
                self.apply_entry(env, event, tx).await?;
            }
        } else if let Some(user_id) = self.erased.erased_user(env)? {
            self.erase_author(user_id, tx).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_positions_sort_first() {
        let id = EntryId::new();
        let (a, b, c) = (cursor_of(0, id), cursor_of(9, id), cursor_of(10, id));
        assert!(c < b && b < a);
        assert!(valid_cursor(&a) && valid_cursor(&c));
        assert!(!valid_cursor("12/x"));
        assert!(!valid_cursor(""));
        assert!(!valid_cursor(&format!("{:020}", 5)));
    }
}
