//! [`SegmentLog`]: an append-only log of preallocated segment files, the
//! log of record of the embedded store ([`SledEventStore`](super::SledEventStore)
//! keeps only its indexes and the read models in sled).
//!
//! # Format
//!
//! A segment is a file of fixed length, zero-filled when created (so a
//! write into it changes no metadata and an `fdatasync` flushes data only).
//! It holds frames back to back, then zeros:
//!
//! | field | bytes |
//! |---|---|
//! | body length `n` (big-endian, ≥ 4) | 4 |
//! | CRC-32 of the length and the body | 4 |
//! | body: record count (u32), then each record as length (u32) + bytes | `n` |
//!
//! Segments start at 1 MiB (or the largest size, if smaller) and double up
//! to the largest size. The next segment is prepared ahead, on a thread of
//! its own ([`Storage::prepare`]: a zero-filled, synced spare file, its
//! zeros written with `O_DIRECT` where the file system allows, so that
//! they cost the CPU almost nothing), and renamed into place when the log
//! moves to it, so that a roll does not write a segment's worth of zeros
//! on the writer's path. Each write of a frame goes on with zeros to the
//! end of its last page: the kernel then never reads a page of the
//! segment from disk to write part of it.
//!
//! One frame is one [`append`](SegmentLog::append): a batch is whole or
//! absent after a crash, never partly there. A frame never spans two
//! segments; a batch that does not fit in the rest of the current segment
//! starts a new one (a batch larger than a segment gets a segment of its
//! own size).
//!
//! # Durability
//!
//! [`append`](SegmentLog::append) writes; [`sync`](SegmentLog::sync) makes
//! every append before it durable with one `fdatasync` (group commit: many
//! appends, one sync). Before writing into a new segment the previous one
//! is synced, so whatever a later segment holds, every earlier segment is
//! complete. After a failed sync the log refuses every later write
//! ([`SegmentError::Failed`]): the kernel may have dropped the pages.
//!
//! # Recovery
//!
//! [`open`](SegmentLog::open) reads the frames of the last segment (an
//! earlier one was synced whole before the next was created). The first
//! frame that is incomplete or fails its CRC ends the log: it and
//! everything after it is a torn write of a batch never synced, which is
//! zeroed, synced and reported in [`Recovery`], never served. The caller
//! may name a location up to which the log is known to have been synced
//! (the store's index says so): a bad frame before it is damage, not a
//! torn write, and is kept (counted in [`Recovery::damaged`]) for readers
//! to report as corruption, rather than cut off with everything after it.
//! Such a frame is kept whole, even where its length runs past that
//! location: recovery never rewrites part of a frame, so opening a
//! recovered log again finds it as the first open left it.
//! Opening ends with a sync of the last segment: whatever the log holds
//! once it is open is on disk.
//!
//! # Reading
//!
//! A [`LogReader`] (cheap to clone, usable while the log is appended to)
//! reads the frame at a location. Readers must only ask for locations
//! the writer has reported, as the store does through its index.

mod any;
mod frame;
mod io;
mod sim;

use std::sync::{Arc, RwLock};

pub use any::{LogFile, LogStorage};
pub use frame::FrameBuilder;
pub use io::{DirFile, DirStorage, SegmentFile, Storage};
pub use sim::{SimFile, SimStorage};

/// One batch: its records, in the order appended.
pub type Batch = Vec<Vec<u8>>;

/// The first segment's size, at most: each next one doubles, up to the
/// size given to [`SegmentLog::open`], so a small log stays small.
const FIRST_SEGMENT: u64 = 1 << 20;

/// Frame header bytes: length and CRC.
const HEADER: usize = 8;

/// The page size each write is padded to with zeros (see `write_frame`).
const PAGE: u64 = 4096;

/// Where a batch starts: its segment and byte offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The segment's id.
    pub segment: u64,
    /// The frame's byte offset in it.
    pub offset: u64,
}

/// What [`SegmentLog::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Where the next batch will be written.
    pub end: Location,
    /// Whole batches in the last segment.
    pub batches: u64,
    /// Frames before the known-synced location that fail their check (kept).
    pub damaged: u64,
    /// Where a torn tail was cut off, if there was one.
    pub torn_at: Option<Location>,
    /// Bytes of the torn tail that were not zeros (now zeroed).
    pub torn_bytes: u64,
}

