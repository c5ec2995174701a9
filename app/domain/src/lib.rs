//! # metachat-domain
//!
//! The MetaChat domain, built on the toolkit: users and diary entries, their
//! commands, events, errors and read models, the mood worker and the
//! matching projection. It is the application's, not the toolkit's: the
//! toolkit crates never depend on it.
//!
//! | module | aggregate (KIND) | events |
//! |---|---|---|
//! | [`user`] | [`User`] (`user`) | `UserRegistered`, `ProfileUpdated`, `UserErased` |
//! | [`email`] | [`EmailReservation`] (`email`) | `EmailReserved`, `EmailReleased` |
//! | [`diary`] | [`DiaryEntry`] (`entry`) | `EntryCreated`, `EntryEdited`, `EntryDeleted` |
//! | [`mood`] | none (stream `mood-{entry_id}`) | `MoodAnalyzed` |
//! | [`session`] | none (stream `session-{user_id}`) | `SessionRevoked` |
//!
//! Services that span aggregates: [`Users`] (registration with a unique
//! address, profile, erasure, lookups by address) and [`Diaries`] (entries
//! whose author must be an active user). Read models, as
//! [`Projection`](metachat_core::projection::Projection)s with typed queries over
//! any [`ReadModelStore`](metachat_core::read_model::ReadModelStore):
//! [`UserDirectory`], [`DiaryTimeline`], [`MoodTimeline`] and the
//! [`MatchingProjection`](matching::MatchingProjection). The
//! [`MoodWorker`] turns new entry revisions into `MoodAnalyzed` events
//! (entry created/edited → analysis → mood timeline and matching).
//!
//! Ids ([`UserId`], [`EntryId`]) are UUIDs chosen by the caller, so a command
//! can be retried with the same id after a failure whose outcome is unknown.
//!
//! # Email uniqueness
//!
//! A user aggregate sees only itself, so it cannot know whether another
//! user has the same address. Uniqueness comes from one more aggregate per
//! address, [`EmailReservation`], whose stream is `email-{index}`: the
//! address's blind index, HMAC-SHA-256 of its canonical form ([`Email`]:
//! NFKC, lowercase, IDNA domain) under a server secret ([`BlindIndexKey`]).
//! Neither the address nor an unkeyed hash of it (which a dictionary would
//! reverse) is ever part of a stream id. [`Users::register`] runs:
//!
//! 1. **Validate** the command against the current user state without writing
//!    (bad input, `AlreadyRegistered`, `Erased`): nothing is reserved for a
//!    command that would be refused.
//! 2. **Reserve**: `Reserve { user_id }` on the reservation stream, appended
//!    by the [`Repository`](metachat_core::aggregate::Repository) with the expected
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
//! the tombstone keeps the address's blind index for that.
//!
//! # Personal data: crypto-shredding
//!
//! The log is immutable, so erasure cannot delete events. What it can do is
//! destroy the key that personal fields are encrypted with.
//!
//! **What is encrypted.** Every personal value, in every event and every
//! read model, is sealed with XChaCha20-Poly1305 under the user's
//! [`DataKey`] and bound to its place by associated data
//! ([`metachat_shred`]): the address, password hash, display name and
//! "about" text ([`user`]), the diary text ([`EntryText::Sealed`]), the
//! mood of each entry ([`MoodValue::Sealed`]) and its embedding (the
//! `theme`), and, in the read models, the directory's names, the days of
//! the [`MoodTimeline`] and the matching contributions and profiles. Read
//! models must be sealed too, because a store may keep the old versions of
//! a document it replaced (sled does). Not encrypted: ids, revisions, times,
//! the address's blind index.
//!
//! **Where keys live.** In the [`KeyVault`], over a
//! [`KeyStore`]: a [`DirKeys`] directory (one
//! file per key, which erasure overwrites and removes) or a read-model
//! collection (where an old key may live on in the store's files: see
//! [`metachat_shred::keys`]). Never in the log. A key is made on the user's
//! registration and is durable before anything sealed with it is appended.
//!
//! **The erasure sequence** (the server's `DELETE /v1/me`):
//!
//! 1. [`Users::erase`] appends `UserErased` (durable when it returns) and
//!    releases the address. It does not shred the key (a retried erasure
//!    must still find the reservation).
//! 2. The caller then calls [`KeyVault::shred`]: the key is destroyed and a
//!    permanent tombstone left, so it can never be re-created, and every value it
//!    sealed, in the log, in read models and in backups of the log, is
//!    unreadable from then on.
//! 3. The projections see `UserErased` and delete the user's documents
//!    ([`UserDirectory`] keeps a tombstone without personal fields,
//!    [`DiaryTimeline`] and [`MoodTimeline`] remove everything of the user).
//!
//! A crash between 1 and 2 leaves the key alive; [`shred_erased_users`]
//! repairs it (it follows the log from its own checkpoint and shreds the key
//! of every erased user): run it at start-up. Readers never depend on that
//! order: [`DiaryTimeline::page`]/[`DiaryTimeline::entry`] return nothing for
//! a user whose key is shredded, and the [`MoodWorker`] skips their entries.
//!
//! **What remains in the log** after erasure: the events themselves, with
//! their ids, stream ids, times and revisions, the blind index of the
//! address (which only the holder of the [`BlindIndexKey`] can test a guess
//! against), and the ciphertexts, which without the key are noise. Events
//! written before sealing existed (schema version 1 of
//! `EntryCreated`/`EntryEdited`, and `MoodAnalyzed` with a
//! [`MoodValue::Plain`] mood) hold plaintext and keep it; only the read
//! models forget it.

#![forbid(unsafe_code)]

pub mod date;
pub mod diaries;
pub mod diary;
pub mod directory;
pub mod email;
pub mod erasure;
pub mod ids;
pub mod matching;
pub mod mood;
pub mod mood_route;
pub mod mood_timeline;
pub mod mood_worker;
pub mod session;
pub mod timeline;
pub mod user;
pub mod users;

pub use date::{Date, DateError};
pub use diaries::{Diaries, DiariesError};
pub use diary::{DiaryCommand, DiaryEntry, DiaryError, DiaryEvent, EntryText, MAX_TEXT_BYTES};
pub use directory::{UserDirectory, UserProfile};
pub use email::{
    BlindIndexKey, Email, EmailError, EmailIndex, EmailReservation, ReservationCommand,
    ReservationError, ReservationEvent,
};
pub use erasure::{shred_erased_users, ErasedUsers};
pub use ids::{EntryId, UserId};
pub use metachat_shred::{DataKey, DirKeys, KeyState, KeyStore, KeyVault, Sealed, ShredError};
pub use mood::{MoodEvent, MoodValue};
pub use mood_route::{MoodChange, MoodRouter};
pub use mood_timeline::{AnalyzedMood, MoodDay, MoodTimeline};
pub use mood_worker::{MoodWorker, MoodWorkerStats};
pub use timeline::{DiaryTimeline, TimelineEntry, TimelineError, TimelinePage};
pub use user::{FieldError, Personal, User, UserCommand, UserError, UserEvent, UserStatus};
pub use users::{Credentials, Users, UsersError};
