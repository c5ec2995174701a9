//! Email addresses (validated, normalised to one canonical form, and
//! indexed by a keyed hash) and the [`EmailReservation`] aggregate that
//! makes them unique.
//!
//! One reservation stream exists per canonical address, named by its blind
//! index: `email-{hmac}` ([`Email::index`], HMAC-SHA-256 under a server
//! secret, the [`BlindIndexKey`]). Neither the address nor an unkeyed hash
//! of it (which a dictionary would reverse) ever appears in a stream id or
//! a read-model key.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

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

/// A valid email address in canonical form.
///
/// Two addresses that a person would read as the same are one address:
///
/// * the whole address is put in Unicode NFKC (full-width `ａｄａ` is `ada`,
///   a decomposed `é` is the composed one);
/// * it is lowercased;
/// * the domain is converted to its ASCII (IDNA, UTS #46) form, so
///   `пример.рф` and `xn--e1afmkfd.xn--p1ai` are one domain;
/// * invisible characters (zero-width spaces and joiners, bidi controls, any
///   default-ignorable code point) are refused rather than kept, since they
///   would make look-alike addresses.
///
/// ```
/// use metachat_domain::Email;
/// let e = Email::parse("  Ada@Example.ORG ").unwrap();
/// assert_eq!(e.as_str(), "ada@example.org");
/// assert_eq!(Email::parse("ＡＤＡ@ｅｘａｍｐｌｅ.org").unwrap(), e);
/// assert_eq!(Email::parse("anna@пример.рф").unwrap().as_str(), "anna@xn--e1afmkfd.xn--p1ai");
/// assert!(Email::parse("ada@").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates an address and puts it in canonical form.
    ///
    /// # Errors
    /// An [`EmailError`] saying what is wrong.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > 4 * MAX_EMAIL_LEN {
            return Err(EmailError::TooLong {
                len: trimmed.len(),
                max: MAX_EMAIL_LEN,
            });
        }
        let check = |s: &str| {
            if s.chars().any(char::is_control) {
                return Err(EmailError::ControlCharacter);
            }
            if s.chars().any(char::is_whitespace) {
                return Err(EmailError::Whitespace);
            }
            Ok(())
        };
        check(trimmed)?;
        let folded = fold(trimmed).ok_or(EmailError::InvalidLocalPart)?;
        check(&folded)?;
        let mut parts = folded.split('@');
        let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
            return Err(EmailError::MissingAt);
        };
        if parts.next().is_some() {
            return Err(EmailError::MultipleAt);
        }
        if domain.is_ascii() && folded.len() > MAX_EMAIL_LEN {
            // IDNA leaves an ASCII domain as long as it is.
            return Err(EmailError::TooLong {
                len: folded.len(),
                max: MAX_EMAIL_LEN,
            });
        }
        if local.is_empty()
            || local.len() > MAX_LOCAL_PART_LEN
            || local
                .chars()
                .any(|c| "\"(),:;<>[\\]".contains(c) || is_invisible(c))
        {
            return Err(EmailError::InvalidLocalPart);
        }
        if domain.is_empty() || domain.chars().any(is_invisible) {
            return Err(EmailError::InvalidDomain);
        }
        let domain = idna::domain_to_ascii_strict(domain).map_err(|_| EmailError::InvalidDomain)?;
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= MAX_DOMAIN_LABEL_LEN
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(EmailError::InvalidDomain);
        }
        let email = format!("{local}@{domain}");
        if email.len() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong {
                len: email.len(),
                max: MAX_EMAIL_LEN,
            });
        }
        Ok(Email(email))
    }

    /// The canonical address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address's blind index under `key`: the key of its reservation and
    /// of logins.
    pub fn index(&self, key: &BlindIndexKey) -> EmailIndex {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"metachat/email/v1\0");
        mac.update(self.0.as_bytes());
        let digest = mac.finalize().into_bytes();
        EmailIndex(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// NFKC and lowercase until neither changes the text: lowercasing can undo
/// NFKC (`İ` lowercases to `i` and a combining dot, which then need
/// reordering) and NFKC can undo lowercasing (`ℌ` becomes `H`), so one pass
/// of each is not a canonical form. `None` if it does not settle within a
/// few passes (no real address needs more than two).
fn fold(raw: &str) -> Option<String> {
    let mut text: String = raw.nfkc().collect();
    for _ in 0..4 {
        let next: String = text.to_lowercase().nfkc().collect();
        if next == text {
            return Some(text);
        }
        text = next;
    }
    None
}

/// An invisible character: a default-ignorable code point (zero-width space
/// and joiners, bidi controls, variation selectors, the Hangul filler, …),
/// which UTS #39's skeleton drops.
pub(crate) fn is_invisible(c: char) -> bool {
    let mut buf = [0u8; 4];
    let invisible = unicode_security::skeleton(c.encode_utf8(&mut buf))
        .next()
        .is_none();
    invisible
}

impl FromStr for Email {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Email::parse(s)
    }
}

