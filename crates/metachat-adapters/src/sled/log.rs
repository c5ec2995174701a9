//! [`EventLog`]: the segment log of record of the event store, shared by
//! the writer thread (appends), the readers and the periodic sync.

use std::sync::{Mutex, MutexGuard};

use metachat_core::event::{wire, Envelope};
use metachat_core::Error;

use super::error::SledError;
use super::segment::{DirStorage, Location, LogFile, LogReader, LogStorage, Recovery, SegmentLog};

/// Largest segment: segments start at 1 MiB and double up to this size.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;

/// Name of the log's directory inside the database directory.
pub(crate) const LOG_DIR: &str = "log";

/// Decodes a record of the log; its own CRC is checked unless its frame
/// passed its CRC (`frame_intact`), which covered the record's bytes.
pub(crate) fn decode_record(
    record: &[u8],
    frame_intact: bool,
    location: impl Fn() -> String,
) -> metachat_core::Result<Envelope> {
    if frame_intact {
        wire::decode_verified(record, location)
    } else {
        wire::decode(record, location)
    }
}

/// The log, its reader, and what its opening found.
pub(crate) struct EventLog {
    writer: Mutex<SegmentLog<LogStorage>>,
    reader: LogReader<LogFile>,
    recovery: Recovery,
    /// The directory of the segment files, when they are real files.
    dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Opens the log in `dir/log` (or on `storage`), never cutting a frame
    /// before `synced`.
    pub(crate) fn open(
        dir: &std::path::Path,
        storage: Option<LogStorage>,
        synced: Option<Location>,
    ) -> Result<Self, Error> {
        let mut real_dir = None;
        let storage = match storage {
            Some(s) => s,
            None => {
                let path = dir.join(LOG_DIR);
                let fresh = !path.exists();
                let s = DirStorage::new(&path)
                    .map_err(|e| SledError::io("create directory", &path, e))?;
                if fresh {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| SledError::io("fsync directory", dir, e))?;
                }
                real_dir = Some(path);
                LogStorage::Dir(s)
            }
        };
        let (log, recovery) = SegmentLog::open(storage, SEGMENT_BYTES, synced)?;
        if let Some(at) = recovery.torn_at {
            tracing::warn!(
                segment = at.segment,
                offset = at.offset,
                bytes = recovery.torn_bytes,
                "event log: cut off a torn write of a batch never acknowledged"
            );
        }
        if recovery.damaged > 0 {
            tracing::error!(
                frames = recovery.damaged,
                "event log: synced batches fail their check; reads of them report corruption"
            );
        }
        Ok(EventLog {
            reader: log.reader(),
            writer: Mutex::new(log),
            recovery,
            dir: real_dir,
        })
    }

    /// The appending side (the writer thread and the syncs).
    pub(crate) fn writer(&self) -> MutexGuard<'_, SegmentLog<LogStorage>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reader(&self) -> &LogReader<LogFile> {
        &self.reader
    }

    /// The directory of the segment files (`None` on a simulated disk).
    pub(crate) fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    pub(crate) fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Syncs what was appended since the last sync (periodic mode, close).
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.writer().sync().map_err(Error::from)
    }
}