/// A failure of the segment log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// A file operation failed.
    #[error("segment {segment}: {op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The segment.
        segment: u64,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes that cannot be a torn tail: damage to synced data.
    #[error("segment {} offset {}: {reason}", at.segment, at.offset)]
    Corrupted {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// A batch with no record, or too large for a frame (4 GiB).
    #[error("a batch must hold 1 to {max} bytes of records; got {len}")]
    BadBatch {
        /// Its encoded size.
        len: usize,
        /// The largest.
        max: usize,
    },
    /// An earlier sync failed; the log refuses writes until reopened.
    #[error("an earlier sync failed; reopen the log to recover")]
    Failed,
}

fn io_err(op: &'static str, segment: u64) -> impl FnOnce(std::io::Error) -> SegmentError {
    move |source| SegmentError::Io {
        op,
        segment,
        source,
    }
}

struct Segment<F> {
    id: u64,
    file: F,
}

/// The segments, shared by the writer and its readers; ascending by id.
type Segments<F> = Arc<RwLock<Vec<Arc<Segment<F>>>>>;

/// An append-only log of segment files on a [`Storage`] (see the
/// [module docs](self)).
pub struct SegmentLog<S: Storage> {
    storage: Arc<S>,
    segment_size: u64,
    /// The thread preparing the next segment's spare, if one runs.
    spare: Option<std::thread::JoinHandle<()>>,
    segments: Segments<S::File>,
    /// Id of the last segment, the one written.
    current: u64,
    /// Where the next frame goes in the last segment.
    end: u64,
    /// The last segment was written since its last sync.
    dirty: bool,
    failed: bool,
}

impl<S: Storage> Drop for SegmentLog<S> {
    /// Waits for the spare being prepared, so that no thread writes into
    /// the log's directory once the log is gone.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
    }
}

impl<S: Storage> std::fmt::Debug for SegmentLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("current", &self.current)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Where each record of the frame at `at` starts (the offsets
/// [`LogReader::read_record`] takes), given the records' lengths.
pub fn record_offsets(at: Location, lens: impl IntoIterator<Item = usize>) -> Vec<u64> {
    // After the frame header (length, CRC) and the record count.
    let mut offset = at.offset + HEADER as u64 + 4;
    lens.into_iter()
        .map(|len| {
            let start = offset;
            offset += 4 + len as u64;
            start
        })
        .collect()
}

/// Encodes one batch as a frame.
fn encode(records: &[&[u8]]) -> Result<Vec<u8>, SegmentError> {
    let bytes = records.iter().map(|r| 4 + r.len()).sum();
    let mut frame = FrameBuilder::with_capacity(bytes);
    for r in records {
        frame.record(|out| out.extend_from_slice(r));
    }
    frame.finish()
}

fn crc(length: &[u8], body: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(length);
    crc.update(body);
    crc.finalize()
}

/// Decodes a frame's body into its records; `None` when it does not parse.
/// Public for the fuzz target: bytes from disk must never make it panic.
pub fn decode_body(body: &[u8]) -> Option<Batch> {
    let spans = record_spans(body)?;
    Some(spans.iter().map(|s| body[s.clone()].to_vec()).collect())
}

/// Where each record of a frame's body lies in it; `None` when the body
/// does not parse.
fn record_spans(body: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let (count, mut rest) = body.split_first_chunk::<4>()?;
    let count = u32::from_be_bytes(*count);
    // Each record takes at least its 4-byte length: no allocation beyond that.
    let mut spans = Vec::with_capacity((count as usize).min(rest.len() / 4));
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if tail.len() < len {
            return None;
        }
        let start = body.len() - tail.len();
        spans.push(start..start + len);
        rest = &tail[len..];
    }
    rest.is_empty().then_some(spans)
}

/// The records of a frame as read: slices of the one buffer the frame was
/// read into, not a copy of each (a catch-up over a large log reads a
/// million records a second through here).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// The frame as read.
    body: Vec<u8>,
    /// Each record's bytes in `body`.
    spans: Vec<std::ops::Range<usize>>,
}

impl Records {
    /// The records of the body that starts at `body_at` of `frame`, if it
    /// parses.
    fn parse(frame: Vec<u8>, body_at: usize) -> Option<Records> {
        let mut spans = record_spans(frame.get(body_at..)?)?;
        for s in &mut spans {
            *s = s.start + body_at..s.end + body_at;
        }
        Some(Records { body: frame, spans })
    }

    /// How many records the frame holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The records, in the order appended.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            body: &self.body,
            spans: self.spans.iter(),
        }
    }

    /// The records, each copied.
    pub fn to_batch(&self) -> Batch {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

/// The records of a [`Records`], in the order appended.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    body: &'a [u8],
    spans: std::slice::Iter<'a, std::ops::Range<usize>>,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.spans.next().map(|s| &self.body[s.clone()])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for RecordIter<'_> {}

impl<'a> IntoIterator for &'a Records {
    type Item = &'a [u8];
    type IntoIter = RecordIter<'a>;

    fn into_iter(self) -> RecordIter<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(<[u8]>::len))
            .finish()
    }
}

