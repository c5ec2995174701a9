//! The mood of diary entries: [`MoodEvent::MoodAnalyzed`], appended by the
//! [`MoodWorker`](super::MoodWorker) to the stream `mood-{entry_id}`.
//!
//! The mood itself (valence, emotions, …) is sealed with the author's key
//! under [`mood_aad`]`(entry_id, revision)` ([`seal_mood`]), and the *theme*
//! (the entry's embedding, `f32` little-endian bytes) under
//! [`theme_aad`]`(entry_id, revision)`: both are shredded with the rest of
//! the author's data. The projections open them with the author's key.
//! Only the entry's creation time stays in the clear (it is the time of
//! the entry's own `EntryCreated` in the log anyway).
//!
//! The event id is a UUID v5 of `(entry_id, entry_revision, model_id)`
//! ([`mood_event_id`]): analyzing the same revision with the same model again
//! (after a crash, before the worker stored its checkpoint) re-appends the
//! same id, which the store treats as already done.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::{EntryId, UserId};
use metachat_analysis::Mood;
use metachat_core::codec::{DomainEvent, JsonCodec, UnknownTypePolicy};
use metachat_core::error::Result;
use metachat_core::event::{EventId, StreamId, Timestamp};
use metachat_shred::{self as shred, DataKey, Sealed, ShredError};

/// Stream category of mood events: `mood-{entry_id}`.
pub const MOOD_KIND: &str = "mood";

/// Namespace of [`mood_event_id`]'s UUIDs v5.
const MOOD_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7461_6368_6174_2d6d_6f6f_642d_7631);

/// Events of a `mood-{entry_id}` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum MoodEvent {
    /// One revision of an entry was analyzed.
    MoodAnalyzed {
        /// The entry.
        entry_id: EntryId,
        /// Its author.
        author: UserId,
        /// The revision analyzed (as the diary events count it, 1-based).
        entry_revision: u64,
        /// When the entry was created (the day it counts for).
        entry_created_at: Timestamp,
        /// The mood, sealed (see [`seal_mood`]).
        mood: MoodValue,
        /// The entry's embedding sealed with the author's key (see
        /// [`seal_theme`]); `None` when the analyzer gives none.
        theme: Option<Sealed>,
    },
}

impl DomainEvent for MoodEvent {
    fn event_types() -> &'static [&'static str] {
        &["MoodAnalyzed"]
    }
}

impl MoodEvent {
    /// The entry.
    pub fn entry_id(&self) -> EntryId {
        match self {
            MoodEvent::MoodAnalyzed { entry_id, .. } => *entry_id,
        }
    }

    /// The author of the entry.
    pub fn author(&self) -> UserId {
        match self {
            MoodEvent::MoodAnalyzed { author, .. } => *author,
        }
    }
}

/// The codec of mood events (JSON; unknown types fail).
pub fn codec() -> JsonCodec<MoodEvent> {
    JsonCodec::new()
}

/// [`codec`] that skips unknown event types (for projections).
pub fn lenient_codec() -> JsonCodec<MoodEvent> {
    codec().on_unknown(UnknownTypePolicy::Skip)
}

/// The stream of `entry_id`'s moods: `mood-{entry_id}`.
pub fn mood_stream(entry_id: EntryId) -> Result<StreamId> {
    StreamId::from_parts(MOOD_KIND, entry_id)
}

/// The id of the `MoodAnalyzed` event of `entry_id` at `revision` by model
/// `model_id`: the same inputs always give the same id.
pub fn mood_event_id(entry_id: EntryId, revision: u64, model_id: &str) -> EventId {
    let name = format!("{entry_id}/{revision}/{model_id}");
    EventId(Uuid::new_v5(&MOOD_NAMESPACE, name.as_bytes()))
}

