//! Opening options of the sled backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use metachat_core::event::Limits;

use super::segment::SimStorage;

/// When an acknowledged write is on stable storage.
///
/// A crash **of the process** (SIGKILL, panic) never loses an acknowledged
/// append or commit in either mode: it has been handed to the operating
/// system. The modes differ in what survives a crash **of the machine**
/// (power loss, kernel panic), and say so for three kinds of write:
///
/// | write | [`Sync`](Durability::Sync) (default) | [`Periodic`](Durability::Periodic) |
/// |---|---|---|
/// | event append | `Ok` after an `fdatasync` of the log covering it: survives | may be lost within one interval after `Ok` |
/// | read-model commit **without** a checkpoint (records of their own: sessions, keys, handled marks) | `Ok` after sled's flush and an `fdatasync` barrier: survives | may be lost within one interval |
/// | read-model commit **with** a projection checkpoint | atomic with its writes; on disk within sled's flush interval (500 ms) | same |
///
/// * Appends: concurrent appenders share one log batch and one sync (group
///   commit). What a machine crash takes under `Periodic` is always whole
///   batches at the end, and the positions that survive stay contiguous.
///   Readers see an event as soon as it is acknowledged, so after a machine
///   crash in `Periodic` a projection may hold effects of events that were
///   taken back: rebuild it, or use `Sync`.
/// * Projection commits (a [`Commit`](metachat_core::read_model::Commit)
///   with a checkpoint) are derived from the log and take no barrier of
///   their own: after any crash a projection resumes from its last
///   checkpoint that reached the disk, which is never ahead of (or behind)
///   the writes committed with it, and replays the events after it. Under
///   `Sync` it never saw an event a crash could take back.
/// * A commit without a checkpoint is not derived from the log, so it gets
///   the barrier of its own (sled 0.34's own `flush()` uses
///   `sync_file_range`, which neither flushes the drive's write cache nor
///   persists file metadata, sled issue #1452: the `fdatasync` is taken by
///   this adapter). Write a session, or a key that seals events, this way,
///   and it is durable before its `Ok`.
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
    /// The event log on a simulated disk instead of `path/log` (tests).
    pub(crate) log: Option<SimStorage>,
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
            log: None,
        }
    }

    /// Keeps the event log on `disk`, a simulated disk that can lose power,
    /// instead of in `path/log` (sled's indexes and read models stay in
    /// `path`): for tests of what survives a power loss. Reopen with a
    /// clone of the same `disk`.
    pub fn simulated_log(mut self, disk: SimStorage) -> Self {
        self.log = Some(disk);
        self
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
