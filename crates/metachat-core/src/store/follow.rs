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
pub async fn catch_up<S>(store: &S, mut next: u64, page: usize, sink: &impl LogSink) -> Result<u64>
where
    S: EventReader,
{
    loop {
        let events = store.read_all(next, page).await?;
        if events.is_empty() {
            return Ok(next);
        }
        next = sink.apply(&events).await?;
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
