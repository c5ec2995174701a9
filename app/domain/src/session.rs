//! Session revocations as events: what tells every service that a bearer
//! token must no longer be accepted.
//!
//! Access tokens are signed by the user service and verified by every other
//! service with the public key alone (no call back), so a logout cannot be
//! a row deleted in the user service's tables only: it is a
//! [`SessionEvent::SessionRevoked`] on the user's `session-{user_id}`
//! stream, which the outbox relay publishes like every event and each
//! verifying service folds into its set of revoked sessions. Erasure needs
//! no event of its own here: `UserErased` revokes every session of the
//! user.
//!
//! No personal data: ids and an expiry only.
//!
//! ```
//! use metachat_domain::session::{self, SessionEvent};
//! use metachat_domain::UserId;
//! use metachat_core::memory::InMemoryEventStore;
//! use metachat_core::store::EventReader;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryEventStore::new();
//! let user = UserId::new();
//! let sid = uuid::Uuid::new_v4();
//! let at = session::record_revocation(&store, user, sid, 1_900_000_000, Default::default()).await?;
//! // A retried logout records nothing new.
//! let again = session::record_revocation(&store, user, sid, 1_900_000_000, Default::default()).await?;
//! assert_eq!(at, again);
//! let stream = session::session_stream(user)?;
//! let events = store.read_stream(&stream, 0, metachat_core::store::Direction::Forward, 10).await?;
//! assert_eq!(events.len(), 1);
//! use metachat_core::codec::Codec;
//! let decoded: SessionEvent = session::codec().decode(&events[0])?.expect("a known type");
//! assert_eq!(decoded.session_id(), sid);
//! # Ok::<(), metachat_core::Error>(())
//! # }).unwrap();
//! ```

use metachat_core::codec::{Codec as _, DomainEvent, JsonCodec};
use metachat_core::error::Result;
use metachat_core::event::{EventId, Metadata, NewEvent, StreamId};
use metachat_core::store::{EventStore, ExpectedVersion};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::UserId;

/// Stream category of session events: `session-{user_id}`.
pub const SESSION_KIND: &str = "session";

/// Namespace of the revocation events' UUIDs v5.
const SESSION_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7461_6368_6174_2d73_6573_732d_7631);

/// Events of a `session-{user_id}` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    /// A session was ended (logout): its tokens are refused from now on.
    SessionRevoked {
        /// Whose session.
        user_id: UserId,
        /// The session (the `sid` claim of its tokens).
        session_id: Uuid,
        /// Seconds since the Unix epoch after which no token of the session
        /// is valid anyway: verifiers may forget the revocation then.
        expires_at: u64,
    },
}

impl DomainEvent for SessionEvent {
    fn event_types() -> &'static [&'static str] {
        &["SessionRevoked"]
    }
}

impl SessionEvent {
    /// The user.
    pub fn user_id(&self) -> UserId {
        match self {
            SessionEvent::SessionRevoked { user_id, .. } => *user_id,
        }
    }

    /// The session.
    pub fn session_id(&self) -> Uuid {
        match self {
            SessionEvent::SessionRevoked { session_id, .. } => *session_id,
        }
    }
}

/// The codec of session events (JSON; unknown types fail).
pub fn codec() -> JsonCodec<SessionEvent> {
    JsonCodec::new()
}

/// The stream of `user`'s session events.
pub fn session_stream(user: UserId) -> Result<StreamId> {
    StreamId::from_parts(SESSION_KIND, user)
}

/// The id of the revocation of `session`: the same session always gives
/// the same id, so a retried logout appends nothing new.
pub fn revocation_event_id(session: Uuid) -> EventId {
    EventId(Uuid::new_v5(&SESSION_NAMESPACE, session.as_bytes()))
}

/// Appends the revocation of `session` of `user` and returns its log
/// position. Idempotent: a second call with the same session records
/// nothing new and returns the first one's position.
pub async fn record_revocation<S: EventStore + ?Sized>(
    store: &S,
    user: UserId,
    session: Uuid,
    expires_at: u64,
    metadata: Metadata,
) -> Result<u64> {
    let event = SessionEvent::SessionRevoked {
        user_id: user,
        session_id: session,
        expires_at,
    };
    let enc = codec().encode(&event)?;
    let new = NewEvent::new(enc.event_type, enc.payload)
        .with_schema_version(enc.schema_version)
        .with_id(revocation_event_id(session))
        .with_metadata(metadata);
    let outcome = store
        .append(&session_stream(user)?, ExpectedVersion::Any, vec![new])
        .await?;
    Ok(outcome.last_position)
}
