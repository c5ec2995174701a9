//! Which user an event erases, decided in one place: the key vault's repair
//! sweep, the diary timeline and the per-author mood projections all ask
//! [`ErasedUsers`].

use metachat_core::aggregate::Aggregate;
use metachat_core::codec::{Codec, JsonCodec, UnknownTypePolicy};
use metachat_core::error::Result;
use metachat_core::event::Envelope;
use metachat_core::store::EventReader;
use metachat_shred::{KeyStore, KeyVault};

use crate::ids::UserId;
use crate::user::{User, UserEvent};

/// Decodes the user an envelope erases: `UserErased` on a user stream.
pub struct ErasedUsers {
    users: JsonCodec<UserEvent>,
}

impl std::fmt::Debug for ErasedUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasedUsers").finish_non_exhaustive()
    }
}

impl Default for ErasedUsers {
    fn default() -> Self {
        Self::new()
    }
}

impl ErasedUsers {
    /// A reader with a lenient codec: user event types it does not know are
    /// skipped, not errors.
    pub fn new() -> Self {
        ErasedUsers {
            users: JsonCodec::new().on_unknown(UnknownTypePolicy::Skip),
        }
    }

    /// The user `env` erases; `None` for every other event.
    ///
    /// # Errors
    /// A `UserErased` payload that does not decode.
    pub fn erased_user(&self, env: &Envelope) -> Result<Option<UserId>> {
        if env.stream_id.category() != User::KIND || env.event_type != "UserErased" {
            return Ok(None);
        }
        Ok(match self.users.decode(env)? {
            Some(UserEvent::UserErased { user_id }) => Some(user_id),
            _ => None,
        })
    }
}

/// Shreds the key of every user erased in `store`'s log since the vault's
/// last sweep (the repair for an erasure interrupted between `UserErased`
/// and [`KeyVault::shred`]); run it at start-up. Returns the next position to
/// sweep.
///
/// # Errors
/// A store error or an undecodable `UserErased` payload.
pub async fn shred_erased_users<R, S>(vault: &KeyVault<R>, store: &S) -> Result<u64>
where
    R: KeyStore,
    S: EventReader,
{
    let erased = ErasedUsers::new();
    vault
        .shred_erased(store, |env| Ok(erased.erased_user(env)?.map(|u| u.0)))
        .await
}
