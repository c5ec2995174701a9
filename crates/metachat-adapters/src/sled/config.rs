//! Opening options of the sled backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use metachat_core::event::Limits;

/// When an acknowledged write is on stable storage.
///
/// In both modes an append (or read-model commit) that returned `Ok` has been
/// handed to the operating system (sled's log buffers were flushed with
/// `pwrite`), so a crash **of the process** never loses it. The modes differ
/// in what survives a crash **of the machine** (power loss, kernel panic):
///
/// * [`Durability::Sync`] (the default): before any caller is answered, the
///   store reaches an `fdatasync` barrier on sled's data file (and on any
///   blob file and directory sled created). An `Ok` append survives a machine
///   crash. Concurrent appenders share one flush and one barrier (group
///   commit), so throughput grows with concurrency.
/// * [`Durability::Periodic`]: appends are answered after the flush to the OS;
///   a background thread reaches the same barrier at most every interval.
///   An `Ok` append may be lost if the machine crashes within one interval
///   after it; a lost suffix is always whole batches, and the positions that
///   survive stay contiguous. Readers see an event as soon as it is
///   acknowledged, so after a machine crash in this mode a projection may
///   hold effects of events that were taken back: rebuild it, or use `Sync`.
///
/// sled 0.34's own `flush()` uses `sync_file_range`, which neither flushes the
/// drive's write cache nor persists file metadata (sled issue #1452); that is
/// why the barrier above is taken by this adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every acknowledged write is on stable storage (`fdatasync`), with group commit.
    #[default]
    Sync,
    /// Acknowledged writes reach the OS at once and stable storage within the interval.
    Periodic(Duration),
}

/// Options for [`SledDatabase::open`](super::SledDatabase::open) and
/// [`SledEventStore::open`](super::SledEventStore::open).
///
/// ```
/// use metachat_adapters::sled::{Durability, SledConfig};
/// let cfg = SledConfig::new("/tmp/metachat-data")
///     .durability(Durability::Periodic(std::time::Duration::from_millis(10)))
///     .cache_capacity(256 << 20);
/// assert_eq!(cfg.path.to_str(), Some("/tmp/metachat-data"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SledConfig {
    /// Directory of the database; created if missing.
    pub path: PathBuf,
    /// When acknowledged writes are on stable storage. Default [`Durability::Sync`].
    pub durability: Durability,
    /// Size limits checked before anything is written. Default [`Limits::default`].
    pub limits: Limits,
    /// sled's page cache, in bytes. Default 1 GiB (sled's default).
    pub cache_capacity: u64,
    /// Most events one group commit writes in a single sled batch. Default 65,536.
    /// A single append larger than this is still written whole.
    pub max_group_events: usize,
}

impl SledConfig {
    /// Default options for the database in `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SledConfig {
            path: path.as_ref().to_path_buf(),
            durability: Durability::Sync,
            limits: Limits::default(),
            cache_capacity: 1 << 30,
            max_group_events: 1 << 16,
        }
    }

    /// Sets [`SledConfig::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`SledConfig::limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`SledConfig::cache_capacity`].
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Sets [`SledConfig::max_group_events`] (at least 1).
    pub fn max_group_events(mut self, n: usize) -> Self {
        self.max_group_events = n.max(1);
        self
    }
}
