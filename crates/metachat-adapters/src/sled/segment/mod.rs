//! [`SegmentLog`]: an append-only log of preallocated segment files, the
//! log of record the embedded store is moving to (sled keeping only the
//! indexes and the read models). Not yet wired into [`SledEventStore`](super::SledEventStore).
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
//! [`open`](SegmentLog::open) reads every frame. In the last segment, the
//! first frame that is incomplete or fails its CRC ends the log: it and
//! everything after it is a torn write of a batch never synced, which is
//! zeroed, synced and reported in [`Recovery`], never served. In an
//! earlier segment the same is corruption ([`SegmentError::Corrupted`]).

mod io;
mod sim;

pub use io::{DirFile, DirStorage, SegmentFile, Storage};
pub use sim::{SimFile, SimStorage};

/// One batch: its records, in the order appended.
pub type Batch = Vec<Vec<u8>>;

/// A frame read: its batch and the offset after it.
type Frame = Option<(Batch, u64)>;

/// Frame header bytes: length and CRC.
const HEADER: usize = 8;

/// Where a batch starts: its segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The segment's id.
    pub segment: u64,
    /// The frame's byte offset in it.
    pub offset: u64,
}

/// What [`SegmentLog::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whole batches in the log.
    pub batches: u64,
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

/// An append-only log of segment files on a [`Storage`] (see the
/// [module docs](self)).
pub struct SegmentLog<S: Storage> {
    storage: S,
    segment_size: u64,
    /// Ascending; the last is written.
    segments: Vec<Segment<S::File>>,
    /// Where the next frame goes in the last segment.
    end: u64,
    /// The last segment was written since its last sync.
    dirty: bool,
    failed: bool,
}

impl<S: Storage> std::fmt::Debug for SegmentLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("segments", &self.segments.len())
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Encodes one batch as a frame.
fn encode(records: &[&[u8]]) -> Result<Vec<u8>, SegmentError> {
    let body_len: usize = 4 + records.iter().map(|r| 4 + r.len()).sum::<usize>();
    let max = u32::MAX as usize - HEADER;
    let count = u32::try_from(records.len()).ok().filter(|&c| c > 0);
    let (Some(count), Ok(n)) = (count, u32::try_from(body_len)) else {
        return Err(SegmentError::BadBatch { len: body_len, max });
    };
    let mut out = Vec::with_capacity(HEADER + body_len);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_be_bytes());
    for r in records {
        let len =
            u32::try_from(r.len()).map_err(|_| SegmentError::BadBatch { len: body_len, max })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(r);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[..4]);
    crc.update(&out[HEADER..]);
    out[4..HEADER].copy_from_slice(&crc.finalize().to_be_bytes());
    Ok(out)
}

/// Decodes a frame's body into its records; `None` when it does not parse.
fn decode_body(body: &[u8]) -> Option<Batch> {
    let (count, mut rest) = body.split_first_chunk::<4>()?;
    let count = u32::from_be_bytes(*count);
    let mut records = Vec::new();
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if tail.len() < len {
            return None;
        }
        let (record, tail) = tail.split_at(len);
        records.push(record.to_vec());
        rest = tail;
    }
    rest.is_empty().then_some(records)
}

/// The frame at `offset` of `file`: its records and the next offset, or
/// `None` where the frames end (zeros, an incomplete or damaged frame).
fn read_frame<F: SegmentFile>(file: &F, id: u64, offset: u64) -> Result<Frame, SegmentError> {
    let len = file.len();
    if offset + HEADER as u64 > len {
        return Ok(None);
    }
    let mut header = [0u8; HEADER];
    file.read_at(offset, &mut header)
        .map_err(io_err("read", id))?;
    let n = u64::from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    if n < 4 || offset + HEADER as u64 + n > len {
        return Ok(None);
    }
    let mut body = vec![
        0u8;
        usize::try_from(n).map_err(|_| SegmentError::Corrupted {
            at: Location {
                segment: id,
                offset
            },
            reason: "frame length".into(),
        })?
    ];
    file.read_at(offset + HEADER as u64, &mut body)
        .map_err(io_err("read", id))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..4]);
    crc.update(&body);
    if crc.finalize().to_be_bytes() != header[4..] {
        return Ok(None);
    }
    Ok(decode_body(&body).map(|records| (records, offset + HEADER as u64 + n)))
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

