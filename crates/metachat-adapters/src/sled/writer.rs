//! The single writer: group commit of every queued append.
//!
//! One thread owns all appends. It takes every request queued (up to
//! [`SledConfig::max_group_events`](super::SledConfig::max_group_events);
//! after a group of several appends, also those that come within
//! [`GATHER_QUIET`] of each other, for at most [`GATHER_AT_MOST`]),
//! validates them in order against the stream heads (the published ones plus
//! this group's own) and writes all accepted events as one batch of the
//! segment log. Then, under [`Durability::Sync`](super::Durability::Sync),
//! it syncs the log once and only then indexes the group, in memory: the
//! [`IndexBuffer`](super::index_buffer::IndexBuffer), which readers consult
//! before sled. An index entry never points past the durable log. The
//! [checkpointer](Checkpointer) moves the buffer into sled once a second
//! (sooner if it grows), with single inserts on its own thread: sled 0.34
//! seals and writes its I/O buffer, with a `sync_file_range`, twice for
//! every `Tree::apply_batch`, which competed with the log's `fdatasync`, and
//! the inserts were half the writer's time per group. It then records how
//! far the index is complete, after a sled flush and barrier; on open,
//! [`index::recover`] indexes the log again from there. Under
//! [`Durability::Periodic`](super::Durability::Periodic) the log is synced
//! later, so the group's entries and how far they reach go into sled as one
//! atomic batch, and entries the log lost in a power cut are removed on
//! open. Once the group is durable and indexed, the writer publishes the
//! new heads and position and answers every caller.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metachat_core::event::{wire, Envelope, EventId, NewEvent, StreamId, Timestamp};
use metachat_core::store::{check_reappend, AppendOutcome, ExpectedVersion};
use metachat_core::{Error, Result};
use tokio::sync::oneshot;

use super::config::Durability;
use super::error::from_sled;
use super::index;
use super::segment::{self, Location};
use super::store::StoreShared;

/// One append waiting for the writer.
pub(crate) struct Request {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome>>,
}

/// How often the [`Checkpointer`] moves the buffered index into sled and
/// records how far it is complete.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Buffered index entries at which the writer asks for a checkpoint before
/// the second is up.
const CHECKPOINT_AT: usize = 1 << 16;

/// Buffered index entries at which the writer moves them into sled itself
/// (waiting for a checkpoint under way): the buffer's memory stays bounded
/// whatever the rate of appends.
const BUFFER_LIMIT: usize = 1 << 19;

/// How often, at most, the writer records in sled where the synced log
/// ends (`y`, see [`index::insert_synced`]): a sled insert per group was a
/// twentieth of the writer's time with 64 writers, and the record is only
/// as fresh as sled's own flush (every 500 ms) after a crash anyway.
const RECORD_SYNCED_EVERY: Duration = Duration::from_millis(10);

/// After a group of more than one append, the writer keeps gathering the
/// next group until no request has come for this long (or for
/// [`GATHER_AT_MOST`]): callers answered by the last group come back a few
/// microseconds apart, and a group that waited for them shares one
/// `fdatasync` among more appends. After a group of one append (a single
/// writer), it does not wait.
const GATHER_QUIET: Duration = Duration::from_micros(20);

/// The longest the writer gathers one group past its first request.
const GATHER_AT_MOST: Duration = Duration::from_micros(200);

/// How long the writer, out of requests, polls for the next one before it
/// sleeps: waking a sleeping thread costs tens of microseconds on a virtual
/// machine, a good part of a one-event append.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// Under [`Durability::Sync`]: once a second, when asked early and when the
/// writer stops, moves the buffered index entries into sled
/// ([`IndexBuffer::drain`](super::index_buffer::IndexBuffer::drain), single
/// inserts) and then records how far the index is complete, after a sled
/// flush and barrier that put every insert made before it on disk. Single
/// inserts carry no such promise of their own (sled may keep a later one
/// and lose an earlier one in a crash), so the marker only moves behind a
/// barrier.
struct Checkpointer {
    shared: Arc<StoreShared>,
    kick: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(shared: Arc<StoreShared>) -> Self {
        let (kick, kicks) = mpsc::sync_channel::<()>(1);
        let on_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("metachat-sled-checkpoint".into())
            .spawn(move || {
                let mut recorded = None;
                loop {
                    let stopping = matches!(
                        kicks.recv_timeout(CHECKPOINT_EVERY),
                        Err(RecvTimeoutError::Disconnected)
                    );
                    checkpoint(&on_thread, &mut recorded);
                    if stopping {
                        break;
                    }
                }
            });
        let (kick, thread) = match thread {
            Ok(t) => (Some(kick), Some(t)),
            Err(e) => {
                // The writer then moves the buffer itself; still correct.
                tracing::warn!(error = %e, "no checkpoint thread: the writer moves the index into sled");
                (None, None)
            }
        };
        Checkpointer {
            shared,
            kick,
            thread,
        }
    }

