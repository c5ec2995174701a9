//! [`SledEventStore`]: the event store on sled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use metachat_core::event::{wire, Envelope, EventId, Limits, NewEvent, StreamId};
use metachat_core::store::{
    AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, HeadWatch,
};
use metachat_core::{Error, Result};
use tokio::sync::{oneshot, watch};

use super::config::SledConfig;
use super::durability::Core;
use super::error::{corrupted, from_sled, SledError};
use super::keys;
use super::writer::{self, Request};

/// State shared by the store's handles and its writer thread.
pub(crate) struct StoreShared {
    pub(crate) core: Arc<Core>,
    pub(crate) events: sled::Tree,
    /// Published stream heads: only streams whose events are durable.
    heads: RwLock<HashMap<StreamId, u64>>,
    /// Positions below this are durable and visible to readers.
    visible: AtomicU64,
    head_tx: watch::Sender<u64>,
    limits: Limits,
}

impl StoreShared {
    /// Opens the events tree and rebuilds the caches from it.
    pub(crate) fn open(core: Arc<Core>, limits: Limits) -> Result<Self> {
        let events = core.db().open_tree(keys::EVENTS_TREE).map_err(from_sled)?;
        let mut heads = HashMap::new();
        for item in events.scan_prefix([keys::HEAD]) {
            let (k, v) = item.map_err(from_sled)?;
            let name = std::str::from_utf8(&k[1..])
                .map_err(|_| corrupted("stream head index".into(), "stream id is not UTF-8"))?;
            let stream = StreamId::new(name)?;
            let version = keys::u64_value(&v, || format!("head of stream `{stream}`"))?;
            heads.insert(stream, version);
        }
        let next = match events.scan_prefix([keys::EVENT]).next_back() {
            None => 0,
            Some(item) => {
                let (k, _) = item.map_err(from_sled)?;
                keys::position_of_event_key(&k)
                    .ok_or_else(|| corrupted("last event key".into(), "malformed key"))?
                    + 1
            }
        };
        Ok(StoreShared {
            core,
            events,
            heads: RwLock::new(heads),
            visible: AtomicU64::new(next),
            head_tx: watch::channel(next).0,
            limits,
        })
    }

    pub(crate) fn visible_next(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    pub(crate) fn published_head(&self, stream: &StreamId) -> Option<u64> {
        self.heads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .copied()
    }

    /// Makes a durable group visible: heads first, then the position, then wake-ups.
    pub(crate) fn publish(&self, heads: HashMap<StreamId, u64>, next: u64) {
        self.heads
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(heads);
        self.visible.store(next, Ordering::Release);
        self.head_tx.send_replace(next);
    }

    fn read_at(&self, position: u64, stream: Option<&StreamId>) -> Result<Envelope> {
        let location = || match stream {
            Some(s) => format!("global position {position} (stream `{s}`)"),
            None => format!("global position {position}"),
        };
        let bytes = self
            .events
            .get(keys::event(position))
            .map_err(from_sled)?
            .ok_or_else(|| corrupted(location(), "indexed event is missing"))?;
        wire::decode(&bytes, location)
    }

    /// The stored envelope with this id, if any (a stored id is durable).
    pub(crate) fn stored_by_id(&self, id: EventId) -> Result<Option<Envelope>> {
        match self
            .events
            .get(keys::event_id(id.0.as_bytes()))
            .map_err(from_sled)?
        {
            None => Ok(None),
            Some(v) => {
                let pos = keys::u64_value(&v, || format!("event id index of {id}"))?;
                self.read_at(pos, None).map(Some)
            }
        }
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        let Some(head) = self.published_head(stream) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let iter = match direction {
            Direction::Forward => {
                if from > head {
                    return Ok(Vec::new());
                }
                let range = keys::stream_entry(stream, from)..=keys::stream_entry(stream, head);
                itertools_either::Either::Left(self.events.range(range))
            }
            Direction::Backward => {
                let start = from.min(head);
                let range = keys::stream_entry(stream, 0)..=keys::stream_entry(stream, start);
                itertools_either::Either::Right(self.events.range(range).rev())
            }
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in iter.take(limit) {
            let (_, v) = item.map_err(from_sled)?;
            let pos = keys::u64_value(&v, || format!("stream `{stream}` index"))?;
            let env = self.read_at(pos, Some(stream))?;
            if &env.stream_id != stream {
                return Err(corrupted(
                    format!("global position {pos} (stream `{stream}`)"),
                    "stream index points at an event of another stream",
                ));
            }
            out.push(env);
        }
        Ok(out)
    }

    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let end = self.visible_next();
        if from >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self
            .events
            .range(keys::event(from)..keys::event(end))
            .take(limit)
        {
            let (k, v) = item.map_err(from_sled)?;
            let pos = keys::position_of_event_key(&k).ok_or_else(|| {
                corrupted(format!("after global position {from}"), "malformed key")
            })?;
            out.push(wire::decode(&v, || format!("global position {pos}"))?);
        }
        Ok(out)
    }
}

/// A tiny `Either` over the two iterator directions (no extra dependency).
mod itertools_either {
    pub(super) enum Either<L, R> {
        Left(L),
        Right(R),
    }

    impl<T, L: Iterator<Item = T>, R: Iterator<Item = T>> Iterator for Either<L, R> {
        type Item = T;
        fn next(&mut self) -> Option<T> {
            match self {
                Either::Left(l) => l.next(),
                Either::Right(r) => r.next(),
            }
        }
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

/// The durable event store on sled.
///
/// Events, their indexes and stream heads live in one sled tree; one writer
/// thread appends with group commit, and every append returns only once its
/// events are durable as [`Durability`](super::Durability) defines. Readers see
/// an event only once it is durable, so a subscriber never processes an
/// event that a crash could take back, and never sees position `N + 1`
/// before `N`. Cheap to clone: clones share one database.
///
/// Reads run on the calling task: sled serves them from its page cache.
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
        tokio::task::spawn_blocking(move || core.syncer.sync())
            .await
            .map_err(|e| Error::backend(e.to_string()))?
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
        Ok(self.inner.shared.published_head(stream))
    }

    async fn next_position(&self) -> Result<u64> {
        Ok(self.inner.shared.visible_next())
    }

    fn head_watch(&self) -> Option<HeadWatch> {
        Some(HeadWatch(self.inner.shared.head_tx.subscribe()))
    }
}
