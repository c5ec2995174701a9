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
//! * An append is atomic: all its events and their indexes
//!   are one sled batch, which sled recovers whole or not at all.
//! * Global positions are assigned in that same batch by a single writer, and
//!   readers only see positions below the last acknowledged one (durable as
//!   [`Durability`] defines), so nobody sees position `N + 1` before `N`,
//!   and under [`Durability::Sync`] nobody sees an event a crash could take back.
//! * `Ok` means durable as the [`Durability`] setting says: with the default
//!   [`Durability::Sync`], on stable storage after an `fdatasync` barrier
//!   that sled 0.34 does not take by itself (see [`Durability`]).
//! * Concurrent appends share one batch and one barrier (group commit).
//! * Every record carries a CRC; a damaged one reads as
//!   [`Error::Corrupted`](metachat_core::Error::Corrupted) naming its
//!   position, and other streams stay readable.
//!
//! # On-disk layout
//! sled is opened with 8 MiB log segments (sled's default is 512 KiB; a
//! database must be reopened with the same size). Tree `metachat.events`
//! (integers big-endian):
//!
//! | key | value |
//! |---|---|
//! | `e` + first position (u64) | a chunk: the records of consecutive positions from that one, each a frame of length (u32) + the event in the [wire format](metachat_core::event::wire) |
//! | `s` + stream id + `0x00` + first version (u64) | a run: position (u64) of that version + count (u64) of consecutive versions at consecutive positions (one per append) |
//! | `i` + event id (16 bytes) | position (u64) |
//!
//! A group commit packs its records into chunks of about 64 KiB (a larger
//! record gets a chunk of its own), so a batch of events costs one sled
//! insert per chunk plus one per event id, and a scan of the log or of a
//! stream reads one sled item per chunk. A chunk never spans two groups, so
//! what readers may see (positions below the last barrier) always ends at a
//! chunk boundary. Stream heads are not stored: the last run of a stream
//! gives its version (cached in memory once read), and the last chunk gives
//! the next position on open.
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
mod keys;
mod read_models;
pub mod segment;
mod store;
mod writer;

use std::sync::Arc;

use metachat_core::Result;

pub use config::{Durability, SledConfig};
pub use error::SledError;
pub use read_models::SledReadModels;
pub use store::SledEventStore;

use durability::Core;
use error::from_sled;

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
        let db = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_capacity)
            .segment_size(chunk::SEGMENT_SIZE)
            .open()
            .map_err(from_sled)?;
        let core = Arc::new(Core::open(db, &config.path, config.durability, lock)?);
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
