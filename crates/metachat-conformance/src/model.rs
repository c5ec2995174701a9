//! The model check: random sequences of operations run against the store and
//! against [`Reference`], a plain in-memory model (a `Vec` and two
//! `HashMap`s); every result, `Ok` values and error variants with their
//! fields, must agree.
//!
//! Operations: appends with a random expected version of each kind and
//! random batch sizes over three streams, re-appends of an earlier batch
//! (whole, its tail, or with a new event added; to its own or another
//! stream), forward and backward stream reads from random versions with
//! random limits, `read_all` from random positions, `stream_version` and
//! `next_position`.
//!
//! proptest is synchronous, so its `TestRunner` runs on a blocking thread
//! (`tokio::task::spawn_blocking`) and drives the store through the runtime's
//! `Handle::block_on`. All cases share the store: each case uses its own
//! streams and reads the global log relative to where it started.

use std::collections::HashMap;

use metachat_core::event::{Envelope, EventId, Metadata, NewEvent, StreamId};
use metachat_core::store::{AppendOutcome, Direction, EventStore, ExpectedVersion};
use metachat_core::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::fixture::unique_name;

/// Environment variable overriding the number of cases.
pub const CASES_ENV: &str = "METACHAT_PROPTEST_CASES";
/// Cases run when [`CASES_ENV`] is not set.
pub const DEFAULT_CASES: u32 = 64;
/// Most operations in one case.
pub const MAX_OPS: usize = 40;
/// Streams one case uses.
const STREAMS: usize = 3;

/// An expected version to generate; `Current` is the model's actual one, so
/// that exact appends often succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `ExpectedVersion::Any`.
    Any,
    /// `ExpectedVersion::NoStream`.
    NoStream,
    /// `ExpectedVersion::StreamExists`.
    StreamExists,
    /// `ExpectedVersion::Exact(n)` with a random `n`.
    Exact(u64),
    /// `Exact` of the stream's current version (`NoStream` if absent).
    Current,
}

/// Which part of an earlier batch to re-append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The whole batch.
    Whole,
    /// Its second half (at least its last event).
    Tail,
    /// The whole batch plus one new event.
    PlusNew,
}

/// One generated operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Append `size` new events.
    Append {
        /// Stream index.
        stream: usize,
        /// Expected version.
        expect: Expect,
        /// Batch size.
        size: usize,
    },
    /// Append (part of) an earlier batch again.
    Reappend {
        /// Index of the earlier batch (modulo their number).
        batch: usize,
        /// Target stream; `None` for the batch's own.
        stream: Option<usize>,
        /// Expected version.
        expect: Expect,
        /// What to send.
        shape: Shape,
    },
    /// `read_stream`.
    ReadStream {
        /// Stream index.
        stream: usize,
        /// From version.
        from: u64,
        /// Backward if true.
        backward: bool,
        /// Limit.
        limit: usize,
    },
    /// `read_all` from the case's first position plus `from`.
    ReadAll {
        /// Offset from the case's first position.
        from: u64,
        /// Limit.
        limit: usize,
    },
    /// `stream_version`.
    StreamVersion {
        /// Stream index.
        stream: usize,
    },
    /// `next_position`.
    NextPosition,
}

fn expect_strategy() -> impl Strategy<Value = Expect> {
    prop_oneof![
        1 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::StreamExists),
        1 => (0u64..6).prop_map(Expect::Exact),
        2 => Just(Expect::Current),
    ]
}

fn limit_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..8, 1 => Just(usize::MAX)]
}

