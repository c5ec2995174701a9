//! The durability barrier of the sled database (read models, and the
//! event index on a clean close): sled's flush, then a real `fdatasync`.
//! The event log has its own sync ([`EventLog`]).
//!
//! sled 0.34 writes its log to one file, `db`, with `pwrite` followed by
//! `sync_file_range` (sled issue #1452): the pages reach the device queue but
//! neither the drive's volatile cache nor the file's size metadata are made
//! durable. Items larger than a quarter of a log segment (about 128 KiB with
//! the default 512 KiB segments; a sled *item* is a tree node, so a leaf of
//! sixteen 10 KiB events qualifies) go to files under `blobs/`, written with
//! no sync at all. Snapshots (`snap.*`) are synced by sled but their rename is
//! not, and the `conf` file is never synced.
//!
//! The barrier here therefore runs, after sled's `flush()`: `fsync` of every
//! blob file not synced before, `fdatasync` of `db`, a second pass over the
//! blobs (a blob whose log entry just became durable was created before that
//! entry was written), and an `fsync` of the database directory and of
//! `blobs/` whenever their listings changed. `fsync` flushes an inode
//! whatever descriptor it is called on, so read-only descriptors suffice.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use metachat_core::Error;

use super::config::Durability;
use super::error::{from_sled, SledError};
use super::log::EventLog;

