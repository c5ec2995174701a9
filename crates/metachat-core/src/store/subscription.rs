use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use tokio::sync::watch;

use super::EventReader;
use crate::error::Result;
use crate::event::Envelope;

/// Wakes subscribers when a store's next position moves.
///
/// Stores hold the [`watch::Sender`] and bump it after each visible append.
#[derive(Debug, Clone)]
pub struct HeadWatch(pub watch::Receiver<u64>);

/// How a [`Subscription`] reads.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionOptions {
    /// Events fetched per `read_all` call. Default 512.
    pub page_size: usize,
    /// How often to poll when the store offers no [`HeadWatch`]. Default 50 ms.
    pub poll_interval: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            page_size: 512,
            poll_interval: Duration::from_millis(50),
        }
    }
}

type Fetch = BoxFuture<'static, (Result<Vec<Envelope>>, Option<HeadWatch>)>;

/// The global log from a position: catch-up, then live. Yields each position
/// once, in order, without gaps (given a store that never shows `N + 1`
/// before `N`). After an error the stream ends; resume from the position
/// after the last event handled.
pub struct Subscription<S> {
    store: S,
    next: u64,
    opts: SubscriptionOptions,
    buffer: VecDeque<Envelope>,
    watch: Option<HeadWatch>,
    fetch: Option<Fetch>,
    done: bool,
}

impl<S> std::fmt::Debug for Subscription<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("next", &self.next)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// Subscribes to `store`'s global log from position `from` (inclusive).
///
/// ```
/// # use metachat_core::{memory::InMemoryEventStore, store::*, event::*};
/// # use futures::StreamExt;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = std::sync::Arc::new(InMemoryEventStore::new());
/// let s = StreamId::new("user-1").unwrap();
/// store.append(&s, ExpectedVersion::NoStream, vec![NewEvent::new("A", b"{}".to_vec())]).await.unwrap();
/// let mut sub = subscribe_all(store.clone(), 0, SubscriptionOptions::default());
/// assert_eq!(sub.next().await.unwrap().unwrap().position, 0);
/// # });
/// ```
pub fn subscribe_all<S>(store: S, from: u64, opts: SubscriptionOptions) -> Subscription<S>
where
    S: EventReader + Clone + Unpin + 'static,
{
    let watch = store.head_watch();
    Subscription {
        store,
        next: from,
        opts,
        buffer: VecDeque::new(),
        watch,
        fetch: None,
        done: false,
    }
}

impl<S> Subscription<S> {
    /// The position of the next event this subscription will yield.
    pub fn position(&self) -> u64 {
        self.next - self.buffer.len() as u64
    }
}

impl<S> Stream for Subscription<S>
where
    S: EventReader + Clone + Unpin + 'static,
{
    type Item = Result<Envelope>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if this.fetch.is_none() {
                this.fetch = Some(fetch(
                    this.store.clone(),
                    this.next,
                    this.opts,
                    this.watch.take(),
                ));
            }
            let fut = this.fetch.as_mut().expect("set above");
            let (res, watch) = futures::ready!(fut.poll_unpin(cx));
            this.fetch = None;
            this.watch = watch;
            match res {
                Ok(events) => {
                    for e in events {
                        // Defensive: a store must return ascending positions >= next.
                        if e.position >= this.next {
                            this.next = e.position + 1;
                            this.buffer.push_back(e);
                        }
                    }
                }
                Err(err) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }
}

/// Reads a page; if it is empty, waits for the head to move (or polls) and reads again.
fn fetch<S>(store: S, from: u64, opts: SubscriptionOptions, watch: Option<HeadWatch>) -> Fetch
where
    S: EventReader + Clone + Unpin + 'static,
{
    async move {
        let mut watch = watch;
        loop {
            if let Some(w) = watch.as_mut() {
                // Mark the current value seen before reading, so an append
                // that lands after the read wakes us.
                w.0.borrow_and_update();
            }
            match store.read_all(from, opts.page_size).await {
                Ok(events) if events.is_empty() => {}
                other => return (other, watch),
            }
            match watch.as_mut() {
                Some(w) => {
                    if w.0.changed().await.is_err() {
                        // The store was dropped: fall back to polling.
                        watch = None;
                    }
                }
                None => tokio::time::sleep(opts.poll_interval).await,
            }
        }
    }
    .boxed()
}
