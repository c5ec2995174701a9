//! The single writer: group commit of every queued append.
//!
//! One thread owns all appends. It takes every request queued (up to
//! [`SledConfig::max_group_events`](super::SledConfig::max_group_events)),
//! validates them in order against the stream heads (the published ones plus
//! this group's own), writes all accepted events as one batch of the
//! segment log, then syncs it once (under [`Durability::Sync`](super::Durability::Sync))
//! while a second thread, the indexer, applies the group's index entries to
//! sled with one `Tree::apply_batch` (no barrier: the index is brought back
//! in line with the log on open). Once both are done it publishes the new
//! heads and position and answers every caller.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

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

/// The thread that applies index batches, so that the writer can sync the
/// log meanwhile. Without it (the thread could not start), batches are
/// applied on the writer's thread.
struct Indexer {
    tree: sled::Tree,
    jobs: Option<Sender<sled::Batch>>,
    done: Option<Receiver<Result<()>>>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    fn start(tree: sled::Tree) -> Self {
        let (jobs, job_rx) = mpsc::channel::<sled::Batch>();
        let (done_tx, done) = mpsc::channel();
        let worker = tree.clone();
        let thread = std::thread::Builder::new()
            .name("metachat-sled-index".into())
            .spawn(move || {
                while let Ok(batch) = job_rx.recv() {
                    if done_tx
                        .send(worker.apply_batch(batch).map_err(from_sled))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        match thread {
            Ok(t) => Indexer {
                tree,
                jobs: Some(jobs),
                done: Some(done),
                thread: Some(t),
            },
            Err(e) => {
                tracing::warn!(error = %e, "no index thread: the writer indexes on its own");
                Indexer {
                    tree,
                    jobs: None,
                    done: None,
                    thread: None,
                }
            }
        }
    }

    /// Starts applying `batch`; `Some` result when it was applied at once.
    fn submit(&self, batch: sled::Batch) -> Option<Result<()>> {
        match &self.jobs {
            Some(jobs) => match jobs.send(batch) {
                Ok(()) => None,
                Err(_) => Some(Err(Error::Closed)),
            },
            None => Some(self.tree.apply_batch(batch).map_err(from_sled)),
        }
    }

    /// The result of the batch submitted last.
    fn wait(&self, submitted: Option<Result<()>>) -> Result<()> {
        match (submitted, &self.done) {
            (Some(r), _) => r,
            (None, Some(done)) => done.recv().map_err(|_| Error::Closed)?,
            (None, None) => Err(Error::Closed),
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the writer carries from one group to the next.
struct State {
    indexer: Indexer,
    /// The log's end after the last sync not yet recorded in the index.
    synced: Option<Location>,
}

impl State {
    /// Records the last synced end now (the writer is idle or stopping),
    /// rather than with the next group's entries.
    fn record_synced(&mut self, shared: &StoreShared) {
        if let Some(end) = self.synced.take() {
            let mut batch = sled::Batch::default();
            index::mark_synced(&mut batch, end);
            if let Err(e) = shared.events.apply_batch(batch) {
                tracing::warn!(error = %e, "could not record how far the event log is synced");
            }
        }
    }
}

/// Runs until every sender is gone.
pub(crate) fn run(shared: Arc<StoreShared>, rx: Receiver<Request>, max_group_events: usize) {
    let mut state = State {
        indexer: Indexer::start(shared.events.clone()),
        synced: None,
    };
    loop {
        let first = match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => {
                state.record_synced(&shared);
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let mut group = vec![first];
        let mut n = group[0].events.len();
        while n < max_group_events {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.events.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        commit_group(&shared, &mut state, group);
    }
    state.record_synced(&shared);
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

fn commit_group(shared: &StoreShared, state: &mut State, group: Vec<Request>) {
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
    let written = write(shared, state, &pending);
    match written {
        Ok(()) => {
            shared.publish(pending.heads, pending.next_position);
            for (tx, res) in answers {
                let _ = tx.send(res);
            }
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

/// The group as one batch of the log, synced (under `Sync`) while the
/// indexer applies its index entries; then its ids go into the filter.
fn write(shared: &StoreShared, state: &mut State, pending: &Pending) -> Result<()> {
    let records: Vec<Vec<u8>> = pending.events.iter().map(wire::encode).collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let sync = shared.core.syncer.durability() == Durability::Sync;
    let mut log = shared.core.log.writer();
    let at = log.append(&refs)?;
    let end = log.end();
    let mut batch = sled::Batch::default();
    index::add_batch(&mut batch, at, &pending.events, 0);
    index::mark(&mut batch, pending.next_position, end);
    if let Some(synced) = state.synced.take() {
        index::mark_synced(&mut batch, synced);
    }
    let submitted = state.indexer.submit(batch);
    let synced = if sync { log.sync() } else { Ok(()) };
    drop(log);
    let indexed = state.indexer.wait(submitted);
    synced?;
    indexed?;
    if sync {
        state.synced = Some(end);
    }
    let offsets = segment::record_offsets(at, records.iter().map(Vec::len));
    shared
        .ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(at, &pending.events, &offsets);
    Ok(())
}
