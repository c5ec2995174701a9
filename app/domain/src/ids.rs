//! Identities of users and diary entries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn new() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// The id of a user: a UUID, chosen by the caller of `Register` (so a
    /// registration can be retried with the same id). Its text form is the
    /// hyphenated lowercase UUID, which holds no `/`, so `{user_id}/` is a
    /// safe key prefix.
    UserId
);

uuid_id!(
    /// The id of a diary entry: a UUID chosen by the caller of `Create`.
    EntryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let id = UserId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert!(!s.contains('/'));
        assert_eq!(s.parse::<UserId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<EntryId>().is_err());
    }

    #[test]
    fn serde_is_transparent() {
        let id = EntryId::new();
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(json, format!("\"{id}\""));
    }
}
