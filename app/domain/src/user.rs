//! The [`User`] aggregate (KIND `user`): registration, profile, erasure.
//!
//! Email uniqueness is not this aggregate's job (it sees one user only):
//! [`Users`](super::Users) reserves the address first. An erased user is a
//! tombstone: it keeps its id and the hash of its old address (so a retried
//! erasure can still release the reservation) and refuses every command with
//! [`UserError::Erased`].

use serde::{Deserialize, Serialize};

use super::email::{Email, EmailError, EmailHash};
use super::ids::UserId;
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::DomainEvent;

/// Longest display name, in characters (after trimming).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest "about me" text, in characters (after trimming).
pub const MAX_ABOUT_CHARS: usize = 1000;
/// Longest password hash (e.g. an argon2 PHC string), in bytes.
pub const MAX_PASSWORD_HASH_LEN: usize = 512;

/// Why a text field of a profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// Empty or only whitespace.
    #[error("empty")]
    Empty,
    /// Too many characters.
    #[error("{len} characters exceed the limit of {max}")]
    TooLong {
        /// Characters given (after trimming).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control character (for "about": other than a newline).
    #[error("contains a control character")]
    ControlCharacter,
}

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The email address is not valid.
    #[error("invalid email address: {0}")]
    InvalidEmail(#[from] EmailError),
    /// The display name is not valid.
    #[error("invalid display name: {0}")]
    InvalidDisplayName(FieldError),
    /// The "about" text is not valid.
    #[error("invalid about text: {0}")]
    InvalidAbout(FieldError),
    /// The password hash is empty, longer than [`MAX_PASSWORD_HASH_LEN`] or
    /// holds whitespace or control characters.
    #[error("invalid password hash")]
    InvalidPasswordHash,
    /// `Register` on a user that is registered.
    #[error("user is already registered")]
    AlreadyRegistered,
    /// A command other than `Register` on a user that never registered.
    #[error("user is not registered")]
    NotRegistered,
    /// Any command on an erased user.
    #[error("user was erased")]
    Erased,
}

/// Validates a display name; returns it trimmed.
pub fn validate_display_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::ControlCharacter);
    }
    let len = name.chars().count();
    if len > MAX_DISPLAY_NAME_CHARS {
        return Err(FieldError::TooLong {
            len,
            max: MAX_DISPLAY_NAME_CHARS,
        });
    }
    Ok(name.to_owned())
}

/// Validates an "about me" text; returns it trimmed. Empty clears it;
/// newlines are allowed, other control characters are not.
pub fn validate_about(raw: &str) -> Result<String, FieldError> {
    let about = raw.trim();
    if about.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::ControlCharacter);
    }
    let len = about.chars().count();
    if len > MAX_ABOUT_CHARS {
        return Err(FieldError::TooLong {
            len,
            max: MAX_ABOUT_CHARS,
        });
    }
    Ok(about.to_owned())
}

/// Validates a password hash (the domain never sees passwords).
pub fn validate_password_hash(raw: &str) -> Result<(), UserError> {
    if raw.is_empty()
        || raw.len() > MAX_PASSWORD_HASH_LEN
        || raw.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(UserError::InvalidPasswordHash);
    }
    Ok(())
}

/// Events of a [`User`] stream.
///
/// `UserRegistered` holds personal data (the address and the password hash)
/// in the log; crypto-shredding these fields comes with the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    /// A user registered.
    UserRegistered {
        /// The user.
        user_id: UserId,
        /// Normalised address.
        email: String,
        /// SHA-256 of `email`: the key of lookups and of the reservation.
        email_hash: EmailHash,
        /// The password hash, as given (e.g. argon2 PHC string).
        password_hash: String,
        /// Trimmed display name.
        display_name: String,
    },
    /// Fields of the profile changed; `None` means unchanged.
    ProfileUpdated {
        /// The user.
        user_id: UserId,
        /// The new display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        /// The new "about" text (empty: cleared).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<String>,
    },
    /// The user was erased: their personal data must go.
    UserErased {
        /// The user.
        user_id: UserId,
    },
}

impl DomainEvent for UserEvent {
    fn event_types() -> &'static [&'static str] {
        &["UserRegistered", "ProfileUpdated", "UserErased"]
    }
}

/// Commands of a [`User`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Register a new user. Prefer [`Users::register`](super::Users::register),
    /// which also makes the address unique.
    Register {
        /// The id (must be the aggregate's id).
        user_id: UserId,
        /// The address, raw: it is validated and normalised.
        email: String,
        /// The password hash.
        password_hash: String,
        /// The display name, raw: it is validated and trimmed.
        display_name: String,
    },
    /// Change profile fields; `None` leaves a field as it is. A command that
    /// changes nothing is accepted without events.
    UpdateProfile {
        /// New display name.
        display_name: Option<String>,
        /// New "about" text; empty clears it.
        about: Option<String>,
    },
    /// Erase the user.
    Erase,
}

/// Where a [`User`] is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserStatus {
    /// No event yet.
    #[default]
    New,
    /// Registered.
    Active,
    /// Erased: a tombstone.
    Erased,
}

/// A user's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    status: UserStatus,
    user_id: Option<UserId>,
    email: Option<String>,
    email_hash: Option<EmailHash>,
    password_hash: Option<String>,
    display_name: Option<String>,
    about: Option<String>,
    revision: u64,
}

