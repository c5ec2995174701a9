//! [`SledEventStore`]: the event store on sled.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::atomic::{self, AtomicU64};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use metachat_core::event::{Envelope, EventId, Limits, NewEvent, StreamId};
use metachat_core::store::{
    AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, HeadWatch,
};
use metachat_core::{Error, Result};
use tokio::sync::{oneshot, watch};

use super::config::SledConfig;
use super::durability::Core;
use super::error::{corrupted, from_sled, SledError};
use super::id_index::IdIndex;
use super::index;
use super::index_buffer::IndexBuffer;
use super::keys;
use super::legacy;
use super::log;
use super::segment::Location;
use super::writer::{self, Request};

/// How often a stream read looks for the index entry of a version again
/// after a checkpoint folded entries under it (once is nearly always
/// enough: a checkpoint runs about once a second) before it reports the
/// index damaged.
const GAP_RETRIES: usize = 8;

/// How many streams without events [`StoreShared`] remembers.
const ABSENT_AT_MOST: usize = 1 << 14;

/// State shared by the store's handles and its writer thread.
pub(crate) struct StoreShared {
    pub(crate) core: Arc<Core>,
    pub(crate) events: sled::Tree,
    /// Stream heads known to be published (durable and visible): filled by
    /// the writer on publication and by readers from the index, and only
    /// ever moved forward.
    heads: RwLock<HashMap<StreamId, u64>>,
    /// Streams the index was found to hold no event of (at most
    /// [`ABSENT_AT_MOST`], then forgotten all at once). Such a stream
    /// stays without events until the writer publishes one, which puts it
    /// in `heads`, read first: a new stream is looked up in sled once (when
    /// a command loads it), not again when the writer checks its append.
    absent: Mutex<HashSet<StreamId>>,
    /// Positions below this are durable and visible to readers.
    visible: AtomicU64,
    head_tx: watch::Sender<u64>,
    limits: Limits,
    /// Index entries of durable groups not yet in sled (under
    /// `Durability::Sync`): every read of the index looks here first.
    pub(crate) buffer: IndexBuffer,
    /// Where each stored event id is (only the writer uses it).
    pub(crate) ids: Mutex<IdIndex>,
    pub(crate) recovered: index::Recovered,
}

impl StoreShared {
    /// Brings the index in line with the log (moving an earlier version's
    /// events into the log first), then loads the event-id index.
    pub(crate) fn open(core: Arc<Core>, limits: Limits) -> Result<Self> {
        let events = core.db().open_tree(keys::EVENTS_TREE).map_err(from_sled)?;
        let recovered = legacy::migrate(&events, &core)?;
        let ids = IdIndex::open(&core.log, core.log.dir())?;
        let old = index::remove_old_ids(&events)?;
        if old > 0 {
            tracing::info!(
                entries = old,
                "event log: removed the event-id entries of an earlier version from sled"
            );
        }
        let next = recovered.next;
        Ok(StoreShared {
            core,
            events,
            heads: RwLock::new(HashMap::new()),
            absent: Mutex::new(HashSet::new()),
            visible: AtomicU64::new(next),
            head_tx: watch::channel(next).0,
            limits,
            buffer: IndexBuffer::default(),
            ids: Mutex::new(ids),
            recovered,
        })
    }

    pub(crate) fn visible_next(&self) -> u64 {
        self.visible.load(atomic::Ordering::Acquire)
    }

    /// The stream's published version: from the cache, else from the index
    /// (the last run at positions readers may see).
    pub(crate) fn published_head(&self, stream: &StreamId) -> Result<Option<u64>> {
        if let Some(v) = self
            .heads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
        {
            return Ok(Some(*v));
        }
        if self
            .absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(stream)
        {
            return Ok(None);
        }
        let below = self.visible_next();
        let Some(found) = self.head_in_tree(stream, below)? else {
            let mut absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
            if absent.len() >= ABSENT_AT_MOST {
                absent.clear();
            }
            absent.insert(stream.clone());
            return Ok(None);
        };
        let mut heads = self.heads.write().unwrap_or_else(|p| p.into_inner());
        let v = heads.entry(stream.clone()).or_insert(found);
        *v = (*v).max(found);
        Ok(Some(*v))
    }

