//! Aggregates fold their events into state and decide on commands; a
//! [`Repository`] loads them (snapshot + tail), runs a command and appends
//! the resulting events with the expected version, retrying on conflict.

use std::fmt;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use crate::codec::{Codec, DomainEvent, JsonCodec};
use crate::error::{Error, Result};
use crate::event::{Envelope, EventId, Metadata, NewEvent, StreamId};
use crate::read_model::{DocExpect, ReadModelStore, ReadModelStoreExt};
use crate::store::{AppendOutcome, Direction, EventStore, ExpectedVersion};

/// A consistency boundary: its events are one stream, its state their fold.
pub trait Aggregate: Default + Send + Sync + 'static {
    /// Stream category, e.g. `user`: the stream of id `x` is `user-x`.
    const KIND: &'static str;
    /// Its events.
    type Event: DomainEvent;
    /// Its commands.
    type Command: Send + Sync;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Folds one event into the state. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Decides on a command: the events to append, or a domain error.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// An aggregate's state with its identity and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Root<A> {
    /// The stream id.
    pub stream: StreamId,
    /// Version of the last applied event; `None` for a new aggregate.
    pub version: Option<u64>,
    /// The folded state.
    pub state: A,
}

/// Why [`Repository::execute`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(E),
    /// The store failed, or conflicts outlasted the retries
    /// ([`Error::Conflict`] then).
    #[error(transparent)]
    Store(#[from] Error),
}

impl<E: std::error::Error + 'static> CommandError<E> {
    /// The aggregate's refusal as `Ok`, every other failure (the store's, or
    /// any kind added later) as the core [`Error`] in `Err`: how a caller
    /// outside this crate takes the error apart without a wildcard arm.
    pub fn into_domain(self) -> std::result::Result<E, Error> {
        match self {
            CommandError::Domain(e) => Ok(e),
            CommandError::Store(e) => Err(e),
        }
    }
}

/// The outcome of a command that was accepted.
#[derive(Debug)]
pub struct Executed<A> {
    /// The state after the new events.
    pub root: Root<A>,
    /// What was appended; `None` if the command produced no events.
    pub outcome: Option<AppendOutcome>,
}

trait SnapshotStrategy<A>: Send + Sync {
    fn load<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> futures::future::BoxFuture<'a, Result<Option<(A, u64)>>>;
    fn maybe_save<'a>(
        &'a self,
        root: &'a Root<A>,
        previous: Option<u64>,
    ) -> futures::future::BoxFuture<'a, Result<()>>;
}

struct ReadModelSnapshots<R> {
    store: R,
    every: u64,
}

const SNAPSHOT_COLLECTION: &str = "snapshots";

#[derive(Serialize, serde::Deserialize)]
struct SnapshotDoc<A> {
    version: u64,
    state: A,
}

impl<A, R> SnapshotStrategy<A> for ReadModelSnapshots<R>
where
    A: Aggregate + Serialize + DeserializeOwned,
    R: ReadModelStore,
{
    fn load<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> futures::future::BoxFuture<'a, Result<Option<(A, u64)>>> {
        Box::pin(async move {
            Ok(self
                .store
                .get_json::<SnapshotDoc<A>>(SNAPSHOT_COLLECTION, stream.as_str())
                .await?
                .map(|(d, _)| (d.state, d.version)))
        })
    }

    fn maybe_save<'a>(
        &'a self,
        root: &'a Root<A>,
        previous: Option<u64>,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(v) = root.version else { return Ok(()) };
            // Event counts before and after this command.
            let before = previous.map_or(0, |p| p + 1);
            let after = v + 1;
            if after / self.every == before / self.every {
                return Ok(());
            }
            // A snapshot is a cache: overwrite whatever is there.
            let doc = SnapshotDoc {
                version: v,
                state: &root.state,
            };
            self.store
                .put_json(
                    SNAPSHOT_COLLECTION,
                    root.stream.as_str(),
                    &doc,
                    DocExpect::Any,
                )
                .await
        })
    }
}

/// Loads aggregates from a store and runs commands against them.
pub struct Repository<A: Aggregate, S, C = JsonCodec<<A as Aggregate>::Event>> {
    store: S,
    codec: C,
    max_retries: u32,
    snapshots: Option<Arc<dyn SnapshotStrategy<A>>>,
}

impl<A: Aggregate, S, C> fmt::Debug for Repository<A, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("kind", &A::KIND)
            .field("max_retries", &self.max_retries)
            .field("snapshots", &self.snapshots.is_some())
            .finish()
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository with the JSON codec, 3 retries on conflict, no snapshots.
    pub fn new(store: S) -> Self {
        Repository {
            store,
            codec: JsonCodec::new(),
            max_retries: 3,
            snapshots: None,
        }
    }
}

impl<A: Aggregate, S: EventStore, C: Codec<A::Event>> Repository<A, S, C> {
    /// Uses another codec (e.g. a [`JsonCodec`] with upcasters).
    pub fn with_codec<C2: Codec<A::Event>>(self, codec: C2) -> Repository<A, S, C2> {
        Repository {
            store: self.store,
            codec,
            max_retries: self.max_retries,
            snapshots: self.snapshots,
        }
    }

