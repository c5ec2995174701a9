//! [`EventStoreDbEventStore`]: the core event store contract on one
//! namespace of an EventStoreDB / KurrentDB server.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, Client, DeleteStreamOptions, Position, ReadAllOptions,
    ReadStreamOptions, RecordedEvent, ResolvedEvent, StreamPosition, StreamState,
    SubscriptionFilter, TombstoneStreamOptions,
};
use metachat_core::event::{Envelope, Limits, NewEvent, StreamId, Timestamp};
use metachat_core::store::{
    check_reappend, AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion,
};
use metachat_core::{Error, Result};

use super::config::EventStoreDbConfig;
use super::error::{self, Kind};
use super::index::{PositionIndex, Resume};
use super::record::{self, is_system_type, Recorded};

/// Highest stream revision EventStoreDB can hold (revisions are signed
/// 64-bit on the server).
pub(crate) const MAX_REVISION: u64 = i64::MAX as u64;

/// The core event store on one namespace of an EventStoreDB / KurrentDB
/// server (see the [module docs](super) for the mapping and its limits).
///
/// A cheap clone: clones share the connection and the position index.
///
/// ```no_run
/// use metachat_adapters::eventstoredb::{EventStoreDbConfig, EventStoreDbEventStore};
/// use metachat_core::event::{NewEvent, StreamId};
/// use metachat_core::store::{Direction, EventAppender, EventReader, ExpectedVersion};
///
/// # async fn run() -> metachat_core::Result<()> {
/// let config = EventStoreDbConfig::builder("esdb://127.0.0.1:2113?tls=false")
///     .namespace("diary")
///     .build()?;
/// let store = EventStoreDbEventStore::connect(&config).await?;
/// let stream = StreamId::new("user-42")?; // stored as `diary:user-42`
/// let out = store
///     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("UserRegistered", b"{}".to_vec())])
///     .await?;
/// let events = store.read_stream(&stream, 0, Direction::Forward, 10).await?;
/// assert_eq!(events[0].position, out.first_position);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventStoreDbEventStore {
    pub(crate) inner: Arc<Inner>,
    limits: Limits,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) config: EventStoreDbConfig,
    index: Mutex<PositionIndex>,
    /// One scan of `$all` at a time per store: concurrent scans would
    /// read the same events twice.
    scan: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EventStoreDbEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStoreDbEventStore")
            .field("url", &self.inner.config.url)
            .field("namespace", &self.inner.config.namespace)
            .field("indexed", &self.index().len())
            .finish_non_exhaustive()
    }
}

/// A page of the namespace's events read from `$all`.
pub(crate) struct Page {
    /// The events after the resume point, system-typed ones included.
    pub(crate) events: Vec<RecordedEvent>,
    /// True when the read reached the end of `$all`.
    pub(crate) at_end: bool,
}

/// The stream state an expectation asks the server for; `None` for an
/// exact version no EventStoreDB stream can be at.
pub(crate) fn stream_state(expected: ExpectedVersion) -> Option<StreamState> {
    match expected {
        ExpectedVersion::Any => Some(StreamState::Any),
        ExpectedVersion::NoStream => Some(StreamState::NoStream),
        ExpectedVersion::StreamExists => Some(StreamState::StreamExists),
        ExpectedVersion::Exact(v) if v <= MAX_REVISION => Some(StreamState::StreamRevision(v)),
        ExpectedVersion::Exact(_) => None,
    }
}

/// Where a read of `$all` starts.
fn all_position(resume: Resume) -> StreamPosition<Position> {
    match resume {
        Resume::Start => StreamPosition::Start,
        Resume::After(p) => StreamPosition::Position(p),
    }
}

/// The event a read returned (the link itself if it is a link: the adapter
/// never resolves links).
pub(crate) fn recorded(e: ResolvedEvent) -> Option<RecordedEvent> {
    e.event.or(e.link)
}

/// True for the client errors that mean "no such stream (any more)".
fn is_absent(e: &kurrentdb::Error) -> bool {
    matches!(
        e,
        kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted
    )
}

