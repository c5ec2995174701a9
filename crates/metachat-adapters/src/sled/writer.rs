//! The single writer: group commit of every queued append.
//!
//! One thread owns all appends. It takes every request queued (up to
//! [`SledConfig::max_group_events`](super::SledConfig::max_group_events)),
//! validates them in order against the stream heads (the published ones plus
//! this group's own), writes all accepted events as one batch of the
//! segment log, syncs it once (under [`Durability::Sync`](super::Durability::Sync)),
//! indexes it in sled with one `Tree::apply_batch` (no barrier: the index
//! is rebuilt from the log on open), then publishes the new heads and
//! position and answers every caller.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use metachat_core::event::{wire, Envelope, EventId, NewEvent, StreamId, Timestamp};
use metachat_core::store::{check_reappend, AppendOutcome, ExpectedVersion};
use metachat_core::{Error, Result};
use tokio::sync::oneshot;

use super::config::Durability;
use super::error::from_sled;
use super::index;
use super::store::StoreShared;

/// One append waiting for the writer.
pub(crate) struct Request {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome>>,
}

/// Runs until every sender is gone.
pub(crate) fn run(shared: Arc<StoreShared>, rx: Receiver<Request>, max_group_events: usize) {
    while let Ok(first) = rx.recv() {
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
        commit_group(&shared, group);
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
        // A new id is answered from memory; a possible one from the index.
        let filter = shared.ids.lock().unwrap_or_else(|p| p.into_inner());
        if !filter.may_contain(id.0.as_bytes()) {
            return Ok(None);
        }
        drop(filter);
        shared.stored_by_id(id)
    }
}

fn commit_group(shared: &StoreShared, group: Vec<Request>) {
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
    let written = write(shared, &pending);
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

/// The group as one batch of the log, synced (under `Sync`), then its
/// index entries as one sled batch, and its ids in the filter.
fn write(shared: &StoreShared, pending: &Pending) -> Result<()> {
    let records: Vec<Vec<u8>> = pending.events.iter().map(wire::encode).collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let (at, end) = {
        let mut log = shared.core.log.writer();
        let at = log.append(&refs)?;
        if shared.core.syncer.durability() == Durability::Sync {
            log.sync()?;
        }
        (at, log.end())
    };
    let mut batch = sled::Batch::default();
    let lens: Vec<usize> = records.iter().map(Vec::len).collect();
    index::add_batch(&mut batch, at, &pending.events, &lens, 0);
    index::mark(&mut batch, pending.next_position, end);
    shared.events.apply_batch(batch).map_err(from_sled)?;
    let mut filter = shared.ids.lock().unwrap_or_else(|p| p.into_inner());
    for e in &pending.events {
        filter.insert(e.event_id.0.as_bytes());
    }
    Ok(())
}
