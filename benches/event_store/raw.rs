//! The physical limit: a plain file that appends the same bytes as the store
//! (a 4-byte length + the event's wire record) and calls `fdatasync`
//! (`File::sync_data`) per event or per batch.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{raw_frame, stream_name, AGGREGATE_STREAM, BATCH};

/// An append-only file.
pub(crate) struct RawLog {
    file: File,
    path: PathBuf,
    overwrite: Option<File>,
    frame: Vec<u8>,
}

impl RawLog {
    /// Creates `dir/raw.log`.
    pub(crate) fn create(dir: &Path, payload: &[u8]) -> Self {
        let path = dir.join("raw.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("create raw log");
        RawLog {
            file,
            path,
            overwrite: None,
            frame: raw_frame(payload, "raw-0", 0, 0),
        }
    }

    /// `iters` times: append one event, `fdatasync`.
    pub(crate) fn append_each(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.file.write_all(&self.frame).expect("write");
            self.file.sync_data().expect("fdatasync");
        }
        start.elapsed()
    }

    /// `iters` times: write one event over a preallocated region (no file
    /// growth, so `fdatasync` has no metadata to commit — what SQLite's reused
    /// WAL gets), `fdatasync`.
    pub(crate) fn overwrite_each(&mut self, iters: u64) -> Duration {
        use std::io::{Seek, SeekFrom};
        const REGION: u64 = 64 << 20;
        let frame_len = u64::try_from(self.frame.len()).expect("fits");
        let slots = REGION / frame_len;
        if self.file.metadata().expect("metadata").len() < REGION {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..(REGION >> 20) {
                self.file.write_all(&zeros).expect("preallocate");
            }
            self.file.sync_all().expect("fsync");
        }
        let start = Instant::now();
        for i in 0..iters {
            // An `O_APPEND` file ignores seeks for writes: use a second handle.
            let offset = (i % slots) * frame_len;
            self.overwrite
                .get_or_insert_with(|| {
                    OpenOptions::new()
                        .write(true)
                        .open(&self.path)
                        .expect("open for overwrite")
                })
                .seek(SeekFrom::Start(offset))
                .expect("seek");
            let f = self.overwrite.as_mut().expect("opened");
            f.write_all(&self.frame).expect("write");
            f.sync_data().expect("fdatasync");
        }
        start.elapsed()
    }

    /// `iters` times: append `batch` events in one write, `fdatasync`.
    pub(crate) fn append_batches(&mut self, batch: usize, iters: u64) -> Duration {
        let buf = self.frame.repeat(batch);
        let start = Instant::now();
        for _ in 0..iters {
            self.file.write_all(&buf).expect("write");
            self.file.sync_data().expect("fdatasync");
        }
        start.elapsed()
    }
}

/// The read datasets as plain files: the whole log, and one stream's events.
pub(crate) struct RawDataset {
    log: PathBuf,
    aggregate: PathBuf,
}

impl RawDataset {
    /// Writes `streams` × [`BATCH`] events to `dir/all.log` and the events of
    /// [`AGGREGATE_STREAM`] to `dir/aggregate.log`, then syncs both.
    pub(crate) fn generate(dir: &Path, payload: &[u8], streams: usize) -> Self {
        let log = dir.join("all.log");
        let aggregate = dir.join("aggregate.log");
        let mut all = BufWriter::with_capacity(1 << 20, File::create(&log).expect("create"));
        let mut agg = BufWriter::new(File::create(&aggregate).expect("create"));
        let mut position = 0u64;
        for s in 0..streams {
            let name = stream_name("bench", s);
            for v in 0..BATCH {
                let version = u64::try_from(v).expect("fits");
                let frame = raw_frame(payload, &name, version, position);
                all.write_all(&frame).expect("write");
                if name == AGGREGATE_STREAM {
                    agg.write_all(&frame).expect("write");
                }
                position += 1;
            }
        }
        for w in [all, agg] {
            let f = w.into_inner().expect("flush");
            f.sync_all().expect("fsync");
        }
        RawDataset { log, aggregate }
    }

    /// Reads every frame of the log (each copied into an owned buffer); returns the count.
    pub(crate) fn replay(&self) -> u64 {
        read_frames(&self.log)
    }

    /// Reads the aggregate's frames; returns the count.
    pub(crate) fn load_aggregate(&self) -> u64 {
        read_frames(&self.aggregate)
    }
}

fn read_frames(path: &Path) -> u64 {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).expect("open"));
    let mut count = 0u64;
    let mut len = [0u8; 4];
    loop {
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return count,
            Err(e) => panic!("read: {e}"),
        }
        let n = usize::try_from(u32::from_be_bytes(len)).expect("fits");
        let mut record = vec![0u8; n];
        r.read_exact(&mut record).expect("read record");
        std::hint::black_box(&record);
        count += 1;
    }
}