/// A frame as read from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where it starts.
    pub at: Location,
    /// Its records, where its body parses (also when the CRC fails: each
    /// record may carry a check of its own).
    pub records: Option<Records>,
    /// Whether the frame passed its CRC.
    pub intact: bool,
    /// Where the next frame starts, where the length field fits the segment.
    pub next: Option<Location>,
}

/// What is at an offset of a segment.
enum Probe {
    /// A length field that cannot start a frame (zeros: the frames ended).
    End,
    /// A frame, whole or not.
    Frame(Frame),
}

/// Reads what is at `offset` of segment `id`: one `pread` for a small frame.
fn probe<F: SegmentFile>(file: &F, id: u64, offset: u64) -> Result<Probe, SegmentError> {
    let len = file.len();
    if offset + HEADER as u64 > len {
        return Ok(Probe::End);
    }
    let first = usize::try_from((len - offset).min(4096)).unwrap_or(HEADER);
    let mut buf = vec![0u8; first];
    file.read_at(offset, &mut buf).map_err(io_err("read", id))?;
    let n = u64::from(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
    if n < 4 {
        return Ok(Probe::End);
    }
    let total = HEADER as u64 + n;
    if offset + total > len {
        return Ok(Probe::Frame(Frame {
            at: Location {
                segment: id,
                offset,
            },
            records: None,
            intact: false,
            next: None,
        }));
    }
    let total = usize::try_from(total).map_err(|_| SegmentError::Corrupted {
        at: Location {
            segment: id,
            offset,
        },
        reason: "frame length".into(),
    })?;
    if total > buf.len() {
        let have = buf.len();
        buf.resize(total, 0);
        file.read_at(offset + have as u64, &mut buf[have..])
            .map_err(io_err("read", id))?;
    } else {
        buf.truncate(total);
    }
    let stored = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let intact = crc(&buf[..4], &buf[HEADER..]) == stored;
    Ok(Probe::Frame(Frame {
        at: Location {
            segment: id,
            offset,
        },
        records: Records::parse(buf, HEADER),
        intact,
        next: Some(Location {
            segment: id,
            offset: offset + total as u64,
        }),
    }))
}

/// The offset just past the last non-zero byte of `file` from `from`, if any.
fn last_nonzero<F: SegmentFile>(file: &F, id: u64, from: u64) -> Result<Option<u64>, SegmentError> {
    let mut found = None;
    let mut at = from;
    let mut buf = vec![0u8; 1 << 16];
    while at < file.len() {
        let n = usize::try_from((file.len() - at).min(buf.len() as u64)).unwrap_or(buf.len());
        file.read_at(at, &mut buf[..n])
            .map_err(io_err("read", id))?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            found = Some(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(found)
}

/// Reads frames of a [`SegmentLog`] while it is appended to. Cheap to clone.
pub struct LogReader<F> {
    segments: Segments<F>,
}

impl<F> Clone for LogReader<F> {
    fn clone(&self) -> Self {
        LogReader {
            segments: self.segments.clone(),
        }
    }
}

impl<F> std::fmt::Debug for LogReader<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}

impl<F: SegmentFile> LogReader<F> {
    fn segment(&self, id: u64) -> Option<Arc<Segment<F>>> {
        let list = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.binary_search_by_key(&id, |s| s.id)
            .ok()
            .map(|i| list[i].clone())
    }

    /// The ids of the log's segments, ascending.
    pub fn segment_ids(&self) -> Vec<u64> {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|s| s.id)
            .collect()
    }

    /// The frame at `at`; where the frames of that segment have ended, the
    /// first frame of the next segment. `None` past the last frame.
    pub fn read(&self, at: Location) -> Result<Option<Frame>, SegmentError> {
        let mut at = at;
        loop {
            let Some(segment) = self.segment(at.segment) else {
                return Ok(None);
            };
            match probe(&segment.file, segment.id, at.offset)? {
                Probe::Frame(frame) => return Ok(Some(frame)),
                Probe::End => {
                    at = Location {
                        segment: at.segment + 1,
                        offset: 0,
                    }
                }
            }
        }
    }
}

impl<F: SegmentFile> LogReader<F> {
    /// One record: its length field at `at`, then its bytes (the frame is
    /// not checked; the record carries a check of its own).
    pub fn read_record(&self, at: Location) -> Result<Vec<u8>, SegmentError> {
        let bad = |reason: &str| SegmentError::Corrupted {
            at,
            reason: reason.into(),
        };
        let segment = self
            .segment(at.segment)
            .ok_or_else(|| bad("no such segment"))?;
        let file = &segment.file;
        let mut len = [0u8; 4];
        if at.offset + 4 > file.len() {
            return Err(bad("record past the segment's end"));
        }
        file.read_at(at.offset, &mut len)
            .map_err(io_err("read", at.segment))?;
        let len = u64::from(u32::from_be_bytes(len));
        if at.offset + 4 + len > file.len() {
            return Err(bad("record length past the segment's end"));
        }
        let mut record = vec![0u8; usize::try_from(len).map_err(|_| bad("record length"))?];
        file.read_at(at.offset + 4, &mut record)
            .map_err(io_err("read", at.segment))?;
        Ok(record)
    }
}

impl<S: Storage> SegmentLog<S> {
    /// Opens the log on `storage` (creating its first segment if there is
    /// none), recovering as the [module docs](self#recovery) say: frames
    /// before `synced` are never cut off. New segments are `segment_size`
    /// bytes.
    pub fn open(
        storage: S,
        segment_size: u64,
        synced: Option<Location>,
    ) -> Result<(Self, Recovery), SegmentError> {
        let segment_size = segment_size.max(HEADER as u64 + 8);
        let mut ids = storage.list().map_err(io_err("list", 0))?;
        if ids.is_empty() {
            storage
                .create(0, segment_size.min(FIRST_SEGMENT))
                .map_err(io_err("create", 0))?;
            ids.push(0);
        }
        let current = ids[ids.len() - 1];
        if let Some(s) = synced.filter(|s| s.segment > current) {
            return Err(SegmentError::Corrupted {
                at: s,
                reason: format!("synced data is recorded there but the last segment is {current}"),
            });
        }
        let mut segments = Vec::with_capacity(ids.len());
        for id in ids {
            let file = storage.open(id).map_err(io_err("open", id))?;
            segments.push(Arc::new(Segment { id, file }));
        }
        let last = segments[segments.len() - 1].clone();
        // Frames before this offset of the last segment were synced.
        let keep = synced
            .filter(|s| s.segment == current)
            .map_or(0, |s| s.offset.min(last.file.len()));
        let mut recovery = Recovery::default();
        let mut offset = 0;
        loop {
            let next = match probe(&last.file, current, offset)? {
                Probe::Frame(Frame {
                    intact: true,
                    next: Some(next),
                    ..
                }) => {
                    recovery.batches += 1;
                    offset = next.offset;
                    continue;
                }
                Probe::Frame(Frame { next, .. }) => next.map(|n| n.offset),
                Probe::End => None,
            };
            if offset >= keep {
                break;
            }
            // Damage inside the synced part: keep it, go on after it. A
            // frame that starts there is kept whole even where it runs past
            // `keep`: the cut below must not write into it, or the next
            // open could read the frame cut short as intact (recovery would
            // not be idempotent). Where its length runs past the segment,
            // its header at least is kept.
            recovery.damaged += 1;
            offset = next
                .unwrap_or_else(|| keep.max(offset + HEADER as u64))
                .min(last.file.len());
        }
        if let Some(tail) = last_nonzero(&last.file, current, offset)? {
            let zeros = vec![0u8; usize::try_from(tail - offset).unwrap_or(0)];
            last.file
                .write_at(offset, &zeros)
                .map_err(io_err("cut the torn tail", current))?;
            last.file
                .sync_data()
                .map_err(io_err("sync the cut", current))?;
            recovery.torn_at = Some(Location {
                segment: current,
                offset,
            });
            recovery.torn_bytes = tail - offset;
        }
        // What a killed process wrote may still be only in the page cache:
        // from here on, everything the log holds is on disk.
        last.file
            .sync_data()
            .map_err(io_err("sync on open", current))?;
        recovery.end = Location {
            segment: current,
            offset,
        };
        let mut log = SegmentLog {
            storage: Arc::new(storage),
            segment_size,
            spare: None,
            segments: Arc::new(RwLock::new(segments)),
            current,
            end: offset,
            dirty: false,
            failed: false,
        };
        log.prepare_next(last.file.len());
        Ok((log, recovery))
    }

    /// A reader of this log.
    pub fn reader(&self) -> LogReader<S::File> {
        LogReader {
            segments: self.segments.clone(),
        }
    }

    /// Where the next batch will be written.
    pub fn end(&self) -> Location {
        Location {
            segment: self.current,
            offset: self.end,
        }
    }

    fn last(&self) -> Result<Arc<Segment<S::File>>, SegmentError> {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last()
            .cloned()
            .ok_or(SegmentError::Failed)
    }

    /// Writes one batch of records as one frame; durable after the next
    /// [`sync`](Self::sync). Returns where it starts.
    pub fn append(&mut self, records: &[&[u8]]) -> Result<Location, SegmentError> {
        if self.failed {
            return Err(SegmentError::Failed);
        }
        let frame = encode(records)?;
        self.write_frame(frame)
    }

    /// Writes one batch built in place as one frame, as
    /// [`append`](Self::append) does.
    pub fn append_frame(&mut self, frame: FrameBuilder) -> Result<Location, SegmentError> {
        if self.failed {
            return Err(SegmentError::Failed);
        }
        let frame = frame.finish()?;
        self.write_frame(frame)
    }

    /// Writes `frame` at the end. The write goes on with zeros to the end of
    /// its last page (the file holds zeros there already), so that the
    /// kernel need not read that page from disk first: a spare's zeros are
    /// written past the page cache.
    fn write_frame(&mut self, mut frame: Vec<u8>) -> Result<Location, SegmentError> {
        let need = frame.len() as u64;
        let mut segment = self.last()?;
        if self.end + need > segment.file.len() {
            self.roll(need)?;
            segment = self.last()?;
        }
        let at = self.end();
        let stop = self.end + need;
        let pad = (PAGE - stop % PAGE) % PAGE;
        let pad = pad.min(segment.file.len() - stop);
        frame.resize(frame.len() + usize::try_from(pad).unwrap_or(0), 0);
        if let Err(e) = segment.file.write_at(self.end, &frame) {
            self.failed = true;
            return Err(io_err("write", segment.id)(e));
        }
        self.end += need;
        self.dirty = true;
        Ok(at)
    }

    /// The size of the segment after one of `len` bytes.
    fn next_size(&self, len: u64) -> u64 {
        len.saturating_mul(2).min(self.segment_size)
    }

    /// Starts preparing the spare of the segment after the current one
    /// (of `len` bytes) on a thread of its own; without a thread, the
    /// next roll creates the segment itself.
    fn prepare_next(&mut self, len: u64) {
        let (storage, id, size) = (self.storage.clone(), self.current + 1, self.next_size(len));
        let spawned = std::thread::Builder::new()
            .name("metachat-log-spare".into())
            .spawn(move || {
                if let Err(e) = storage.prepare(id, size) {
                    tracing::warn!(segment = id, error = %e, "could not prepare the next log segment; it is created when needed");
                }
            });
        self.spare = spawned.ok();
    }

    /// Syncs the current segment, then starts the next one (from the spare
    /// prepared for it), large enough for `need` bytes.
    fn roll(&mut self, need: u64) -> Result<(), SegmentError> {
        self.sync()?;
        let id = self.current + 1;
        let grown = self.next_size(self.last()?.file.len());
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
        let file = match self.storage.activate(id, need.max(grown)) {
            Ok(f) => f,
            Err(e) => {
                self.failed = true;
                return Err(io_err("create", id)(e));
            }
        };
        self.segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(Segment { id, file }));
        self.current = id;
        self.end = 0;
        self.prepare_next(need.max(grown));
        Ok(())
    }

    /// Whether batches were appended since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Makes every batch appended so far durable (one `fdatasync`, none
    /// when nothing was appended since the last).
    pub fn sync(&mut self) -> Result<(), SegmentError> {
        if self.failed {
            return Err(SegmentError::Failed);
        }
        if !self.dirty {
            return Ok(());
        }
        let segment = self.last()?;
        if let Err(e) = segment.file.sync_data() {
            self.failed = true;
            return Err(io_err("sync", segment.id)(e));
        }
        self.dirty = false;
        Ok(())
    }

    /// Every batch, in order (a damaged frame is an error).
    pub fn batches(&self) -> Result<Vec<Batch>, SegmentError> {
        let reader = self.reader();
        let mut out = Vec::new();
        let first = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first()
            .map_or(0, |s| s.id);
        let mut at = Location {
            segment: first,
            offset: 0,
        };
        while at < self.end() {
            let Some(frame) = reader.read(at)? else { break };
            match (frame.intact, frame.records, frame.next) {
                (true, Some(records), Some(next)) => {
                    out.push(records.to_batch());
                    at = next;
                }
                _ => {
                    return Err(SegmentError::Corrupted {
                        at,
                        reason: "a frame fails its check".into(),
                    })
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
