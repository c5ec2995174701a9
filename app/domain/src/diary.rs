//! The [`DiaryEntry`] aggregate (KIND `entry`): create, edit, delete.
//!
//! An entry belongs to its author forever: only the author may edit or
//! delete it. Its *revision* counts its events (1 after `EntryCreated`, +1
//! per edit and for the deletion); every event carries the revision it
//! creates, so the mood worker can key an analysis by `(entry_id, revision)`
//! and skip stale ones.
//!
//! # The text is sealed
//!
//! The diary text is personal data and travels in exactly one field
//! (`text`) of `EntryCreated` and `EntryEdited`, as an [`EntryText`]. Since
//! schema version 2 that is always [`EntryText::Sealed`]: the text encrypted
//! with the author's [`DataKey`] under the associated
//! data [`text_aad`]`(entry_id)`. Commands therefore carry the sealed text;
//! [`Diaries`](super::Diaries) validates the plaintext
//! ([`validate_text`]) and seals it. The aggregate never sees plaintext: it
//! only checks the sealed size against [`MAX_TEXT_BYTES`].
//!
//! Events written with schema version 1 carried the plaintext; the
//! upcasters of [`codec`] read them as [`EntryText::Plain`]. They stay
//! plaintext in the log (the log is immutable), so erasing their author
//! does not make them unreadable there; only the read models drop them.
//! Always decode diary events with [`codec`] (a plain `JsonCodec::new()`
//! refuses version 1).

use serde::{Deserialize, Serialize};

use super::ids::{EntryId, UserId};
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::{DomainEvent, JsonCodec, UnknownTypePolicy, Upcasters};
use metachat_shred::{self as shred, DataKey, Sealed, ShredError, TAG_LEN};

/// Longest entry text, in bytes of UTF-8 (16 KiB).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Why a diary command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiaryError {
    /// `Create` on an entry id that is taken (even by a deleted entry).
    #[error("entry already exists")]
    AlreadyExists,
    /// `Edit` or `Delete` on an entry that was never created.
    #[error("entry not found")]
    NotFound,
    /// The caller is not the entry's author.
    #[error("not the author of this entry")]
    NotAuthor,
    /// The entry was deleted.
    #[error("entry was deleted")]
    Deleted,
    /// The text is empty or only whitespace.
    #[error("entry text is empty")]
    EmptyText,
    /// The text is longer than [`MAX_TEXT_BYTES`].
    #[error("entry text of {len} bytes exceeds {max}")]
    TextTooLong {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text holds a control character other than newline or tab.
    #[error("entry text contains a control character other than newline or tab")]
    ControlCharacter,
    /// `Edit` with an expected revision that is not the entry's.
    #[error("entry is at revision {actual}, not {expected}")]
    RevisionMismatch {
        /// What the caller expected.
        expected: u64,
        /// The entry's revision.
        actual: u64,
    },
}

/// Validates an entry's text: non-blank, at most [`MAX_TEXT_BYTES`], no
/// control characters but `\n` and `\t`. The text is stored as given.
pub fn validate_text(text: &str) -> Result<(), DiaryError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(DiaryError::TextTooLong {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    if text.trim().is_empty() {
        return Err(DiaryError::EmptyText);
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(DiaryError::ControlCharacter);
    }
    Ok(())
}

/// The associated data that binds an entry's sealed text to its entry.
pub fn text_aad(entry_id: EntryId) -> Vec<u8> {
    format!("metachat/entry/{entry_id}/text").into_bytes()
}

/// Seals `text` of `entry_id` with its author's `key`.
///
/// # Errors
/// [`ShredError::Seal`] if the cipher refuses.
pub fn seal_text(key: &DataKey, entry_id: EntryId, text: &str) -> Result<Sealed, ShredError> {
    shred::seal(key, &text_aad(entry_id), text.as_bytes())
}

/// An entry's text as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryText {
    /// Sealed with the author's key (every event of schema version 2).
    Sealed(Sealed),
    /// Plaintext, from an event of schema version 1.
    Plain(String),
}

impl EntryText {
    /// The text of `entry_id`, opened with its author's `key` where it is
    /// sealed (a [`EntryText::Plain`] text needs no key).
    ///
    /// # Errors
    /// [`ShredError::Unreadable`] for a sealed text without a key (shredded
    /// or never made), with a wrong key, or tampered;
    /// [`ShredError::Malformed`] if it is not UTF-8.
    pub fn open(&self, key: Option<&DataKey>, entry_id: EntryId) -> Result<String, ShredError> {
        match (self, key) {
            (EntryText::Plain(t), _) => Ok(t.clone()),
            (EntryText::Sealed(s), Some(key)) => shred::open_text(key, &text_aad(entry_id), s),
            (EntryText::Sealed(_), None) => Err(ShredError::Unreadable),
        }
    }

    /// True for a sealed text.
    pub fn is_sealed(&self) -> bool {
        matches!(self, EntryText::Sealed(_))
    }
}

