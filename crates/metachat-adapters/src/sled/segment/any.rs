//! [`LogStorage`]: the storage of the embedded store's log, real or simulated.

use std::io;

use super::io::{DirFile, DirStorage, SegmentFile, Storage};
use super::sim::{SimFile, SimStorage};

/// Segments in a directory, or on a simulated disk (for power-loss tests).
#[derive(Debug, Clone)]
pub enum LogStorage {
    /// Real files.
    Dir(DirStorage),
    /// A [`SimStorage`].
    Sim(SimStorage),
}

/// A segment of a [`LogStorage`].
#[derive(Debug)]
pub enum LogFile {
    /// A real file.
    Dir(DirFile),
    /// A simulated one.
    Sim(SimFile),
}

impl Storage for LogStorage {
    type File = LogFile;

    fn list(&self) -> io::Result<Vec<u64>> {
        match self {
            LogStorage::Dir(s) => s.list(),
            LogStorage::Sim(s) => s.list(),
        }
    }

    fn create(&self, id: u64, len: u64) -> io::Result<LogFile> {
        match self {
            LogStorage::Dir(s) => s.create(id, len).map(LogFile::Dir),
            LogStorage::Sim(s) => s.create(id, len).map(LogFile::Sim),
        }
    }

    fn open(&self, id: u64) -> io::Result<LogFile> {
        match self {
            LogStorage::Dir(s) => s.open(id).map(LogFile::Dir),
            LogStorage::Sim(s) => s.open(id).map(LogFile::Sim),
        }
    }

    fn prepare(&self, id: u64, len: u64) -> io::Result<()> {
        match self {
            LogStorage::Dir(s) => s.prepare(id, len),
            LogStorage::Sim(s) => s.prepare(id, len),
        }
    }

    fn activate(&self, id: u64, len: u64) -> io::Result<LogFile> {
        match self {
            LogStorage::Dir(s) => s.activate(id, len).map(LogFile::Dir),
            LogStorage::Sim(s) => s.activate(id, len).map(LogFile::Sim),
        }
    }
}

impl SegmentFile for LogFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        match self {
            LogFile::Dir(f) => f.write_at(offset, data),
            LogFile::Sim(f) => f.write_at(offset, data),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            LogFile::Dir(f) => f.read_at(offset, buf),
            LogFile::Sim(f) => f.read_at(offset, buf),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        match self {
            LogFile::Dir(f) => f.sync_data(),
            LogFile::Sim(f) => f.sync_data(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            LogFile::Dir(f) => f.len(),
            LogFile::Sim(f) => f.len(),
        }
    }
}
