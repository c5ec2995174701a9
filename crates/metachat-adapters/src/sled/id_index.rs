//! [`IdIndex`]: where each event id is, kept beside the log rather than in
//! sled, so that an append of many events costs no random-key insert per
//! event.
//!
//! The ids of the log's open segments (the last one, and one just rolled
//! past) are in memory. When the log moves to a new segment, the ids of the
//! one before are written, sorted, to a table file `{segment:020}.ids` next
//! to it (with a CRC, and without a sync: the table is derived from the
//! segment, which is synced whole before the next one is created; a table
//! that is missing, torn or damaged on open is rebuilt from its segment).
//! A lookup asks the in-memory filter first, so that a new id touches no
//! disk; an id the filter may hold is looked up in memory, then in the
//! tables, newest first: in each, one read of the block of 64 entries
//! where it would be, found by the blocks' first ids kept in memory.
//!
//! Table format (integers big-endian): magic `MCIDS001`, entry count
//! (u64), entries sorted by id: id (16 bytes), position (u64), offset of
//! the record in the segment (u64); then the CRC-32 of everything before.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use metachat_core::event::Envelope;
use metachat_core::Result;

use super::error::SledError;
use super::ids::IdFilter;
use super::log::{self, EventLog};
use super::segment::{self, Location};

const MAGIC: &[u8; 8] = b"MCIDS001";
const HEAD: usize = 16;
const ENTRY: usize = 32;

/// Where one event is: its position and its record's offset in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    position: u64,
    offset: u64,
}

/// Entries of a table file per block: a lookup reads one block, found by
/// the block's first id kept in memory (a quarter of a byte per id).
const BLOCK: usize = 64;

/// The sorted ids of one sealed segment.
enum Table {
    /// In a file; `fences` holds the first id of each block of [`BLOCK`]
    /// entries.
    File {
        file: File,
        count: u64,
        fences: Vec<[u8; 16]>,
    },
    Memory(Vec<([u8; 16], Slot)>),
}

impl Table {
    /// A table in `file` holding `entries` (sorted).
    fn file(file: File, entries: &[([u8; 16], Slot)]) -> Self {
        Table::File {
            file,
            count: entries.len() as u64,
            fences: entries.iter().step_by(BLOCK).map(|e| e.0).collect(),
        }
    }

    fn get(&self, id: &[u8; 16]) -> std::io::Result<Option<Slot>> {
        match self {
            Table::Memory(entries) => Ok(entries
                .binary_search_by(|(k, _)| k.cmp(id))
                .ok()
                .map(|i| entries[i].1)),
            Table::File {
                file,
                count,
                fences,
            } => {
                // The block whose first id is the last one not above `id`.
                let Some(block) = fences.partition_point(|f| f <= id).checked_sub(1) else {
                    return Ok(None);
                };
                let first = (block * BLOCK) as u64;
                let n = usize::try_from((*count - first).min(BLOCK as u64)).unwrap_or(BLOCK);
                let mut buf = [0u8; BLOCK * ENTRY];
                let buf = &mut buf[..n * ENTRY];
                file.read_exact_at(buf, HEAD as u64 + first * ENTRY as u64)?;
                let entries = buf.chunks_exact(ENTRY);
                Ok(entries
                    .map(decode_entry)
                    .find(|(key, _)| key == id)
                    .map(|(_, slot)| slot))
            }
        }
    }
}

fn decode_entry(buf: &[u8]) -> ([u8; 16], Slot) {
    let mut id = [0u8; 16];
    id.copy_from_slice(&buf[..16]);
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[i..i + 8]);
        u64::from_be_bytes(w)
    };
    (
        id,
        Slot {
            position: word(16),
            offset: word(24),
        },
    )
}

