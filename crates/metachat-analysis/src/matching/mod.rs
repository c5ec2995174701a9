//! People-matching: per-user profiles and an exact top-k index.
//!
//! # Profile
//!
//! A [`MatchProfile`] is fed one event at a time and keeps:
//! - a **theme vector**: the normalised mean of the user's entry embeddings,
//!   kept as a running f64 sum and count ([`ThemeVector`]) so that an edited or
//!   deleted entry's embedding is subtracted again;
//! - a **mood distribution** decayed over time ([`MoodHistory`]): the mean of
//!   the emotion distributions of the user's moods, each weighing
//!   `2^(−age / half-life)` relative to the newest (half-life 14 days by
//!   default, [`DEFAULT_HALF_LIFE`]);
//! - the embeddings of the newest entries (8 by default), to explain matches.
//!
//! # Similarity
//!
//! ```text
//! score(a, b) = w_theme · cos(theme_a, theme_b) + w_mood · BC(mood_a, mood_b)
//! BC(p, q)    = Σᵢ √(pᵢ · qᵢ)          (Bhattacharyya coefficient = 1 − Hellinger²)
//! ```
//!
//! with `w_theme = 0.6`, `w_mood = 0.4` by default ([`SimilarityWeights`],
//! configurable, validated, normalised to sum to 1). A missing part (no
//! entries, no moods) contributes 0. `BC` is 1 for identical distributions
//! and 0 for disjoint ones, and it is the dot product of the unit vectors
//! `√p`, `√q`: so the score is a single inner product of the rows
//! `[theme, √p]`, which is what the [`MatchIndex`] scans. Scores lie in
//! [−w_theme, 1] ⊂ [−1, 1].
//!
//! # Index
//!
//! [`MatchIndex`] holds one contiguous row-major `f32` matrix (users ×
//! (theme dimension + 7)). A query is one pass of vectorised dot products
//! with a bounded binary heap of the best k, split over rayon's threads from
//! 32,768 users on. It never returns the requester nor an erased user; each
//! [`Match`] carries an [`Explanation`]: the emotions both users feel (mass
//! ≥ 0.2 in both distributions) and the closest pairs of their recent
//! entries. Bad input (wrong dimensions, NaN or infinite values, unknown or
//! erased users) is a typed [`MatchError`]; `k = 0`, `k > n` and an empty
//! index are answered, not refused.
//!
//! Everything above is pure (no I/O) and serde-serialisable, so a server can
//! snapshot it from a projection.
//!
//! # Approximate index
//!
//! [`AnnIndex`] ([`ann`]) wraps a [`MatchIndex`] with an HNSW graph
//! (usearch) for 1,000,000 users, where the exact scan misses 50 ms: the
//! graph proposes candidates, the exact rows re-rank them, the same
//! exclusions hold. [`synthetic`] generates the uniform and clustered users
//! its recall is measured on.
//!
//! # Ids
//!
//! People are named by a [`PersonId`] and the texts a profile is made of by
//! a [`TextId`], both plain UUIDs: the application's own ids convert to them
//! (MetaChat's matching projection, in its domain crate, keeps the index
//! from its log).
//!
//! ```
//! use metachat_analysis::matching::{IndexConfig, MatchIndex, MatchProfile, ProfileConfig};
//! use uuid::Uuid;
//! use metachat_core::event::Timestamp;
//!
//! # fn main() -> Result<(), metachat_analysis::matching::MatchError> {
//! let profiles = ProfileConfig::new(3)?;
//! let mut index = MatchIndex::new(IndexConfig::new(3)?);
//! let (ann, bob, eve) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
//! for (user, embedding) in [(ann, [1.0, 0.0, 0.0]), (bob, [0.9, 0.1, 0.0]), (eve, [0.0, 0.0, 1.0])] {
//!     let mut p = MatchProfile::new(&profiles);
//!     p.add_entry(Uuid::new_v4(), Timestamp(0), &embedding)?;
//!     index.upsert_profile(user, &p)?;
//! }
//! let best = index.top_k(ann, 1)?;
//! assert_eq!(best[0].user, bob);
//! index.erase(bob);
//! assert_eq!(index.top_k(ann, 5)?.iter().map(|m| m.user).collect::<Vec<_>>(), vec![eve]);
//! # Ok(())
//! # }
//! ```

pub mod ann;
mod error;
mod index;
mod kernel;
mod profile;
mod quant;
pub mod synthetic;

pub use ann::{
    AnnConfig, AnnIndex, AnnPrecision, DEFAULT_CANDIDATES, DEFAULT_CONNECTIVITY, DEFAULT_EF,
    DEFAULT_EF_CONSTRUCTION,
};
pub use error::{MatchError, Result};
pub use index::{
    Explanation, IndexConfig, Match, MatchIndex, SharedEmotion, ThemePair,
    DEFAULT_EXPLAINED_THEMES, DEFAULT_PARALLEL_MIN_ROWS, DEFAULT_SHARED_EMOTION_THRESHOLD,
};
pub use profile::{
    emotion_index, mood_distribution, mood_similarity, similarity, MatchProfile, MatchVectors,
    MoodHistory, ProfileConfig, RecentEntry, Similarity, SimilarityWeights, ThemeVector,
    DEFAULT_HALF_LIFE, DEFAULT_RECENT_ENTRIES, MAX_THEME_DIM, MOOD_DIMS,
};

/// Who is matched: a UUID naming a person (MetaChat converts its user ids).
pub type PersonId = uuid::Uuid;

/// A text that a profile is made of: a UUID naming it (MetaChat converts its
/// diary entry ids).
pub type TextId = uuid::Uuid;

#[cfg(test)]
mod tests;
