//! [`Revocations`]: what a role without the user service's sessions knows
//! of ended sessions, learnt from Kafka, and the barrier that makes a
//! logout effective at once everywhere.
//!
//! Every process with a `diary` or `matching` role follows two topics that
//! the relay fills from the log: `{prefix}session` (`SessionRevoked`, a
//! logout) and `{prefix}user` (`UserErased`: every session of the user).
//! It reads them from the beginning at start, as a consumer group of its
//! own, and keeps the revocations in memory (a revoked session is
//! forgotten once its tokens would have expired anyway).
//!
//! **The barrier.** A logout or an erasure answers once the revocation is
//! in Kafka (the user role waits for its own copy to come back,
//! [`Revocations::wait_for`], [`Revocations::wait_for_erasure`]).
//! Before deciding on a token, a verifier asks the broker for the topics'
//! high watermarks and waits until it has read up to them
//! ([`Revocations::check`]): so a token used after its logout answered is
//! refused by every role. Concurrent checks share one round trip (a check
//! waits for a sync that started after it arrived). When Kafka cannot be
//! asked, the check goes on with what is known (logged, counted in
//! `metachat_revocation_sync_failures_total`): revocations are then as
//! fresh as the bus, and a token lives at most its short lifetime.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use metachat_adapters::kafka::KafkaEventBus;
use metachat_core::aggregate::Aggregate as _;
use metachat_core::event::Envelope;
use metachat_domain::session::{self, SessionEvent};
use metachat_domain::UserId;
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::Stop;
use crate::token::{now_secs, TokenClaims};

/// Syncs with the broker that failed (the check went on with what was
/// known).
pub(crate) const SYNC_FAILURES: &str = "metachat_revocation_sync_failures_total";
/// The event type of an erasure.
const USER_ERASED: &str = "UserErased";

#[derive(Debug, Default)]
struct Known {
    /// Revoked sessions and when their tokens expire anyway.
    sessions: HashMap<Uuid, u64>,
    /// Erased users.
    erased: HashSet<UserId>,
    /// Per topic and partition: the offset of the next record to read.
    next: HashMap<(String, i32), i64>,
}

/// Revoked sessions and erased users, from the bus (see the module docs).
#[derive(Debug)]
pub(crate) struct Revocations {
    bus: KafkaEventBus,
    topics: [String; 2],
    known: Mutex<Known>,
    advanced: Notify,
    /// When the last sync with the broker started.
    last_sync: tokio::sync::Mutex<Option<Instant>>,
    /// The longest a check waits to read up to the watermarks.
    wait: Duration,
}

impl Revocations {
    /// Revocations from the `session` and `user` topics under `prefix`.
    pub(crate) fn new(bus: KafkaEventBus, prefix: &str, wait: Duration) -> Arc<Self> {
        Arc::new(Revocations {
            bus,
            topics: [
                format!("{prefix}{}", session::SESSION_KIND),
                format!("{prefix}{}", metachat_domain::User::KIND),
            ],
            known: Mutex::new(Known::default()),
            advanced: Notify::new(),
            last_sync: tokio::sync::Mutex::new(None),
            wait,
        })
    }