/// The encoded table of `entries` (sorted here).
fn encode_table(entries: &mut [([u8; 16], Slot)]) -> Vec<u8> {
    entries.sort_unstable_by_key(|e| e.0);
    let mut out = Vec::with_capacity(HEAD + entries.len() * ENTRY + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_be_bytes());
    for (id, slot) in entries.iter() {
        out.extend_from_slice(id);
        out.extend_from_slice(&slot.position.to_be_bytes());
        out.extend_from_slice(&slot.offset.to_be_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The entries of an encoded table, if it is whole, sorted and checks.
fn decode_table(bytes: &[u8]) -> Option<Vec<([u8; 16], Slot)>> {
    let (body, crc) = bytes.split_last_chunk::<4>()?;
    if body.len() < HEAD || &body[..8] != MAGIC || crc32fast::hash(body) != u32::from_be_bytes(*crc)
    {
        return None;
    }
    let count = u64::from_be_bytes(body[8..16].try_into().ok()?);
    let entries = &body[HEAD..];
    if u64::try_from(entries.len()).ok()? != count.checked_mul(ENTRY as u64)? {
        return None;
    }
    let out: Vec<_> = entries.chunks_exact(ENTRY).map(decode_entry).collect();
    out.windows(2).all(|w| w[0].0 < w[1].0).then_some(out)
}

/// Decodes a table and encodes its entries again (for the fuzz target).
pub(crate) fn round_trip(bytes: &[u8]) -> Option<Vec<u8>> {
    decode_table(bytes).map(|mut entries| encode_table(&mut entries))
}

/// Where each event id of the log is (see the [module docs](self)).
pub(crate) struct IdIndex {
    filter: IdFilter,
    /// Segment → ids of the segments without a table yet.
    open: BTreeMap<u64, HashMap<[u8; 16], Slot>>,
    /// Segment → its table, for sealed segments.
    tables: BTreeMap<u64, Table>,
    /// Where table files go; `None` keeps tables in memory (simulated disks).
    dir: Option<PathBuf>,
}

impl IdIndex {
    /// The index of every event in `log`: tables of sealed segments loaded
    /// (or rebuilt from their segment), the last segment's ids read into
    /// memory. Table files go to `dir`.
    pub(crate) fn open(log: &EventLog, dir: Option<&Path>) -> Result<Self> {
        let mut index = IdIndex {
            filter: IdFilter::new(),
            open: BTreeMap::new(),
            tables: BTreeMap::new(),
            dir: dir.map(Path::to_path_buf),
        };
        if let Some(dir) = dir {
            remove_leftovers(dir);
        }
        let segments = log.reader().segment_ids();
        let last = segments.last().copied();
        for segment in segments {
            if Some(segment) != last {
                if let Some(table) = index.load_table(segment)? {
                    index.tables.insert(segment, table);
                    continue;
                }
            }
            index.read_segment(log, segment)?;
            if Some(segment) != last {
                // Rebuilt: its table is written now, its ids leave memory.
                index.seal_before(segment + 1);
            }
        }
        Ok(index)
    }

    /// A valid table file of `segment`, with its ids added to the filter.
    fn load_table(&mut self, segment: u64) -> Result<Option<Table>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let path = table_path(dir, segment);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SledError::io("read", &path, e).into()),
        };
        let Some(entries) = decode_table(&bytes) else {
            tracing::warn!(path = %path.display(), "event id table fails its check: rebuilt from its segment");
            return Ok(None);
        };
        for (id, _) in &entries {
            self.filter.insert(id);
        }
        let file = File::open(&path).map_err(|e| SledError::io("open", &path, e))?;
        Ok(Some(Table::file(file, &entries)))
    }

    /// Adds the ids of every record of `segment` that decodes.
    fn read_segment(&mut self, log: &EventLog, segment: u64) -> Result<()> {
        let reader = log.reader();
        let mut at = Location { segment, offset: 0 };
        let ids = self.open.entry(segment).or_default();
        while let Some(frame) = reader.read(at)? {
            if frame.at.segment != segment {
                break;
            }
            let records = frame.records.unwrap_or_default();
            let offsets = segment::record_offsets(frame.at, records.iter().map(<[u8]>::len));
            for (record, offset) in records.iter().zip(offsets) {
                // A record that does not decode is reported by reads of it.
                if let Ok(env) = log::decode_record(record, frame.intact, String::new) {
                    remember(&mut self.filter, ids, &env, offset);
                }
            }
            match frame.next {
                Some(next) => at = next,
                None => break,
            }
        }
        Ok(())
    }

    /// The position of the event with this id and where its record is.
    pub(crate) fn get(&self, id: &[u8; 16]) -> Result<Option<(u64, Location)>> {
        if !self.filter.may_contain(id) {
            return Ok(None);
        }
        let found = |segment: u64, slot: Slot| {
            Some((
                slot.position,
                Location {
                    segment,
                    offset: slot.offset,
                },
            ))
        };
        for (&segment, ids) in self.open.iter().rev() {
            if let Some(&slot) = ids.get(id) {
                return Ok(found(segment, slot));
            }
        }
        for (&segment, table) in self.tables.iter().rev() {
            let slot = table.get(id).map_err(|e| {
                SledError::io(
                    "read",
                    &self
                        .dir
                        .as_deref()
                        .map_or_else(PathBuf::new, |d| table_path(d, segment)),
                    e,
                )
            })?;
            if let Some(slot) = slot {
                return Ok(found(segment, slot));
            }
        }
        Ok(None)
    }

    /// Adds a batch written at `at` whose records start at `offsets`.
    pub(crate) fn add(&mut self, at: Location, events: &[Envelope], offsets: &[u64]) {
        let ids = self.open.entry(at.segment).or_default();
        for (e, &offset) in events.iter().zip(offsets) {
            remember(&mut self.filter, ids, e, offset);
        }
        if self.open.len() > 1 {
            self.seal_before(at.segment);
        }
    }

    /// Moves the ids of segments before `segment` into tables (files when
    /// there is a directory; where writing one fails, they stay in memory
    /// and the next seal tries again).
    fn seal_before(&mut self, segment: u64) {
        let sealed: Vec<u64> = self.open.range(..segment).map(|(&s, _)| s).collect();
        for s in sealed {
            let Some(ids) = self.open.remove(&s) else {
                continue;
            };
            let mut entries: Vec<_> = ids.into_iter().collect();
            let bytes = encode_table(&mut entries);
            let table = match &self.dir {
                None => Table::Memory(entries),
                Some(dir) => match write_table(dir, s, &bytes) {
                    Ok(file) => Table::file(file, &entries),
                    Err(e) => {
                        tracing::warn!(segment = s, error = %e, "could not write an event id table; kept in memory");
                        Table::Memory(entries)
                    }
                },
            };
            self.tables.insert(s, table);
        }
    }
}

