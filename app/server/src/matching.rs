//! Matching: the people most similar to a user, from the matching
//! projection's shared in-memory index.
//!
//! # Coarse figures
//!
//! The similarities shown are rounded **down** to a multiple of
//! [`RESOLUTION`] (0.1) and capped at [`CAP`] (0.9). A precise figure would
//! let anyone confirm a guess about another person's diary: write the
//! guessed text into one's own diary and look for a theme similarity of
//! 1.00000. At this resolution a copy, a paraphrase and a diary that is
//! merely close all read 0.9; the order of the list still follows the exact
//! scores.

use metachat_analysis::matching::{IndexConfig, MatchError, ProfileConfig};
use metachat_domain::matching::{top_k_shared, MatchingProjection, SharedMatchIndex};
use metachat_domain::{KeyStore, KeyVault, UserDirectory, UserId};

use crate::error::ApiError;
use crate::keys::Keys;
use crate::routes::matches::{Explanation, Match};
use crate::state::AppState;

/// The step similarities are shown in.
pub(crate) const RESOLUTION: f32 = 0.1;
/// The highest similarity shown.
pub(crate) const CAP: f32 = 0.9;

/// `x` rounded down to a multiple of [`RESOLUTION`], within 0 and [`CAP`].
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // 0 to 9 steps
pub(crate) fn coarse(x: f32) -> f32 {
    if !x.is_finite() {
        return 0.0;
    }
    // A small epsilon keeps 0.3 (stored as 0.29999998) at 0.3.
    let steps = ((x.clamp(0.0, CAP) + 1e-4) / RESOLUTION).floor() as i32;
    steps as f32 * RESOLUTION
}

/// Dimension of the entry embeddings (multilingual-e5-small's hidden size).
pub(crate) const THEME_DIM: usize = 384;

/// The projection's checkpoint name.
pub(crate) const NAME: &str = MatchingProjection::<Keys>::NAME;

/// A matching projection over `vault` with the server's settings.
pub(crate) fn projection<R: KeyStore>(vault: KeyVault<R>) -> anyhow::Result<MatchingProjection<R>> {
    Ok(MatchingProjection::new(
        vault,
        ProfileConfig::new(THEME_DIM)?,
        IndexConfig::new(THEME_DIM)?,
    )?)
}

/// The projections a matches read waits on.
pub(crate) fn projections() -> Vec<&'static str> {
    vec![NAME, UserDirectory::NAME]
}

/// The `k` best matches of `user`; none while `user` has no profile yet.
pub(crate) async fn top_k(
    state: &AppState,
    index: &SharedMatchIndex,
    user: UserId,
    k: usize,
) -> Result<Vec<Match>, ApiError> {
    let found = match top_k_shared(index, user, k) {
        Ok(found) => found,
        Err(MatchError::UnknownUser(_)) => return Ok(Vec::new()),
        Err(MatchError::Erased(_)) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let mut out = Vec::with_capacity(found.len());
    for m in found {
        let profile = UserDirectory::get(&state.inner.read_models, UserId(m.user))
            .await
            .map_err(ApiError::store)?;
        // Erased (or not yet in the directory, or the key is gone): never
        // shown.
        let Some(profile) = profile.filter(|p| !p.erased) else {
            continue;
        };
        let Some(key) = state
            .inner
            .vault
            .get(UserId(m.user))
            .await
            .map_err(ApiError::store)?
        else {
            continue;
        };
        let Some(display_name) = profile.open(&key).map_err(ApiError::internal)?.0 else {
            continue;
        };
        out.push(Match {
            user_id: UserId(m.user),
            display_name,
            score: coarse(m.similarity.score),
            explanation: Explanation {
                shared_emotions: m
                    .explanation
                    .shared_emotions
                    .iter()
                    .map(|s| s.emotion.name().to_owned())
                    .collect(),
                theme_similarity: coarse(m.similarity.theme),
                mood_similarity: coarse(m.similarity.mood),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_coarse_and_capped() {
        for (x, want) in [
            (1.0, 0.9),
            (0.999_99, 0.9),
            (0.93, 0.9),
            (0.9, 0.9),
            (0.899, 0.8),
            (0.3, 0.3),
            (0.05, 0.0),
            (-0.4, 0.0),
            (f32::NAN, 0.0),
        ] {
            assert!((coarse(x) - want).abs() < 1e-6, "{x} -> {}", coarse(x));
        }
    }
}