impl EventStoreDbEventStore {
    /// Connects with `config` and checks that the server answers and lets
    /// this user read `$all`.
    ///
    /// The client runs its connection on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no node answers; [`Error::Backend`] when
    /// called outside a tokio runtime, when the client cannot be built or
    /// when the server refuses the read.
    pub async fn connect(config: &EventStoreDbConfig) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(error::init)?;
        let client =
            Client::with_runtime_handle(runtime, config.settings.clone()).map_err(error::init)?;
        let store = EventStoreDbEventStore {
            inner: Arc::new(Inner {
                client,
                config: config.clone(),
                index: Mutex::new(PositionIndex::default()),
                scan: tokio::sync::Mutex::new(()),
            }),
            limits: Limits::default(),
        };
        store.all_end().await?;
        Ok(store)
    }

    /// Replaces the size limits every append is checked against (default
    /// [`Limits::default`]). The server refuses appends larger than its
    /// `MaxAppendSize` (1 MiB by default) as a whole: keep batches within it.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The configuration it was opened with: `connect` it again for
    /// another instance (its own connection and position index) on the same
    /// namespace.
    pub fn config(&self) -> &EventStoreDbConfig {
        &self.inner.config
    }

    /// The namespace this store lives in.
    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// The EventStoreDB stream that holds `stream`: `{namespace}:{stream}`.
    pub fn stream_name(&self, stream: &StreamId) -> String {
        record::stream_name(self.namespace(), stream)
    }

    /// Soft-deletes `stream` if it is at `expected`: reads see it as absent;
    /// an append continues at the next version (EventStoreDB keeps the
    /// revision numbers). Its events stay in `$all`, and so keep their
    /// global positions, until a scavenge; see the module docs on what a
    /// scavenge does to positions.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the stream is not at `expected`; backend errors.
    pub async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let state = self.state_or_conflict(stream, expected).await?;
        let opts = DeleteStreamOptions::default()
            .stream_state(state)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        match self
            .inner
            .client
            .delete_stream(self.stream_name(stream), &opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(error::conflict(stream, expected, &e)
                .unwrap_or_else(|| error::op("delete_stream", e))),
        }
    }

    /// Hard-deletes `stream` if it is at `expected`: a tombstone, after which
    /// the stream reads as absent and every append to it fails with a
    /// backend error (its name can never be used again). Same note on
    /// positions as [`delete_stream`](Self::delete_stream).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the stream is not at `expected`; backend errors.
    pub async fn tombstone_stream(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
    ) -> Result<()> {
        let state = self.state_or_conflict(stream, expected).await?;
        let opts = TombstoneStreamOptions::default()
            .stream_state(state)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        match self
            .inner
            .client
            .tombstone_stream(self.stream_name(stream), &opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(error::conflict(stream, expected, &e)
                .unwrap_or_else(|| error::op("tombstone_stream", e))),
        }
    }

    /// The server stream state for `expected`, or the conflict an
    /// impossible exact version is.
    async fn state_or_conflict(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
    ) -> Result<StreamState> {
        match stream_state(expected) {
            Some(s) => Ok(s),
            None => Err(Error::Conflict {
                stream: stream.clone(),
                expected,
                actual: self.stream_version(stream).await?,
            }),
        }
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, PositionIndex> {
        // Nothing panics while holding it; a poisoned lock still holds a
        // consistent index (every update is one push).
        self.inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The server-side filter of every `$all` read: the namespace's stream
    /// prefix (which also leaves out every `$`-prefixed system stream).
    pub(crate) fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(self.inner.config.stream_prefix())
    }

    /// The `$all` position of the last record on the server, if any.
    async fn all_end(&self) -> Result<Option<Position>> {
        let opts = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(1)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        let mut read = self
            .inner
            .client
            .read_all(&opts)
            .await
            .map_err(|e| error::op("read_all", e))?;
        let last = read.next().await.map_err(|e| error::op("read_all", e))?;
        Ok(last.and_then(recorded).map(|e| e.position))
    }

    /// Up to `count` events of the namespace after `resume`, in `$all` order.
    ///
    /// Whether the server includes the event *at* a start position is not
    /// relied upon: one more is asked for and anything at or before the
    /// start is dropped.
    pub(crate) async fn read_page(&self, resume: Resume, count: usize) -> Result<Page> {
        let ask = match resume {
            Resume::Start => count,
            Resume::After(_) => count.saturating_add(1),
        };
        let opts = ReadAllOptions::default()
            .position(all_position(resume))
            .forwards()
            .filter(self.filter())
            .max_count(ask)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        let mut read = self
            .inner
            .client
            .read_all(&opts)
            .await
            .map_err(|e| error::op("read_all", e))?;
        let mut raw = 0usize;
        let mut events = Vec::new();
        while let Some(e) = read.next().await.map_err(|e| error::op("read_all", e))? {
            raw += 1;
            let Some(e) = recorded(e) else { continue };
            if let Resume::After(start) = resume {
                if e.position <= start {
                    continue;
                }
            }
            events.push(e);
        }
        let mut at_end = raw < ask;
        if events.len() > count {
            events.truncate(count);
            at_end = false;
        }
        Ok(Page { events, at_end })
    }

    /// Indexes every event of the namespace up to the end of `$all`.
    pub(crate) async fn scan(&self) -> Result<()> {
        let _one_at_a_time = self.inner.scan.lock().await;
        let end = self.all_end().await?;
        let (mut resume, mut next) = self.index().scan_point();
        loop {
            let page = self.read_page(resume, self.inner.config.page_size).await?;
            let kept: Vec<(Position, uuid::Uuid)> = page
                .events
                .iter()
                .filter(|e| !is_system_type(&e.event_type))
                .map(|e| (e.position, e.id))
                .collect();
            let n = kept.len() as u64;
            self.index().merge(next, kept)?;
            next += n;
            if let Some(last) = page.events.last() {
                resume = Resume::After(last.position);
            }
            if page.at_end {
                if let Some(end) = end {
                    self.index().mark_scanned(end);
                }
                return Ok(());
            }
        }
    }

    /// The global position of the namespace event at `$all` position
    /// `position`, scanning (and waiting up to the visibility timeout) for
    /// events newer than the index.
    async fn dense_position(&self, position: Position) -> Result<u64> {
        if let Some(p) = self.index().dense_of(position)? {
            return Ok(p);
        }
        let config = &self.inner.config;
        let deadline = Instant::now() + config.visibility_timeout;
        let mut attempt = 0;
        loop {
            self.scan().await?;
            if let Some(p) = self.index().dense_of(position)? {
                return Ok(p);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(error::wrap(
                    "read",
                    Kind::Unavailable,
                    format!(
                        "the event at $all position {position} did not show in a read of $all \
                         within {:?}",
                        config.visibility_timeout
                    )
                    .into(),
                ));
            }
            tokio::time::sleep(config.backoff.delay(attempt).min(deadline - now)).await;
            attempt += 1;
        }
    }

    /// The envelopes of `records` (events of the namespace).
    async fn envelopes(&self, records: Vec<RecordedEvent>) -> Result<Vec<Envelope>> {
        let mut out = Vec::with_capacity(records.len());
        for r in &records {
            let p = self.dense_position(r.position).await?;
            out.push(Recorded::of(r).envelope(self.namespace(), p)?);
        }
        Ok(out)
    }

    /// The stored envelopes of a batch's ids, checked by the core's one
    /// idempotency rule.
    async fn reappend(
        &self,
        stream: &StreamId,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>> {
        let found: Vec<Option<u64>> = {
            let index = self.index();
            events.iter().map(|e| index.find(&e.event_id.0)).collect()
        };
        if found.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut stored = Vec::with_capacity(found.len());
        for p in found {
            stored.push(match p {
                Some(p) => self.read_all(p, 1).await?.into_iter().next(),
                None => None,
            });
        }
        check_reappend(stream, events, &stored)
    }

    /// The outcome of an append the server acknowledged with
    /// `last_revision`: read back from the stream (which also places the
    /// events in the position index).
    async fn written(
        &self,
        stream: &StreamId,
        events: &[NewEvent],
        last_revision: u64,
    ) -> Result<AppendOutcome> {
        let n = events.len() as u64;
        if let Some(first) = last_revision.checked_sub(n - 1) {
            let stored = self
                .read_stream(stream, first, Direction::Forward, events.len())
                .await?;
            let ours = stored.len() == events.len()
                && stored
                    .iter()
                    .zip(events)
                    .all(|(s, e)| s.event_id == e.event_id);
            if ours {
                let stored: Vec<Option<Envelope>> = stored.into_iter().map(Some).collect();
                if let Some(out) = check_reappend(stream, events, &stored)? {
                    return Ok(out);
                }
            }
        }
        // The server may have answered a retry of an earlier append
        // (its own idempotency by event id) with another revision: find
        // the events by id.
        self.scan().await?;
        match self.reappend(stream, events).await? {
            Some(out) => Ok(out),
            None => Err(error::shape(
                "append",
                format!(
                    "the server acknowledged an append to `{}` up to revision {last_revision}, \
                     but its events are not there",
                    self.stream_name(stream)
                ),
            )),
        }
    }
}

#[async_trait]
impl EventAppender for EventStoreDbEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.limits.check(&events)?;
        if let Some(e) = events.iter().find(|e| is_system_type(&e.event_type)) {
            return Err(Error::InvalidEventType {
                reason: format!(
                    "`{}`: types starting with `$` are reserved by EventStoreDB",
                    e.event_type
                ),
            });
        }
        // Idempotency first, as in every store, against every event of the
        // namespace up to now.
        self.scan().await?;
        if let Some(out) = self.reappend(stream, &events).await? {
            return Ok(out);
        }
        let state = self.state_or_conflict(stream, expected).await?;
        let recorded_at = Timestamp::now();
        let data = events
            .iter()
            .map(|e| record::event_data(e, recorded_at))
            .collect::<Result<Vec<_>>>()?;
        let opts = AppendToStreamOptions::default()
            .stream_state(state)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        let written = match self
            .inner
            .client
            .append_to_stream(self.stream_name(stream), &opts, data)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                let Some(conflict) = error::conflict(stream, expected, &e) else {
                    return Err(error::op("append", e));
                };
                // Another writer may have stored this very batch meanwhile:
                // a retry, idempotent whatever the expected version.
                self.scan().await?;
                if let Some(out) = self.reappend(stream, &events).await? {
                    return Ok(out);
                }
                return Err(conflict);
            }
        };
        self.written(stream, &events, written.next_expected_version)
            .await
    }
}