impl<S: Storage> SegmentLog<S> {
    /// Opens the log on `storage` (creating its first segment if there is
    /// none), recovering as the [module docs](self#recovery) say. New
    /// segments are `segment_size` bytes.
    pub fn open(storage: S, segment_size: u64) -> Result<(Self, Recovery), SegmentError> {
        let segment_size = segment_size.max(HEADER as u64 + 8);
        let mut ids = storage.list().map_err(io_err("list", 0))?;
        if ids.is_empty() {
            storage
                .create(0, segment_size)
                .map_err(io_err("create", 0))?;
            ids.push(0);
        }
        let mut recovery = Recovery::default();
        let mut segments = Vec::with_capacity(ids.len());
        let mut end = 0;
        let last = ids.len() - 1;
        for (i, id) in ids.into_iter().enumerate() {
            let mut file = storage.open(id).map_err(io_err("open", id))?;
            let mut offset = 0;
            while let Some((_, next)) = read_frame(&file, id, offset)? {
                recovery.batches += 1;
                offset = next;
            }
            if let Some(tail) = last_nonzero(&file, id, offset)? {
                let at = Location {
                    segment: id,
                    offset,
                };
                if i != last {
                    return Err(SegmentError::Corrupted {
                        at,
                        reason: "bytes after the last whole batch of a full segment".into(),
                    });
                }
                let zeros = vec![0u8; usize::try_from(tail - offset).unwrap_or(0)];
                file.write_at(offset, &zeros)
                    .map_err(io_err("cut the torn tail", id))?;
                file.sync_data().map_err(io_err("sync the cut", id))?;
                recovery.torn_at = Some(at);
                recovery.torn_bytes = tail - offset;
            }
            end = offset;
            segments.push(Segment { id, file });
        }
        Ok((
            SegmentLog {
                storage,
                segment_size,
                segments,
                end,
                dirty: false,
                failed: false,
            },
            recovery,
        ))
    }

    /// Writes one batch of records as one frame; durable after the next
    /// [`sync`](Self::sync). Returns where it starts.
    pub fn append(&mut self, records: &[&[u8]]) -> Result<Location, SegmentError> {
        if self.failed {
            return Err(SegmentError::Failed);
        }
        let frame = encode(records)?;
        let need = frame.len() as u64;
        let current = self.segments.last().map_or(0, |s| s.file.len());
        if self.end + need > current {
            self.roll(need)?;
        }
        let segment = self.segments.last_mut().ok_or(SegmentError::Failed)?;
        let at = Location {
            segment: segment.id,
            offset: self.end,
        };
        segment
            .file
            .write_at(self.end, &frame)
            .map_err(io_err("write", segment.id))?;
        self.end += need;
        self.dirty = true;
        Ok(at)
    }

    /// Syncs the current segment, then starts the next one, large enough
    /// for `need` bytes.
    fn roll(&mut self, need: u64) -> Result<(), SegmentError> {
        self.sync()?;
        let id = self.segments.last().map_or(0, |s| s.id + 1);
        let file = self
            .storage
            .create(id, need.max(self.segment_size))
            .map_err(io_err("create", id))?;
        self.segments.push(Segment { id, file });
        self.end = 0;
        Ok(())
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
        let segment = self.segments.last_mut().ok_or(SegmentError::Failed)?;
        if let Err(e) = segment.file.sync_data() {
            self.failed = true;
            return Err(io_err("sync", segment.id)(e));
        }
        self.dirty = false;
        Ok(())
    }

    /// The batch at `at` and where the next one starts (`None` past the
    /// last batch).
    pub fn read(&self, at: Location) -> Result<Option<(Batch, Location)>, SegmentError> {
        let Some(i) = self.segments.iter().position(|s| s.id == at.segment) else {
            return Ok(None);
        };
        let segment = &self.segments[i];
        let last = i + 1 == self.segments.len();
        if last && at.offset >= self.end {
            return Ok(None);
        }
        match read_frame(&segment.file, segment.id, at.offset)? {
            Some((records, next)) => Ok(Some((
                records,
                Location {
                    segment: segment.id,
                    offset: next,
                },
            ))),
            None if !last => match self.segments.get(i + 1) {
                Some(s) => self.read(Location {
                    segment: s.id,
                    offset: 0,
                }),
                None => Ok(None),
            },
            None => Err(SegmentError::Corrupted {
                at,
                reason: "no whole batch where one was written".into(),
            }),
        }
    }

    /// Every batch, in order.
    pub fn batches(&self) -> Result<Vec<Batch>, SegmentError> {
        let mut out = Vec::new();
        let mut at = Location {
            segment: self.segments.first().map_or(0, |s| s.id),
            offset: 0,
        };
        while let Some((records, next)) = self.read(at)? {
            out.push(records);
            at = next;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
