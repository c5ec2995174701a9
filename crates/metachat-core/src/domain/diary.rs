//! The [`DiaryEntry`] aggregate (KIND `entry`): create, edit, delete.
//!
//! An entry belongs to its author forever: only the author may edit or
//! delete it. Its *revision* counts its events (1 after `EntryCreated`, +1
//! per edit and for the deletion); every event carries the revision it
//! creates, so the mood worker can key an analysis by `(entry_id, revision)`
//! and skip stale ones.
//!
//! The diary text is personal data and travels in exactly one field
//! (`text`) of `EntryCreated` and `EntryEdited`, so that field alone can later
//! be encrypted with a per-user key (crypto-shredding).

use serde::{Deserialize, Serialize};

use super::ids::{EntryId, UserId};
use crate::aggregate::Aggregate;
use crate::codec::DomainEvent;

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
        /// The text (personal data; the one field to encrypt).
        text: String,
        /// The revision this event creates: 1.
        revision: u64,
    },
    /// The text changed.
    EntryEdited {
        /// The entry.
        entry_id: EntryId,
        /// Its author.
        author: UserId,
        /// The new text (personal data; the one field to encrypt).
        text: String,
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
        /// The text.
        text: String,
    },
    /// Replace the text. The same text again is accepted without events.
    Edit {
        /// Who asks; must be the author.
        author: UserId,
        /// The new text.
        text: String,
        /// If set, the edit is refused unless the entry is at this revision
        /// (no lost updates between two editors).
        expected_revision: Option<u64>,
    },
    /// Delete the entry.
    Delete {
        /// Who asks; must be the author.
        author: UserId,
    },
}

/// A diary entry's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiaryEntry {
    entry_id: Option<EntryId>,
    author: Option<UserId>,
    text: String,
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
    /// The current text (empty once deleted).
    pub fn text(&self) -> &str {
        &self.text
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
                self.text = text.clone();
            }
            DiaryEvent::EntryEdited { text, .. } => self.text = text.clone(),
            DiaryEvent::EntryDeleted { .. } => {
                self.deleted = true;
                self.text = String::new();
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
                validate_text(text)?;
                Ok(vec![DiaryEvent::EntryCreated {
                    entry_id: *entry_id,
                    author: *author,
                    text: text.clone(),
                    revision: self.revision + 1,
                }])
            }
            DiaryCommand::Edit {
                author,
                text,
                expected_revision,
            } => {
                let (entry_id, author) = self.check_change(*author)?;
                if let Some(expected) = *expected_revision {
                    if expected != self.revision {
                        return Err(DiaryError::RevisionMismatch {
                            expected,
                            actual: self.revision,
                        });
                    }
                }
                validate_text(text)?;
                if *text == self.text {
                    return Ok(vec![]);
                }
                Ok(vec![DiaryEvent::EntryEdited {
                    entry_id,
                    author,
                    text: text.clone(),
                    revision: self.revision + 1,
                }])
            }
            DiaryCommand::Delete { author } => {
                let (entry_id, author) = self.check_change(*author)?;
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
