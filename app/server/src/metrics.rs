//! Prometheus metrics: requests by route and status, latency histogram,
//! events appended, projection lag, mood analyses.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metachat_core::store::EventReader;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;

use crate::state::{Stop, Store};

/// Requests served, by method, route and status.
pub(crate) const REQUESTS: &str = "metachat_http_requests_total";
/// Request latency in seconds, by method and route.
pub(crate) const LATENCY: &str = "metachat_http_request_duration_seconds";
/// Events appended to the log (all writers).
pub(crate) const EVENTS_APPENDED: &str = "metachat_events_appended_total";
/// Events between the log's head and a projection's checkpoint.
pub(crate) const PROJECTION_LAG: &str = "metachat_projection_lag_events";
/// The log's head (next position).
pub(crate) const LOG_HEAD: &str = "metachat_log_head";
/// Records of a Kafka topic partition a consumer group has not committed.
pub(crate) const CONSUMER_LAG: &str = "metachat_kafka_consumer_lag_records";
/// Gauge: 1 when this process reached a dependency at the last scrape, else
/// 0; label `dependency`: `store` (the event store: sled or Cassandra),
/// `kafka` (the broker, in a process with consumer groups).
pub(crate) const DEPENDENCY_UP: &str = "metachat_dependency_up";

/// Installs the global recorder.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    let buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)?
        .install_recorder()?;
    metrics::describe_counter!(REQUESTS, "HTTP requests served");
    metrics::describe_histogram!(LATENCY, metrics::Unit::Seconds, "HTTP request latency");
    metrics::describe_counter!(EVENTS_APPENDED, "events appended to the log");
    metrics::describe_gauge!(PROJECTION_LAG, "events a projection is behind the head");
    metrics::describe_gauge!(LOG_HEAD, "next position of the global log");
    metrics::describe_gauge!(
        CONSUMER_LAG,
        "records of a Kafka topic partition a consumer group of this process has not committed"
    );
    metrics::describe_gauge!(
        DEPENDENCY_UP,
        "1 when this process reached the dependency (store, kafka) at the last scrape, else 0"
    );
    metrics::describe_counter!(
        crate::limits::REFUSED,
        "requests refused by a limit (hashing slots, login throttling, registration quota)"
    );
    metrics::describe_counter!(
        crate::auth::SESSIONS_PURGED,
        "expired sessions deleted by the sweep"
    );
    metrics::describe_counter!(
        crate::serve::CONNECTIONS_REFUSED,
        "connections refused at the connection cap"
    );
    metrics::describe_counter!(
        crate::serve::CONNECTIONS_TIMED_OUT,
        "connections closed by a header, idle or shutdown deadline"
    );
    Ok(handle)
}

/// The `method` label: one of the standard methods, else `other` (a
/// client must not be able to invent labels).
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Middleware: counts and times each request by its route template (`other`
/// for a request no route matched) and method (see [`method_label`]).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    metrics::counter!(REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(LATENCY, "method" => method, "route" => route).record(elapsed);
    res
}

/// Counts appended events by following the store's head: its watch where
/// the store has one (sled), else by reading the head once a second
/// (Cassandra, whose appends may come from other processes too).
pub(crate) fn spawn_head_counter(store: Store, stop: Stop) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(watch) = store.head_watch() else {
            poll_head(store, stop).await;
            return;
        };
        let mut rx = watch.0;
        let mut last = None;
        record_head(&mut last, *rx.borrow_and_update());
        let stopped = stop.wait();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    record_head(&mut last, *rx.borrow_and_update());
                }
            }
        }
    })
}

/// Sets the head gauge to `head` and counts the events appended since the
/// `last` head seen (none counted for the first reading).
fn record_head(last: &mut Option<u64>, head: u64) {
    // The first reading registers the counter at 0, so that its series
    // exists (and a rate can be taken) before the first append.
    let appended = last.map_or(0, |before| head.saturating_sub(before));
    metrics::counter!(EVENTS_APPENDED).increment(appended);
    metrics::gauge!(LOG_HEAD).set(head as f64);
    *last = Some(last.map_or(head, |l| l.max(head)));
}

async fn poll_head(store: Store, stop: Stop) {
    let mut last = None::<u64>;
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        match store.next_position().await {
            Ok(head) => record_head(&mut last, head),
            Err(e) => tracing::warn!(error = %e, "reading the log head for /metrics failed"),
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Sets [`DEPENDENCY_UP`] of `dependency`.
pub(crate) fn set_up(dependency: &'static str, up: bool) {
    metrics::gauge!(DEPENDENCY_UP, "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
}

/// Sets [`CONSUMER_LAG`] for each consumer group of this process, topic and
/// partition, as the broker reports it now; a group the broker cannot
/// answer for keeps its last values (and the failure is logged at debug).
/// The broker counts as up ([`DEPENDENCY_UP`]) when it answered for any
/// group.
pub(crate) async fn export_consumer_lag(state: &crate::state::AppState) {
    let Some((kafka, groups)) = &state.inner.consumers else {
        return;
    };
    let mut answered = groups.is_empty();
    for (group, topic) in groups {
        match kafka.consumer_lag(group, topic).await {
            Ok(lags) => {
                answered = true;
                for (partition, lag) in lags {
                    metrics::gauge!(
                        CONSUMER_LAG,
                        "group" => group.clone(),
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(lag as f64);
                }
            }
            Err(e) => tracing::debug!(%group, %topic, error = %e, "consumer lag not available"),
        }
    }
    set_up("kafka", answered);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_fold_into_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["FOO", "BREW", "get", "X-ANYTHING"] {
            let m = Method::from_bytes(made_up.as_bytes()).expect("a token");
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }
}
