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

    /// Prepares segment `id` of `len` bytes ahead of its use, off the
    /// writer's path (on another thread), without making it a segment yet:
    /// a spare that [`activate`](Self::activate) turns into one. By default
    /// nothing is prepared.
    fn prepare(&self, id: u64, len: u64) -> io::Result<()> {
        let _ = (id, len);
        Ok(())
    }

    /// Creates segment `id` of at least `len` bytes as [`create`](Self::create)
    /// does, from the spare [`prepare`](Self::prepare) left if there is one
    /// large enough. By default, [`create`](Self::create).
    fn activate(&self, id: u64, len: u64) -> io::Result<Self::File> {
        self.create(id, len)
    }
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
    /// Segments in `dir` (created if missing). Spares an earlier run
    /// prepared but never used are removed.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        for entry in std::fs::read_dir(dir.as_ref())? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "spare") {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(DirStorage {
            dir: dir.as_ref().to_owned(),
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    fn spare_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.spare"))
    }
}

/// Writes `len` zeros into `file` and syncs it.
fn zero_fill(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < len {
        let n = usize::try_from((len - written).min(zeros.len() as u64)).unwrap_or(zeros.len());
        std::os::unix::fs::FileExt::write_all_at(file, &zeros[..n], written)?;
        written += n as u64;
    }
    file.sync_all()
}

/// Writes `len` zeros into the file at `path` with `O_DIRECT` (straight to
/// the disk, not through the page cache, so that zeroing a spare costs the
/// CPU almost nothing); an error where the file system refuses it.
#[cfg(target_os = "linux")]
fn zero_fill_direct(path: &Path, len: u64) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    const ALIGN: usize = 4096;
    const CHUNK: usize = 1 << 20;
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let buf = vec![0u8; CHUNK + ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN);
    let zeros = buf.get(start..start + CHUNK).ok_or(io::ErrorKind::Other)?;
    let aligned = len - len % ALIGN as u64;
    let mut written = 0;
    while written < aligned {
        let n = usize::try_from((aligned - written).min(CHUNK as u64)).unwrap_or(CHUNK);
        std::os::unix::fs::FileExt::write_all_at(&file, &zeros[..n], written)?;
        written += n as u64;
    }
    if aligned < len {
        // The unaligned end, through the page cache.
        let tail = usize::try_from(len - aligned).unwrap_or(0);
        let file = OpenOptions::new().write(true).open(path)?;
        std::os::unix::fs::FileExt::write_all_at(&file, &zeros[..tail], aligned)?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn zero_fill_direct(_path: &Path, _len: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
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
        zero_fill(&file, len)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(DirFile { file, len })
    }

    fn prepare(&self, id: u64, len: u64) -> io::Result<()> {
        let spare = self.spare_path(id);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&spare)?;
        match zero_fill_direct(&spare, len) {
            Ok(()) => file.sync_all(),
            Err(_) => zero_fill(&file, len),
        }
    }

    /// Renames the spare (zero-filled and synced by [`prepare`](Storage::prepare))
    /// into place and syncs the directory; creates the segment if there is
    /// no spare of `len` bytes or more.
    fn activate(&self, id: u64, len: u64) -> io::Result<DirFile> {
        let spare = self.spare_path(id);
        match std::fs::metadata(&spare) {
            Ok(m) if m.len() >= len => {
                std::fs::rename(&spare, self.path(id))?;
                File::open(&self.dir)?.sync_all()?;
                self.open(id)
            }
            Ok(_) => {
                std::fs::remove_file(&spare)?;
                self.create(id, len)
            }
            Err(_) => self.create(id, len),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_prepared_spare_becomes_the_segment_and_leftovers_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = DirStorage::new(dir.path()).expect("storage");
        storage.prepare(1, 4096).expect("prepare");
        assert_eq!(
            storage.list().expect("list"),
            Vec::<u64>::new(),
            "a spare is not a segment"
        );
        let file = storage.activate(1, 4096).expect("activate");
        assert_eq!(file.len(), 4096);
        assert_eq!(names(dir.path()), ["00000000000000000001.seg"]);

        // Too small a spare is replaced by a new segment of the size asked.
        storage.prepare(2, 1024).expect("prepare");
        let file = storage.activate(2, 8192).expect("activate");
        assert_eq!(file.len(), 8192);
        let mut buf = vec![1u8; 8192];
        file.read_at(0, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 0));

        // A spare whose length is not a whole number of pages (its end is
        // zeroed through the page cache) reads as zeros to its end.
        storage.prepare(5, 3 * 4096 + 100).expect("prepare");
        let file = storage.activate(5, 3 * 4096 + 100).expect("activate");
        let mut buf = vec![1u8; 3 * 4096 + 100];
        file.read_at(0, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 0));

        // No spare: created as before. A spare left by a crash goes on reopen.
        assert_eq!(storage.activate(3, 512).expect("activate").len(), 512);
        storage.prepare(4, 512).expect("prepare");
        drop(DirStorage::new(dir.path()).expect("reopen"));
        assert_eq!(storage.list().expect("list"), [1, 2, 3, 5]);
        assert!(!names(dir.path()).iter().any(|n| n.ends_with(".spare")));
    }
}