    /// `waiting` index entries are buffered: asks for an early checkpoint,
    /// or moves them on this thread, if they are many. An error if they
    /// are too many and cannot be moved (sled fails).
    fn buffered(&self, waiting: usize) -> Result<()> {
        match &self.kick {
            Some(kick) if waiting < BUFFER_LIMIT => {
                if waiting >= CHECKPOINT_AT {
                    // A full channel means a checkpoint is asked for already.
                    let _ = kick.try_send(());
                }
                Ok(())
            }
            Some(_) => drain(&self.shared),
            None if waiting >= CHECKPOINT_AT => match drain(&self.shared) {
                Err(e) if waiting >= BUFFER_LIMIT => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.kick.take();
        match self.thread.take() {
            Some(t) => {
                let _ = t.join();
            }
            None => checkpoint(&self.shared, &mut None),
        }
    }
}

/// Moves the buffered index entries into sled (a failure is logged too).
fn drain(shared: &StoreShared) -> Result<()> {
    let moved = shared
        .buffer
        .drain(|entries| index::insert_entries(&shared.events, entries));
    if let Err(e) = &moved {
        tracing::warn!(error = %e, "could not move the event index into sled; it stays in memory");
    }
    moved
}

/// One checkpoint: the buffer into sled, then, if that moved the index on
/// since `recorded`, the barrier and the marker.
fn checkpoint(shared: &StoreShared, recorded: &mut Option<(u64, Location)>) {
    let _ = drain(shared);
    let Some((next, end)) = shared.buffer.in_sled().filter(|m| Some(*m) != *recorded) else {
        return;
    };
    // Every entry below `next` was inserted before this barrier began.
    let res = shared
        .core
        .syncer
        .sync()
        .and_then(|()| index::insert_mark(&shared.events, next, end));
    match res {
        Ok(()) => *recorded = Some((next, end)),
        Err(e) => {
            tracing::warn!(error = %e, "could not record how far the event index is complete");
        }
    }
}

/// Runs until every sender is gone.
pub(crate) fn run(shared: Arc<StoreShared>, rx: Receiver<Request>, max_group_events: usize) {
    let checkpointer = (shared.core.syncer.durability() == Durability::Sync)
        .then(|| Checkpointer::start(shared.clone()));
    let mut synced_recorded: Option<Instant> = None;
    let mut last_group = 0;
    while let Some(first) = next_request(&rx) {
        let mut group = vec![first];
        let mut n = group[0].events.len();
        let start = Instant::now();
        let mut last_arrival = start;
        while n < max_group_events {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.events.len();
                    group.push(r);
                    last_arrival = Instant::now();
                }
                Err(TryRecvError::Empty)
                    if last_group > 1
                        && last_arrival.elapsed() < GATHER_QUIET
                        && start.elapsed() < GATHER_AT_MOST =>
                {
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        last_group = group.len();
        commit_group(&shared, checkpointer.as_ref(), &mut synced_recorded, group);
    }
}

/// The next request: polled for a moment, then waited for. `None` once
/// every sender is gone.
fn next_request(rx: &Receiver<Request>) -> Option<Request> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(r) => return Some(r),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if start.elapsed() < POLL_BEFORE_SLEEP => {
                std::thread::yield_now();
            }
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// This group's view: heads and events not yet published.
struct Pending {
    first_position: u64,
    next_position: u64,
    heads: HashMap<StreamId, u64>,
    events: Vec<Envelope>,
    ids: HashMap<EventId, u64>,
}

impl Pending {
    fn head(&self, shared: &StoreShared, stream: &StreamId) -> Result<Option<u64>> {
        match self.heads.get(stream) {
            Some(v) => Ok(Some(*v)),
            None => shared.published_head(stream),
        }
    }

    /// The stored (or pending) envelope holding `id`, if any.
    fn lookup(&self, shared: &StoreShared, id: EventId) -> Result<Option<Envelope>> {
        if let Some(&pos) = self.ids.get(&id) {
            let idx = usize::try_from(pos - self.first_position).unwrap_or(usize::MAX);
            return Ok(self.events.get(idx).cloned());
        }
        // A new id is answered from memory (the index's filter).
        shared.stored_by_id(id)
    }
}

fn commit_group(
    shared: &StoreShared,
    checkpointer: Option<&Checkpointer>,
    synced_recorded: &mut Option<Instant>,
    group: Vec<Request>,
) {
    if let Err(e) = shared.core.syncer.check_healthy() {
        let msg = e.to_string();
        for r in group {
            let _ = r.reply.send(Err(failed(&msg)));
        }
        return;
    }
    let start = shared.visible_next();
    let mut pending = Pending {
        first_position: start,
        next_position: start,
        heads: HashMap::new(),
        events: Vec::new(),
        ids: HashMap::new(),
    };
    let now = Timestamp::now();
    let mut answers: Vec<(
        oneshot::Sender<Result<AppendOutcome>>,
        Result<AppendOutcome>,
    )> = Vec::with_capacity(group.len());
    for req in group {
        let res = validate_and_stage(
            shared,
            &mut pending,
            req.stream,
            req.expected,
            req.events,
            now,
        );
        answers.push((req.reply, res));
    }
    if pending.events.is_empty() {
        // Only refusals or idempotent re-appends of published events.
        for (tx, res) in answers {
            let _ = tx.send(res);
        }
        return;
    }
    let written = write(shared, checkpointer, synced_recorded, &pending);
    match written {
        Ok(Written { at, offsets }) => {
            shared.publish(pending.heads, pending.next_position);
            for (tx, res) in answers {
                let _ = tx.send(res);
            }
            // Only this thread looks ids up, and only for the next group:
            // the callers need not wait for their ids to be added.
            shared
                .ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .add(at, &pending.events, &offsets);
        }
        Err(e) => {
            let e = shared.core.syncer.fail(e);
            let msg = e.to_string();
            // The first caller gets the error itself; nothing staged is published.
            let mut first = Some(e);
            for (tx, res) in answers {
                let out = match res {
                    Ok(_) => Err(first.take().unwrap_or_else(|| failed(&msg))),
                    Err(refusal) => Err(refusal),
                };
                let _ = tx.send(out);
            }
        }
    }
}

fn failed(msg: &str) -> Error {
    super::error::SledError::Failed {
        reason: msg.to_owned(),
    }
    .into()
}

/// Checks one append against the group's view and stages its events.
fn validate_and_stage(
    shared: &StoreShared,
    pending: &mut Pending,
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    now: Timestamp,
) -> Result<AppendOutcome> {
    let stored = events
        .iter()
        .map(|e| pending.lookup(shared, e.event_id))
        .collect::<Result<Vec<_>>>()?;
    if let Some(outcome) = check_reappend(&stream, &events, &stored)? {
        return Ok(outcome);
    }
    let actual = pending.head(shared, &stream)?;
    expected.check(&stream, actual)?;
    let first_version = actual.map_or(0, |v| v + 1);
    let first_position = pending.next_position;
    let n = events.len() as u64;
    for (i, e) in events.into_iter().enumerate() {
        let pos = first_position + i as u64;
        pending.ids.insert(e.event_id, pos);
        pending.events.push(Envelope::recorded(
            e,
            stream.clone(),
            first_version + i as u64,
            pos,
            now,
        ));
    }
    pending.next_position = first_position + n;
    let last_version = first_version + n - 1;
    pending.heads.insert(stream, last_version);
    Ok(AppendOutcome {
        first_version,
        last_version,
        first_position,
        last_position: first_position + n - 1,
        recorded_at: now,
    })
}

/// Where a group's batch was written: its start and each record's offset
/// in the segment, for the [`IdIndex`](super::id_index::IdIndex).
struct Written {
    at: Location,
    offsets: Vec<u64>,
}

/// The group as one batch of the log, then indexed: after the log's sync
/// in the [`IndexBuffer`](super::index_buffer::IndexBuffer) under `Sync`,
/// as one sled batch with its marker under `Periodic`. Under `Sync`, where
/// the synced log ends is recorded in sled when `synced_recorded` is
/// [`RECORD_SYNCED_EVERY`] old or more. The group's ids go into the id
/// index after its callers are answered ([`commit_group`]).
fn write(
    shared: &StoreShared,
    checkpointer: Option<&Checkpointer>,
    synced_recorded: &mut Option<Instant>,
    pending: &Pending,
) -> Result<Written> {
    let bytes = pending
        .events
        .iter()
        .map(|e| 4 + wire::encoded_len_hint(e))
        .sum();
    let mut frame = segment::FrameBuilder::with_capacity(bytes);
    let lens: Vec<usize> = pending
        .events
        .iter()
        .map(|e| frame.record(|out| wire::encode_into(e, out)))
        .collect();
    let mut log = shared.core.log.writer();
    let at = log.append_frame(frame)?;
    let end = log.end();
    if shared.core.syncer.durability() == Durability::Sync {
        log.sync()?;
        drop(log);
        let now = Instant::now();
        if synced_recorded.is_none_or(|t| now.duration_since(t) >= RECORD_SYNCED_EVERY) {
            index::insert_synced(&shared.events, end)?;
            *synced_recorded = Some(now);
        }
        let waiting = shared.buffer.add(
            index::batch_entries(at, &pending.events),
            pending.next_position,
            end,
        );
        if let Some(c) = checkpointer {
            c.buffered(waiting)?;
        }
    } else {
        drop(log);
        let mut batch = sled::Batch::default();
        index::add_batch(&mut batch, at, &pending.events, 0);
        index::mark(&mut batch, pending.next_position, end);
        shared.events.apply_batch(batch).map_err(from_sled)?;
    }
    let offsets = segment::record_offsets(at, lens);
    Ok(Written { at, offsets })
}
