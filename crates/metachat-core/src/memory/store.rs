use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;
use crate::event::{Envelope, EventId, Limits, NewEvent, StreamId, Timestamp};
use crate::store::{
    check_reappend, AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion,
    HeadWatch,
};

/// An event store in memory. Appends are atomic and serialised by one lock.
#[derive(Debug)]
pub struct InMemoryEventStore {
    state: Mutex<State>,
    head: watch::Sender<u64>,
    limits: Limits,
}

#[derive(Debug, Default)]
struct State {
    log: Vec<Envelope>,
    streams: HashMap<StreamId, Vec<u64>>,
    ids: HashMap<EventId, u64>,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventStore {
    /// An empty store with default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        InMemoryEventStore {
            state: Mutex::new(State::default()),
            head: watch::channel(0).0,
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied append:
        // state is only mutated after every check passed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EventAppender for InMemoryEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.limits.check(&events)?;
        let mut st = self.lock();
        let stored: Vec<Option<Envelope>> = events
            .iter()
            .map(|e| {
                st.ids
                    .get(&e.event_id)
                    .and_then(|&p| st.log.get(idx(p)).cloned())
            })
            .collect();
        if let Some(outcome) = check_reappend(stream, &events, &stored)? {
            return Ok(outcome);
        }
        let actual = st
            .streams
            .get(stream)
            .and_then(|v| v.len().checked_sub(1))
            .map(|v| v as u64);
        expected.check(stream, actual)?;
        let first_version = actual.map_or(0, |v| v + 1);
        let first_position = st.log.len() as u64;
        let now = Timestamp::now();
        let n = events.len() as u64;
        for (i, e) in events.into_iter().enumerate() {
            let pos = first_position + i as u64;
            st.ids.insert(e.event_id, pos);
            st.streams.entry(stream.clone()).or_default().push(pos);
            let env = Envelope::recorded(e, stream.clone(), first_version + i as u64, pos, now);
            st.log.push(env);
        }
        let next = st.log.len() as u64;
        drop(st);
        // Two appenders can reach this line out of order: never move back.
        self.head.send_modify(|h| *h = (*h).max(next));
        Ok(AppendOutcome {
            first_version,
            last_version: first_version + n - 1,
            first_position,
            last_position: first_position + n - 1,
            recorded_at: now,
        })
    }
}

#[async_trait]
impl EventReader for InMemoryEventStore {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        let st = self.lock();
        let Some(positions) = st.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let len = positions.len() as u64;
        let pick = |v: u64| {
            positions
                .get(idx(v))
                .and_then(|&p| st.log.get(idx(p)))
                .cloned()
        };
        Ok(match direction {
            Direction::Forward => (from.min(len)..len).take(limit).filter_map(pick).collect(),
            Direction::Backward => {
                if len == 0 {
                    return Ok(Vec::new());
                }
                let start = from.min(len - 1);
                (0..=start).rev().take(limit).filter_map(pick).collect()
            }
        })
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let st = self.lock();
        let len = st.log.len() as u64;
        let start = idx(from.min(len));
        Ok(st.log[start..].iter().take(limit).cloned().collect())
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        Ok(self
            .lock()
            .streams
            .get(stream)
            .and_then(|v| v.len().checked_sub(1))
            .map(|v| v as u64))
    }

    async fn next_position(&self) -> Result<u64> {
        Ok(self.lock().log.len() as u64)
    }

    fn head_watch(&self) -> Option<HeadWatch> {
        Some(HeadWatch(self.head.subscribe()))
    }
}

/// A position or version as an index; beyond `usize` it indexes nothing.
fn idx(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Appends `n` events of type `A` to `stream`, one append each (for the
/// crate's tests).
#[cfg(test)]
pub(crate) async fn append_n(store: &InMemoryEventStore, stream: &str, n: usize) {
    let s = StreamId::new(stream).expect("a valid stream id");
    for _ in 0..n {
        store
            .append(
                &s,
                ExpectedVersion::Any,
                vec![NewEvent::new("A", b"{}".to_vec())],
            )
            .await
            .expect("an in-memory append");
    }
}
