//! The [`User`] aggregate (KIND `user`): registration, profile, erasure.
//!
//! Every personal field is sealed with the user's [`DataKey`] before it
//! reaches a command ([`Users`](super::Users) does it): the address, the
//! password hash, the display name and the "about" text are [`Sealed`] in
//! every event and in the aggregate's state, bound to their place by
//! [`user_aad`]. The aggregate checks the lifecycle only; the values are
//! validated before sealing ([`validate_display_name`], [`validate_about`],
//! [`validate_password_hash`], [`Email::parse`](super::Email::parse)).
//!
//! Email uniqueness is not this aggregate's job (it sees one user only):
//! [`Users`](super::Users) reserves the address first. An erased user is a
//! tombstone: it keeps its id and the blind index of its old address (so a
//! retried erasure can still release the reservation) and refuses every
//! command with [`UserError::Erased`].

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

use super::email::{is_invisible, EmailError, EmailIndex};
use super::ids::UserId;
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::DomainEvent;
use metachat_shred::{self as shred, DataKey, Sealed, ShredError};

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
    /// A bidirectional control (e.g. a right-to-left override), which can
    /// make text display in another order than it is written.
    #[error("contains a bidirectional control character")]
    BidiControl,
    /// No visible letter or digit: only invisible characters, spaces,
    /// marks, punctuation or symbols.
    #[error("has no visible letter or digit")]
    NothingVisible,
    /// A word mixes scripts the way look-alike spoofs do (e.g. Cyrillic `а`
    /// among Latin letters, Unicode TR #39 mixed-script detection).
    #[error("mixes scripts within a word (a look-alike of another name)")]
    MixedScript,
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

/// A bidirectional formatting character (Unicode `Bidi_Control`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Validates a display name; returns it trimmed, in Unicode NFC.
///
/// Refused: empty names, control and bidirectional control characters,
/// names with no visible letter or digit (only invisible characters,
/// spaces, punctuation or symbols), words that mix scripts (Unicode TR #39
/// mixed-script detection per word, so `Ivan Иванов` passes and `Pаypal`
/// with a Cyrillic `а` does not), and more than
/// [`MAX_DISPLAY_NAME_CHARS`] characters.
///
/// ```
/// use metachat_domain::user::{validate_display_name, FieldError};
/// assert_eq!(validate_display_name(" Ada ").as_deref(), Ok("Ada"));
/// assert_eq!(validate_display_name("Ivan Иванов").as_deref(), Ok("Ivan Иванов"));
/// assert_eq!(validate_display_name("\u{202e}Ada"), Err(FieldError::BidiControl));
/// assert_eq!(validate_display_name("\u{200b}\u{3164}"), Err(FieldError::NothingVisible));
/// assert_eq!(validate_display_name("P\u{430}ypal"), Err(FieldError::MixedScript));
/// ```
pub fn validate_display_name(raw: &str) -> Result<String, FieldError> {
    let name: String = raw.trim().nfc().collect();
    if name.is_empty() {
        return Err(FieldError::Empty);
    }
    if name.chars().any(is_bidi_control) {
        return Err(FieldError::BidiControl);
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::ControlCharacter);
    }
    if !name
        .chars()
        .any(|c| c.is_alphanumeric() && !is_invisible(c))
    {
        return Err(FieldError::NothingVisible);
    }
    if !name
        .split(|c: char| c.is_whitespace() || is_invisible(c))
        .all(|word| word.is_single_script())
    {
        return Err(FieldError::MixedScript);
    }
    let len = name.chars().count();
    if len > MAX_DISPLAY_NAME_CHARS {
        return Err(FieldError::TooLong {
            len,
            max: MAX_DISPLAY_NAME_CHARS,
        });
    }
    Ok(name)
}

/// Validates an "about me" text; returns it trimmed, in NFC. Empty clears
/// it; newlines are allowed, other control characters and bidirectional
/// controls are not.
pub fn validate_about(raw: &str) -> Result<String, FieldError> {
    let about: String = raw.trim().nfc().collect();
    if about.chars().any(is_bidi_control) {
        return Err(FieldError::BidiControl);
    }
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
    Ok(about)
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

/// A sealed personal field of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// The canonical email address.
    Email,
    /// The password hash.
    PasswordHash,
    /// The display name.
    DisplayName,
    /// The "about" text.
    About,
}