/// The upcasters of [`DiaryEvent`]: `EntryCreated` and `EntryEdited` of
/// schema version 1 (`"text": "<plaintext>"`) become version 2
/// (`"text": {"plain": "<plaintext>"}`).
pub fn upcasters() -> Upcasters {
    fn plain(
        mut data: serde_json::Value,
    ) -> Result<serde_json::Value, metachat_core::error::BoxError> {
        let text = data
            .get_mut("text")
            .map(serde_json::Value::take)
            .ok_or("EntryCreated/EntryEdited v1 without text")?;
        if !text.is_string() {
            return Err("EntryCreated/EntryEdited v1 text is not a string".into());
        }
        data["text"] = serde_json::json!({ "plain": text });
        Ok(data)
    }
    Upcasters::new()
        .register("EntryCreated", 1, plain)
        .register("EntryEdited", 1, plain)
}

/// The codec every reader of diary events should use: JSON with
/// [`upcasters`]; unknown event types fail.
pub fn codec() -> JsonCodec<DiaryEvent> {
    JsonCodec::new().with_upcasters(upcasters())
}

/// [`codec`] that skips unknown event types (for projections and workers).
pub fn lenient_codec() -> JsonCodec<DiaryEvent> {
    codec().on_unknown(UnknownTypePolicy::Skip)
}

/// What the aggregate can check of a sealed text: its size.
fn check_sealed(text: &Sealed) -> Result<(), DiaryError> {
    let len = text.plaintext_len();
    if text.ciphertext.len() < TAG_LEN || len == 0 {
        return Err(DiaryError::EmptyText);
    }
    if len > MAX_TEXT_BYTES {
        return Err(DiaryError::TextTooLong {
            len,
            max: MAX_TEXT_BYTES,
        });
    }
    Ok(())
}

/// Events of a [`DiaryEntry`] stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DiaryEvent {
    /// An entry was written.
    EntryCreated {
        /// The entry.
        entry_id: EntryId,
        /// Its author, forever.
        author: UserId,
        /// The text (personal data), sealed with the author's key.
        text: EntryText,
        /// The revision this event creates: 1.
        revision: u64,
    },
    /// The text changed.
    EntryEdited {
        /// The entry.
        entry_id: EntryId,
        /// Its author.
        author: UserId,
        /// The new text (personal data), sealed with the author's key.
        text: EntryText,
        /// The revision this event creates.
        revision: u64,
    },
    /// The entry was deleted.
    EntryDeleted {
        /// The entry.
        entry_id: EntryId,
        /// Its author.
        author: UserId,
        /// The revision this event creates.
        revision: u64,
    },
}

impl DomainEvent for DiaryEvent {
    fn event_types() -> &'static [&'static str] {
        &["EntryCreated", "EntryEdited", "EntryDeleted"]
    }

    /// 2 for `EntryCreated` and `EntryEdited` (sealed text), 1 otherwise.
    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "EntryCreated" | "EntryEdited" => 2,
            _ => 1,
        }
    }
}

impl DiaryEvent {
    /// The entry of the event.
    pub fn entry_id(&self) -> EntryId {
        match self {
            DiaryEvent::EntryCreated { entry_id, .. }
            | DiaryEvent::EntryEdited { entry_id, .. }
            | DiaryEvent::EntryDeleted { entry_id, .. } => *entry_id,
        }
    }

    /// The author of the entry.
    pub fn author(&self) -> UserId {
        match self {
            DiaryEvent::EntryCreated { author, .. }
            | DiaryEvent::EntryEdited { author, .. }
            | DiaryEvent::EntryDeleted { author, .. } => *author,
        }
    }

    /// The text the event sets, if any.
    pub fn text(&self) -> Option<&EntryText> {
        match self {
            DiaryEvent::EntryCreated { text, .. } | DiaryEvent::EntryEdited { text, .. } => {
                Some(text)
            }
            DiaryEvent::EntryDeleted { .. } => None,
        }
    }

    /// The revision the event creates.
    pub fn revision(&self) -> u64 {
        match self {
            DiaryEvent::EntryCreated { revision, .. }
            | DiaryEvent::EntryEdited { revision, .. }
            | DiaryEvent::EntryDeleted { revision, .. } => *revision,
        }
    }
}

/// Commands of a [`DiaryEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiaryCommand {
    /// Write a new entry.
    Create {
        /// The id (must be the aggregate's id).
        entry_id: EntryId,
        /// The author.
        author: UserId,
        /// The text, validated ([`validate_text`]) and sealed
        /// ([`seal_text`]) with the author's key.
        text: Sealed,
    },
    /// Replace the text. (The aggregate cannot see that a sealed text equals
    /// the current one; [`Diaries::edit`](super::Diaries::edit) skips such an
    /// edit before it gets here.)
    Edit {
        /// Who asks; must be the author.
        author: UserId,
        /// The new text, validated and sealed like `Create`'s.
        text: Sealed,
        /// If set, the edit is refused unless the entry is at this revision
        /// (no lost updates between two editors).
        expected_revision: Option<u64>,
    },
    /// Delete the entry.
    Delete {
        /// Who asks; must be the author.
        author: UserId,
        /// If set, the deletion is refused unless the entry is at this
        /// revision (no change lost between reading and deleting).
        expected_revision: Option<u64>,
    },
}