/// The strategy for one [`Op`].
pub fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..STREAMS, expect_strategy(), 1usize..5)
            .prop_map(|(stream, expect, size)| Op::Append { stream, expect, size }),
        2 => (
            any::<usize>(),
            proptest::option::weighted(0.3, 0..STREAMS),
            expect_strategy(),
            prop_oneof![Just(Shape::Whole), Just(Shape::Tail), Just(Shape::PlusNew)],
        )
            .prop_map(|(batch, stream, expect, shape)| Op::Reappend { batch, stream, expect, shape }),
        2 => (0..STREAMS, prop_oneof![4 => 0u64..10, 1 => Just(u64::MAX)], any::<bool>(), limit_strategy())
            .prop_map(|(stream, from, backward, limit)| Op::ReadStream { stream, from, backward, limit }),
        2 => (0u64..60, limit_strategy()).prop_map(|(from, limit)| Op::ReadAll { from, limit }),
        1 => (0..STREAMS).prop_map(|stream| Op::StreamVersion { stream }),
        1 => Just(Op::NextPosition),
    ]
}

/// An envelope without `recorded_at` (which the model cannot know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Event id.
    pub event_id: EventId,
    /// Stream.
    pub stream_id: StreamId,
    /// Version in the stream.
    pub version: u64,
    /// Global position.
    pub position: u64,
    /// Type.
    pub event_type: String,
    /// Schema version.
    pub schema_version: u32,
    /// Payload.
    pub payload: Vec<u8>,
    /// Metadata.
    pub metadata: Metadata,
}

impl From<&Envelope> for View {
    fn from(e: &Envelope) -> Self {
        View {
            event_id: e.event_id,
            stream_id: e.stream_id.clone(),
            version: e.version,
            position: e.position,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
        }
    }
}

/// The errors the model predicts, with their fields; anything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrView {
    /// `Error::Conflict`.
    Conflict {
        /// Stream.
        stream: StreamId,
        /// Expected.
        expected: ExpectedVersion,
        /// Actual.
        actual: Option<u64>,
    },
    /// `Error::DuplicateEventId`.
    DuplicateEventId {
        /// Id.
        event_id: uuid::Uuid,
        /// Where it is stored.
        stream: StreamId,
        /// Its version there.
        version: u64,
    },
    /// `Error::PartialReappend`.
    PartialReappend {
        /// Stream.
        stream: StreamId,
    },
    /// Any other error, as text.
    Other(String),
}

impl From<Error> for ErrView {
    fn from(e: Error) -> Self {
        match e {
            Error::Conflict {
                stream,
                expected,
                actual,
            } => ErrView::Conflict {
                stream,
                expected,
                actual,
            },
            Error::DuplicateEventId {
                event_id,
                stream,
                version,
            } => ErrView::DuplicateEventId {
                event_id,
                stream,
                version,
            },
            Error::PartialReappend { stream } => ErrView::PartialReappend { stream },
            other => ErrView::Other(format!("{other:?}")),
        }
    }
}

/// Where an append placed its batch: an [`AppendOutcome`] without its
/// recorded time (the model has no clock; the suite checks the time against
/// the stored events instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Version of the batch's first event.
    pub first_version: u64,
    /// Version of the batch's last event.
    pub last_version: u64,
    /// Global position of the first event.
    pub first_position: u64,
    /// Global position of the last event.
    pub last_position: u64,
}

impl From<AppendOutcome> for Placed {
    fn from(o: AppendOutcome) -> Self {
        Placed {
            first_version: o.first_version,
            last_version: o.last_version,
            first_position: o.first_position,
            last_position: o.last_position,
        }
    }
}

/// What one operation observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obs {
    /// An append's result.
    Append(Result<Placed, ErrView>),
    /// A read's result.
    Read(Result<Vec<View>, ErrView>),
    /// `stream_version`.
    Version(Result<Option<u64>, ErrView>),
    /// `next_position`.
    Position(Result<u64, ErrView>),
}

/// The reference model: the global log in a `Vec`, streams and ids in maps.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    base: u64,
    log: Vec<View>,
    streams: HashMap<StreamId, Vec<usize>>,
    ids: HashMap<EventId, usize>,
}

impl Reference {
    /// An empty model whose first event gets global position `base`.
    pub fn new(base: u64) -> Self {
        Reference {
            base,
            ..Default::default()
        }
    }

    /// The stream's version, `None` if absent.
    pub fn stream_version(&self, stream: &StreamId) -> Option<u64> {
        self.streams.get(stream).map(|v| v.len() as u64 - 1)
    }