/// Adds the id of `event`, whose record is at `offset`, to the filter and `ids`.
fn remember(
    filter: &mut IdFilter,
    ids: &mut HashMap<[u8; 16], Slot>,
    event: &Envelope,
    offset: u64,
) {
    let id = *event.event_id.0.as_bytes();
    filter.insert(&id);
    let position = event.position;
    ids.insert(id, Slot { position, offset });
}

fn table_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.ids"))
}

/// Writes the table of `segment` under a temporary name, then renames it
/// into place (no sync: see the module docs).
fn write_table(dir: &Path, segment: u64, bytes: &[u8]) -> std::io::Result<File> {
    let path = table_path(dir, segment);
    let tmp = path.with_extension("ids.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    File::open(&path)
}

/// Removes half-written tables of an earlier run.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".ids.tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: u64) -> Vec<([u8; 16], Slot)> {
        (0..n)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
                (
                    id,
                    Slot {
                        position: i,
                        offset: i * 100,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_table_reads_back_from_file_and_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut e = entries(1000);
        let bytes = encode_table(&mut e);
        assert_eq!(decode_table(&bytes).expect("decodes"), e);
        let file = write_table(dir.path(), 3, &bytes).expect("write");
        let tables = [Table::file(file, &e), Table::Memory(e.clone())];
        for t in &tables {
            for (id, slot) in &e {
                assert_eq!(t.get(id).expect("read"), Some(*slot));
            }
            assert_eq!(t.get(&[0xff; 16]).expect("read"), None);
            let mut between = e[500].0;
            between[15] ^= 1;
            assert_eq!(t.get(&between).expect("read"), None);
        }
    }

    proptest::proptest! {
        /// Any set of entries encodes to a table that decodes to them,
        /// sorted, and encodes back to the same bytes; a lookup in it finds
        /// each entry and nothing else.
        #[test]
        fn tables_round_trip(
            raw in proptest::collection::btree_map(proptest::array::uniform16(proptest::num::u8::ANY), (0u64..u64::MAX, 0u64..u64::MAX), 0..400),
            probe in proptest::array::uniform16(proptest::num::u8::ANY),
        ) {
            let mut entries: Vec<_> = raw
                .iter()
                .rev()
                .map(|(id, &(position, offset))| (*id, Slot { position, offset }))
                .collect();
            let bytes = encode_table(&mut entries);
            let decoded = decode_table(&bytes).expect("decodes");
            proptest::prop_assert_eq!(&decoded, &entries);
            proptest::prop_assert_eq!(round_trip(&bytes), Some(bytes.clone()));
            let dir = tempfile::tempdir().expect("tempdir");
            let file = write_table(dir.path(), 0, &bytes).expect("write");
            let want = raw.get(&probe).map(|&(position, offset)| Slot { position, offset });
            for table in [Table::file(file, &decoded), Table::Memory(decoded)] {
                proptest::prop_assert_eq!(table.get(&probe).expect("lookup"), want);
                let lowest = raw.get(&[0; 16]).map(|&(position, offset)| Slot { position, offset });
                proptest::prop_assert_eq!(table.get(&[0; 16]).expect("lookup"), lowest);
                for (id, slot) in &entries {
                    proptest::prop_assert_eq!(table.get(id).expect("lookup"), Some(*slot));
                }
            }
        }
    }

    #[test]
    fn a_damaged_or_torn_table_is_refused() {
        let mut e = entries(10);
        let bytes = encode_table(&mut e);
        for cut in [0, 1, 4, HEAD, bytes.len() - 1] {
            assert!(decode_table(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_table(&bad).is_none(), "flip at {i}");
        }
        assert!(decode_table(&vec![0; bytes.len()]).is_none());
    }
}
