//! Matching: the people most similar to a user, from the matching
//! projection's in-memory index.

use metachat_core::domain::{DiaryTimeline, UserId};

use crate::error::ApiError;
use crate::routes::matches::Match;
use crate::state::AppState;

/// The projections a matches read waits on.
pub(crate) fn projections() -> Vec<&'static str> {
    vec![DiaryTimeline::NAME]
}

/// The `k` best matches of `user`.
pub(crate) async fn top_k(
    _state: &AppState,
    _user: UserId,
    _k: usize,
) -> Result<Vec<Match>, ApiError> {
    Ok(Vec::new())
}
