//! [`SimStorage`]: segments in memory, on a disk that can lose power.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{SegmentFile, Storage};

/// Segments in memory with a model of a disk's volatile cache: writes land
/// in the cache, [`SegmentFile::sync_data`] makes them durable, and
/// [`power_loss`](SimStorage::power_loss) keeps the durable bytes plus a
/// random part of what was written since the last sync (a write torn at a
/// random byte, the bytes after it zeros or garbage). A SIGKILL keeps the
/// page cache and so cannot show a missing sync; this can.
///
/// Creating a segment is durable at once (as [`Storage::create`] promises).
/// Cheap to clone: clones share the disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<u64, Contents>,
    syncs: u64,
    ignore_syncs: bool,
    /// How long each sync takes (the bytes written before it began are
    /// what it makes durable).
    sync_latency: std::time::Duration,
}

#[derive(Debug, Clone)]
struct Contents {
    /// What a reader sees now.
    current: Vec<u8>,
    /// What survives a power loss.
    durable: Vec<u8>,
    /// Writes so far, and how many of them `durable` holds.
    writes: u64,
    durable_writes: u64,
}

/// A small deterministic generator (SplitMix64) for the power loss.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> Self {
        SimStorage::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Syncs completed so far (all files).
    pub fn syncs(&self) -> u64 {
        self.disk().syncs
    }

    /// A new disk holding what this one would after a power loss that
    /// tears nothing: the durable bytes of every file. What an append
    /// acknowledged must already be there.
    pub fn durable_copy(&self) -> SimStorage {
        let disk = self.disk();
        let files = disk
            .files
            .iter()
            .map(|(id, c)| {
                (
                    *id,
                    Contents {
                        current: c.durable.clone(),
                        durable: c.durable.clone(),
                        writes: 0,
                        durable_writes: 0,
                    },
                )
            })
            .collect();
        SimStorage {
            disk: Arc::new(Mutex::new(Disk {
                files,
                ..Disk::default()
            })),
        }
    }

    /// A new disk holding what this one would after a power loss now
    /// ([`power_loss`](Self::power_loss) with `seed`), this one untouched:
    /// a store still running on this disk can be dropped, and another
    /// opened on the copy.
    pub fn crash_copy(&self, seed: u64) -> SimStorage {
        let files = self.disk().files.clone();
        let copy = SimStorage {
            disk: Arc::new(Mutex::new(Disk {
                files,
                ..Disk::default()
            })),
        };
        copy.power_loss(seed);
        copy
    }

    /// Puts segment `id` on the disk holding `bytes`, durable (replacing
    /// one of that id): to open a log on given bytes, as a fuzz target does.
    pub fn insert_segment(&self, id: u64, bytes: Vec<u8>) {
        self.disk().files.insert(
            id,
            Contents {
                current: bytes.clone(),
                durable: bytes,
                writes: 0,
                durable_writes: 0,
            },
        );
    }

    /// Makes every later sync take `latency` (zero by default), so that a
    /// test can act while a sync is running.
    pub fn sync_latency(&self, latency: std::time::Duration) {
        self.disk().sync_latency = latency;
    }

    /// Makes every later sync a no-op that still reports success: the
    /// mutant a power-loss test must catch.
    pub fn ignore_syncs(&self, ignore: bool) {
        self.disk().ignore_syncs = ignore;
    }

    /// Power fails: each file keeps its durable bytes plus, where writes
    /// since its last sync differ from them, those writes up to a random
    /// byte; past that byte the unsynced region reads as zeros or, one time
    /// in two, as a few bytes of garbage first. `seed` makes it repeatable.
    pub fn power_loss(&self, seed: u64) {
        let mut rng = Rng(seed);
        let mut disk = self.disk();
        for contents in disk.files.values_mut() {
            let first = contents
                .current
                .iter()
                .zip(&contents.durable)
                .position(|(a, b)| a != b);
            let Some(first) = first else {
                continue;
            };
            let last = contents
                .current
                .iter()
                .zip(&contents.durable)
                .rposition(|(a, b)| a != b)
                .unwrap_or(first);
            let cut = first + rng.below(last - first + 2);
            let mut after = contents.durable.clone();
            after[first..cut].copy_from_slice(&contents.current[first..cut]);
            if rng.below(2) == 0 {
                let garbage = (cut + 1 + rng.below(16)).min(after.len());
                for b in &mut after[cut.min(garbage)..garbage] {
                    *b = u8::try_from(rng.next() & 0xff).unwrap_or(0);
                }
            }
            contents.current = after.clone();
            contents.durable = after;
            contents.durable_writes = contents.writes;
        }
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    fn list(&self) -> io::Result<Vec<u64>> {
        Ok(self.disk().files.keys().copied().collect())
    }

    fn create(&self, id: u64, len: u64) -> io::Result<SimFile> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("segment too large"))?;
        let mut disk = self.disk();
        if disk.files.contains_key(&id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("segment {id} exists"),
            ));
        }
        disk.files.insert(
            id,
            Contents {
                current: vec![0; len],
                durable: vec![0; len],
                writes: 0,
                durable_writes: 0,
            },
        );
        Ok(SimFile {
            disk: self.clone(),
            id,
            len: len as u64,
        })
    }

    fn open(&self, id: u64) -> io::Result<SimFile> {
        let len = self
            .disk()
            .files
            .get(&id)
            .map(|c| c.current.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no segment {id}")))?;
        Ok(SimFile {
            disk: self.clone(),
            id,
            len,
        })
    }
}

/// A segment of a [`SimStorage`].
#[derive(Debug)]
pub struct SimFile {
    disk: SimStorage,
    id: u64,
    len: u64,
}

impl SimFile {
    fn range(&self, offset: u64, n: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset"))?;
        let end = start
            .checked_add(n)
            .filter(|&e| e as u64 <= self.len)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "past the segment's end")
            })?;
        Ok(start..end)
    }
}

impl SegmentFile for SimFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let range = self.range(offset, data.len())?;
        let mut disk = self.disk.disk();
        let contents = disk
            .files
            .get_mut(&self.id)
            .ok_or_else(|| io::Error::other("gone"))?;
        contents.current[range].copy_from_slice(data);
        contents.writes += 1;
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let range = self.range(offset, buf.len())?;
        let disk = self.disk.disk();
        let contents = disk
            .files
            .get(&self.id)
            .ok_or_else(|| io::Error::other("gone"))?;
        buf.copy_from_slice(&contents.current[range]);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let (latency, snapshot) = {
            let disk = self.disk.disk();
            let contents = disk
                .files
                .get(&self.id)
                .ok_or_else(|| io::Error::other("gone"))?;
            let snapshot =
                (!disk.ignore_syncs).then(|| (contents.current.clone(), contents.writes));
            (disk.sync_latency, snapshot)
        };
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let mut disk = self.disk.disk();
        if let Some((bytes, writes)) = snapshot {
            let contents = disk
                .files
                .get_mut(&self.id)
                .ok_or_else(|| io::Error::other("gone"))?;
            // A sync that began after this one may have finished first.
            if writes >= contents.durable_writes {
                contents.durable = bytes;
                contents.durable_writes = writes;
            }
        }
        disk.syncs += 1;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}
