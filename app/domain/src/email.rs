//! Email addresses (validated, normalised, hashed) and the
//! [`EmailReservation`] aggregate that makes them unique.
//!
//! One reservation stream exists per normalised address, named by the
//! SHA-256 of the address: `email-{hex}`. The address itself never appears in
//! a stream id. See the [domain docs](super) for how [`Users`](super::Users)
//! uses it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::UserId;
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::DomainEvent;

/// Longest accepted address, in bytes, after normalisation (RFC 5321).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest accepted local part (before the `@`), in bytes.
pub const MAX_LOCAL_PART_LEN: usize = 64;
/// Longest accepted domain label, in bytes.
pub const MAX_DOMAIN_LABEL_LEN: usize = 63;

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// Empty after trimming.
    #[error("email address is empty")]
    Empty,
    /// Longer than [`MAX_EMAIL_LEN`].
    #[error("email address of {len} bytes exceeds {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Holds a control character.
    #[error("email address contains a control character")]
    ControlCharacter,
    /// Holds whitespace inside.
    #[error("email address contains whitespace")]
    Whitespace,
    /// No `@`.
    #[error("email address has no `@`")]
    MissingAt,
    /// More than one `@`.
    #[error("email address has more than one `@`")]
    MultipleAt,
    /// Nothing before the `@`, a part longer than [`MAX_LOCAL_PART_LEN`], or
    /// a character that needs quoting (`"(),:;<>[\]`).
    #[error("invalid local part (before the `@`)")]
    InvalidLocalPart,
    /// The part after the `@` is not `label.label…` of letters, digits and
    /// inner hyphens.
    #[error("invalid domain (after the `@`)")]
    InvalidDomain,
}

/// A valid email address in normal form: trimmed and lowercase.
///
/// ```
/// use metachat_domain::Email;
/// let e = Email::parse("  Ada@Example.ORG ").unwrap();
/// assert_eq!(e.as_str(), "ada@example.org");
/// assert!(Email::parse("ada@").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates and normalises an address.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        let email = trimmed.to_lowercase();
        if email.len() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong {
                len: email.len(),
                max: MAX_EMAIL_LEN,
            });
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
            return Err(EmailError::MissingAt);
        };
        if parts.next().is_some() {
            return Err(EmailError::MultipleAt);
        }
        if local.is_empty()
            || local.len() > MAX_LOCAL_PART_LEN
            || local.chars().any(|c| "\"(),:;<>[\\]".contains(c))
        {
            return Err(EmailError::InvalidLocalPart);
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= MAX_DOMAIN_LABEL_LEN
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Email(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the normalised address.
    pub fn hash(&self) -> EmailHash {
        EmailHash(format!("{:x}", Sha256::digest(self.0.as_bytes())))
    }
}

impl FromStr for Email {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Email::parse(s)
    }
}

/// The SHA-256 of a normalised [`Email`], as 64 lowercase hex digits: the id
/// of its reservation stream and its key in the `users_by_email` read model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailHash(String);

impl EmailHash {
    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hex digest")]
pub struct InvalidEmailHash;

impl FromStr for EmailHash {
    type Err = InvalidEmailHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(EmailHash(s.to_owned()))
        } else {
            Err(InvalidEmailHash)
        }
    }
}

/// Events of an [`EmailReservation`] stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ReservationEvent {
    /// The address now belongs to `user_id`.
    EmailReserved {
        /// The holder.
        user_id: UserId,
    },
    /// `user_id` gave the address up (the user was erased).
    EmailReleased {
        /// The former holder.
        user_id: UserId,
    },
}

impl DomainEvent for ReservationEvent {
    fn event_types() -> &'static [&'static str] {
        &["EmailReserved", "EmailReleased"]
    }
}

/// Commands of an [`EmailReservation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationCommand {
    /// Reserve the address for `user_id`. Accepted without events if
    /// `user_id` holds it already (a retried registration).
    Reserve {
        /// The would-be holder.
        user_id: UserId,
    },
    /// Release the address held by `user_id`. Accepted without events if
    /// nobody holds it (a retried erasure).
    Release {
        /// The holder.
        user_id: UserId,
    },
}