impl User {
    /// Where the user is in its life.
    pub fn status(&self) -> UserStatus {
        self.status
    }
    /// Registered and not erased.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
    /// Erased.
    pub fn is_erased(&self) -> bool {
        self.status == UserStatus::Erased
    }
    /// The id, once registered (kept after erasure).
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }
    /// The normalised address (`None` once erased).
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    /// The address's hash (kept after erasure, to release the reservation).
    pub fn email_hash(&self) -> Option<&EmailHash> {
        self.email_hash.as_ref()
    }
    /// The password hash (`None` once erased).
    pub fn password_hash(&self) -> Option<&str> {
        self.password_hash.as_deref()
    }
    /// The display name (`None` once erased).
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    /// The "about" text (`None` if never set, or erased).
    pub fn about(&self) -> Option<&str> {
        self.about.as_deref()
    }
    /// Number of events applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn check_active(&self) -> Result<(), UserError> {
        match self.status {
            UserStatus::New => Err(UserError::NotRegistered),
            UserStatus::Active => Ok(()),
            UserStatus::Erased => Err(UserError::Erased),
        }
    }
}

impl Aggregate for User {
    const KIND: &'static str = "user";
    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn apply(&mut self, event: &UserEvent) {
        self.revision += 1;
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                email_hash,
                password_hash,
                display_name,
            } => {
                self.status = UserStatus::Active;
                self.user_id = Some(*user_id);
                self.email = Some(email.clone());
                self.email_hash = Some(email_hash.clone());
                self.password_hash = Some(password_hash.clone());
                self.display_name = Some(display_name.clone());
            }
            UserEvent::ProfileUpdated {
                display_name,
                about,
                ..
            } => {
                if let Some(n) = display_name {
                    self.display_name = Some(n.clone());
                }
                if let Some(a) = about {
                    self.about = Some(a.clone());
                }
            }
            UserEvent::UserErased { .. } => {
                self.status = UserStatus::Erased;
                self.email = None;
                self.password_hash = None;
                self.display_name = None;
                self.about = None;
            }
        }
    }

    fn handle(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register {
                user_id,
                email,
                password_hash,
                display_name,
            } => {
                match self.status {
                    UserStatus::New => {}
                    UserStatus::Active => return Err(UserError::AlreadyRegistered),
                    UserStatus::Erased => return Err(UserError::Erased),
                }
                let email = Email::parse(email)?;
                let display_name =
                    validate_display_name(display_name).map_err(UserError::InvalidDisplayName)?;
                validate_password_hash(password_hash)?;
                Ok(vec![UserEvent::UserRegistered {
                    user_id: *user_id,
                    email_hash: email.hash(),
                    email: email.as_str().to_owned(),
                    password_hash: password_hash.clone(),
                    display_name,
                }])
            }
            UserCommand::UpdateProfile {
                display_name,
                about,
            } => {
                self.check_active()?;
                let display_name = display_name
                    .as_deref()
                    .map(validate_display_name)
                    .transpose()
                    .map_err(UserError::InvalidDisplayName)?
                    .filter(|n| Some(n.as_str()) != self.display_name.as_deref());
                let about = about
                    .as_deref()
                    .map(validate_about)
                    .transpose()
                    .map_err(UserError::InvalidAbout)?
                    .filter(|a| a.as_str() != self.about.as_deref().unwrap_or(""));
                if display_name.is_none() && about.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::ProfileUpdated {
                    user_id: self.user_id.unwrap_or_default(),
                    display_name,
                    about,
                }])
            }
            UserCommand::Erase => {
                self.check_active()?;
                Ok(vec![UserEvent::UserErased {
                    user_id: self.user_id.unwrap_or_default(),
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_rules() {
        assert_eq!(validate_display_name("  Ada  "), Ok("Ada".to_owned()));
        assert_eq!(validate_display_name(" \t "), Err(FieldError::Empty));
        assert_eq!(
            validate_display_name("A\u{7}da"),
            Err(FieldError::ControlCharacter)
        );
        assert_eq!(
            validate_display_name(&"é".repeat(MAX_DISPLAY_NAME_CHARS)).map(|n| n.chars().count()),
            Ok(MAX_DISPLAY_NAME_CHARS)
        );
        assert_eq!(
            validate_display_name(&"é".repeat(MAX_DISPLAY_NAME_CHARS + 1)),
            Err(FieldError::TooLong {
                len: MAX_DISPLAY_NAME_CHARS + 1,
                max: MAX_DISPLAY_NAME_CHARS
            })
        );
    }

    #[test]
    fn about_rules() {
        assert_eq!(validate_about(" line\nline "), Ok("line\nline".to_owned()));
        assert_eq!(validate_about(""), Ok(String::new()));
        assert_eq!(validate_about("a\tb"), Err(FieldError::ControlCharacter));
        assert!(matches!(
            validate_about(&"x".repeat(MAX_ABOUT_CHARS + 1)),
            Err(FieldError::TooLong { .. })
        ));
    }

    #[test]
    fn password_hash_rules() {
        assert_eq!(
            validate_password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
            Ok(())
        );
        for bad in [
            "",
            "has space",
            "tab\there",
            &"x".repeat(MAX_PASSWORD_HASH_LEN + 1),
        ] {
            assert_eq!(
                validate_password_hash(bad),
                Err(UserError::InvalidPasswordHash)
            );
        }
    }
}