    /// The last version of `stream` among runs stored below position `below`.
    fn head_in_tree(&self, stream: &StreamId, below: u64) -> Result<Option<u64>> {
        let all = keys::stream_entry(stream, 0)..=keys::stream_entry(stream, u64::MAX);
        // A new stream (the common case here: a known one is in the heads
        // cache) is told by one forward step, far cheaper in sled than the
        // backward walk that finds the last run.
        if self
            .index_range_at_most(all.clone(), false, 1)
            .next()
            .is_none()
        {
            return Ok(None);
        }
        for item in self.index_range(all, true) {
            let (k, v) = item?;
            for run in keys::Run::decode_all(stream, &k, &v)?.iter().rev() {
                if run.position < below {
                    return Ok(Some(run.last_version()));
                }
            }
        }
        Ok(None)
    }

    /// Makes a durable group visible: heads first, then the position, then wake-ups.
    pub(crate) fn publish(&self, heads: HashMap<StreamId, u64>, next: u64) {
        {
            let mut cache = self.heads.write().unwrap_or_else(|p| p.into_inner());
            for (stream, v) in heads {
                let e = cache.entry(stream).or_insert(v);
                *e = (*e).max(v);
            }
        }
        self.visible.store(next, atomic::Ordering::Release);
        self.head_tx.send_replace(next);
    }

