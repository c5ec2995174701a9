//! The caller's mood timeline: per UTC day, mean valence, dominant emotion
//! and counts.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use metachat_domain::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::wait_read;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// One UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Day {
    /// `YYYY-MM-DD`.
    #[schema(example = "2026-11-24")]
    pub(crate) date: String,
    /// Entries analyzed that day.
    pub(crate) entries: u64,
    /// Mean valence of those entries (-1..1).
    pub(crate) mean_valence: f32,
    /// The emotion dominant in most of them.
    #[schema(example = "joy")]
    pub(crate) dominant_emotion: String,
    /// How many entries had each emotion dominant.
    pub(crate) emotion_counts: BTreeMap<String, u64>,
}

/// The timeline.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Timeline {
    /// Days, oldest first.
    pub(crate) days: Vec<Day>,
    /// How far the projections have caught up.
    pub(crate) position: u64,
}

/// `GET /v1/mood/timeline` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimelineQuery {
    /// First day (UTC, inclusive), `YYYY-MM-DD`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day (UTC, inclusive), `YYYY-MM-DD`.
    #[param(format = Date)]
    to: Option<String>,
    /// Wait until the projections applied this position.
    min_position: Option<u64>,
    /// How long to wait for `min_position`, in milliseconds (default 5000).
    #[param(maximum = 30000)]
    wait_ms: Option<u64>,
}

fn date(raw: Option<&str>, name: &str) -> Result<Option<Date>, ApiError> {
    raw.map(|s| {
        s.parse::<Date>()
            .map_err(|_| ApiError::InvalidQuery(format!("{name} must be a date YYYY-MM-DD")))
    })
    .transpose()
}

/// The caller's mood per day.
#[utoipa::path(get, path = "/v1/mood/timeline", tag = "mood",
    security(("bearer" = [])),
    params(TimelineQuery),
    responses(
        (status = 200, description = "Days, oldest first", body = Timeline),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`not_caught_up` or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let from = date(q.from.as_deref(), "from")?;
    let to = date(q.to.as_deref(), "to")?;
    let names = crate::mood_worker::timeline_projections();
    let position = wait_read(&state, auth.user_id, &names, q.min_position, q.wait_ms).await?;
    let days = crate::mood_worker::days(&state, auth.user_id, from, to).await?;
    Ok(Json(Timeline { days, position }))
}