    /// The next global position.
    pub fn next_position(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Appends as the contract says a store must.
    pub fn append(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Placed, ErrView> {
        let found: Vec<Option<&View>> = events
            .iter()
            .map(|e| self.ids.get(&e.event_id).map(|&i| &self.log[i]))
            .collect();
        if found.iter().any(Option::is_some) {
            if let Some(v) = found.iter().flatten().find(|v| &v.stream_id != stream) {
                return Err(ErrView::DuplicateEventId {
                    event_id: v.event_id.0,
                    stream: v.stream_id.clone(),
                    version: v.version,
                });
            }
            let all: Vec<&View> = found.iter().flatten().copied().collect();
            let whole = all.len() == events.len()
                && all.windows(2).all(|w| w[1].version == w[0].version + 1)
                && all.iter().zip(events).all(|(v, e)| {
                    v.event_type == e.event_type
                        && v.schema_version == e.schema_version
                        && v.payload == e.payload
                        && v.metadata == e.metadata
                });
            if !whole {
                return Err(ErrView::PartialReappend {
                    stream: stream.clone(),
                });
            }
            let (first, last) = (all[0], all[all.len() - 1]);
            return Ok(Placed {
                first_version: first.version,
                last_version: last.version,
                first_position: first.position,
                last_position: last.position,
            });
        }
        let actual = self.stream_version(stream);
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        };
        if !ok {
            return Err(ErrView::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            });
        }
        let first_version = actual.map_or(0, |v| v + 1);
        let first_position = self.next_position();
        for (i, e) in events.iter().enumerate() {
            let idx = self.log.len();
            self.log.push(View {
                event_id: e.event_id,
                stream_id: stream.clone(),
                version: first_version + i as u64,
                position: first_position + i as u64,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                payload: e.payload.clone(),
                metadata: e.metadata.clone(),
            });
            self.ids.insert(e.event_id, idx);
            self.streams.entry(stream.clone()).or_default().push(idx);
        }
        let n = events.len() as u64;
        Ok(Placed {
            first_version,
            last_version: first_version + n - 1,
            first_position,
            last_position: first_position + n - 1,
        })
    }

    /// Reads a stream as the contract says.
    pub fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Vec<View> {
        let Some(idx) = self.streams.get(stream) else {
            return Vec::new();
        };
        let at = |v: &usize| self.log[*v].clone();
        match direction {
            Direction::Forward => idx
                .iter()
                .skip(usize::try_from(from).unwrap_or(usize::MAX))
                .take(limit)
                .map(at)
                .collect(),
            Direction::Backward => {
                let start = usize::try_from(from)
                    .unwrap_or(usize::MAX)
                    .min(idx.len() - 1);
                idx[..=start].iter().rev().take(limit).map(at).collect()
            }
        }
    }

    /// Reads the global log from absolute position `from`.
    pub fn read_all(&self, from: u64, limit: usize) -> Vec<View> {
        let skip = usize::try_from(from.saturating_sub(self.base)).unwrap_or(usize::MAX);
        self.log.iter().skip(skip).take(limit).cloned().collect()
    }
}

fn resolve(expect: Expect, current: Option<u64>) -> ExpectedVersion {
    match expect {
        Expect::Any => ExpectedVersion::Any,
        Expect::NoStream => ExpectedVersion::NoStream,
        Expect::StreamExists => ExpectedVersion::StreamExists,
        Expect::Exact(n) => ExpectedVersion::Exact(n),
        Expect::Current => ExpectedVersion::from_version(current),
    }
}

fn new_event(n: u64) -> NewEvent {
    let mut e = crate::fixture::event(n);
    if n.is_multiple_of(5) {
        e.metadata = Metadata::default().with_header("n", n.to_string());
    }
    e
}