/// Why a reservation command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReservationError {
    /// Another user holds the address.
    #[error("email address is taken")]
    Taken,
    /// A release by someone who does not hold the address.
    #[error("email address is not held by this user")]
    NotHolder,
}

/// Who holds one email address (KIND `email`, id: the [`EmailHash`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReservation {
    holder: Option<UserId>,
}

impl EmailReservation {
    /// The current holder, if any.
    pub fn holder(&self) -> Option<UserId> {
        self.holder
    }
}

impl Aggregate for EmailReservation {
    const KIND: &'static str = "email";
    type Event = ReservationEvent;
    type Command = ReservationCommand;
    type Error = ReservationError;

    fn apply(&mut self, event: &ReservationEvent) {
        match event {
            ReservationEvent::EmailReserved { user_id } => self.holder = Some(*user_id),
            ReservationEvent::EmailReleased { .. } => self.holder = None,
        }
    }

    fn handle(
        &self,
        command: &ReservationCommand,
    ) -> Result<Vec<ReservationEvent>, ReservationError> {
        match (command, self.holder) {
            (ReservationCommand::Reserve { user_id }, None) => {
                Ok(vec![ReservationEvent::EmailReserved { user_id: *user_id }])
            }
            (ReservationCommand::Reserve { user_id }, Some(h)) if h == *user_id => Ok(vec![]),
            (ReservationCommand::Reserve { .. }, Some(_)) => Err(ReservationError::Taken),
            (ReservationCommand::Release { .. }, None) => Ok(vec![]),
            (ReservationCommand::Release { user_id }, Some(h)) if h == *user_id => {
                Ok(vec![ReservationEvent::EmailReleased { user_id: *user_id }])
            }
            (ReservationCommand::Release { .. }, Some(_)) => Err(ReservationError::NotHolder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        let a = Email::parse(" Ada.Lovelace@Example.Org\n").map(|e| e.as_str().to_owned());
        assert_eq!(a, Ok("ada.lovelace@example.org".to_owned()));
    }

    #[test]
    fn refuses_bad_shapes() {
        let cases = [
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("ada", EmailError::MissingAt),
            ("a@b@c.d", EmailError::MultipleAt),
            ("@example.org", EmailError::InvalidLocalPart),
            ("a<b>@example.org", EmailError::InvalidLocalPart),
            ("ada@", EmailError::InvalidDomain),
            ("ada@localhost", EmailError::InvalidDomain),
            ("ada@example..org", EmailError::InvalidDomain),
            ("ada@-example.org", EmailError::InvalidDomain),
            ("ada@exa_mple.org", EmailError::InvalidDomain),
            ("a da@example.org", EmailError::Whitespace),
            ("ada\u{0}@example.org", EmailError::ControlCharacter),
        ];
        for (raw, want) in cases {
            assert_eq!(Email::parse(raw), Err(want), "{raw:?}");
        }
        let long_local = format!("{}@example.org", "a".repeat(MAX_LOCAL_PART_LEN + 1));
        assert_eq!(Email::parse(&long_local), Err(EmailError::InvalidLocalPart));
        let long = format!("a@{}.org", "b.".repeat(130));
        assert!(matches!(
            Email::parse(&long),
            Err(EmailError::TooLong { .. })
        ));
    }

    #[test]
    fn hash_is_sha256_hex_of_normal_form() -> Result<(), EmailError> {
        let h = Email::parse("ADA@example.org")?.hash();
        assert_eq!(h, Email::parse("ada@example.org")?.hash());
        // sha256("ada@example.org"), computed independently with `sha256sum`.
        assert_eq!(
            h.as_str(),
            "cfe00dde46ef942601ffafb9e2825e802858b460e586b8305b344c1eb826357d"
        );
        assert_eq!(h.as_str().parse::<EmailHash>().ok(), Some(h.clone()));
        assert_eq!("xyz".parse::<EmailHash>(), Err(InvalidEmailHash));
        Ok(())
    }
}