impl UserField {
    fn name(self) -> &'static str {
        match self {
            UserField::Email => "email",
            UserField::PasswordHash => "password_hash",
            UserField::DisplayName => "display_name",
            UserField::About => "about",
        }
    }
}

/// The associated data binding a sealed `field` to `user_id`.
pub fn user_aad(user_id: UserId, field: UserField) -> Vec<u8> {
    format!("metachat/user/{user_id}/{}", field.name()).into_bytes()
}

/// Seals `value` as `user_id`'s `field`.
///
/// # Errors
/// [`ShredError::Seal`] if the cipher refuses.
pub fn seal_field(
    key: &DataKey,
    user_id: UserId,
    field: UserField,
    value: &str,
) -> Result<Sealed, ShredError> {
    shred::seal(key, &user_aad(user_id, field), value.as_bytes())
}

/// Opens `user_id`'s sealed `field`.
///
/// # Errors
/// [`ShredError::Unreadable`] with a wrong key or place.
pub fn open_field(
    key: &DataKey,
    user_id: UserId,
    field: UserField,
    sealed: &Sealed,
) -> Result<String, ShredError> {
    shred::open_text(key, &user_aad(user_id, field), sealed)
}

/// Events of a [`User`] stream. Personal fields are [`Sealed`] with the
/// user's key (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    /// A user registered.
    UserRegistered {
        /// The user.
        user_id: UserId,
        /// Blind index of the address: the key of lookups and of the
        /// reservation.
        email_index: EmailIndex,
        /// The canonical address, sealed.
        email: Sealed,
        /// The password hash (e.g. an argon2 PHC string), sealed.
        password_hash: Sealed,
        /// The display name, sealed.
        display_name: Sealed,
    },
    /// Fields of the profile changed; `None` means unchanged.
    ProfileUpdated {
        /// The user.
        user_id: UserId,
        /// The new display name, sealed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<Sealed>,
        /// The new "about" text (empty: cleared), sealed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<Sealed>,
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

/// Commands of a [`User`]. The values are validated and sealed by the
/// caller ([`Users`](super::Users) does both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Register a new user. Prefer [`Users::register`](super::Users::register),
    /// which validates, seals and makes the address unique.
    Register {
        /// The id (must be the aggregate's id).
        user_id: UserId,
        /// Blind index of the canonical address.
        email_index: EmailIndex,
        /// The canonical address, sealed.
        email: Sealed,
        /// The password hash, sealed.
        password_hash: Sealed,
        /// The display name, sealed.
        display_name: Sealed,
    },
    /// Change profile fields; `None` leaves a field as it is. A command with
    /// neither is accepted without events.
    UpdateProfile {
        /// New display name, sealed.
        display_name: Option<Sealed>,
        /// New "about" text (empty clears it), sealed.
        about: Option<Sealed>,
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

/// A user's personal data, opened with their key. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct Personal {
    /// The canonical address.
    pub email: String,
    /// The password hash.
    pub password_hash: String,
    /// The display name.
    pub display_name: String,
    /// The "about" text (`None` if never set).
    pub about: Option<String>,
}

impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Personal(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SealedPersonal {
    email: Sealed,
    password_hash: Sealed,
    display_name: Sealed,
    about: Option<Sealed>,
}

/// A user's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    status: UserStatus,
    user_id: Option<UserId>,
    email_index: Option<EmailIndex>,
    personal: Option<SealedPersonal>,
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
    /// The blind index of the address (kept after erasure, to release the
    /// reservation).
    pub fn email_index(&self) -> Option<&EmailIndex> {
        self.email_index.as_ref()
    }
    /// Number of events applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The personal data, opened with `key`; `None` unless active.
    ///
    /// # Errors
    /// [`ShredError::Unreadable`] with a wrong key.
    pub fn open(&self, key: &DataKey) -> Result<Option<Personal>, ShredError> {
        let (Some(id), Some(p), true) = (self.user_id, &self.personal, self.is_active()) else {
            return Ok(None);
        };
        Ok(Some(Personal {
            email: open_field(key, id, UserField::Email, &p.email)?,
            password_hash: open_field(key, id, UserField::PasswordHash, &p.password_hash)?,
            display_name: open_field(key, id, UserField::DisplayName, &p.display_name)?,
            about: p
                .about
                .as_ref()
                .map(|a| open_field(key, id, UserField::About, a))
                .transpose()?,
        }))
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
                email_index,
                email,
                password_hash,
                display_name,
            } => {
                self.status = UserStatus::Active;
                self.user_id = Some(*user_id);
                self.email_index = Some(email_index.clone());
                self.personal = Some(SealedPersonal {
                    email: email.clone(),
                    password_hash: password_hash.clone(),
                    display_name: display_name.clone(),
                    about: None,
                });
            }
            UserEvent::ProfileUpdated {
                display_name,
                about,
                ..
            } => {
                if let Some(p) = &mut self.personal {
                    if let Some(n) = display_name {
                        p.display_name = n.clone();
                    }
                    if let Some(a) = about {
                        p.about = Some(a.clone());
                    }
                }
            }
            UserEvent::UserErased { .. } => {
                self.status = UserStatus::Erased;
                self.personal = None;
            }
        }
    }

    fn handle(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register {
                user_id,
                email_index,
                email,
                password_hash,
                display_name,
            } => {
                match self.status {
                    UserStatus::New => {}
                    UserStatus::Active => return Err(UserError::AlreadyRegistered),
                    UserStatus::Erased => return Err(UserError::Erased),
                }
                Ok(vec![UserEvent::UserRegistered {
                    user_id: *user_id,
                    email_index: email_index.clone(),
                    email: email.clone(),
                    password_hash: password_hash.clone(),
                    display_name: display_name.clone(),
                }])
            }
            UserCommand::UpdateProfile {
                display_name,
                about,
            } => {
                self.check_active()?;
                if display_name.is_none() && about.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::ProfileUpdated {
                    user_id: self.user_id.unwrap_or_default(),
                    display_name: display_name.clone(),
                    about: about.clone(),
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
    fn display_names_that_hide_or_spoof_are_refused() {
        for (raw, want) in [
            ("Ada\u{202e}", FieldError::BidiControl),
            ("\u{2067}Ada", FieldError::BidiControl),
            ("Ada\u{200f}", FieldError::BidiControl),
            ("\u{200b}", FieldError::NothingVisible),
            ("\u{3164}\u{3164}", FieldError::NothingVisible),
            ("\u{200b}\u{2060}\u{feff}", FieldError::NothingVisible),
            ("\u{301}\u{301}", FieldError::NothingVisible),
            ("...", FieldError::NothingVisible),
            ("P\u{430}ypal", FieldError::MixedScript),
            ("\u{410}da", FieldError::MixedScript),
            ("adm\u{3bf}n", FieldError::MixedScript),
        ] {
            assert_eq!(validate_display_name(raw), Err(want), "{raw:?}");
        }
        for ok in [
            "Ada Lovelace",
            "Ivan Иванов",
            "Анна-Мария",
            "李小龍",
            "山田 太郎",
            "O'Brien 2",
            "Zoë",
            "a\u{200d}b",
        ] {
            assert!(validate_display_name(ok).is_ok(), "{ok:?}");
        }
        // NFD and NFC give one name.
        assert_eq!(
            validate_display_name("Zoe\u{308}"),
            validate_display_name("Zo\u{eb}")
        );
    }

    #[test]
    fn sealed_fields_open_only_in_their_place() {
        let key = DataKey::generate();
        let (a, b) = (UserId::new(), UserId::new());
        let sealed = seal_field(&key, a, UserField::Email, "ada@example.org").unwrap();
        assert_eq!(
            open_field(&key, a, UserField::Email, &sealed).unwrap(),
            "ada@example.org"
        );
        assert!(open_field(&key, b, UserField::Email, &sealed).is_err());
        assert!(open_field(&key, a, UserField::DisplayName, &sealed).is_err());
        assert!(open_field(&DataKey::generate(), a, UserField::Email, &sealed).is_err());
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
