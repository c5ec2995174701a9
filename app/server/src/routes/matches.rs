//! The caller's recommended matches.

use axum::extract::State;
use axum::Json;
use metachat_domain::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::wait_read;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Why someone is recommended; never the other person's text.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Explanation {
    /// Emotions frequent in both diaries.
    pub(crate) shared_emotions: Vec<String>,
    /// Similarity of the themes written about (cosine, -1..1).
    pub(crate) theme_similarity: f32,
    /// Similarity of the mood histories (cosine, -1..1).
    pub(crate) mood_similarity: f32,
}

/// A recommended person.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Match {
    /// Their id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) user_id: UserId,
    /// Their display name.
    pub(crate) display_name: String,
    /// Higher is more similar.
    pub(crate) score: f32,
    /// Why.
    pub(crate) explanation: Explanation,
}

/// The matches.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Matches {
    /// Best first.
    pub(crate) matches: Vec<Match>,
    /// How far the projections have caught up.
    pub(crate) position: u64,
}

/// `GET /v1/matches` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MatchQuery {
    /// How many, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    k: Option<usize>,
    /// Wait until the projections applied this position.
    min_position: Option<u64>,
    /// How long to wait for `min_position`, in milliseconds (default 5000).
    #[param(maximum = 30000)]
    wait_ms: Option<u64>,
}

/// The people most similar to the caller.
#[utoipa::path(get, path = "/v1/matches", tag = "matches",
    security(("bearer" = [])),
    params(MatchQuery),
    responses(
        (status = 200, description = "Best first", body = Matches),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`not_caught_up` or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn matches(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<MatchQuery>,
) -> Result<Json<Matches>, ApiError> {
    let k = q.k.unwrap_or(10);
    if !(1..=50).contains(&k) {
        return Err(ApiError::InvalidQuery("k must be 1 to 50".into()));
    }
    let names = crate::matching::projections();
    let position = wait_read(&state, auth.user_id, &names, q.min_position, q.wait_ms).await?;
    let matches =
        crate::matching::top_k(&state, state.inner.match_index()?, auth.user_id, k).await?;
    Ok(Json(Matches { matches, position }))
}
