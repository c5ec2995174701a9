//! [`Diaries`]: diary commands with the author checked against the users
//! and the text sealed with the author's key.

use std::fmt;

use super::diary::{self, validate_text, DiaryCommand, DiaryEntry, DiaryError};
use super::ids::{EntryId, UserId};
use super::user::User;
use metachat_core::aggregate::{CommandError, Executed, Repository, Root};
use metachat_core::error::Error;
use metachat_core::event::Metadata;
use metachat_core::store::EventStore;
use metachat_shred::{KeyState, KeyStore, KeyVault};
use metachat_shred::{Sealed, ShredError};

/// Why a [`Diaries`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiariesError {
    /// The author is not a registered, non-erased user (or their key was
    /// shredded).
    #[error("author is not an active user")]
    UnknownAuthor,
    /// The text could not be sealed or opened.
    #[error(transparent)]
    Key(ShredError),
    /// The entry aggregate refused the command.
    #[error(transparent)]
    Entry(#[from] DiaryError),
    /// The store failed, or conflicts outlasted the retries.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<ShredError> for DiariesError {
    fn from(e: ShredError) -> Self {
        match e {
            ShredError::Shredded { .. } => DiariesError::UnknownAuthor,
            ShredError::Store(e) => DiariesError::Store(e),
            other => DiariesError::Key(other),
        }
    }
}

impl From<CommandError<DiaryError>> for DiariesError {
    fn from(e: CommandError<DiaryError>) -> Self {
        match e.into_domain() {
            Ok(e) => DiariesError::Entry(e),
            Err(e) => DiariesError::Store(e),
        }
    }
}

/// Diary entries over an event store, their text sealed with keys from a
/// [`KeyVault`] over the read-model store `R`.
pub struct Diaries<S: EventStore, R> {
    users: Repository<User, S>,
    /// Whether `create` reads the author's user stream.
    check_author_stream: bool,
    entries: Repository<DiaryEntry, S>,
    vault: KeyVault<R>,
}

impl<S: EventStore, R> fmt::Debug for Diaries<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diaries").finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone, R: KeyStore> Diaries<S, R> {
    /// Diaries stored in `store` (cloned once: pass an `Arc` or a cheap
    /// handle), sealing with `vault`'s keys.
    pub fn new(store: S, vault: KeyVault<R>) -> Self {
        Diaries {
            users: Repository::new(store.clone()),
            check_author_stream: true,
            entries: Repository::new(store).with_codec(diary::codec()),
            vault,
        }
    }
}

impl<S: EventStore, R: KeyStore> Diaries<S, R> {
    /// Diaries that do not read the author's user stream on
    /// [`create`](Self::create): the caller vouches that the author is an
    /// active user (a diary *service* that checked the author's token and
    /// learnt of erasures from the bus, and reads no other service's
    /// streams). The key vault still refuses an author whose key was
    /// shredded ([`DiariesError::UnknownAuthor`]).
    pub fn trusting_authors(mut self) -> Self {
        self.check_author_stream = false;
        self
    }

    /// The repository of [`DiaryEntry`]s (with the upcasting [`diary::codec`]).
    pub fn repository(&self) -> &Repository<DiaryEntry, S> {
        &self.entries
    }

    /// The key vault.
    pub fn vault(&self) -> &KeyVault<R> {
        &self.vault
    }

    /// Validates `text` ([`validate_text`]) and seals it for `entry_id` with
    /// `author`'s key (made on first use): what
    /// [`DiaryCommand::Create`]/[`DiaryCommand::Edit`] carry.
    ///
    /// # Errors
    /// [`DiariesError::Entry`] for invalid text;
    /// [`DiariesError::UnknownAuthor`] if `author`'s key was shredded.
    pub async fn seal(
        &self,
        author: UserId,
        entry_id: EntryId,
        text: &str,
    ) -> Result<Sealed, DiariesError> {
        validate_text(text)?;
        let key = self.vault.get_or_create(author).await?;
        Ok(diary::seal_text(&key, entry_id, text)?)
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
    ) -> Result<Executed<DiaryEntry>, DiariesError> {
        if self.check_author_stream {
            let user = self.users.load(&author.to_string()).await?;
            if !user.state.is_active() {
                return Err(DiariesError::UnknownAuthor);
            }
        }
        let command = DiaryCommand::Create {
            entry_id,
            author,
            text: self.seal(author, entry_id, text).await?,
        };
        // A new entry's id was just generated: no stream to read first.
        Ok(self
            .entries
            .create(&entry_id.to_string(), &command, metadata)
            .await?)
    }

    /// Replaces the text of `author`'s entry; with `expected_revision`, only
    /// if nobody changed it since. The same text again is accepted without
    /// a new event (the current text is opened to compare; the outcome is
    /// then `None`).
    pub async fn edit(
        &self,
        entry_id: EntryId,
        author: UserId,
        text: &str,
        expected_revision: Option<u64>,
        metadata: Metadata,
    ) -> Result<Executed<DiaryEntry>, DiariesError> {
        validate_text(text)?;
        let current = self.entries.load(&entry_id.to_string()).await?;
        if current.state.author() == Some(author) && !current.state.is_deleted() {
            if let Some(stored) = current.state.text() {
                let key = match self.vault.state(author).await? {
                    KeyState::Active(k) => Some(k),
                    KeyState::Missing => None,
                    KeyState::Shredded => return Err(DiariesError::UnknownAuthor),
                };
                let unchanged = stored
                    .open(key.as_ref(), entry_id)
                    .is_ok_and(|old| old == text);
                let at_expected = expected_revision.is_none_or(|r| r == current.state.revision());
                if unchanged && at_expected {
                    return Ok(Executed {
                        root: current,
                        outcome: None,
                    });
                }
            }
        }
        let command = DiaryCommand::Edit {
            author,
            text: self.seal(author, entry_id, text).await?,
            expected_revision,
        };
        Ok(self
            .entries
            .execute(&entry_id.to_string(), &command, metadata)
            .await?)
    }

    /// Deletes `author`'s entry; with `expected_revision`, only if nobody
    /// changed it since.
    pub async fn delete(
        &self,
        entry_id: EntryId,
        author: UserId,
        expected_revision: Option<u64>,
        metadata: Metadata,
    ) -> Result<Executed<DiaryEntry>, DiariesError> {
        let command = DiaryCommand::Delete {
            author,
            expected_revision,
        };
        Ok(self
            .entries
            .execute(&entry_id.to_string(), &command, metadata)
            .await?)
    }

    /// Loads an entry (not [`exists`](DiaryEntry::exists) if unknown).
    pub async fn load(&self, entry_id: EntryId) -> Result<Root<DiaryEntry>, DiariesError> {
        Ok(self.entries.load(&entry_id.to_string()).await?)
    }
}
