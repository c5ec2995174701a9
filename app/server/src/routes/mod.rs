//! The HTTP routes, one module per resource, and the router that joins
//! them with the JSON fallbacks, the body limit, the security headers and
//! the metrics layer; and the separate router of `/metrics`.

pub(crate) mod entries;
pub(crate) mod matches;
pub(crate) mod mood;
pub(crate) mod ops;
pub(crate) mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use metachat_core::event::Timestamp;
use metachat_core::progress::NotCaughtUp;
use metachat_core::store::EventReader;
use metachat_domain::UserId;
use serde::Deserialize;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::roles::Role;
use crate::state::AppState;
use crate::web::WebAssets;

/// The most bytes a request body may have.
pub(crate) const BODY_LIMIT: usize = 65_536;
/// Default `wait_ms`.
const DEFAULT_WAIT_MS: u64 = 5_000;
/// Largest `wait_ms`.
const MAX_WAIT_MS: u64 = 30_000;

/// The header carrying a write's position.
pub(crate) static POSITION_HEADER: HeaderName = HeaderName::from_static("x-metachat-position");

/// The Content-Security-Policy of every answer but the web client's
/// (`web::PAGE_CSP`): nothing the API answers may load anything or be
/// framed.
pub(crate) const CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The public router. `/metrics` is not on it ([`metrics_router`]).
///
/// Every answer says `X-Content-Type-Options: nosniff`, `Referrer-Policy:
/// no-referrer` and `X-Frame-Options: DENY`, and carries the [`CSP`] (the
/// web client's, `/` and `/assets/…` when `web` is given, its own); every
/// answer of a `/v1` route (tokens, personal data) says `Cache-Control:
/// no-store`.
///
/// Only the routes of the roles this process plays are mounted (see
/// `roles.rs`); the others answer 404 like any unknown path, and the
/// gateway sends them to the process that plays them.
pub(crate) fn router(state: AppState, web: Option<Arc<WebAssets>>) -> Router {
    let roles = state.inner.roles;
    let mut api = Router::new();
    if roles.has(Role::User) {
        api = api
            .route("/v1/users", post(users::register))
            .route("/v1/sessions", post(users::login))
            .route("/v1/sessions/refresh", post(users::refresh))
            .route("/v1/sessions/current", delete(users::logout))
            .route("/v1/me", get(users::me).delete(users::erase));
    }
    if roles.has(Role::Diary) {
        api = api
            .route("/v1/entries", post(entries::create).get(entries::list))
            .route(
                "/v1/entries/{entry_id}",
                get(entries::get_one)
                    .put(entries::edit)
                    .delete(entries::delete_one),
            )
            .route("/v1/mood/timeline", get(mood::timeline));
    }
    if roles.has(Role::Matching) {
        api = api.route("/v1/matches", get(matches::matches));
    }
    if roles.serves_api() {
        // (`route_layer` needs a route to layer.)
        api = api.route_layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    }
    if let Some(assets) = web {
        api = api.merge(crate::web::routes(assets));
    }
    let app = api
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(refuse_oversized_body))
        .layer(axum::middleware::from_fn(close_after_unread_body))
        .layer(axum::middleware::from_fn(crate::metrics::track));
    with_security_headers(app)
        .layer(axum::middleware::from_fn(crate::correlation::track))
        .with_state(state)
}

/// The router of the metrics listener: `/metrics` only.
pub(crate) fn metrics_router(state: AppState) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_security_headers(metrics).with_state(state)
}

/// `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY` and, unless the answer has its own (the web
/// client's), the [`CSP`] on every answer of `router`.
fn with_security_headers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// Answers 413 at once to a request whose `Content-Length` exceeds the
/// body limit, before anything reads (or waits for) the body.
async fn refuse_oversized_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return ApiError::BodyTooLarge.into_response();
    }
    next.run(req).await
}

