//! The [`UserDirectory`] read model: profiles by user id, and user ids by
//! the email's blind index for logins. Display names and "about" texts stay
//! sealed with the user's key here too ([`UserProfile::open`] opens them),
//! so a read-model store that keeps old versions of documents (sled does)
//! keeps nothing readable once the key is shredded.
//!
//! # Order between streams
//!
//! Each user's events come in their stream's order, but a bus may deliver
//! the streams of different users in any interleaving, so the login of an
//! address that was released by an erasure and registered again cannot
//! follow arrival order. An address is held by at most one active user at a
//! time, and a new registration of it comes after the erasure of the
//! previous holder, so the holder is the registration of the address with
//! the **highest global position**: a `UserRegistered` takes the address
//! only if no registration after it holds it already ([`EmailEntry`] keeps
//! the position), and a `UserErased` frees it only if the erased user holds
//! it. A late registration of an erased holder may hold the address until
//! that user's own `UserErased` (behind it in its stream) frees it again.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::email::EmailIndex;
use super::ids::UserId;
use super::user::{open_field, User, UserEvent, UserField};
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::{Codec, JsonCodec, UnknownTypePolicy};
use metachat_core::error::Result;
use metachat_core::event::{Envelope, Timestamp};
use metachat_core::projection::{Projection, ProjectionTx};
use metachat_core::read_model::{ReadModelStore, ReadModelStoreExt};
use metachat_shred::{DataKey, Sealed, ShredError};

/// Collection of [`UserProfile`]s, keyed by user id.
pub const USERS: &str = "users";
/// Collection of [`EmailEntry`]s, keyed by [`EmailIndex`].
pub const USERS_BY_EMAIL: &str = "users_by_email";

/// A user as the directory shows them. The plain address is not stored;
/// erased users stay as a tombstone with every personal field cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The user.
    pub user_id: UserId,
    /// Display name, sealed (`None` once erased).
    pub display_name: Option<Sealed>,
    /// "About" text, sealed (`None` if never set, or erased).
    pub about: Option<Sealed>,
    /// Blind index of the address (`None` once erased).
    pub email_index: Option<EmailIndex>,
    /// When the registration was recorded.
    pub registered_at: Timestamp,
    /// When the last event was recorded.
    pub updated_at: Timestamp,
    /// Erased.
    pub erased: bool,
    /// Global position of the last event applied.
    pub position: u64,
}

impl UserProfile {
    /// The display name and "about" text, opened with the user's `key`
    /// (`None`s once erased).
    ///
    /// # Errors
    /// [`ShredError::Unreadable`] with a wrong key.
    pub fn open(&self, key: &DataKey) -> Result<(Option<String>, Option<String>), ShredError> {
        let open = |field, v: &Option<Sealed>| {
            v.as_ref()
                .map(|s| open_field(key, self.user_id, field, s))
                .transpose()
        };
        Ok((
            open(UserField::DisplayName, &self.display_name)?,
            open(UserField::About, &self.about)?,
        ))
    }
}

/// A document of [`USERS_BY_EMAIL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailEntry {
    /// The active user registered with the address.
    pub user_id: UserId,
    /// Global position of that user's `UserRegistered` (0 in documents
    /// written before it was kept).
    #[serde(default)]
    pub registered: u64,
}

/// Projection of user events into [`USERS`] and [`USERS_BY_EMAIL`].
/// Unknown user event types are skipped (a newer writer's events).
#[derive(Debug)]
pub struct UserDirectory {
    codec: JsonCodec<UserEvent>,
}

impl Default for UserDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl UserDirectory {
    /// Name of the projection (its checkpoint key).
    pub const NAME: &'static str = "user_directory";

    /// The projection.
    pub fn new() -> Self {
        UserDirectory {
            codec: JsonCodec::new().on_unknown(UnknownTypePolicy::Skip),
        }
    }

    /// The profile of `user_id` (erased users as tombstones).
    pub async fn get<R: ReadModelStore + ?Sized>(
        store: &R,
        user_id: UserId,
    ) -> Result<Option<UserProfile>> {
        Ok(store
            .get_json::<UserProfile>(USERS, &user_id.to_string())
            .await?
            .map(|(p, _)| p))
    }

    /// The active user registered with the address of blind index `index`
    /// ([`Users::email_index`](super::Users::email_index)).
    pub async fn find_by_email_index<R: ReadModelStore + ?Sized>(
        store: &R,
        index: &EmailIndex,
    ) -> Result<Option<UserId>> {
        Ok(store
            .get_json::<EmailEntry>(USERS_BY_EMAIL, index.as_str())
            .await?
            .map(|(e, _)| e.user_id))
    }
}

#[async_trait]
impl Projection for UserDirectory {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn collections(&self) -> Vec<String> {
        vec![USERS.to_owned(), USERS_BY_EMAIL.to_owned()]
    }

    async fn apply(&self, env: &Envelope, tx: &mut ProjectionTx<'_>) -> Result<()> {
        if env.stream_id.category() != User::KIND {
            return Ok(());
        }
        let Some(event) = self.codec.decode(env)? else {
            return Ok(());
        };
        match event {
            UserEvent::UserRegistered {
                user_id,
                email_index,
                display_name,
                ..
            } => {
                let profile = UserProfile {
                    user_id,
                    display_name: Some(display_name),
                    about: None,
                    email_index: Some(email_index.clone()),
                    registered_at: env.recorded_at,
                    updated_at: env.recorded_at,
                    erased: false,
                    position: env.position,
                };
                tx.put_json(USERS, &user_id.to_string(), &profile)?;
                // A registration after this one (arrived first) keeps it.
                let holder = tx
                    .get_json::<EmailEntry>(USERS_BY_EMAIL, email_index.as_str())
                    .await?;
                if holder.is_none_or(|h| h.user_id == user_id || h.registered < env.position) {
                    tx.put_json(
                        USERS_BY_EMAIL,
                        email_index.as_str(),
                        &EmailEntry {
                            user_id,
                            registered: env.position,
                        },
                    )?;
                }
            }
            UserEvent::ProfileUpdated {
                user_id,
                display_name,
                about,
            } => {
                let key = user_id.to_string();
                let Some(mut p) = tx.get_json::<UserProfile>(USERS, &key).await? else {
                    return Ok(());
                };
                if p.erased {
                    return Ok(());
                }
                if display_name.is_some() {
                    p.display_name = display_name;
                }
                if about.is_some() {
                    p.about = about;
                }
                p.updated_at = env.recorded_at;
                p.position = env.position;
                tx.put_json(USERS, &key, &p)?;
            }
            UserEvent::UserErased { user_id } => {
                let key = user_id.to_string();
                let Some(mut p) = tx.get_json::<UserProfile>(USERS, &key).await? else {
                    return Ok(());
                };
                if let Some(hash) = p.email_index.take() {
                    let holder = tx
                        .get_json::<EmailEntry>(USERS_BY_EMAIL, hash.as_str())
                        .await?;
                    if holder.is_some_and(|h| h.user_id == user_id) {
                        tx.delete(USERS_BY_EMAIL, hash.as_str());
                    }
                }
                p.display_name = None;
                p.about = None;
                p.erased = true;
                p.updated_at = env.recorded_at;
                p.position = env.position;
                tx.put_json(USERS, &key, &p)?;
            }
        }
        Ok(())
    }
}
