//! Clients that lost every broker, and how they are replaced.
//!
//! librdkafka (2.12, and its main branch when this was written) removes
//! every broker a Metadata response does not list, and a response may list
//! none: a lone broker in controlled shutdown answers so while it still
//! serves requests. The client is then left without a broker to ask and
//! never bootstraps again (confluentinc/librdkafka#5301): a consumer stays
//! in `query-coord` for good, a producer's sends time out. A single-broker
//! cluster meets this on a clean restart.
//!
//! Each of our clients reports librdkafka's statistics every
//! [`STATS_INTERVAL_MS`]; [`Orphan`] records since when the client has had
//! no broker of its own (learned or bootstrap), and the bus replaces a
//! client orphaned for [`ORPHANED_AFTER`]: the producer is made again, a
//! consumer's stream ends with [`Error::Unavailable`](metachat_core::Error)
//! so that its owner subscribes again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;

/// How often a client reports its statistics (`statistics.interval.ms`).
pub(crate) const STATS_INTERVAL_MS: &str = "1000";

/// How long a client may have no broker before it is replaced: several
/// statistics reports, so that a broker being swapped for its successor in
/// one Metadata response is not mistaken for a loss.
pub(crate) const ORPHANED_AFTER: Duration = Duration::from_secs(4);

/// Since when a client has had no broker of its own, from its statistics.
#[derive(Debug, Default)]
pub(crate) struct Orphan {
    since: Mutex<Option<Instant>>,
}

#[derive(serde::Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, StatsBroker>,
}

#[derive(serde::Deserialize)]
struct StatsBroker {
    #[serde(default)]
    source: String,
}

impl Orphan {
    /// Reads one statistics report (librdkafka's JSON).
    pub(crate) fn observe(&self, json: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(json) else {
            return;
        };
        let orphaned = !stats
            .brokers
            .values()
            .any(|b| b.source == "learned" || b.source == "configured");
        self.set(orphaned, Instant::now());
    }

    fn set(&self, orphaned: bool, now: Instant) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        match (orphaned, *since) {
            (true, None) => *since = Some(now),
            (false, Some(_)) => *since = None,
            _ => {}
        }
    }

    /// Whether the client has had no broker for [`ORPHANED_AFTER`] or more.
    pub(crate) fn is_orphaned(&self) -> bool {
        self.is_orphaned_at(Instant::now())
    }

    fn is_orphaned_at(&self, now: Instant) -> bool {
        let since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        since.is_some_and(|s| now.saturating_duration_since(s) >= ORPHANED_AFTER)
    }
}

/// The producer's context: it watches for the loss (the producer wraps its
/// context, so the bus keeps a second handle on the [`Orphan`]).
#[derive(Debug, Default)]
pub(crate) struct WatchedContext {
    pub(crate) orphan: Arc<Orphan>,
}

impl ClientContext for WatchedContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.orphan.observe(statistics);
    }
}

/// Drops a replaced client on a thread of its own: closing a consumer that
/// has no broker may wait for a coordinator that never comes
/// (confluentinc/librdkafka#3740), which must not hold up a runtime thread.
pub(crate) fn drop_detached<T: Send + 'static>(client: T, what: &'static str) {
    let spawned = std::thread::Builder::new()
        .name("metachat-kafka-drop".into())
        .spawn(move || drop(client));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, %what, "no thread to close the replaced Kafka client on; it is leaked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sources: &[&str]) -> Vec<u8> {
        let brokers: serde_json::Map<String, serde_json::Value> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    format!("b{i}"),
                    serde_json::json!({ "source": s, "state": "UP" }),
                )
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "name": "c", "brokers": brokers })).unwrap()
    }

    #[test]
    fn a_client_with_only_its_logical_and_internal_brokers_is_orphaned_after_a_while() {
        let o = Orphan::default();
        let t0 = Instant::now();
        o.observe(&report(&["learned", "logical", "internal"]));
        assert!(
            !o.is_orphaned_at(t0 + ORPHANED_AFTER * 2),
            "it has its broker"
        );

        o.set(false, t0);
        o.set(true, t0);
        assert!(
            !o.is_orphaned_at(t0 + ORPHANED_AFTER / 2),
            "not for long enough yet"
        );
        o.set(true, t0 + ORPHANED_AFTER / 2);
        assert!(
            o.is_orphaned_at(t0 + ORPHANED_AFTER),
            "orphaned since the first report without a broker"
        );

        o.set(false, t0 + ORPHANED_AFTER);
        assert!(
            !o.is_orphaned_at(t0 + ORPHANED_AFTER * 3),
            "a broker came back"
        );
    }

    #[test]
    fn reports_are_read_by_the_brokers_sources() {
        let o = Orphan::default();
        o.observe(&report(&["logical", "internal"]));
        assert!(o.since.lock().unwrap().is_some(), "no broker of its own");
        o.observe(&report(&["configured", "internal"]));
        assert!(
            o.since.lock().unwrap().is_none(),
            "a bootstrap broker counts"
        );
        o.observe(&report(&[]));
        assert!(o.since.lock().unwrap().is_some());
        o.observe(b"not json");
        assert!(
            o.since.lock().unwrap().is_some(),
            "an unreadable report changes nothing"
        );
    }
}
