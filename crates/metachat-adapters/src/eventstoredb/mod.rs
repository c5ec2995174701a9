//! An event store on EventStoreDB / KurrentDB, through the official
//! [`kurrentdb`](https://crates.io/crates/kurrentdb) gRPC client.
//!
//! ```no_run
//! use metachat_adapters::eventstoredb::{EventStoreDbConfig, EventStoreDbEventStore};
//! use metachat_core::event::{NewEvent, StreamId};
//! use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
//!
//! # async fn run() -> metachat_core::Result<()> {
//! // EVENTSTOREDB_URL=esdb://127.0.0.1:2113?tls=false, EVENTSTOREDB_NAMESPACE=diary
//! let config = EventStoreDbConfig::from_env()?.build()?;
//! let store = EventStoreDbEventStore::connect(&config).await?;
//!
//! let stream = StreamId::new("user-42")?;
//! let out = store
//!     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("UserRegistered", b"{}".to_vec())])
//!     .await?;
//! assert_eq!(store.read_all(out.first_position, 10).await?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! # Which client crate, and why
//!
//! `kurrentdb` (1.x) is the maintained successor of the `eventstore` crate:
//! the same code base and repository (now github.com/kurrent-io/KurrentDB-Client-Rust),
//! renamed with the EventStoreDB → KurrentDB rebrand; `eventstore` is the
//! legacy generation (its last release, 4.0.0, is from February 2025). It
//! talks gRPC to EventStoreDB from 20.6.1 on and to every KurrentDB release,
//! and it needs no `protoc` at build time (its generated code is checked in;
//! its TLS stack, rustls on aws-lc, needs only a C compiler). Its errors are
//! an enum with a typed `WrongExpectedVersion { expected, current }`, so
//! conflicts are mapped by variant, never by message text.
//!
//! # Mapping
//!
//! | contract | EventStoreDB |
//! |---|---|
//! | a store | a *namespace*: the streams named `{namespace}:…` ([`EventStoreDbConfig::namespace`], default `metachat`) |
//! | stream `user-42` | stream `{namespace}:user-42` |
//! | event id, type, payload | event id, event type, event data byte for byte (`application/json` when the payload is exactly one JSON value) |
//! | metadata, schema version, recorded-at | the event's custom metadata, a JSON object with EventStoreDB's `$correlationId` / `$causationId` names (see `record.rs`) |
//! | version `0, 1, 2, …` | stream revision |
//! | [`ExpectedVersion`](metachat_core::store::ExpectedVersion) `Any` / `NoStream` / `StreamExists` / `Exact(v)` | `StreamState::Any` / `NoStream` / `StreamExists` / `StreamRevision(v)`; `Exact(v)` past `i64::MAX` (no stream can be there) is a conflict without a request |
//! | [`Conflict`](metachat_core::Error::Conflict) `{ actual }` | the client's `WrongExpectedVersion { current }` variant |
//! | idempotent re-append | [`check_reappend`](metachat_core::store::check_reappend) against the event ids of the namespace, before the append and again after a `WrongExpectedVersion`; the server's own idempotency by event id besides |
//! | `read_stream` forward / backward | read stream forwards / backwards; an absent or deleted stream reads as empty |
//! | global log, `read_all` | `$all`, read with the server-side filter *stream name starts with `{namespace}:`* (which leaves out every system stream, `$`-prefixed); system-typed events (`$streamDeleted`) in the namespace's streams are skipped |
//! | global position `0, 1, 2, …` | the event's ordinal among the namespace's events in `$all` (below) |
//! | [`subscribe_all`](metachat_core::store::subscribe_all) | polls `read_all` (no [`HeadWatch`](metachat_core::store::HeadWatch)), so events from other processes show too |
//! | [`EventStoreDbEventStore::subscribe`] | a native catch-up subscription to `$all` with the same filter, resubscribing with backoff from the last event seen |
//! | [`EventStoreDbEventStore::delete_stream`] / [`tombstone_stream`](EventStoreDbEventStore::tombstone_stream) | soft delete / tombstone (inherent: the contract has no deletion) |
//! | [`Unavailable`](metachat_core::Error::Unavailable) | connection closed, discovery failed, deadline exceeded, not the leader, gRPC `Unavailable` (and what the client folds with it), `ResourceExhausted`, `Aborted`, `Cancelled` |
//!
//! # Global positions
//!
//! The contract numbers the global log `0, 1, 2, …` without gaps.
//! EventStoreDB's `$all` positions are byte offsets in its transaction log
//! (a commit and a prepare position): ordered, but sparse, and shared by
//! every stream on the server. The adapter does not expose them. It keeps
//! the contract instead, with this definition:
//!
//! > The global position of an event is the number of events of the
//! > namespace (system-typed ones left out) before it in `$all`.
//!
//! `$all` is one total order that only grows at its end, and every event of
//! a batch lands in it contiguously, in one transaction. So the definition
//! gives each event one position that every reader, in every process,
//! derives alike; positions are dense and follow append order; a reader
//! never sees `N + 1` before `N` (it reads `$all` in order); an append's
//! events get consecutive positions. Nothing extra is written to the server:
//! the numbering is a pure function of `$all`.
//!
//! Each store keeps a **position index** in memory: the `$all` position of
//! every global position, and the global position of every event id (about
//! 50 bytes per event of the namespace). It is built by reading the
//! namespace's events from `$all` (server-side filtered, in pages) the first
//! time it is needed, then kept up to date from the end. What that costs,
//! plainly:
//!
//! - the first operation of a process reads the whole namespace once (the
//!   server scans `$all` for it); later scans start where the last ended;
//! - every append first brings the index up to the end of `$all` (for the
//!   idempotency check over the whole namespace), then reads its events
//!   back to learn their positions: about six round trips per append;
//! - memory grows with the namespace: split very large logs into
//!   namespaces.
//!
//! **What this cannot hold.** A scavenge that removes events of the
//! namespace (of a deleted or tombstoned stream, or through `$maxAge` /
//! `$maxCount` / `$tb` stream metadata) shortens `$all`, and the positions of
//! every later event of the namespace move down. A process that indexed the
//! old numbering reports the mismatch as [`Error::Corrupted`](metachat_core::Error::Corrupted)
//! instead of serving shifted positions; checkpoints taken before the
//! scavenge name other events afterwards. So: do not scavenge away events
//! of a namespace whose positions are stored (projection checkpoints,
//! positions given to clients), or rebuild those projections from 0 after
//! the scavenge. Deleting a stream alone moves nothing: its events stay in
//! `$all` (and in [`read_all`](metachat_core::store::EventReader::read_all))
//! until a scavenge.
//!
//! **Idempotency across processes.** The check runs against everything
//! indexed before the append. Two processes appending the *same* event ids
//! at the same moment are caught by the server only when they target the
//! same stream (its own idempotency by event id); the same id appended at
//! once to two different streams may be stored twice. Within one process,
//! and between processes one after the other, the contract holds.
//!
//! The namespace belongs to the adapter: an event written into a
//! `{namespace}:…` stream by another client without the metadata object
//! fails reads with [`Error::Corrupted`](metachat_core::Error::Corrupted).
//! The server's user needs to read `$all` (the default `admin`, or
//! `--insecure`).
//!
//! # Errors
//!
//! Client errors are mapped once, by variant and gRPC code, in `error.rs`:
//! the table above for [`Unavailable`](metachat_core::Error::Unavailable)
//! (retryable); `WrongExpectedVersion` to [`Conflict`](metachat_core::Error::Conflict);
//! anything else (access denied, an append to a tombstoned stream, an append
//! over the server's `MaxAppendSize`) to [`Backend`](metachat_core::Error::Backend),
//! with an [`EventStoreDbOpError`] naming the operation as its source.
//!
//! # Verified how
//!
//! The unit tests (mappings, metadata codec, position index, configuration)
//! run everywhere. The whole store conformance suite runs against a server
//! whenever `EVENTSTOREDB_URL` is set (`tests/eventstoredb_conformance.rs`;
//! the README says how to start one); where none can be installed it says
//! that it did not run.

mod config;
mod error;
mod index;
mod record;
mod store;
mod subscription;

pub use config::{
    Backoff, EventStoreDbConfig, EventStoreDbConfigBuilder, ENV_NAMESPACE, ENV_URL,
    MAX_NAMESPACE_LEN,
};
pub use error::{EventStoreDbConfigError, EventStoreDbOpError};
pub use store::EventStoreDbEventStore;
pub use subscription::EventStoreDbSubscription;