/// A diary entry's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiaryEntry {
    entry_id: Option<EntryId>,
    author: Option<UserId>,
    text: Option<EntryText>,
    revision: u64,
    deleted: bool,
}

impl DiaryEntry {
    /// The id, once created.
    pub fn entry_id(&self) -> Option<EntryId> {
        self.entry_id
    }
    /// The author, once created.
    pub fn author(&self) -> Option<UserId> {
        self.author
    }
    /// The current text as stored (sealed, or plain from schema version 1);
    /// `None` before creation and once deleted.
    pub fn text(&self) -> Option<&EntryText> {
        self.text.as_ref()
    }
    /// Number of events applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }
    /// Created (deleted or not).
    pub fn exists(&self) -> bool {
        self.entry_id.is_some()
    }
    /// Deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The entry's id and author if `author` may change it.
    fn check_change(&self, author: UserId) -> Result<(EntryId, UserId), DiaryError> {
        let (Some(id), Some(owner)) = (self.entry_id, self.author) else {
            return Err(DiaryError::NotFound);
        };
        if owner != author {
            return Err(DiaryError::NotAuthor);
        }
        if self.deleted {
            return Err(DiaryError::Deleted);
        }
        Ok((id, owner))
    }

    /// A change that names the revision it expects applies only there.
    fn check_revision(&self, expected: Option<u64>) -> Result<(), DiaryError> {
        match expected {
            Some(expected) if expected != self.revision => Err(DiaryError::RevisionMismatch {
                expected,
                actual: self.revision,
            }),
            _ => Ok(()),
        }
    }
}

impl Aggregate for DiaryEntry {
    const KIND: &'static str = "entry";
    type Event = DiaryEvent;
    type Command = DiaryCommand;
    type Error = DiaryError;

    fn apply(&mut self, event: &DiaryEvent) {
        self.revision += 1;
        match event {
            DiaryEvent::EntryCreated {
                entry_id,
                author,
                text,
                ..
            } => {
                self.entry_id = Some(*entry_id);
                self.author = Some(*author);
                self.text = Some(text.clone());
            }
            DiaryEvent::EntryEdited { text, .. } => self.text = Some(text.clone()),
            DiaryEvent::EntryDeleted { .. } => {
                self.deleted = true;
                self.text = None;
            }
        }
    }

    fn handle(&self, command: &DiaryCommand) -> Result<Vec<DiaryEvent>, DiaryError> {
        match command {
            DiaryCommand::Create {
                entry_id,
                author,
                text,
            } => {
                if self.exists() {
                    return Err(DiaryError::AlreadyExists);
                }
                check_sealed(text)?;
                Ok(vec![DiaryEvent::EntryCreated {
                    entry_id: *entry_id,
                    author: *author,
                    text: EntryText::Sealed(text.clone()),
                    revision: self.revision + 1,
                }])
            }
            DiaryCommand::Edit {
                author,
                text,
                expected_revision,
            } => {
                let (entry_id, author) = self.check_change(*author)?;
                self.check_revision(*expected_revision)?;
                check_sealed(text)?;
                Ok(vec![DiaryEvent::EntryEdited {
                    entry_id,
                    author,
                    text: EntryText::Sealed(text.clone()),
                    revision: self.revision + 1,
                }])
            }
            DiaryCommand::Delete {
                author,
                expected_revision,
            } => {
                let (entry_id, author) = self.check_change(*author)?;
                self.check_revision(*expected_revision)?;
                Ok(vec![DiaryEvent::EntryDeleted {
                    entry_id,
                    author,
                    revision: self.revision + 1,
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(validate_text("dear diary,\n\ttoday…"), Ok(()));
        assert_eq!(validate_text(""), Err(DiaryError::EmptyText));
        assert_eq!(validate_text(" \n\t "), Err(DiaryError::EmptyText));
        assert_eq!(validate_text("a\rb"), Err(DiaryError::ControlCharacter));
        assert_eq!(validate_text("a\u{0}b"), Err(DiaryError::ControlCharacter));
        assert_eq!(validate_text(&"x".repeat(MAX_TEXT_BYTES)), Ok(()));
        assert_eq!(
            validate_text(&"x".repeat(MAX_TEXT_BYTES + 1)),
            Err(DiaryError::TextTooLong {
                len: MAX_TEXT_BYTES + 1,
                max: MAX_TEXT_BYTES
            })
        );
        // The limit is in bytes: 4-byte characters reach it 4 times sooner.
        assert!(validate_text(&"😀".repeat(MAX_TEXT_BYTES / 4 + 1)).is_err());
    }
}