/// Serialises and groups barriers: callers that arrive while one runs share
/// the next one.
pub(crate) struct Syncer {
    db: sled::Db,
    dir: PathBuf,
    db_file: File,
    durability: Durability,
    state: Mutex<SyncState>,
    done: Condvar,
    /// Files already synced; only the barrier leader touches it.
    seen: Mutex<Seen>,
    /// Writes flushed to the OS since the last barrier (periodic mode).
    dirty: AtomicBool,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct SyncState {
    /// Tickets handed out.
    requested: u64,
    /// Every ticket up to this one is covered by a completed barrier.
    completed: u64,
    running: bool,
    /// The first barrier failure; once set, every later call fails.
    failed: Option<String>,
}

#[derive(Default)]
struct Seen {
    root: BTreeSet<OsString>,
    blobs: BTreeSet<OsString>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Syncer {
    /// Takes over `db` in `dir` and makes everything already there durable.
    pub(crate) fn open(db: sled::Db, dir: &Path, durability: Durability) -> Result<Self, Error> {
        let db_path = dir.join("db");
        let db_file = File::open(&db_path).map_err(|e| SledError::io("open", &db_path, e))?;
        let syncer = Syncer {
            db,
            dir: dir.to_path_buf(),
            db_file,
            durability,
            state: Mutex::new(SyncState::default()),
            done: Condvar::new(),
            seen: Mutex::new(Seen::default()),
            dirty: AtomicBool::new(false),
        };
        syncer.barrier()?;
        // The database directory itself may have just been created.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(syncer)
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    /// Fails if an earlier barrier failed.
    pub(crate) fn check_healthy(&self) -> Result<(), Error> {
        match &lock(&self.state).failed {
            Some(reason) => Err(SledError::Failed {
                reason: reason.clone(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Makes the writes applied so far as durable as the setting promises.
    /// Blocking; call it off the async executor.
    pub(crate) fn commit_point(&self) -> Result<(), Error> {
        match self.durability {
            Durability::Sync => self.sync(),
            Durability::Periodic(_) => {
                self.check_healthy()?;
                self.db.flush().map_err(|e| self.fail(from_sled(e)))?;
                self.dirty.store(true, Ordering::Release);
                Ok(())
            }
        }
    }

    /// Flush and barrier, shared with every caller that arrived while the
    /// previous barrier ran. Blocking.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        let mut st = lock(&self.state);
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if let Some(reason) = &st.failed {
                return Err(SledError::Failed {
                    reason: reason.clone(),
                }
                .into());
            }
            if st.completed >= ticket {
                return Ok(());
            }
            if !st.running {
                st.running = true;
                let target = st.requested;
                drop(st);
                self.dirty.store(false, Ordering::Release);
                let res = self
                    .db
                    .flush()
                    .map_err(from_sled)
                    .and_then(|_| self.barrier());
                st = lock(&self.state);
                st.running = false;
                match res {
                    Ok(()) => st.completed = target,
                    Err(e) => {
                        st.failed = Some(e.to_string());
                        self.done.notify_all();
                        return Err(e);
                    }
                }
                self.done.notify_all();
            } else {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// A barrier if anything was flushed since the last one (periodic mode).
    fn sync_if_dirty(&self) -> Result<(), Error> {
        if self.dirty.load(Ordering::Acquire) {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Records a failure of the write path: no write is accepted after it.
    pub(crate) fn fail(&self, e: Error) -> Error {
        let mut st = lock(&self.state);
        if st.failed.is_none() {
            st.failed = Some(e.to_string());
        }
        e
    }

    /// The fsync part: blobs, `db`, blobs again, changed directories.
    fn barrier(&self) -> Result<(), Error> {
        let mut seen = lock(&self.seen);
        let blobs_dir = self.dir.join("blobs");
        let mut blobs_changed = sync_new_files(&blobs_dir, &mut seen.blobs)?;
        self.db_file
            .sync_data()
            .map_err(|e| SledError::io("fdatasync", &self.dir.join("db"), e))?;
        blobs_changed |= sync_new_files(&blobs_dir, &mut seen.blobs)?;
        if blobs_changed {
            sync_dir(&blobs_dir)?;
        }
        // New or renamed files at the top (conf, snap.*): sync them and the directory.
        if sync_new_files(&self.dir, &mut seen.root)? {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Syncs the regular files of `dir` not in `seen`; forgets removed ones.
/// Returns whether the listing changed.
fn sync_new_files(dir: &Path, seen: &mut BTreeSet<OsString>) -> Result<bool, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(SledError::io("read directory", dir, e).into()),
    };
    let mut now = BTreeSet::new();
    let mut changed = false;
    for entry in entries {
        let entry = entry.map_err(|e| SledError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && !seen.contains(&name) {
            let path = entry.path();
            match File::open(&path) {
                Ok(f) => f.sync_all().map_err(|e| SledError::io("fsync", &path, e))?,
                // sled removed it meanwhile (blob GC, snapshot replaced).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SledError::io("open", &path, e).into()),
            }
            changed = true;
        }
        now.insert(name);
    }
    if now.len() != seen.len() || changed {
        changed = true;
    }
    *seen = now;
    Ok(changed)
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SledError::io("fsync directory", dir, e).into())
}

/// The background barrier of [`Durability::Periodic`]; stops when dropped.
pub(crate) struct PeriodicTask {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PeriodicTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodicTask").finish_non_exhaustive()
    }
}

impl PeriodicTask {
    pub(crate) fn start(
        syncer: Arc<Syncer>,
        log: Arc<EventLog>,
        every: Duration,
    ) -> Result<Self, Error> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let every = every.max(Duration::from_micros(100));
        let thread = std::thread::Builder::new()
            .name("metachat-sled-sync".into())
            .spawn(move || {
                let (flag, cv) = &*stop2;
                let mut stopped = lock(flag);
                while !*stopped {
                    let (g, _) = cv
                        .wait_timeout(stopped, every)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = g;
                    if *stopped {
                        break;
                    }
                    drop(stopped);
                    if let Err(e) = log.sync() {
                        syncer.fail(Error::from(SledError::Failed {
                            reason: e.to_string(),
                        }));
                        tracing::error!(error = %e, "periodic sync of the event log failed");
                    }
                    if let Err(e) = syncer.sync_if_dirty() {
                        tracing::error!(error = %e, "periodic fsync of the sled store failed");
                    }
                    stopped = lock(flag);
                }
            })
            .map_err(|e| SledError::io("spawn thread", Path::new("metachat-sled-sync"), e))?;
        Ok(PeriodicTask {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for PeriodicTask {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *lock(flag) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What every handle of one database shares: sled, the syncer, the event
/// log and, in periodic mode, the background barrier. The last handle's
/// drop syncs the log and takes a final barrier (a clean close).
pub(crate) struct Core {
    pub(crate) syncer: Arc<Syncer>,
    pub(crate) log: Arc<EventLog>,
    periodic: Option<PeriodicTask>,
    /// The directory's lock file, held (and its `flock` with it) until the
    /// database is dropped; declared last so it is released last.
    _lock: File,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("syncer", &self.syncer)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn open(
        db: sled::Db,
        dir: &Path,
        durability: Durability,
        log: EventLog,
        lock: File,
    ) -> Result<Self, Error> {
        let syncer = Arc::new(Syncer::open(db, dir, durability)?);
        let log = Arc::new(log);
        let periodic = match durability {
            Durability::Periodic(every) => {
                Some(PeriodicTask::start(syncer.clone(), log.clone(), every)?)
            }
            Durability::Sync => None,
        };
        Ok(Core {
            syncer,
            log,
            periodic,
            _lock: lock,
        })
    }

    pub(crate) fn db(&self) -> &sled::Db {
        self.syncer.db()
    }

    /// Syncs the event log, then takes the database's barrier.
    pub(crate) fn sync_all(&self) -> Result<(), Error> {
        self.syncer.check_healthy()?;
        self.log.sync().map_err(|e| self.syncer.fail(e))?;
        self.syncer.sync()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Stop the periodic thread first so it releases its handle on sled.
        self.periodic.take();
        if self.syncer.check_healthy().is_ok() {
            if let Err(e) = self.sync_all() {
                tracing::error!(error = %e, "final sync of the sled store failed");
            }
        }
    }
}