/// Adds `Connection: close` to an error answer to a request that carried a
/// body. Such an answer may come before the body was read (a wrong token,
/// a wrong content type, a body over the limit); the HTTP server then
/// closes the connection instead of reading the rest, and a client that
/// was not told would send its next request on that dead connection and
/// get a transport error (seen as hyper's `IncompleteMessage`). The header
/// tells it to open a new connection instead.
async fn close_after_unread_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    let headers = req.headers();
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut response = next.run(req).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `?min_position=N&wait_ms=T` on a read.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadQuery {
    /// Wait until the projections serving this read applied this position.
    pub(crate) min_position: Option<u64>,
    /// How long to wait for `min_position`, in milliseconds (default 5000).
    #[param(maximum = 30000)]
    pub(crate) wait_ms: Option<u64>,
}

/// Validates `wait_ms` and waits for `names` to reach `min_position`
/// (else 503 `not_caught_up`).
///
/// A read also waits for the caller's own last write in this process (the
/// target is the larger of the two; without `min_position` a miss is not an
/// error): a client reads its own writes without asking.
pub(crate) async fn wait_read(
    state: &AppState,
    user: UserId,
    names: &[&str],
    min_position: Option<u64>,
    wait_ms: Option<u64>,
) -> Result<u64, ApiError> {
    let wait = wait_ms.unwrap_or(DEFAULT_WAIT_MS);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::InvalidQuery(format!(
            "wait_ms must be at most {MAX_WAIT_MS}"
        )));
    }
    if let Some(min) = min_position {
        // Every position a write answered is below the head: one beyond it
        // names no write (a client error, not something to wait for).
        let head = state
            .inner
            .store
            .next_position()
            .await
            .map_err(ApiError::store)?;
        if min >= head {
            return Err(ApiError::InvalidQuery(format!(
                "min_position {min} is beyond the log's last position"
            )));
        }
    }
    let progress = &state.inner.progress;
    let wait = Duration::from_millis(wait);
    let own = state.inner.last_write(user);
    match (min_position, own) {
        // Asked for: at least that, and the caller's own writes too.
        (Some(min), _) => {
            let target = own.map_or(min, |o| o.max(min));
            Ok(progress.wait_for(names, Some(target), wait).await?)
        }
        (None, Some(own)) => match progress.wait_for(names, Some(own), wait).await {
            Err(NotCaughtUp { position }) | Ok(position) => Ok(position),
        },
        (None, None) => Ok(progress.position(names)),
    }
}

/// A successful write: its status and JSON body, with the position header.
pub(crate) fn written<T: serde::Serialize>(
    status: axum::http::StatusCode,
    position: u64,
    body: T,
) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        res.headers_mut().insert(POSITION_HEADER.clone(), v);
    }
    res
}

/// The global position and time a command's append reached (what a write
/// answers with), from the outcome the repository returned; only a command
/// that appended nothing (an unchanged edit) reads the aggregate's last
/// event back.
pub(crate) async fn written_at<A>(
    state: &AppState,
    done: &metachat_core::aggregate::Executed<A>,
) -> Result<(u64, Timestamp), ApiError> {
    if let Some(outcome) = &done.outcome {
        return Ok((outcome.last_position, outcome.recorded_at));
    }
    // Nothing was written (an unchanged edit): where the aggregate is now.
    let root = &done.root;
    let version = root.version.unwrap_or(0);
    let events = state
        .inner
        .store
        .read_stream(
            &root.stream,
            version,
            metachat_core::store::Direction::Forward,
            1,
        )
        .await
        .map_err(ApiError::store)?;
    let env = events
        .first()
        .ok_or_else(|| ApiError::internal("a written event is missing"))?;
    Ok((env.position, env.recorded_at))
}

/// RFC 3339 UTC text of a stored timestamp.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    let micros = i64::try_from(t.0).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_123_456)),
            "2023-11-14T22:13:20.123456Z"
        );
    }
}