    /// How many times a command is re-run after a version conflict. Default 3.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Stores a snapshot in `read_models` (collection `snapshots`) each time
    /// the stream crosses a multiple of `every` events; loads start from it.
    pub fn with_snapshots<R>(mut self, read_models: R, every: u64) -> Self
    where
        A: Serialize + DeserializeOwned,
        R: ReadModelStore + 'static,
    {
        self.snapshots = Some(Arc::new(ReadModelSnapshots {
            store: read_models,
            every: every.max(1),
        }));
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream id of aggregate `id`.
    pub fn stream_id(&self, id: &str) -> Result<StreamId> {
        StreamId::from_parts(A::KIND, id)
    }

    /// Loads aggregate `id`: the snapshot if any, then the events after it.
    pub async fn load(&self, id: &str) -> Result<Root<A>> {
        let stream = self.stream_id(id)?;
        let snapshot = match &self.snapshots {
            Some(s) => match s.load(&stream).await {
                Ok(found) => found,
                // A snapshot of an older state shape is only a cache: replay instead.
                Err(Error::Decode { source, .. }) => {
                    tracing::warn!(%source, %stream, "snapshot unreadable; replaying the stream");
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (mut state, mut version) = match snapshot {
            Some((state, v)) => (state, Some(v)),
            None => (A::default(), None),
        };
        loop {
            let from = version.map_or(0, |v| v + 1);
            let page = self
                .store
                .read_stream(&stream, from, Direction::Forward, 4096)
                .await?;
            if page.is_empty() {
                break;
            }
            for env in &page {
                if let Some(e) = self.codec.decode(env)? {
                    state.apply(&e);
                }
                version = Some(env.version);
            }
        }
        Ok(Root {
            stream,
            version,
            state,
        })
    }

    /// Runs `command` on aggregate `id` and appends its events with the
    /// loaded version as the expectation. On a conflict it reloads and runs
    /// the command again, up to the retry limit.
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let mut attempt = 0;
        loop {
            let root = self.load(id).await?;
            let events = root.state.handle(command).map_err(CommandError::Domain)?;
            if events.is_empty() {
                return Ok(Executed {
                    root,
                    outcome: None,
                });
            }
            match self.append(root, &events, &metadata).await {
                Ok(done) => return Ok(done),
                Err(Error::Conflict { .. }) if attempt < self.max_retries => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs `command` on a new aggregate `id` (its default state) and
    /// appends with [`ExpectedVersion::NoStream`], without reading the
    /// stream first: for an id the caller has just generated, this saves
    /// the store a read. If the stream has events after all, or the command
    /// is refused or yields nothing on a new aggregate, it does what
    /// [`execute`](Self::execute) does (loads the aggregate and runs the
    /// command on it), so the outcome is the same either way.
    pub async fn create(
        &self,
        id: &str,
        command: &A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let root = Root {
            stream: self.stream_id(id)?,
            version: None,
            state: A::default(),
        };
        // A refusal or nothing to append on a new aggregate: what the
        // aggregate is in the store decides (a read only in these cases).
        let events = match root.state.handle(command) {
            Ok(events) if !events.is_empty() => events,
            _ => return self.execute(id, command, metadata).await,
        };
        match self.append(root, &events, &metadata).await {
            Ok(done) => Ok(done),
            Err(Error::Conflict { .. }) => self.execute(id, command, metadata).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Appends `events` (what `root`'s state made of a command) expecting
    /// `root`'s version, then applies them to it and saves a snapshot if
    /// one is due.
    async fn append(
        &self,
        mut root: Root<A>,
        events: &[A::Event],
        metadata: &Metadata,
    ) -> Result<Executed<A>> {
        let loaded = root.version;
        let new_events = events
            .iter()
            .map(|e| self.to_new_event(e, metadata))
            .collect::<Result<Vec<_>>>()?;
        let expected = ExpectedVersion::from_version(loaded);
        let outcome = self
            .store
            .append(&root.stream, expected, new_events)
            .await?;
        for e in events {
            root.state.apply(e);
        }
        root.version = Some(outcome.last_version);
        if let Some(s) = &self.snapshots {
            // A failed snapshot write costs only load speed.
            if let Err(err) = s.maybe_save(&root, loaded).await {
                tracing::warn!(%err, stream = %root.stream, "snapshot not saved");
            }
        }
        Ok(Executed {
            root,
            outcome: Some(outcome),
        })
    }

    fn to_new_event(&self, event: &A::Event, metadata: &Metadata) -> Result<NewEvent> {
        let enc = self.codec.encode(event)?;
        Ok(NewEvent {
            event_id: EventId::new(),
            event_type: enc.event_type,
            schema_version: enc.schema_version,
            payload: enc.payload,
            metadata: metadata.clone(),
        })
    }

    /// Decodes a stored envelope of this aggregate's events.
    pub fn decode(&self, envelope: &Envelope) -> Result<Option<A::Event>> {
        self.codec.decode(envelope)
    }
}
