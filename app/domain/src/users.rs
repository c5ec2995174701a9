//! [`Users`]: registration with a unique email address, profile updates,
//! erasure, and lookups by address. The sequence is described in the
//! [domain docs](super#email-uniqueness). `Users` validates every personal
//! value, then seals it with the user's key from the [`KeyVault`] before it
//! goes into a command.

use std::fmt;

use super::email::{
    BlindIndexKey, Email, EmailIndex, EmailReservation, ReservationCommand, ReservationError,
};
use super::ids::UserId;
use super::user::{
    seal_field, validate_about, validate_display_name, validate_password_hash, Personal, User,
    UserCommand, UserError, UserField, UserStatus,
};
use metachat_core::aggregate::{CommandError, Executed, Repository, Root};
use metachat_core::error::Error;
use metachat_core::event::Metadata;
use metachat_core::store::EventStore;
use metachat_shred::{DataKey, KeyStore, KeyVault, Sealed, ShredError};

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
    /// A sealed value did not open with the user's key (a damaged record or
    /// a wrong key store), or the cipher refused to seal.
    #[error("personal data: {0}")]
    Sealing(ShredError),
}

impl From<ShredError> for UsersError {
    fn from(e: ShredError) -> Self {
        match e {
            ShredError::Shredded { .. } => UsersError::User(UserError::Erased),
            ShredError::Store(e) => UsersError::Store(e),
            e => UsersError::Sealing(e),
        }
    }
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
/// [`EmailReservation`]s that keep addresses unique, with personal values
/// sealed by keys from a [`KeyVault`] and addresses indexed under a
/// [`BlindIndexKey`].
pub struct Users<S: EventStore, K> {
    users: Repository<User, S>,
    emails: Repository<EmailReservation, S>,
    vault: KeyVault<K>,
    index_key: BlindIndexKey,
}

impl<S: EventStore, K> fmt::Debug for Users<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone, K> Users<S, K> {
    /// Users stored in `store` (cloned once: pass an `Arc` or a cheap
    /// handle), sealed with keys of `vault`, addresses indexed under
    /// `index_key`.
    pub fn new(store: S, vault: KeyVault<K>, index_key: BlindIndexKey) -> Self {
        Users {
            users: Repository::new(store.clone()),
            emails: Repository::new(store),
            vault,
            index_key,
        }
    }
}

impl<S: EventStore, K: KeyStore> Users<S, K> {
    /// The vault holding the users' keys.
    pub fn vault(&self) -> &KeyVault<K> {
        &self.vault
    }

    /// The blind index of `email` under this service's key.
    pub fn email_index(&self, email: &Email) -> EmailIndex {
        email.index(&self.index_key)
    }

    fn seal(
        key: &DataKey,
        user_id: UserId,
        field: UserField,
        value: &str,
    ) -> Result<Sealed, UsersError> {
        seal_field(key, user_id, field, value).map_err(UsersError::from)
    }

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
        // Validation and the state check, without writing.
        match self.users.load(&id).await?.state.status() {
            UserStatus::New => {}
            UserStatus::Active => return Err(UserError::AlreadyRegistered.into()),
            UserStatus::Erased => return Err(UserError::Erased.into()),
        }
        let email = Email::parse(email).map_err(UserError::from)?;
        let display_name =
            validate_display_name(display_name).map_err(UserError::InvalidDisplayName)?;
        validate_password_hash(password_hash)?;
        let hash = email.index(&self.index_key);
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

        // The key is made once the address is ours: a refused registration
        // leaves no key behind.
        let key = self.vault.get_or_create(user_id).await?;
        let command = UserCommand::Register {
            user_id,
            email_index: hash.clone(),
            email: Self::seal(&key, user_id, UserField::Email, email.as_str())?,
            password_hash: Self::seal(&key, user_id, UserField::PasswordHash, password_hash)?,
            display_name: Self::seal(&key, user_id, UserField::DisplayName, &display_name)?,
        };
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
                if !(now.state.is_active() && now.state.email_index() == Some(&hash)) {
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
        let display_name = display_name
            .as_deref()
            .map(validate_display_name)
            .transpose()
            .map_err(UserError::InvalidDisplayName)?;
        let about = about
            .as_deref()
            .map(validate_about)
            .transpose()
            .map_err(UserError::InvalidAbout)?;
        let id = user_id.to_string();
        let state = self.users.load(&id).await?.state;
        match state.status() {
            UserStatus::New => return Err(UserError::NotRegistered.into()),
            UserStatus::Erased => return Err(UserError::Erased.into()),
            UserStatus::Active => {}
        }
        let key = self.vault.get_or_create(user_id).await?;
        let now = state.open(&key)?;
        // Only what changes is sealed and recorded.
        let display_name = display_name
            .filter(|n| now.as_ref().map(|p| &p.display_name) != Some(n))
            .map(|n| Self::seal(&key, user_id, UserField::DisplayName, &n))
            .transpose()?;
        let about = about
            .filter(|a| now.as_ref().and_then(|p| p.about.as_deref()).unwrap_or("") != a)
            .map(|a| Self::seal(&key, user_id, UserField::About, &a))
            .transpose()?;
        let command = UserCommand::UpdateProfile {
            display_name,
            about,
        };
        Ok(self.users.execute(&id, &command, metadata).await?)
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
        if let Some(hash) = state.email_index() {
            self.release(hash, user_id, metadata).await?;
        }
        Ok(())
    }

    async fn release(
        &self,
        hash: &EmailIndex,
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

    /// The personal data of `user_id`, opened; `None` unless the user is
    /// active.
    pub async fn personal(&self, user_id: UserId) -> Result<Option<Personal>, UsersError> {
        let state = self.users.load(&user_id.to_string()).await?.state;
        if !state.is_active() {
            return Ok(None);
        }
        let key = self.vault.get_or_create(user_id).await?;
        Ok(state.open(&key)?)
    }

    /// The user id and password hash of the active user registered with
    /// `email`, for a login.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, UsersError> {
        let Some((user_id, user)) = self.active_by_email(email).await? else {
            return Ok(None);
        };
        let key = match self.vault.get(user_id).await? {
            Some(key) => key,
            None => return Ok(None),
        };
        Ok(user.open(&key)?.map(|p| Credentials {
            user_id,
            password_hash: p.password_hash,
        }))
    }

    async fn active_by_email(&self, email: &str) -> Result<Option<(UserId, User)>, UsersError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(None);
        };
        let hash = email.index(&self.index_key);
        let Some(holder) = self.emails.load(hash.as_str()).await?.state.holder() else {
            return Ok(None);
        };
        // The holder may be a registration that never completed.
        let user = self.users.load(&holder.to_string()).await?.state;
        Ok((user.is_active() && user.email_index() == Some(&hash)).then_some((holder, user)))
    }
}
