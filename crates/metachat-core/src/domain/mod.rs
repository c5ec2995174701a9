//! The MetaChat domain: users and diary entries, their commands, events,
//! errors and read models.
//!
//! | module | aggregate (KIND) | events |
//! |---|---|---|
//! | [`user`] | [`User`] (`user`) | `UserRegistered`, `ProfileUpdated`, `UserErased` |
//! | [`email`] | [`EmailReservation`] (`email`) | `EmailReserved`, `EmailReleased` |
//! | [`diary`] | [`DiaryEntry`] (`entry`) | `EntryCreated`, `EntryEdited`, `EntryDeleted` |
//!
//! Services that span aggregates: [`Users`] (registration with a unique
//! address, profile, erasure, lookups by address) and [`Diaries`] (entries
//! whose author must be an active user). Read models, as
//! [`Projection`](crate::projection::Projection)s with typed queries over
//! any [`ReadModelStore`](crate::read_model::ReadModelStore):
//! [`UserDirectory`] and [`DiaryTimeline`].
//!
//! Ids ([`UserId`], [`EntryId`]) are UUIDs chosen by the caller, so a command
//! can be retried with the same id after a failure whose outcome is unknown.
//!
//! # Email uniqueness
//!
//! A user aggregate sees only itself, so it cannot know whether another
//! user has the same address. Uniqueness comes from one more aggregate per
//! address, [`EmailReservation`], whose stream is
//! `email-{sha256(normalised address)}` (hex; the address itself is never part
//! of a stream id). [`Users::register`] runs:
//!
//! 1. **Validate** the command against the current user state without writing
//!    (bad input, `AlreadyRegistered`, `Erased`): nothing is reserved for a
//!    command that would be refused.
//! 2. **Reserve**: `Reserve { user_id }` on the reservation stream, appended
//!    by the [`Repository`](crate::aggregate::Repository) with the expected
//!    version it loaded — `NoStream` for a fresh address, `Exact(n)` after a
//!    release. Of any number of concurrent registrations of one address the
//!    store's optimistic concurrency lets exactly one append win; the others
//!    get a conflict, reload, find the address held by someone else and fail
//!    with [`UsersError::EmailTaken`]. A reservation already held by the same
//!    `user_id` is accepted without a new event.
//! 3. **Register**: append `UserRegistered` to `user-{user_id}` (expected
//!    `NoStream`).
//!
//! If step 3 fails with a store error (a crash, a lost connection), the
//! reservation stays pointing at a user id with no `UserRegistered`. The
//! address is then held by that id only: calling `register` again with the
//! **same** `user_id` finds its own reservation in step 2 (no new event) and
//! completes step 3. Callers therefore choose the user id before the first
//! attempt and keep it for retries. Lookups by address
//! ([`Users::find_by_email`], [`Users::credentials`]) ignore a reservation
//! whose user is not active, so a half-done registration is never a login.
//! If step 3 is refused because a concurrent registration of the *same* user
//! id won, the reservation made in step 2 is released again unless that
//! user holds this very address.
//!
//! Not done here: an address whose registration is abandoned after step 2
//! stays reserved. Reclaiming it safely needs more than a timeout (the
//! abandoned `UserRegistered` could still arrive); the way to do it is to
//! first append a "voided" event to the abandoned user stream with
//! `NoStream`, so the late registration conflicts, then move the reservation.
//!
//! [`Users::erase`] appends `UserErased` (a tombstone: every later command
//! fails with [`UserError::Erased`]), then `Release { user_id }` on the
//! reservation, after which the address can be registered again by a new
//! user id. A failure between the two is repaired by calling `erase` again:
//! the tombstone keeps the address's hash for that.
//!
//! # Personal data
//!
//! The log is immutable, so erasure cannot delete `UserRegistered` (address,
//! password hash, display name) nor the diary text. Each such value sits in
//! its own event field — the diary text in exactly one field, `text`, of
//! `EntryCreated` and `EntryEdited` — so that crypto-shredding (fields
//! encrypted with a per-user key that erasure destroys) can be added by the
//! server without changing the events' shape. The read models already drop
//! an erased user's data: the directory keeps a tombstone without personal
//! fields and removes the address lookup; the timeline removes every entry.
//! The address is stored in the directory only as its hash.

pub mod date;
pub mod diaries;
pub mod diary;
pub mod directory;
pub mod email;
pub mod ids;
pub mod mood;
pub mod mood_timeline;
pub mod mood_worker;
pub mod shred;
pub mod timeline;
pub mod user;
pub mod users;
pub mod vault;

pub use date::{Date, DateError};
pub use diaries::{Diaries, DiariesError};
pub use diary::{DiaryCommand, DiaryEntry, DiaryError, DiaryEvent, EntryText, MAX_TEXT_BYTES};
pub use directory::{UserDirectory, UserProfile};
pub use email::{
    Email, EmailError, EmailHash, EmailReservation, ReservationCommand, ReservationError,
    ReservationEvent,
};
pub use ids::{EntryId, UserId};
pub use mood::MoodEvent;
pub use mood_timeline::{AnalysedMood, MoodDay, MoodTimeline};
pub use mood_worker::{MoodWorker, MoodWorkerStats};
pub use shred::{DataKey, Sealed, ShredError};
pub use timeline::{DiaryTimeline, TimelineEntry, TimelineError, TimelinePage};
pub use user::{FieldError, User, UserCommand, UserError, UserEvent, UserStatus};
pub use users::{Credentials, Users, UsersError};
pub use vault::{KeyState, KeyVault};