/// Runs one case against `store` and a fresh [`Reference`].
async fn run_case<S: EventStore>(store: &S, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let base = store
        .next_position()
        .await
        .map_err(|e| TestCaseError::fail(format!("next_position: {e:?}")))?;
    let mut model = Reference::new(base);
    let prefix = unique_name("model");
    let streams: Vec<StreamId> = (0..STREAMS)
        .map(|i| StreamId::new(format!("{prefix}-s{i}")).expect("a valid stream id"))
        .collect();
    let mut batches: Vec<(usize, Vec<NewEvent>)> = Vec::new();
    let mut n = 0u64;
    for (i, op) in ops.iter().enumerate() {
        let (got, want) = match op {
            Op::Append {
                stream,
                expect,
                size,
            } => {
                let s = &streams[*stream];
                let batch: Vec<NewEvent> = (0..*size as u64).map(|k| new_event(n + k)).collect();
                n += *size as u64;
                let expected = resolve(*expect, model.stream_version(s));
                batches.push((*stream, batch.clone()));
                let want = Obs::Append(model.append(s, expected, &batch));
                let got = Obs::Append(
                    store
                        .append(s, expected, batch)
                        .await
                        .map(Placed::from)
                        .map_err(Into::into),
                );
                (got, want)
            }
            Op::Reappend {
                batch,
                stream,
                expect,
                shape,
            } => {
                if batches.is_empty() {
                    continue;
                }
                let (own, earlier) = &batches[batch % batches.len()];
                let target = stream.unwrap_or(*own);
                let s = &streams[target];
                let mut events = match shape {
                    Shape::Whole | Shape::PlusNew => earlier.clone(),
                    Shape::Tail => earlier[earlier.len() / 2..].to_vec(),
                };
                if *shape == Shape::PlusNew {
                    events.push(new_event(n));
                    n += 1;
                }
                let expected = resolve(*expect, model.stream_version(s));
                batches.push((target, events.clone()));
                let want = Obs::Append(model.append(s, expected, &events));
                let got = Obs::Append(
                    store
                        .append(s, expected, events)
                        .await
                        .map(Placed::from)
                        .map_err(Into::into),
                );
                (got, want)
            }
            Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            } => {
                let s = &streams[*stream];
                let dir = if *backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let want = Obs::Read(Ok(model.read_stream(s, *from, dir, *limit)));
                let got = Obs::Read(
                    store
                        .read_stream(s, *from, dir, *limit)
                        .await
                        .map(|es| es.iter().map(View::from).collect())
                        .map_err(Into::into),
                );
                (got, want)
            }
            Op::ReadAll { from, limit } => {
                let want = Obs::Read(Ok(model.read_all(base + from, *limit)));
                let got = Obs::Read(
                    store
                        .read_all(base + from, *limit)
                        .await
                        .map(|es| es.iter().map(View::from).collect())
                        .map_err(Into::into),
                );
                (got, want)
            }
            Op::StreamVersion { stream } => {
                let s = &streams[*stream];
                let want = Obs::Version(Ok(model.stream_version(s)));
                let got = Obs::Version(store.stream_version(s).await.map_err(Into::into));
                (got, want)
            }
            Op::NextPosition => {
                let want = Obs::Position(Ok(model.next_position()));
                let got = Obs::Position(store.next_position().await.map_err(Into::into));
                (got, want)
            }
        };
        if got != want {
            return Err(TestCaseError::fail(format!(
                "operation {i} ({op:?}) on streams {prefix}-s*: the store returned\n  {got:?}\nthe model\n  {want:?}"
            )));
        }
    }
    Ok(())
}

/// The number of cases: [`CASES_ENV`] if set to a number, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Runs [`cases`] random sequences of up to [`MAX_OPS`] operations against
/// `store` and the [`Reference`] model; panics with the shrunk failing
/// sequence if any result differs. Needs a tokio runtime (either flavour).
pub async fn check_against_reference<S>(store: S)
where
    S: EventStore + Send + Sync + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(config);
        runner
            .run(
                &proptest::collection::vec(op_strategy(), 1..=MAX_OPS),
                |ops| handle.block_on(run_case(&store, ops)),
            )
            .map_err(|e| e.to_string())
    })
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => panic!("model check failed: {failure}"),
        Err(join) => match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("model check task failed: {e}"),
        },
    }
}
