//! [`Users`]: registration with a unique email address, profile updates,
//! erasure, and lookups by address. The sequence is described in the
//! [domain docs](super#email-uniqueness).

use std::fmt;

use super::email::{Email, EmailHash, EmailReservation, ReservationCommand, ReservationError};
use super::ids::UserId;
use super::user::{User, UserCommand, UserError, UserStatus};
use metachat_core::aggregate::{Aggregate, CommandError, Executed, Repository, Root};
use metachat_core::error::Error;
use metachat_core::event::Metadata;
use metachat_core::store::EventStore;

/// Why a [`Users`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// Another user holds the email address.
    #[error("email address is taken")]
    EmailTaken,
    /// The user aggregate refused the command.
    #[error(transparent)]
    User(#[from] UserError),
    /// The store failed, or conflicts outlasted the retries. The operation
    /// is safe to retry with the same arguments.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<CommandError<UserError>> for UsersError {
    fn from(e: CommandError<UserError>) -> Self {
        match e.into_domain() {
            Ok(e) => UsersError::User(e),
            Err(e) => UsersError::Store(e),
        }
    }
}

/// What a login needs: the user and their password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user_id: UserId,
    /// The stored password hash.
    pub password_hash: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user_id", &self.user_id)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Users over an event store: the [`User`] aggregates and the
/// [`EmailReservation`]s that keep addresses unique.
pub struct Users<S: EventStore> {
    users: Repository<User, S>,
    emails: Repository<EmailReservation, S>,
}

impl<S: EventStore> fmt::Debug for Users<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone> Users<S> {
    /// Users stored in `store` (cloned once: pass an `Arc` or a cheap handle).
    pub fn new(store: S) -> Self {
        Users {
            users: Repository::new(store.clone()),
            emails: Repository::new(store),
        }
    }
}

impl<S: EventStore> Users<S> {
    /// The repository of [`User`]s.
    pub fn repository(&self) -> &Repository<User, S> {
        &self.users
    }

    /// Registers `user_id` with a unique address.
    ///
    /// Validates everything first (a refused input reserves nothing), then
    /// reserves the address for `user_id`, then appends `UserRegistered`.
    /// If the last step fails with a store error the reservation stays, held
    /// by `user_id`: call again with the **same** `user_id` and the
    /// reservation step is a no-op. Errors: [`UsersError::EmailTaken`],
    /// [`UserError`]s (invalid input, [`UserError::AlreadyRegistered`], …),
    /// store errors.
    pub async fn register(
        &self,
        user_id: UserId,
        email: &str,
        password_hash: &str,
        display_name: &str,
        metadata: Metadata,
    ) -> Result<Executed<User>, UsersError> {
        let id = user_id.to_string();
        let command = UserCommand::Register {
            user_id,
            email: email.to_owned(),
            password_hash: password_hash.to_owned(),
            display_name: display_name.to_owned(),
        };
        // Validation and the state check, without writing.
        self.users.load(&id).await?.state.handle(&command)?;
        let hash = Email::parse(email).map_err(UserError::from)?.hash();

        let reserve = ReservationCommand::Reserve { user_id };
        match self
            .emails
            .execute(hash.as_str(), &reserve, metadata.clone())
            .await
            .map_err(CommandError::into_domain)
        {
            Ok(_) => {}
            Err(Ok(ReservationError::Taken | ReservationError::NotHolder)) => {
                return Err(UsersError::EmailTaken)
            }
            Err(Err(e)) => return Err(e.into()),
        }

        match self
            .users
            .execute(&id, &command, metadata.clone())
            .await
            .map_err(CommandError::into_domain)
        {
            Ok(done) => Ok(done),
            Err(Ok(e)) => {
                // Another registration of the same user id won meanwhile. Our
                // reservation must not stay unless that user holds this address.
                let now = self.users.load(&id).await?;
                if !(now.state.is_active() && now.state.email_hash() == Some(&hash)) {
                    self.release(&hash, user_id, metadata).await?;
                }
                Err(e.into())
            }
            Err(Err(e)) => Err(e.into()),
        }
    }

    /// Changes profile fields (`None`: unchanged; `about` empty: cleared).
    pub async fn update_profile(
        &self,
        user_id: UserId,
        display_name: Option<String>,
        about: Option<String>,
        metadata: Metadata,
    ) -> Result<Executed<User>, UsersError> {
        let command = UserCommand::UpdateProfile {
            display_name,
            about,
        };
        Ok(self
            .users
            .execute(&user_id.to_string(), &command, metadata)
            .await?)
    }

    /// Erases `user_id`, then releases their address so it can be
    /// registered again. Idempotent: erasing an erased user completes the
    /// release (if a previous attempt stopped before it) and succeeds.
    pub async fn erase(&self, user_id: UserId, metadata: Metadata) -> Result<(), UsersError> {
        let id = user_id.to_string();
        let loaded = self.users.load(&id).await?;
        let state = match loaded.state.status() {
            UserStatus::New => return Err(UserError::NotRegistered.into()),
            UserStatus::Erased => loaded.state,
            UserStatus::Active => {
                match self
                    .users
                    .execute(&id, &UserCommand::Erase, metadata.clone())
                    .await
                {
                    Ok(done) => done.root.state,
                    // Erased concurrently: go on with the release.
                    Err(CommandError::Domain(UserError::Erased)) => {
                        self.users.load(&id).await?.state
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let Some(hash) = state.email_hash() {
            self.release(hash, user_id, metadata).await?;
        }
        Ok(())
    }

    async fn release(
        &self,
        hash: &EmailHash,
        user_id: UserId,
        metadata: Metadata,
    ) -> Result<(), UsersError> {
        match self
            .emails
            .execute(
                hash.as_str(),
                &ReservationCommand::Release { user_id },
                metadata,
            )
            .await
            .map_err(CommandError::into_domain)
        {
            // NotHolder: released before and taken by someone else since.
            Ok(_) | Err(Ok(_)) => Ok(()),
            Err(Err(e)) => Err(e.into()),
        }
    }

    /// Loads a user (a [`UserStatus::New`] state if the id is unknown).
    pub async fn load(&self, user_id: UserId) -> Result<Root<User>, UsersError> {
        Ok(self.users.load(&user_id.to_string()).await?)
    }

    /// The active user registered with `email`, read from the reservation
    /// and the user stream (strongly consistent, no projection lag). An
    /// invalid address finds nobody.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<UserId>, UsersError> {
        Ok(self.active_by_email(email).await?.map(|(id, _)| id))
    }

    /// The user id and password hash of the active user registered with
    /// `email`, for a login.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, UsersError> {
        Ok(self.active_by_email(email).await?.and_then(|(user_id, u)| {
            u.password_hash().map(|h| Credentials {
                user_id,
                password_hash: h.to_owned(),
            })
        }))
    }

    async fn active_by_email(&self, email: &str) -> Result<Option<(UserId, User)>, UsersError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(None);
        };
        let hash = email.hash();
        let Some(holder) = self.emails.load(hash.as_str()).await?.state.holder() else {
            return Ok(None);
        };
        // The holder may be a registration that never completed.
        let user = self.users.load(&holder.to_string()).await?.state;
        Ok((user.is_active() && user.email_hash() == Some(&hash)).then_some((holder, user)))
    }
}