    /// Follows the topics as consumer group `group` until `stop`; after an
    /// error, subscribes again a second later (what was learnt is kept).
    pub(crate) async fn run(self: Arc<Self>, group: String, stop: Stop) {
        loop {
            tokio::select! {
                () = stop.wait() => return,
                outcome = self.follow(&group) => {
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "following the revocations failed; again in 1 s");
                    }
                }
            }
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn follow(&self, group: &str) -> metachat_core::Result<()> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let mut merged = self
            .bus
            .subscribe_topics_with_origin(&topics, group)
            .await?;
        while let Some(item) = merged.next().await {
            let delivery = item?;
            self.learn(&delivery.delivery.envelope);
            {
                let mut known = self.known.lock();
                let o = &delivery.origin;
                let next = known
                    .next
                    .entry((o.topic.clone(), o.partition))
                    .or_insert(0);
                *next = (*next).max(o.offset + 1);
            }
            self.advanced.notify_waiters();
            delivery.delivery.ack().await?;
        }
        Err(metachat_core::Error::backend(
            "the revocation streams ended",
        ))
    }

    /// Folds one event in.
    fn learn(&self, env: &Envelope) {
        let mut known = self.known.lock();
        if env.event_type == USER_ERASED {
            if let Some(user) = user_of(env) {
                known.erased.insert(user);
            }
            return;
        }
        if env.stream_id.category() != session::SESSION_KIND {
            return;
        }
        use metachat_core::codec::Codec as _;
        match session::codec().decode(env) {
            Ok(Some(SessionEvent::SessionRevoked {
                session_id,
                expires_at,
                ..
            })) => {
                let now = now_secs();
                if expires_at > now {
                    known.sessions.insert(session_id, expires_at);
                }
                if known.sessions.len().is_multiple_of(1_024) {
                    known.sessions.retain(|_, exp| *exp > now);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, id = %env.event_id, "undecodable session event skipped")
            }
        }
    }

    /// Refuses `claims` if its session was revoked or its user erased, as
    /// of the broker's state when this check began (see the module docs).
    pub(crate) async fn check(&self, claims: &TokenClaims) -> Result<(), ApiError> {
        self.sync().await;
        let known = self.known.lock();
        if known.erased.contains(&claims.user_id) || known.sessions.contains_key(&claims.session_id)
        {
            return Err(ApiError::Unauthorized);
        }
        Ok(())
    }

    /// Waits until `session`'s revocation was read from the bus, at most
    /// `within`; whether it was.
    pub(crate) async fn wait_for(&self, session: Uuid, within: Duration) -> bool {
        self.wait_until(within, |k| k.sessions.contains_key(&session))
            .await
    }

    /// Waits until `user`'s erasure was read from the bus, at most
    /// `within`; whether it was.
    pub(crate) async fn wait_for_erasure(&self, user: UserId, within: Duration) -> bool {
        self.wait_until(within, |k| k.erased.contains(&user)).await
    }

    async fn wait_until(&self, within: Duration, done: impl Fn(&Known) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.advanced.notified();
            if done(&self.known.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.known.lock());
            }
        }
    }

    /// Reads up to the topics' current high watermarks (one sync shared by
    /// the checks that arrived before it started).
    async fn sync(&self) {
        let arrived = Instant::now();
        let mut last = self.last_sync.lock().await;
        if last.is_some_and(|t| t >= arrived) {
            return;
        }
        *last = Some(Instant::now());
        let mut targets = Vec::new();
        for topic in &self.topics {
            match self.bus.high_watermarks(topic).await {
                Ok(marks) => targets.extend(marks.into_iter().map(|(p, h)| (topic.clone(), p, h))),
                Err(e) => {
                    metrics::counter!(SYNC_FAILURES).increment(1);
                    tracing::warn!(error = %e, "cannot ask Kafka for the revocation topics' watermarks: checking with what is known");
                    return;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let notified = self.advanced.notified();
            let behind = {
                let known = self.known.lock();
                targets.iter().any(|(t, p, high)| {
                    *high > 0 && known.next.get(&(t.clone(), *p)).copied().unwrap_or(0) < *high
                })
            };
            if !behind {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                metrics::counter!(SYNC_FAILURES).increment(1);
                tracing::warn!(
                    wait_ms = u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX),
                    "the revocations did not catch up with Kafka in time: checking with what is known"
                );
                return;
            }
        }
    }
}

/// The user of a `user-{id}` stream.
fn user_of(env: &Envelope) -> Option<UserId> {
    let id = env.stream_id.as_str();
    let rest = id
        .strip_prefix(metachat_domain::User::KIND)?
        .strip_prefix('-')?;
    rest.parse::<Uuid>().ok().map(UserId::from)
}
