//! Health, readiness, metrics (served on the metrics listener) and the
//! OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::metrics::PROJECTION_LAG;
use crate::state::AppState;
use metachat_core::progress::reported;

/// A projection more than this many events behind the head is not ready.
pub(crate) const READY_LAG: u64 = 1_000;

/// `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    status: String,
    /// The last position in the log.
    position: u64,
    /// Events each projection is behind the head.
    lag: BTreeMap<String, u64>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The process is up", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The store is open and every projection is within 1,000 events of the head.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: a projection lags, or the store is unavailable", body = Readiness),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.inner.lags().await {
        Ok((head, mut lags)) => {
            // The mood worker is not a projection: under a write burst it
            // may trail by more than the bound without reads being stale.
            lags.retain(|(name, _)| name != crate::state::MOOD_WORKER);
            let ready = lags.iter().all(|(_, l)| *l <= READY_LAG);
            let body = Readiness {
                status: if ready { "ready" } else { "not_ready" }.into(),
                position: reported(head),
                lag: lags.into_iter().collect(),
            };
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(body)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "readiness: store unavailable");
            let body = Readiness {
                status: "not_ready".into(),
                position: 0,
                lag: BTreeMap::new(),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// Prometheus text exposition, on the metrics listener only
/// (`--metrics-addr`), not on the public address.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    // The lags read the store's head: whether that worked says whether
    // the store is up.
    match state.inner.lags().await {
        Ok((_, lags)) => {
            crate::metrics::set_up("store", true);
            for (name, lag) in lags {
                metrics::gauge!(PROJECTION_LAG, "projection" => name).set(lag as f64);
            }
        }
        Err(_) => crate::metrics::set_up("store", false),
    }
    crate::mood_worker::export_lag(&state).await;
    crate::metrics::export_consumer_lag(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}
