//! The catch-up-then-live loop shared by the projection runner, the relay
//! and any other follower of the global log (a worker, a sweep).

use std::future::Future;

use async_trait::async_trait;
use futures::StreamExt;

use super::{subscribe_all, EventReader, SubscriptionOptions};
use crate::error::Result;
use crate::event::Envelope;

/// What consumes the log: applies a batch, returns the next position to read.
#[async_trait]
pub trait LogSink: Sync {
    /// Applies `events` (a page of the global log, in order) and returns
    /// the next position to read: usually the last event's position + 1.
    async fn apply(&self, events: &[Envelope]) -> Result<u64>;
}

/// Feeds the global log from `next` to `sink` in pages of up to `page`
/// events until the head; the sink returns the next position to read.
///
/// While the sink applies a page, the page after it (from the last event's
/// position + 1) is read in the same task: a sink that waits (a commit on a
/// blocking thread, a network round trip) overlaps with the read. When the
/// sink returns another position, that page is dropped and the log is read
/// again from where the sink said; an error of the read ahead is returned
/// only after the sink's own result. A read ahead that found the head is
/// made again after the sink, so the events a sink appends itself are fed
/// to it as before.
pub async fn catch_up<S>(store: &S, mut next: u64, page: usize, sink: &impl LogSink) -> Result<u64>
where
    S: EventReader,
{
    let mut events = store.read_all(next, page).await?;
    loop {
        let Some(last) = events.last() else {
            return Ok(next);
        };
        let ahead_from = last.position + 1;
        let (applied, ahead) =
            futures::join!(sink.apply(&events), store.read_all(ahead_from, page));
        next = applied?;
        events = match ahead {
            // At the head when read ahead: read once more after the sink,
            // which may have appended to the log itself.
            Ok(ahead) if next == ahead_from && !ahead.is_empty() => ahead,
            Err(e) if next == ahead_from => return Err(e),
            _ => store.read_all(next, page).await?,
        };
    }
}

/// Catches up from `next`, then follows the log live, handing `sink` what
/// is ready (up to `page` events at a time) until `shutdown` completes.
/// Returns the next position to read.
pub async fn follow<S>(
    store: &S,
    next: u64,
    page: usize,
    shutdown: impl Future<Output = ()> + Send,
    sink: &impl LogSink,
) -> Result<u64>
where
    S: EventReader + Clone + Unpin + 'static,
{
    let mut next = catch_up(store, next, page, sink).await?;
    let opts = SubscriptionOptions {
        page_size: page,
        ..Default::default()
    };
    let mut sub = subscribe_all(store.clone(), next, opts).ready_chunks(page);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(next),
            chunk = sub.next() => {
                let Some(chunk) = chunk else { return Ok(next) };
                let events = chunk.into_iter().collect::<Result<Vec<_>>>()?;
                next = sink.apply(&events).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::event::{NewEvent, StreamId};
    use crate::memory::InMemoryEventStore;
    use crate::store::{EventAppender, ExpectedVersion};

    /// Records the positions of every page it is handed; returns the next
    /// position as `next_of` says.
    struct Pages {
        seen: Mutex<Vec<Vec<u64>>>,
        next_of: fn(&[Envelope]) -> u64,
    }

    #[async_trait]
    impl LogSink for Pages {
        async fn apply(&self, events: &[Envelope]) -> Result<u64> {
            let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
            self.seen.lock().unwrap().push(positions);
            Ok((self.next_of)(events))
        }
    }

    async fn store_of(n: usize) -> Arc<InMemoryEventStore> {
        let store = Arc::new(InMemoryEventStore::new());
        crate::memory::append_n(&store, "s", n).await;
        store
    }

    #[tokio::test]
    async fn the_read_ahead_hands_every_event_once_in_order() {
        let store = store_of(10).await;
        let sink = Pages {
            seen: Mutex::new(Vec::new()),
            next_of: |e| e.last().map_or(0, |l| l.position + 1),
        };
        assert_eq!(catch_up(&store, 2, 3, &sink).await.unwrap(), 10);
        let seen = sink.seen.into_inner().unwrap();
        assert_eq!(seen, vec![vec![2, 3, 4], vec![5, 6, 7], vec![8, 9]]);
    }

    /// Appends one event to the log it follows when it is handed position
    /// `at`, after yielding (so that the read ahead runs first).
    struct Appending {
        store: Arc<InMemoryEventStore>,
        at: u64,
        seen: Mutex<Vec<u64>>,
    }

    #[async_trait]
    impl LogSink for Appending {
        async fn apply(&self, events: &[Envelope]) -> Result<u64> {
            tokio::task::yield_now().await;
            for e in events {
                self.seen.lock().unwrap().push(e.position);
                if e.position == self.at {
                    let stream = StreamId::new("t").unwrap();
                    let event = NewEvent::new("f", b"{}".to_vec());
                    self.store
                        .append(&stream, ExpectedVersion::Any, vec![event])
                        .await?;
                }
            }
            Ok(events.last().map_or(0, |l| l.position + 1))
        }
    }

    #[tokio::test]
    async fn events_a_sink_appends_at_the_head_are_fed_to_it() {
        let store = store_of(3).await;
        let sink = Appending {
            store: store.clone(),
            at: 2,
            seen: Mutex::new(Vec::new()),
        };
        assert_eq!(catch_up(&store, 0, 3, &sink).await.unwrap(), 4);
        assert_eq!(sink.seen.into_inner().unwrap(), vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_sink_that_takes_less_is_read_again_from_where_it_said() {
        let store = store_of(6).await;
        // Takes only the first event of each page: the page read ahead is
        // dropped and the log read again from the next one.
        let sink = Pages {
            seen: Mutex::new(Vec::new()),
            next_of: |e| e[0].position + 1,
        };
        assert_eq!(catch_up(&store, 0, 4, &sink).await.unwrap(), 6);
        let firsts: Vec<u64> = sink
            .seen
            .into_inner()
            .unwrap()
            .iter()
            .map(|p| p[0])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4, 5]);
    }
}
