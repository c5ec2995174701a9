//! The events a per-author mood projection reacts to, decoded once.
//!
//! [`MoodTimeline`](super::MoodTimeline) and the
//! [`MatchingProjection`](crate::matching::MatchingProjection) both keep, per author, what the mood worker found:
//! they add an analysis, drop a deleted entry, and forget an erased user.
//! [`MoodRouter`] turns an envelope into that [`MoodChange`] (or `None` for
//! everything else), with the same lenient codecs for both.

use super::diary::{self, DiaryEntry, DiaryEvent};
use super::erasure::ErasedUsers;
use super::ids::{EntryId, UserId};
use super::mood::{self, MoodEvent, MOOD_KIND};
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::error::Result;
use metachat_core::event::Envelope;

/// What changed for a per-author mood projection.
#[derive(Debug, Clone, PartialEq)]
pub enum MoodChange {
    /// A revision of an entry was analyzed ([`MoodEvent::MoodAnalyzed`]).
    Analyzed(MoodEvent),
    /// An entry was deleted.
    EntryDeleted {
        /// The entry.
        entry_id: EntryId,
        /// Its author.
        author: UserId,
        /// The revision the deletion created.
        revision: u64,
    },
    /// A user was erased.
    UserErased {
        /// The user.
        user_id: UserId,
    },
}

impl MoodChange {
    /// The author an analysis or a deletion belongs to (a projection
    /// ignores both once that author is erased); `None` for an erasure.
    pub fn author(&self) -> Option<UserId> {
        match self {
            MoodChange::Analyzed(e) => Some(e.author()),
            MoodChange::EntryDeleted { author, .. } => Some(*author),
            MoodChange::UserErased { .. } => None,
        }
    }
}

/// Decodes the envelopes a per-author mood projection reacts to.
pub struct MoodRouter {
    moods: JsonCodec<MoodEvent>,
    entries: JsonCodec<DiaryEvent>,
    erased: ErasedUsers,
}

impl std::fmt::Debug for MoodRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoodRouter").finish_non_exhaustive()
    }
}

impl Default for MoodRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl MoodRouter {
    /// A router with lenient codecs: event types it does not know are
    /// skipped, not errors.
    pub fn new() -> Self {
        MoodRouter {
            moods: mood::lenient_codec(),
            entries: diary::lenient_codec(),
            erased: ErasedUsers::new(),
        }
    }

    /// The change `env` stands for, or `None` when it is none of them.
    ///
    /// # Errors
    /// A payload of a known type that does not decode.
    pub fn route(&self, env: &Envelope) -> Result<Option<MoodChange>> {
        let category = env.stream_id.category();
        Ok(if category == MOOD_KIND {
            self.moods.decode(env)?.map(MoodChange::Analyzed)
        } else if category == DiaryEntry::KIND && env.event_type == "EntryDeleted" {
            match self.entries.decode(env)? {
                Some(DiaryEvent::EntryDeleted {
                    entry_id,
                    author,
                    revision,
                }) => Some(MoodChange::EntryDeleted {
                    entry_id,
                    author,
                    revision,
                }),
                _ => None,
            }
        } else {
            self.erased
                .erased_user(env)?
                .map(|user_id| MoodChange::UserErased { user_id })
        })
    }
}