    /// The event index's entries with keys in `range`, in key order
    /// (reversed with `rev`): those in the [`IndexBuffer`] merged with
    /// sled's. The buffer is read first: an entry leaves it only once sled
    /// has it, so none is missed.
    fn index_range(
        &self,
        range: RangeInclusive<Vec<u8>>,
        rev: bool,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_ {
        self.index_range_at_most(range, rev, usize::MAX)
    }

    /// The last entry of the event index with a key in `range`.
    fn index_last(
        &self,
        range: RangeInclusive<Vec<u8>>,
    ) -> Result<Option<(sled::IVec, sled::IVec)>> {
        self.index_range_at_most(range, true, 1).next().transpose()
    }

    /// [`index_range`](Self::index_range), reading at most `limit` entries
    /// of the buffer (those first in that order): only the first `limit`
    /// entries it gives are sure to be all there are.
    fn index_range_at_most(
        &self,
        range: RangeInclusive<Vec<u8>>,
        rev: bool,
        limit: usize,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_ {
        let buffered = self.buffer.range(range.start(), range.end(), rev, limit);
        let tree = self.events.range(range);
        let tree: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if rev {
            Box::new(tree.rev())
        } else {
            Box::new(tree)
        };
        Merged {
            buffered: buffered.into_iter().peekable(),
            tree: tree.map(|r| r.map_err(from_sled)).peekable(),
            rev,
        }
    }

    /// Where the batch starting at or before `pos` is: its first position
    /// and location. With `exact`, only a batch starting at `pos`.
    fn batch_at(&self, pos: u64, exact: bool) -> Result<Option<(u64, Location)>> {
        let found = if exact {
            let key = keys::batch(pos);
            match self.buffer.get(&key) {
                Some(v) => Some(v.into()),
                None => self.events.get(key).map_err(from_sled)?,
            }
            .map(|v| (sled::IVec::from(&key), v))
        } else {
            self.index_last(keys::batch(0).to_vec()..=keys::batch(pos).to_vec())?
        };
        let Some((k, v)) = found else {
            return Ok(None);
        };
        let first = keys::position_of_batch_key(&k)
            .ok_or_else(|| corrupted(format!("batch index at {pos}"), "malformed key"))?;
        let [segment, offset] = keys::unpack::<2>(&v, || format!("batch index of {first}"))?;
        Ok(Some((first, Location { segment, offset })))
    }

    /// Calls `f` with each record at positions `from..end`, and whether its
    /// batch passed the frame's check, in order, until it returns `false`.
    /// Every position in the range must be stored.
    ///
    /// Batches are read from the log one after another; where a batch
    /// fails its frame check, its records are still served if they parse
    /// (each record has a CRC of its own), and the next batch is found
    /// through the index.
    fn scan_log(
        &self,
        from: u64,
        end: u64,
        mut f: impl FnMut(u64, &[u8], bool) -> Result<bool>,
    ) -> Result<()> {
        if from >= end {
            return Ok(());
        }
        let missing = |pos: u64| corrupted(format!("global position {pos}"), "event is missing");
        let (mut pos, mut at) = self.batch_at(from, false)?.ok_or_else(|| missing(from))?;
        let reader = self.core.log.reader();
        loop {
            let frame = reader.read(at)?.ok_or_else(|| missing(pos))?;
            let records = frame.records.as_ref().ok_or_else(|| {
                corrupted(format!("global position {pos}"), "log batch is damaged")
            })?;
            for record in records {
                if pos >= from && (pos >= end || !f(pos, record, frame.intact)?) {
                    return Ok(());
                }
                pos += 1;
            }
            if pos >= end {
                return Ok(());
            }
            at = match frame.next.filter(|_| frame.intact) {
                Some(next) => next,
                None => self.batch_at(pos, true)?.ok_or_else(|| missing(pos))?.1,
            };
        }
    }

    /// Decodes the record at `pos` and checks that it is what the index said;
    /// its own CRC is checked unless its batch's frame `verified` it.
    fn decode_at(
        record: &[u8],
        pos: u64,
        stream: Option<(&StreamId, u64)>,
        verified: bool,
    ) -> Result<Envelope> {
        let location = || match stream {
            Some((s, _)) => format!("global position {pos} (stream `{s}`)"),
            None => format!("global position {pos}"),
        };
        let env = log::decode_record(record, verified, location)?;
        if env.position != pos {
            return Err(corrupted(location(), "record holds another position"));
        }
        if let Some((s, version)) = stream {
            if &env.stream_id != s || env.version != version {
                return Err(corrupted(
                    location(),
                    "stream index points at another event",
                ));
            }
        }
        Ok(env)
    }

    /// The stored envelope with this id, if any: one read of its record
    /// where the index says where it is.
    pub(crate) fn stored_by_id(&self, id: EventId) -> Result<Option<Envelope>> {
        let found = self
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id.0.as_bytes())?;
        let Some((pos, at)) = found else {
            return Ok(None);
        };
        let record = self.core.log.reader().read_record(at)?;
        Self::decode_at(&record, pos, None, false).map(Some)
    }

    /// Appends the events of `run` with versions `lo..=hi` to `out`.
    fn read_run(
        &self,
        stream: &StreamId,
        run: keys::Run,
        lo: u64,
        hi: u64,
        out: &mut Vec<Envelope>,
    ) -> Result<()> {
        let from = run.position + (lo - run.first_version);
        let end = run.position + (hi - run.first_version) + 1;
        self.scan_log(from, end, |pos, record, verified| {
            let version = run.first_version + (pos - run.position);
            out.push(Self::decode_at(
                record,
                pos,
                Some((stream, version)),
                verified,
            )?);
            Ok(true)
        })
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(head) = self.published_head(stream)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        if direction == Direction::Forward && from > head {
            return Ok(out);
        }
        let mut want = match direction {
            Direction::Forward => from,
            Direction::Backward => from.min(head),
        };
        for _ in 0..GAP_RETRIES {
            let gap = match direction {
                Direction::Forward => self.read_forward(stream, want, head, limit, &mut out)?,
                Direction::Backward => self.read_backward(stream, want, limit, &mut out)?,
            };
            match gap {
                None => return Ok(out),
                Some(at) => want = at,
            }
        }
        Err(corrupted(
            format!("stream `{stream}` version {want}"),
            "stream index lacks a published version",
        ))
    }

    /// Appends the events of `stream` from version `want` on (up to `head`)
    /// to `out` until it holds `limit`. `Some(version)` where the index
    /// has no run for a version that must exist: a checkpoint folded the
    /// runs read so far into one entry under another key while this read
    /// went from one entry to the next, so the caller looks again from there.
    fn read_forward(
        &self,
        stream: &StreamId,
        mut want: u64,
        head: u64,
        limit: usize,
        out: &mut Vec<Envelope>,
    ) -> Result<Option<u64>> {
        // The entry holding `want` is the last one starting at or before it.
        let first = keys::stream_entry(stream, 0);
        let start = match self.index_last(first.clone()..=keys::stream_entry(stream, want))? {
            Some((key, _)) => key.to_vec(),
            None => first,
        };
        #[cfg(test)]
        tests::BETWEEN_LOOKUP_AND_SCAN.with(|hook| {
            if let Some(f) = hook.borrow_mut().as_mut() {
                f();
            }
        });
        let last = keys::stream_entry(stream, head);
        for item in self.index_range(start..=last, false) {
            let (k, v) = item?;
            for run in keys::Run::decode_all(stream, &k, &v)? {
                if run.last_version() < want {
                    continue;
                }
                if run.first_version > want {
                    return Ok(Some(want));
                }
                let room = u64::try_from(limit - out.len()).unwrap_or(u64::MAX);
                let hi = run
                    .last_version()
                    .min(head)
                    .min(want.saturating_add(room - 1));
                self.read_run(stream, run, want, hi, out)?;
                if out.len() >= limit || hi >= head {
                    return Ok(None);
                }
                want = hi + 1;
            }
        }
        Ok(Some(want))
    }

    /// [`read_forward`](Self::read_forward) backward: versions `want` and
    /// down, the latest first.
    fn read_backward(
        &self,
        stream: &StreamId,
        mut want: u64,
        limit: usize,
        out: &mut Vec<Envelope>,
    ) -> Result<Option<u64>> {
        let mut part = Vec::new();
        let range = keys::stream_entry(stream, 0)..=keys::stream_entry(stream, want);
        for item in self.index_range(range, true) {
            let (k, v) = item?;
            for run in keys::Run::decode_all(stream, &k, &v)?.into_iter().rev() {
                if run.first_version > want {
                    continue;
                }
                if run.last_version() < want {
                    return Ok(Some(want));
                }
                let room = u64::try_from(limit - out.len()).unwrap_or(u64::MAX);
                let lo = run.first_version.max(want.saturating_sub(room - 1));
                part.clear();
                self.read_run(stream, run, lo, want, &mut part)?;
                out.extend(part.drain(..).rev());
                if out.len() >= limit || lo == 0 {
                    return Ok(None);
                }
                want = lo - 1;
            }
        }
        Ok(Some(want))
    }

    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let end = self.visible_next();
        if from >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let n = usize::try_from(end - from).unwrap_or(usize::MAX).min(limit);
        let mut out = Vec::with_capacity(n);
        self.scan_log(from, end, |pos, record, verified| {
            out.push(Self::decode_at(record, pos, None, verified)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }
}

/// What [`SledEventStore::open`] found in the log and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Where a torn write of a batch never acknowledged was cut off.
    pub torn_at: Option<Location>,
    /// Bytes of that torn write (now zeros).
    pub torn_bytes: u64,
    /// Synced batches that fail their check: kept, and reads of their
    /// events report [`Error::Corrupted`].
    pub damaged_batches: u64,
    /// Events indexed from the log on open: under
    /// [`Durability::Sync`](super::Durability::Sync) those appended after the
    /// index's last checkpoint (taken once a second and on a clean close),
    /// or every event when the index was lost.
    pub reindexed_events: u64,
    /// Index entries of events the log no longer holds (written but not yet
    /// synced under [`Durability::Periodic`](super::Durability::Periodic)
    /// when the machine stopped), removed.
    pub dropped_events: u64,
}

/// Two sources of index entries in key order merged into one (an entry in
/// both is given once); a sled error is given as soon as it is met.
struct Merged<B: Iterator, T: Iterator> {
    buffered: std::iter::Peekable<B>,
    tree: std::iter::Peekable<T>,
    rev: bool,
}

impl<B, T> Iterator for Merged<B, T>
where
    B: Iterator<Item = (Vec<u8>, Vec<u8>)>,
    T: Iterator<Item = Result<(sled::IVec, sled::IVec)>>,
{
    type Item = Result<(sled::IVec, sled::IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.buffered.peek(), self.tree.peek()) {
            (None, _) | (Some(_), Some(Err(_))) => return self.tree.next(),
            (Some(_), None) => Ordering::Less,
            (Some((b, _)), Some(Ok((t, _)))) => {
                let o = b.as_slice().cmp(t.as_ref());
                if self.rev {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        match order {
            Ordering::Greater => return self.tree.next(),
            Ordering::Equal => {
                self.tree.next();
            }
            Ordering::Less => {}
        }
        self.buffered.next().map(|(k, v)| Ok((k.into(), v.into())))
    }
}

/// Owns the writer thread; its drop stops and joins it.
struct Handle {
    shared: Arc<StoreShared>,
    tx: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The durable event store: a segment log of record, indexed in sled.
///
/// One writer thread appends with group commit (one log batch and one sync
/// for every append queued), and every append returns only once its events
/// are durable as [`Durability`](super::Durability) defines. Readers see
/// an event only once it is durable, so a subscriber never processes an
/// event that a crash could take back, and never sees position `N + 1`
/// before `N`. Cheap to clone: clones share one database.
///
/// Reads run on the calling task: the index from sled's cache, the records
/// with `pread` from the log (the OS page cache).
///
/// ```
/// use metachat_adapters::sled::{SledConfig, SledEventStore};
/// use metachat_core::event::{NewEvent, StreamId};
/// use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = SledEventStore::open(SledConfig::new(dir.path())).unwrap();
/// let stream = StreamId::new("user-1").unwrap();
/// let outcome = store
///     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("UserRegistered", b"{}".to_vec())])
///     .await
///     .unwrap();
/// assert_eq!((outcome.first_version, outcome.first_position), (0, 0));
/// assert_eq!(store.stream_version(&stream).await.unwrap(), Some(0));
/// # });
/// ```
#[derive(Clone)]
pub struct SledEventStore {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for SledEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledEventStore")
            .field("next_position", &self.inner.shared.visible_next())
            .finish_non_exhaustive()
    }
}

impl SledEventStore {
    /// Opens (or creates) the database at `config.path` and its event store.
    ///
    /// To use read models on the same database, open a
    /// [`SledDatabase`](super::SledDatabase) instead.
    pub fn open(config: SledConfig) -> Result<Self> {
        Ok(super::SledDatabase::open(config)?.event_store())
    }

    pub(crate) fn start(core: Arc<Core>, config: &SledConfig) -> Result<Self> {
        let shared = Arc::new(StoreShared::open(core, config.limits)?);
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let max = config.max_group_events.max(1);
        let thread = std::thread::Builder::new()
            .name("metachat-sled-writer".into())
            .spawn(move || writer::run(writer_shared, rx, max))
            .map_err(|e| {
                SledError::io(
                    "spawn thread",
                    std::path::Path::new("metachat-sled-writer"),
                    e,
                )
            })?;
        Ok(SledEventStore {
            inner: Arc::new(Handle {
                shared,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Makes everything appended so far durable now (useful with
    /// [`Durability::Periodic`](super::Durability::Periodic)); under
    /// [`Durability::Sync`](super::Durability::Sync) there is nothing left to
    /// do. The database itself closes, with a final flush and fsync, when
    /// the last handle is dropped.
    pub async fn close(&self) -> Result<()> {
        let core = self.inner.shared.core.clone();
        tokio::task::spawn_blocking(move || core.sync_all())
            .await
            .map_err(|e| Error::backend(e.to_string()))?
    }

    /// What opening found in the log and repaired.
    pub fn open_report(&self) -> OpenReport {
        let shared = &self.inner.shared;
        let log = shared.core.log.recovery();
        OpenReport {
            torn_at: log.torn_at,
            torn_bytes: log.torn_bytes,
            damaged_batches: log.damaged,
            reindexed_events: shared.recovered.reindexed,
            dropped_events: shared.recovered.dropped,
        }
    }

    /// The limits this store checks before writing.
    pub fn limits(&self) -> &Limits {
        &self.inner.shared.limits
    }
}

#[async_trait]
impl EventAppender for SledEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.inner.shared.limits.check(&events)?;
        let (reply, rx) = oneshot::channel();
        let req = Request {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        {
            let tx = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
            let tx = tx.as_ref().ok_or(Error::Closed)?;
            tx.send(req).map_err(|_| Error::Closed)?;
        }
        rx.await.map_err(|_| Error::Closed)?
    }
}

#[async_trait]
impl EventReader for SledEventStore {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        self.inner
            .shared
            .read_stream(stream, from, direction, limit)
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        self.inner.shared.read_all(from, limit)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        self.inner.shared.published_head(stream)
    }

    async fn next_position(&self) -> Result<u64> {
        Ok(self.inner.shared.visible_next())
    }

    fn head_watch(&self) -> Option<HeadWatch> {
        Some(HeadWatch(self.inner.shared.head_tx.subscribe()))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
