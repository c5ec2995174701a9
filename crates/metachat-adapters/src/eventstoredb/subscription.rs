//! [`EventStoreDbSubscription`]: a native catch-up subscription to the
//! namespace's events in `$all`, that reconnects with backoff from the last
//! event it saw.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{self, BoxStream, Stream};
use kurrentdb::{StreamPosition, SubscribeToAllOptions, SubscriptionEvent};
use metachat_core::event::Envelope;
use metachat_core::Result;

use super::error;
use super::index::Resume;
use super::record::{is_system_type, Recorded};
use super::store::{recorded, EventStoreDbEventStore};

/// The namespace's global log from a position, pushed by the server:
/// catch-up, then live, each position once and in order, the same
/// envelopes (positions included) as [`read_all`](metachat_core::store::EventReader::read_all).
///
/// When the connection drops (or the server is unavailable, or a node
/// stops being the leader), it resubscribes after a
/// [`Backoff`](super::Backoff) wait *from the last event it saw*, for as long
/// as it takes; the wait resets once events flow again. Any other error
/// (access denied, a record it cannot decode, positions that changed under
/// it after a scavenge) is yielded once and ends the stream: resume with
/// [`EventStoreDbEventStore::subscribe`] from [`position`](Self::position).
///
/// Build one with [`EventStoreDbEventStore::subscribe`].
pub struct EventStoreDbSubscription {
    events: BoxStream<'static, Result<Envelope>>,
    next: Arc<AtomicU64>,
}

impl std::fmt::Debug for EventStoreDbSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStoreDbSubscription")
            .field("next", &self.position())
            .finish_non_exhaustive()
    }
}

impl EventStoreDbSubscription {
    /// The position of the next event it will yield: where to resume
    /// after handling every event it yielded.
    pub fn position(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }
}

impl Stream for EventStoreDbSubscription {
    type Item = Result<Envelope>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

struct State {
    store: EventStoreDbEventStore,
    /// Yield nothing below this position.
    from: u64,
    /// The subscription's place in `$all` and the global position of the
    /// next namespace event after it; `None` until located.
    at: Option<(Resume, u64)>,
    live: Option<kurrentdb::Subscription>,
    /// Failed attempts in a row.
    attempt: u32,
    next: Arc<AtomicU64>,
    done: bool,
}

impl EventStoreDbEventStore {
    /// Subscribes to the namespace's global log from position `from`
    /// (inclusive): a catch-up subscription to `$all` with the namespace's
    /// server-side filter, started right after the `$all` position of
    /// `from - 1`.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use metachat_adapters::eventstoredb::{EventStoreDbConfig, EventStoreDbEventStore};
    ///
    /// # async fn run() -> metachat_core::Result<()> {
    /// let store = EventStoreDbEventStore::connect(&EventStoreDbConfig::from_env()?.build()?).await?;
    /// let checkpoint = 0; // e.g. loaded from a read model
    /// let mut sub = store.subscribe(checkpoint);
    /// while let Some(event) = sub.next().await {
    ///     let event = event?;
    ///     println!("{} {} {}", event.position, event.stream_id, event.event_type);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, from: u64) -> EventStoreDbSubscription {
        let next = Arc::new(AtomicU64::new(from));
        let state = State {
            store: self.clone(),
            from,
            at: None,
            live: None,
            attempt: 0,
            next: next.clone(),
            done: false,
        };
        EventStoreDbSubscription {
            events: Box::pin(stream::unfold(state, step)),
            next,
        }
    }

    /// Where the events from position `from` on start in `$all`, and the
    /// global position of the first namespace event after that point (below
    /// `from` when `from` lies past the head: the events in between are
    /// skipped as they arrive).
    async fn locate(&self, from: u64) -> Result<(Resume, u64)> {
        if let Some(r) = self.index().resume_before(from) {
            return Ok((r, from));
        }
        self.scan().await?;
        let located = self.index().resume_before(from);
        Ok(match located {
            Some(r) => (r, from),
            None => self.index().scan_point(),
        })
    }
}

/// One step: the next envelope, or the end after a permanent error.
async fn step(mut st: State) -> Option<(Result<Envelope>, State)> {
    if st.done {
        return None;
    }
    loop {
        match next_event(&mut st).await {
            Ok(e) => return Some((Ok(e), st)),
            Err(e) if e.is_retryable() => {
                // Resubscribe from the last event seen, after a wait.
                st.live = None;
                let wait = st.store.inner.config.backoff.delay(st.attempt);
                st.attempt = st.attempt.saturating_add(1);
                tracing::warn!(
                    namespace = st.store.namespace(),
                    error = %e,
                    ?wait,
                    "eventstoredb subscription lost its connection; resubscribing"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                st.done = true;
                return Some((Err(e), st));
            }
        }
    }
}

/// The next envelope from the live subscription, opening it if needed.
async fn next_event(st: &mut State) -> Result<Envelope> {
    let (mut resume, mut dense) = match st.at {
        Some(at) => at,
        None => {
            let at = st.store.locate(st.from).await?;
            st.at = Some(at);
            at
        }
    };
    loop {
        let live = match &mut st.live {
            Some(live) => live,
            None => {
                let position = match resume {
                    Resume::Start => StreamPosition::Start,
                    Resume::After(p) => StreamPosition::Position(p),
                };
                let opts = SubscribeToAllOptions::default()
                    .position(position)
                    .filter(st.store.filter())
                    .requires_leader(true);
                st.live
                    .insert(st.store.inner.client.subscribe_to_all(&opts).await)
            }
        };
        let event = match live.next_subscription_event().await {
            Ok(SubscriptionEvent::EventAppeared(e)) => e,
            Ok(SubscriptionEvent::Checkpoint(_) | SubscriptionEvent::CaughtUp(_)) => {
                st.attempt = 0;
                continue;
            }
            Ok(_) => continue,
            Err(e) => return Err(error::op("subscribe_all", e)),
        };
        st.attempt = 0;
        let Some(e) = recorded(event) else { continue };
        if let Resume::After(start) = resume {
            // Whether the server repeats the event at its start position
            // is not relied upon.
            if e.position <= start {
                continue;
            }
        }
        resume = Resume::After(e.position);
        st.at = Some((resume, dense));
        if is_system_type(&e.event_type) {
            continue;
        }
        let p = dense;
        dense += 1;
        st.at = Some((resume, dense));
        st.store.index().merge(p, [(e.position, e.id)])?;
        if p < st.from {
            continue;
        }
        let envelope = Recorded::of(&e).envelope(st.store.namespace(), p)?;
        st.next.store(p + 1, Ordering::Release);
        return Ok(envelope);
    }
}
