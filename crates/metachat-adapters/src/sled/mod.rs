//! The embedded, durable backend on [sled](https://docs.rs/sled/0.34): an
//! event store ([`SledEventStore`]) and read models with projection
//! checkpoints ([`SledReadModels`]) in one sled database.
//!
//! ```
//! use metachat_adapters::sled::{SledConfig, SledDatabase};
//! use metachat_core::read_model::{ReadModelStore, ReadModelStoreExt, DocExpect};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let db = SledDatabase::open(SledConfig::new(dir.path())).unwrap();
//! let (events, views) = (db.event_store(), db.read_models());
//! views.put_json("users", "u1", &"Ada", DocExpect::Absent).await.unwrap();
//! assert_eq!(views.get_json::<String>("users", "u1").await.unwrap().unwrap().1, 1);
//! # drop(events);
//! # });
//! ```
//!
//! # Guarantees
//! * An append is atomic: all its events are one batch of the log, one
//!   frame with one CRC, whole or absent after any crash.
//! * Global positions are assigned by a single writer, and readers only see
//!   positions below the last acknowledged one, so nobody sees position
//!   `N + 1` before `N`; under [`Durability::Sync`] nobody sees an event a
//!   crash could take back.
//! * `Ok` means durable as the [`Durability`] setting says: with the default
//!   [`Durability::Sync`], after an `fdatasync` of the log covering it.
//! * Concurrent appends share one batch and one sync (group commit).
//! * Every record carries a CRC; a damaged one reads as
//!   [`Error::Corrupted`](metachat_core::Error::Corrupted) naming its
//!   position, and other streams stay readable.
//!
//! # On-disk layout
//! The log of record is the directory `log/`: segment files
//! `{id:020}.seg` of CRC-framed batches (see [`segment`]), each created
//! full of zeros (1 MiB, doubling up to 64 MiB) so that a sync of a write
//! into it commits no metadata. sled, opened with 8 MiB log segments
//! (sled's default is 512 KiB; a database must be reopened with the same
//! size), holds what is derived from the log, in tree `metachat.events`
//! (integers big-endian):
//!
//! | key | value |
//! |---|---|
//! | `p` + first position (u64) | where that batch starts: segment (u64) + offset (u64) |
//! | `s` + stream id + `0x00` + first version (u64) | one or more runs (at most 256, the checkpoint folds a stream's runs that follow one another into one entry), each 16 bytes: position (u64) of its first version + count (u64) of consecutive versions at consecutive positions; each run starts at the version after the one before it |
//! | `x` | how far the index is complete: next position (u64) + the log's end there, segment (u64) + offset (u64) |
//! | `y` | up to where the log is known synced: segment (u64) + offset (u64); under `Sync`, written after a group's sync, at most every 10 ms; a damaged batch before it is kept and reported, after it cut off as a torn write |
//!
//! Under [`Durability::Sync`] a group's index entries go, after the log's
//! `fdatasync` (an entry never points past the durable log), into an
//! in-memory buffer that every read consults before sled; readers see the
//! group once they are in. Once a second (sooner if more than 65,536
//! entries wait, and on a clean close) a checkpoint thread inserts them
//! into sled one by one, with no barrier of their own, and only then takes
//! them out of the buffer; `x` then moves, after a sled flush and
//! `fdatasync` that put every entry before it on disk. Under
//! [`Durability::Periodic`] a group's entries and `x` go in as one sled
//! batch. On open, the log's torn tail (a batch written but never synced)
//! is cut off, then batches past `x` are indexed (again) and, should the
//! index reach past the log (a power loss under `Periodic`), its excess
//! entries are removed: see [`SledEventStore::open_report`].
//!
//! Event ids are not in sled (a random-key insert per event was most of an
//! append's cost): the ids of the open segments are in memory, and each
//! sealed segment has a sorted table `log/{id:020}.ids` of (id, position,
//! record offset), written when the log moves past it and rebuilt from the
//! segment if it is missing or fails its CRC on open. An in-memory filter
//! of every event id (about 2.4 bytes per id, a false positive in 10,000
//! per layer) answers the idempotency check of a new id without touching
//! the disk; an id it may hold is looked up with one read of a 64-entry
//! block per table, found by each block's first id, kept in memory. A database of an earlier version (events in sled chunks
//! under `e`) is moved into the log on its first open.
//!
//! Tree `metachat.read_models`:
//!
//! | key | value |
//! |---|---|
//! | `d` + collection length (u32) + collection + key | version (u64) + document bytes |
//! | `c` + projection name | checkpoint: next position (u64) |

mod chunk;
mod config;
mod durability;
mod error;
mod id_index;
mod ids;
mod index;
mod index_buffer;
mod keys;
mod legacy;
mod log;
mod read_models;
pub mod segment;