/// The mood of a [`MoodEvent::MoodAnalyzed`]: sealed in every event written
/// now; plain in events written before moods were sealed, which stay as
/// they are (the log is immutable) and still decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MoodValue {
    /// Sealed with the author's key ([`seal_mood`]).
    Sealed(Sealed),
    /// In the clear (events written before moods were sealed).
    Plain(Mood),
}

/// The associated data binding a sealed mood to its entry revision.
pub fn mood_aad(entry_id: EntryId, revision: u64) -> Vec<u8> {
    format!("metachat/entry/{entry_id}/{revision}/mood").into_bytes()
}

/// Seals the mood of `entry_id` at `revision`.
///
/// # Errors
/// [`ShredError::Seal`] if the cipher refuses.
pub fn seal_mood(
    key: &DataKey,
    entry_id: EntryId,
    revision: u64,
    mood: &Mood,
) -> Result<MoodValue, ShredError> {
    shred::seal_json(key, &mood_aad(entry_id, revision), mood).map(MoodValue::Sealed)
}

/// Opens a mood sealed by [`seal_mood`] (a plain one is returned as it is).
///
/// # Errors
/// [`ShredError::Unreadable`] for a wrong key, place or tampered value;
/// [`ShredError::Malformed`] if it is not a mood.
pub fn open_mood(
    key: &DataKey,
    entry_id: EntryId,
    revision: u64,
    value: &MoodValue,
) -> Result<Mood, ShredError> {
    match value {
        MoodValue::Sealed(sealed) => shred::open_json(key, &mood_aad(entry_id, revision), sealed),
        MoodValue::Plain(mood) => Ok(mood.clone()),
    }
}

/// The associated data binding a sealed theme to its entry revision.
pub fn theme_aad(entry_id: EntryId, revision: u64) -> Vec<u8> {
    format!("metachat/entry/{entry_id}/{revision}/theme").into_bytes()
}

/// Seals an embedding (`f32` little-endian bytes) of `entry_id` at `revision`.
///
/// # Errors
/// [`ShredError::Seal`] if the cipher refuses.
pub fn seal_theme(
    key: &DataKey,
    entry_id: EntryId,
    revision: u64,
    embedding: &[f32],
) -> Result<Sealed, ShredError> {
    let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
    shred::seal(key, &theme_aad(entry_id, revision), &bytes)
}

/// Opens a theme sealed by [`seal_theme`].
///
/// # Errors
/// [`ShredError::Unreadable`] for a wrong key, place or tampered value;
/// [`ShredError::Malformed`] if its length is not a multiple of 4.
pub fn open_theme(
    key: &DataKey,
    entry_id: EntryId,
    revision: u64,
    sealed: &Sealed,
) -> Result<Vec<f32>, ShredError> {
    let bytes = shred::open(key, &theme_aad(entry_id, revision), sealed)?;
    if bytes.len() % 4 != 0 {
        return Err(ShredError::Malformed("theme length is not a multiple of 4"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_deterministic() {
        let e = EntryId::new();
        assert_eq!(mood_event_id(e, 1, "m"), mood_event_id(e, 1, "m"));
        assert_ne!(mood_event_id(e, 1, "m"), mood_event_id(e, 2, "m"));
        assert_ne!(mood_event_id(e, 1, "m"), mood_event_id(e, 1, "n"));
        assert_ne!(
            mood_event_id(e, 1, "m"),
            mood_event_id(EntryId::new(), 1, "m")
        );
    }

    #[test]
    fn themes_round_trip_and_bind_to_their_revision() {
        let key = DataKey::generate();
        let e = EntryId::new();
        let v = vec![0.5f32, -1.25, 3.0e-8];
        let sealed = seal_theme(&key, e, 2, &v).unwrap();
        assert_eq!(open_theme(&key, e, 2, &sealed).unwrap(), v);
        assert!(open_theme(&key, e, 3, &sealed).is_err());
        assert!(open_theme(&DataKey::generate(), e, 2, &sealed).is_err());
    }
}