/// The server secret that keys the email [`EmailIndex`] (32 bytes). Keep it
/// apart from the data: whoever holds it can test a guessed address against
/// the reservation streams. Its bytes never print.
#[derive(Clone, PartialEq, Eq)]
pub struct BlindIndexKey([u8; 32]);

impl BlindIndexKey {
    /// The key made of `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BlindIndexKey(bytes)
    }

    /// A new random key.
    pub fn generate() -> Self {
        BlindIndexKey(*metachat_shred::DataKey::generate().as_bytes())
    }

    /// The key's bytes (to store it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKey(<redacted>)")
    }
}

/// The blind index of a canonical [`Email`]: HMAC-SHA-256 under the
/// [`BlindIndexKey`], as 64 lowercase hex digits. The id of its reservation
/// stream and its key in the `users_by_email` read model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailIndex(String);

impl EmailIndex {
    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 64-digit hex blind index")]
pub struct InvalidEmailIndex;

impl FromStr for EmailIndex {
    type Err = InvalidEmailIndex;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(EmailIndex(s.to_owned()))
        } else {
            Err(InvalidEmailIndex)
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

/// Who holds one email address (KIND `email`, id: the [`EmailIndex`]).
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
    fn one_address_whatever_its_unicode_form() {
        let canon = |raw: &str| Email::parse(raw).map(|e| e.as_str().to_owned());
        // Full-width letters and digits.
        assert_eq!(
            canon("ＡＤＡ１@ｅｘａｍｐｌｅ．ｏｒｇ"),
            Ok("ada1@example.org".into())
        );
        // NFD and NFC of the same letters, in the local part and the domain.
        assert_eq!(
            canon("jose\u{301}@cafe\u{301}.fr"),
            canon("jos\u{e9}@caf\u{e9}.fr")
        );
        // Punycode and Unicode forms of one domain.
        assert_eq!(canon("anna@пример.рф"), canon("anna@xn--e1afmkfd.xn--p1ai"));
        assert_eq!(canon("Anna@ПРИМЕР.РФ"), canon("anna@xn--e1afmkfd.xn--p1ai"));
        // Invisible characters are refused, not kept.
        assert_eq!(
            canon("a\u{200b}da@example.org"),
            Err(EmailError::InvalidLocalPart)
        );
        assert_eq!(
            canon("ada@exam\u{200d}ple.org"),
            Err(EmailError::InvalidDomain)
        );
        assert_eq!(
            canon("ada\u{202e}@example.org"),
            Err(EmailError::InvalidLocalPart)
        );
    }

    #[test]
    fn canonical_form_settles_where_one_pass_does_not() {
        // Found by the domain_inputs fuzz target: `İ` lowercases to `i` and
        // U+0307, which NFKC then orders after U+032E; `ℌ` is NFKC `H`.
        for raw in [
            "\u{130}\u{32e}@xdcb.Lpasswo77\u{307}o",
            "\u{210c}ada@example.org",
            "\u{130}@example.org",
        ] {
            let once = Email::parse(raw).expect("valid");
            assert_eq!(Email::parse(once.as_str()), Ok(once.clone()), "{raw:?}");
        }
        assert_eq!(
            Email::parse("\u{210c}ada@example.org").map(|e| e.as_str().to_owned()),
            Ok("hada@example.org".to_owned())
        );
    }

    #[test]
    fn index_is_keyed_and_follows_the_canonical_form() -> Result<(), EmailError> {
        let key = BlindIndexKey::from_bytes([7; 32]);
        let i = Email::parse("ADA@example.org")?.index(&key);
        assert_eq!(i, Email::parse("ａｄａ@EXAMPLE.org")?.index(&key));
        assert_ne!(
            i,
            Email::parse("ada@example.org")?.index(&BlindIndexKey::from_bytes([8; 32]))
        );
        // HMAC-SHA256(key = 32 × 0x07, "metachat/email/v1\0ada@example.org"),
        // computed independently with Python's hmac module.
        assert_eq!(i.as_str(), EXPECTED_INDEX);
        assert_eq!(i.as_str().parse::<EmailIndex>().ok(), Some(i.clone()));
        assert_eq!("xyz".parse::<EmailIndex>(), Err(InvalidEmailIndex));
        assert!(!format!("{key:?}").contains('7'));
        Ok(())
    }

    const EXPECTED_INDEX: &str = "07167686918b2f6c8e7bca0bc3d8687b50901f9192d3f343914271b4ea61332d";

    proptest::proptest! {
        #[test]
        fn canonical_form_is_a_fixed_point(raw in "\\PC{0,40}@\\PC{0,20}") {
            if let Ok(e) = Email::parse(&raw) {
                proptest::prop_assert_eq!(Email::parse(e.as_str()), Ok(e.clone()));
            }
        }
    }
}