/// Decoders of the store's on-disk formats, public for the fuzz targets
/// (bytes from disk must never make them panic). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes an event-id table (the `{segment}.ids` file beside each
    /// sealed log segment) and encodes its entries again; `None` when the
    /// bytes are not a whole, valid table (wrong length, CRC, order).
    pub fn id_table_round_trip(bytes: &[u8]) -> Option<Vec<u8>> {
        super::id_index::round_trip(bytes)
    }

    /// A run of a stream index entry: first version, position, count.
    pub type Run = (u64, u64, u64);

    /// Decodes a stream index entry (`s` + stream + `0x00` + `key_version`
    /// → `value`: one or more runs) and encodes its runs again, with each
    /// run as (first version, position, count); `None` when the value is
    /// not whole, ordered runs.
    pub fn stream_runs_round_trip(key_version: u64, value: &[u8]) -> Option<(Vec<u8>, Vec<Run>)> {
        let stream = metachat_core::event::StreamId::new("s").ok()?;
        let key = super::keys::stream_entry(&stream, key_version);
        let runs = super::keys::Run::decode_all(&stream, &key, value).ok()?;
        let listed = runs
            .iter()
            .map(|r| (r.first_version, r.position, r.count))
            .collect();
        Some((super::keys::runs_value(&runs), listed))
    }
}
mod store;
mod writer;

use std::sync::Arc;

use metachat_core::Result;

pub use config::{Durability, SledConfig};
pub use error::SledError;
pub use read_models::SledReadModels;
pub use store::{OpenReport, SledEventStore};

use durability::Core;
use error::from_sled;
use segment::LogStorage;

/// Name of the lock file [`SledDatabase::open`] holds in the directory.
pub const LOCK_FILE: &str = "metachat.lock";

/// Takes the directory's exclusive lock (an advisory `flock` on
/// [`LOCK_FILE`], held while the database is open, released by the kernel
/// when the process dies). Another holder, in this process or another, is
/// [`SledError::Locked`], told apart from other I/O errors by the lock call's own
/// result, not by an error message.
fn lock_directory(dir: &std::path::Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SledError::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SledError::Locked {
            path: dir.display().to_string(),
        }
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(SledError::io("lock", &path, e).into()),
    }
}

/// How long [`wait_for_sled_lock`] waits for sled's own lock.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded by [`SLED_LOCK_WAIT`]) until sled's own lock on
/// `<dir>/db` is free. Holding [`LOCK_FILE`] proves that no other handle
/// has the database open, but sled's background writes can keep its file,
/// and the `flock` on it, a moment after the last handle of the previous
/// open was dropped; sled itself would then refuse at once ("could not
/// acquire lock"). Past the bound, sled's own error is what the caller
/// gets.
fn wait_for_sled_lock(dir: &std::path::Path) -> Result<()> {
    let path = dir.join("db");
    let file = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        // A new database: nothing to wait for.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SledError::io("open sled's lock file", &path, e).into()),
    };
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    loop {
        match file.try_lock() {
            // Released when `file` drops, before sled takes it.
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(_) => return Ok(()),
        }
    }
}

/// One sled database holding the event store and the read models, opened
/// together so both share one sled instance (and one durability barrier).
#[derive(Debug, Clone)]
pub struct SledDatabase {
    events: SledEventStore,
    read_models: SledReadModels,
}

impl SledDatabase {
    /// Opens (or creates) the database at `config.path`, rebuilding the event
    /// store's caches (stream heads, next position) from disk.
    ///
    /// Fails with [`Error::Unavailable`](metachat_core::Error::Unavailable)
    /// if another handle or process has the database open.
    pub fn open(config: SledConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.path)
            .map_err(|e| SledError::io("create directory", &config.path, e))?;
        let lock = lock_directory(&config.path)?;
        wait_for_sled_lock(&config.path)?;
        let db = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_capacity)
            .segment_size(chunk::SEGMENT_SIZE)
            .open()
            .map_err(from_sled)?;
        let tree = db.open_tree(keys::EVENTS_TREE).map_err(from_sled)?;
        // Frames before the index's end, when it says they were synced, are
        // on disk: damage there is corruption to report, not a torn write
        // to cut off.
        let synced = index::synced(&tree)?;
        let log = log::EventLog::open(
            &config.path,
            config.log.clone().map(LogStorage::Sim),
            synced,
        )?;
        let core = Arc::new(Core::open(db, &config.path, config.durability, log, lock)?);
        let events = SledEventStore::start(core.clone(), &config)?;
        let read_models = SledReadModels::start(core)?;
        Ok(SledDatabase {
            events,
            read_models,
        })
    }

    /// The event store (a cheap clone).
    pub fn event_store(&self) -> SledEventStore {
        self.events.clone()
    }

    /// The read models (a cheap clone).
    pub fn read_models(&self) -> SledReadModels {
        self.read_models.clone()
    }
}
