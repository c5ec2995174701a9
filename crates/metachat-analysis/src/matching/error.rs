//! Typed errors of matching.

use crate::matching::PersonId;

/// `Result` with [`MatchError`] as its default error type.
pub type Result<T, E = MatchError> = std::result::Result<T, E>;

/// What was wrong with an input to a profile or a [`MatchIndex`](super::MatchIndex).
///
/// Every operation that returns an error leaves its receiver unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MatchError {
    /// A vector of the wrong length.
    #[error("vector has {actual} dimensions, expected {expected}")]
    Dimension {
        /// The length the profile or index was configured with.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A vector holding NaN or an infinity.
    #[error("vector holds a non-finite value at index {index}")]
    NonFinite {
        /// Position of the first non-finite value.
        index: usize,
    },
    /// A mood whose emotion distribution cannot be used.
    #[error("invalid mood distribution: {reason}")]
    InvalidMood {
        /// Why it was refused.
        reason: String,
    },
    /// Similarity weights that are negative, non-finite or all zero.
    #[error("invalid similarity weights: {reason}")]
    InvalidWeights {
        /// Why they were refused.
        reason: String,
    },
    /// A configuration value out of range.
    #[error("invalid matching configuration: {reason}")]
    InvalidConfig {
        /// Why it was refused.
        reason: String,
    },
    /// Removing an entry's theme from a profile that holds none.
    #[error("the theme vector holds no entries to remove")]
    EmptyTheme,
    /// Removing a mood from a profile that holds none.
    #[error("the mood history holds no moods to remove")]
    EmptyMood,
    /// The user was erased: they are never indexed nor recommended again.
    #[error("user {0} is erased")]
    Erased(PersonId),
    /// The user is not in the index.
    #[error("user {0} is not in the index")]
    UnknownUser(PersonId),
    /// The approximate index's graph (usearch) failed.
    #[error("approximate index: {reason}")]
    Ann {
        /// What failed, with usearch's message.
        reason: String,
    },
    /// A deserialised index or profile whose parts do not fit together.
    #[error("invalid snapshot: {reason}")]
    InvalidSnapshot {
        /// What was inconsistent.
        reason: String,
    },
}

/// Checks length and finiteness of `v`.
pub(crate) fn check_vector(v: &[f32], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(MatchError::Dimension {
            expected,
            actual: v.len(),
        });
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(MatchError::NonFinite { index }),
        None => Ok(()),
    }
}
