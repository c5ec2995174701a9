//! The file operations a [`SegmentLog`](super::SegmentLog) needs, as a
//! trait: real files in a directory ([`DirStorage`]), or a simulated disk
//! that can lose power ([`SimStorage`](super::SimStorage)).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Where segments live: a set of files named by a number.
pub trait Storage: Send + Sync + 'static {
    /// One segment file.
    type File: SegmentFile;

    /// The segments that exist, ascending.
    fn list(&self) -> io::Result<Vec<u64>>;

    /// Creates segment `id`, `len` bytes of zeros, and makes its directory
    /// entry durable before returning (a sync of the file alone does not
    /// keep a new file's name across a power loss).
    fn create(&self, id: u64, len: u64) -> io::Result<Self::File>;

    /// Opens an existing segment for reading and writing.
    fn open(&self, id: u64) -> io::Result<Self::File>;
}

/// One segment: a fixed-length file written at offsets.
pub trait SegmentFile: Send + Sync {
    /// Writes `data` at `offset` (within the file's length).
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Fills `buf` from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Makes every write before it durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Segments as files `{id:020}.seg` in one directory.
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Segments in `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(DirStorage {
            dir: dir.as_ref().to_owned(),
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }
}

impl Storage for DirStorage {
    type File = DirFile;

    fn list(&self) -> io::Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn create(&self, id: u64, len: u64) -> io::Result<DirFile> {
        let path = self.path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Zeros to the full length, synced: later writes into the file
        // change no metadata, so each `fdatasync` flushes data only.
        let zeros = vec![0u8; 1 << 20];
        let mut written = 0;
        while written < len {
            let n = usize::try_from((len - written).min(zeros.len() as u64)).unwrap_or(zeros.len());
            std::os::unix::fs::FileExt::write_all_at(&file, &zeros[..n], written)?;
            written += n as u64;
        }
        file.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        Ok(DirFile { file, len })
    }

    fn open(&self, id: u64) -> io::Result<DirFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(id))?;
        let len = file.metadata()?.len();
        Ok(DirFile { file, len })
    }
}

/// A segment file of a [`DirStorage`].
#[derive(Debug)]
pub struct DirFile {
    file: File,
    len: u64,
}

impl SegmentFile for DirFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> u64 {
        self.len
    }
}
