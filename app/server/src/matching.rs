//! Matching: the people most similar to a user, from the matching
//! projection's shared in-memory index.

use metachat_analysis::matching::{IndexConfig, MatchError, ProfileConfig};
use metachat_core::read_model::ReadModelStore;
use metachat_domain::matching::{top_k_shared, MatchingProjection, SharedMatchIndex};
use metachat_domain::{KeyVault, UserDirectory, UserId};

use crate::error::ApiError;
use crate::routes::matches::{Explanation, Match};
use crate::state::{AppState, ReadModels};

/// Dimension of the entry embeddings (multilingual-e5-small's hidden size).
pub(crate) const THEME_DIM: usize = 384;

/// The projection's checkpoint name.
pub(crate) const NAME: &str = MatchingProjection::<ReadModels>::NAME;

/// A matching projection over `vault` with the server's settings.
pub(crate) fn projection<R: ReadModelStore>(
    vault: KeyVault<R>,
) -> anyhow::Result<MatchingProjection<R>> {
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
        // Erased (or not yet in the directory): never shown.
        let Some(display_name) = profile.filter(|p| !p.erased).and_then(|p| p.display_name) else {
            continue;
        };
        out.push(Match {
            user_id: UserId(m.user),
            display_name,
            score: m.similarity.score,
            explanation: Explanation {
                shared_emotions: m
                    .explanation
                    .shared_emotions
                    .iter()
                    .map(|s| s.emotion.name().to_owned())
                    .collect(),
                theme_similarity: m.similarity.theme,
                mood_similarity: m.similarity.mood,
            },
        });
    }
    Ok(out)
}