#[async_trait]
impl EventReader for EventStoreDbEventStore {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = match direction {
            Direction::Forward if from > MAX_REVISION => return Ok(Vec::new()),
            Direction::Forward => from,
            // Start at the last event when `from` lies past it, without
            // relying on how the server treats a revision past the end.
            Direction::Backward => match self.stream_version(stream).await? {
                Some(last) => from.min(last),
                None => return Ok(Vec::new()),
            },
        };
        let opts = ReadStreamOptions::default()
            .position(StreamPosition::Position(start))
            .max_count(limit)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        let opts = match direction {
            Direction::Forward => opts.forwards(),
            Direction::Backward => opts.backwards(),
        };
        let mut read = match self
            .inner
            .client
            .read_stream(self.stream_name(stream), &opts)
            .await
        {
            Ok(r) => r,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(error::op("read_stream", e)),
        };
        let mut records = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(e)) => {
                    if let Some(e) = recorded(e).filter(|e| !is_system_type(&e.event_type)) {
                        records.push(e);
                    }
                }
                Ok(None) => break,
                Err(e) if is_absent(&e) => return Ok(Vec::new()),
                Err(e) => return Err(error::op("read_stream", e)),
            }
        }
        self.envelopes(records).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let located = self.index().resume_before(from);
        let mut resume = match located {
            Some(r) => r,
            None => {
                // Past what this process has indexed: catch up first.
                self.scan().await?;
                match self.index().resume_before(from) {
                    Some(r) => r,
                    None => return Ok(out),
                }
            }
        };
        let mut next = from;
        loop {
            let want = (limit - out.len()).min(self.inner.config.page_size);
            let page = self.read_page(resume, want).await?;
            if let Some(last) = page.events.last() {
                resume = Resume::After(last.position);
            }
            let kept: Vec<&RecordedEvent> = page
                .events
                .iter()
                .filter(|e| !is_system_type(&e.event_type))
                .collect();
            self.index()
                .merge(next, kept.iter().map(|e| (e.position, e.id)))?;
            for e in kept {
                out.push(Recorded::of(e).envelope(self.namespace(), next)?);
                next += 1;
            }
            if out.len() >= limit || page.at_end {
                return Ok(out);
            }
        }
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        let opts = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(1)
            .requires_leader(true)
            .deadline(self.inner.config.request_timeout);
        let mut read = match self
            .inner
            .client
            .read_stream(self.stream_name(stream), &opts)
            .await
        {
            Ok(r) => r,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(error::op("stream_version", e)),
        };
        match read.next().await {
            Ok(last) => Ok(last.and_then(recorded).map(|e| e.revision)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(error::op("stream_version", e)),
        }
    }

    async fn next_position(&self) -> Result<u64> {
        self.scan().await?;
        Ok(self.index().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_map_to_stream_states() {
        assert_eq!(stream_state(ExpectedVersion::Any), Some(StreamState::Any));
        assert_eq!(
            stream_state(ExpectedVersion::NoStream),
            Some(StreamState::NoStream)
        );
        assert_eq!(
            stream_state(ExpectedVersion::StreamExists),
            Some(StreamState::StreamExists)
        );
        for v in [0, 1, 41, MAX_REVISION] {
            assert_eq!(
                stream_state(ExpectedVersion::Exact(v)),
                Some(StreamState::StreamRevision(v))
            );
        }
        // Revisions past i64::MAX would reach the server as negative
        // numbers, which it reads as NoStream (-1) or Any (-2): never sent.
        for v in [MAX_REVISION + 1, u64::MAX - 1, u64::MAX] {
            assert_eq!(stream_state(ExpectedVersion::Exact(v)), None);
        }
    }

    fn unreachable() -> EventStoreDbConfig {
        // Port 1 on loopback: nothing listens there, the connection is refused.
        EventStoreDbConfig::builder("esdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1")
            .request_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        let e = EventStoreDbEventStore::connect(&unreachable())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    #[test]
    fn connecting_outside_a_tokio_runtime_is_an_error_not_a_panic() {
        let e = futures::executor::block_on(EventStoreDbEventStore::connect(&unreachable()))
            .unwrap_err();
        assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    }

    #[test]
    fn all_positions() {
        assert!(matches!(all_position(Resume::Start), StreamPosition::Start));
        let p = Position {
            commit: 7,
            prepare: 5,
        };
        assert!(matches!(
            all_position(Resume::After(p)),
            StreamPosition::Position(q) if q == p
        ));
    }
}
