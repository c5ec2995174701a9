//! [`Diaries`]: diary commands with the author checked against the users.

use std::fmt;

use super::diary::{DiaryCommand, DiaryEntry, DiaryError};
use super::ids::{EntryId, UserId};
use super::user::User;
use crate::aggregate::{CommandError, Repository, Root};
use crate::error::Error;
use crate::event::Metadata;
use crate::store::EventStore;

/// Why a [`Diaries`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiariesError {
    /// The author is not a registered, non-erased user.
    #[error("author is not an active user")]
    UnknownAuthor,
    /// The entry aggregate refused the command.
    #[error(transparent)]
    Entry(#[from] DiaryError),
    /// The store failed, or conflicts outlasted the retries.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<CommandError<DiaryError>> for DiariesError {
    fn from(e: CommandError<DiaryError>) -> Self {
        match e {
            CommandError::Domain(e) => DiariesError::Entry(e),
            CommandError::Store(e) => DiariesError::Store(e),
        }
    }
}

/// Diary entries over an event store.
pub struct Diaries<S: EventStore> {
    users: Repository<User, S>,
    entries: Repository<DiaryEntry, S>,
}

impl<S: EventStore> fmt::Debug for Diaries<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diaries").finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone> Diaries<S> {
    /// Diaries stored in `store` (cloned once: pass an `Arc` or a cheap handle).
    pub fn new(store: S) -> Self {
        Diaries {
            users: Repository::new(store.clone()),
            entries: Repository::new(store),
        }
    }
}

impl<S: EventStore> Diaries<S> {
    /// The repository of [`DiaryEntry`]s.
    pub fn repository(&self) -> &Repository<DiaryEntry, S> {
        &self.entries
    }

    /// Writes a new entry by `author`, who must be an active user. Retrying
    /// with the same `entry_id` after a store error is safe: a second
    /// attempt that finds the entry created by the first fails with
    /// [`DiaryError::AlreadyExists`].
    pub async fn create(
        &self,
        entry_id: EntryId,
        author: UserId,
        text: &str,
        metadata: Metadata,
    ) -> Result<Root<DiaryEntry>, DiariesError> {
        let user = self.users.load(&author.to_string()).await?;
        if !user.state.is_active() {
            return Err(DiariesError::UnknownAuthor);
        }
        let command = DiaryCommand::Create {
            entry_id,
            author,
            text: text.to_owned(),
        };
        Ok(self
            .entries
            .execute(&entry_id.to_string(), &command, metadata)
            .await?
            .root)
    }

    /// Replaces the text of `author`'s entry; with `expected_revision`, only
    /// if nobody changed it since.
    pub async fn edit(
        &self,
        entry_id: EntryId,
        author: UserId,
        text: &str,
        expected_revision: Option<u64>,
        metadata: Metadata,
    ) -> Result<Root<DiaryEntry>, DiariesError> {
        let command = DiaryCommand::Edit {
            author,
            text: text.to_owned(),
            expected_revision,
        };
        Ok(self
            .entries
            .execute(&entry_id.to_string(), &command, metadata)
            .await?
            .root)
    }

    /// Deletes `author`'s entry.
    pub async fn delete(
        &self,
        entry_id: EntryId,
        author: UserId,
        metadata: Metadata,
    ) -> Result<Root<DiaryEntry>, DiariesError> {
        Ok(self
            .entries
            .execute(
                &entry_id.to_string(),
                &DiaryCommand::Delete { author },
                metadata,
            )
            .await?
            .root)
    }

    /// Loads an entry (not [`exists`](DiaryEntry::exists) if unknown).
    pub async fn load(&self, entry_id: EntryId) -> Result<Root<DiaryEntry>, DiariesError> {
        Ok(self.entries.load(&entry_id.to_string()).await?)
    }
}
