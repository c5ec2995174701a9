//! Request ids, and the correlation of everything a request causes.
//!
//! Every request gets an id: the `X-Request-Id` it came with when that is a
//! plain token (letters, digits, `._:-`, at most 128 characters: the
//! gateway's rule, so the gateway's id is kept), else a new UUID. The
//! answer carries it back in `X-Request-Id`, and the request's log lines
//! carry it in a `request` span with `request_id` and `correlation_id`.
//!
//! The *correlation id* is a UUID: the request id itself when it is one
//! (nginx's 32 hex digits are), else the UUID v5 of it. Every event the
//! request appends carries it in its metadata ([`metadata`]); the event
//! travels through the relay and Kafka with it, and the mood worker's
//! `MoodAnalyzed` keeps it and names the entry's event as its *causation
//! id*. So one id follows a request from the gateway's access log to the
//! mood that the entry got, across every Kafka hop (the mood worker's
//! per-event log line is at `debug` on the `metachat::trace` target:
//! `RUST_LOG=info,metachat::trace=debug`).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use metachat_core::event::Metadata;
use tracing::Instrument;
use uuid::Uuid;

/// The request id header, in and out.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Namespace of the v5 correlation ids of request ids that are not UUIDs.
const NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7461_6368_6174_2d72_6571_2d69_6401);

tokio::task_local! {
    static CORRELATION: Uuid;
}

/// Whether `id` is a request id we keep: 1 to 128 of `[A-Za-z0-9._:-]`.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The correlation id of a request id.
pub(crate) fn correlation_of(request_id: &str) -> Uuid {
    Uuid::parse_str(request_id).unwrap_or_else(|_| Uuid::new_v5(&NAMESPACE, request_id.as_bytes()))
}

/// Middleware: the request's id and correlation id, in a span around the
/// request, a task-local for [`metadata`], and on the answer.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_owned);
    let correlation = correlation_of(&id);
    let span = tracing::info_span!("request", request_id = %id, correlation_id = %correlation);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let mut response = CORRELATION
        .scope(correlation, next.run(req))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::debug!(
            target: "metachat::trace",
            %method,
            path,
            status = response.status().as_u16(),
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Metadata for an event the current request appends: its correlation id
/// (none outside a request).
pub(crate) fn metadata() -> Metadata {
    CORRELATION
        .try_with(|c| Metadata::correlated(*c))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_kept_and_other_ids_map_stably() {
        let nginx = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            correlation_of(nginx),
            Uuid::parse_str(nginx).expect("a UUID")
        );
        assert_eq!(correlation_of("req-1"), correlation_of("req-1"));
        assert_ne!(correlation_of("req-1"), correlation_of("req-2"));
    }

    #[test]
    fn only_plain_tokens_are_acceptable() {
        assert!(acceptable("abc.DEF_1:2-3"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("\"quoted\""));
        assert!(!acceptable(&"x".repeat(129)));
    }

    #[test]
    fn metadata_outside_a_request_has_no_correlation() {
        assert_eq!(metadata().correlation_id, None);
    }

    #[tokio::test]
    async fn metadata_inside_a_request_is_correlated() {
        let id = Uuid::new_v4();
        let m = CORRELATION.scope(id, async { metadata() }).await;
        assert_eq!(m.correlation_id, Some(id));
    }
}
