//! A second valence reader for text that reads as a review: a gate that
//! says how much an embedding looks like a review sentence rather than a
//! diary entry, and a two-way valence head trained on reviews alone.
//!
//! The diary-trained valence head reads restaurant, product and film
//! reviews worse than a head trained on reviews does (a diary entry about a
//! meal is mostly neutral; a review of one rarely is). [`ReviewReader::combine`]
//! keeps the diary head's neutral probability and splits the rest between
//! negative and positive by the two heads, weighted by the gate.
//!
//! The gate also hears how many sentences the text has: reviews are one
//! sentence (93–96% of amazon, imdb and yelp), diary entries rarely are
//! (under 4% of the corpus's train split), so a text of one sentence can be
//! given a stronger shift toward `review`
//! ([`ReviewReader::one_sentence_shift`]) without the diaries of several
//! sentences paying for it.

use serde::{Deserialize, Serialize};

use super::heads::SoftmaxHead;

/// The gate, the review valence head and the setting that chose them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewReader {
    /// Classes `diary`, `review`: how much an embedding reads as a review
    /// sentence.
    pub gate: SoftmaxHead,
    /// Classes `negative`, `positive`, trained on review sentences only.
    pub valence: SoftmaxHead,
    /// Added to the gate's log-odds of `review` (0: the gate as trained on
    /// balanced classes); chosen with the rest of [`ReviewChoice`].
    pub shift: f32,
    /// Added to [`shift`](Self::shift) for a text of one sentence (heads
    /// format 5; 0 in older files, where every text had the same shift).
    #[serde(default)]
    pub one_sentence_shift: f32,
    /// What was chosen, and on what evidence.
    pub choice: ReviewChoice,
}

/// One setting of the review reader and what it scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReviewSetting {
    /// L2 strength of the gate.
    pub gate_l2: f32,
    /// L2 strength of the review valence head.
    pub valence_l2: f32,
    /// Softmax temperature of the review valence head (below 1 sharpens
    /// what a strong L2 left timid, so that it can outweigh the valence
    /// head's own split).
    pub valence_temperature: f32,
    /// The gate's log-odds shift ([`ReviewReader::shift`]).
    pub shift: f32,
    /// The further shift for a text of one sentence
    /// ([`ReviewReader::one_sentence_shift`]; 0 in files before format 5).
    #[serde(default)]
    pub one_sentence_shift: f32,
    /// Three-way valence accuracy on the diary corpus's dev split, the mean
    /// of the two languages'.
    pub dev_accuracy: f32,
    /// Sign accuracy on a review domain left out of training (amazon
    /// trained, imdb read, and the other way round; the mean).
    pub review_accuracy: f32,
}

/// The chosen setting, every setting tried, and the diary valence head's
/// own figures on the same data (the reader is kept only when it scores
/// better).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewChoice {
    /// The chosen setting.
    pub chosen: ReviewSetting,
    /// Dev and left-out-domain accuracy of the valence head without a
    /// review reader.
    pub without: [f32; 2],
    /// Every setting tried.
    pub grid: Vec<ReviewSetting>,
}

impl ReviewReader {
    /// The gate's probability that `x`, the embedding of a text of
    /// `sentences` sentences ([`sentences`](super::sentences) of it), is a
    /// review, its log-odds shifted by [`shift`](Self::shift), and by
    /// [`one_sentence_shift`](Self::one_sentence_shift) more when the text
    /// is one sentence (or none: a blank text reads as one).
    pub fn review_probability(&self, x: &[f32], sentences: usize) -> f32 {
        let p = self.gate.probabilities(x);
        // Log-odds from each class's own probability: `1 − p` of a sure
        // gate is 0 in f32, which would make any shift powerless.
        let ln = |i: usize| p.get(i).copied().unwrap_or(0.5).max(1e-30).ln();
        let extra = if sentences <= 1 {
            self.one_sentence_shift
        } else {
            0.0
        };
        let logit = ln(1) - ln(0) + self.shift + extra;
        1.0 / (1.0 + (-logit).exp())
    }

    /// The three-way valence of `x` (a text of `sentences` sentences) from
    /// the diary head's reading `diary` (negative, neutral, positive): the
    /// neutral probability is the diary head's; the rest is split between
    /// negative and positive by the diary head's split and the review
    /// head's, weighted by [`review_probability`](Self::review_probability).
    pub fn combine(&self, diary: [f32; 3], x: &[f32], sentences: usize) -> [f32; 3] {
        self.combine_at(diary, self.review_probability(x, sentences), x)
    }

    /// [`combine`](Self::combine) with the gate's probability `g` already
    /// read.
    pub fn combine_at(&self, diary: [f32; 3], g: f32, x: &[f32]) -> [f32; 3] {
        let review = self.valence.probabilities(x);
        let r_neg = review.first().copied().unwrap_or(0.5);
        split(diary, g, r_neg)
    }
}

/// `diary` with its polar mass split as `(1 − g)` times its own split plus
/// `g` times a review head's negative probability `r_neg`.
fn split(diary: [f32; 3], g: f32, r_neg: f32) -> [f32; 3] {
    let [d_neg, d_neutral, d_pos] = diary;
    let polar = d_neg + d_pos;
    let own_neg = if polar > 0.0 { d_neg / polar } else { 0.5 };
    let g = g.clamp(0.0, 1.0);
    let neg_share = (1.0 - g) * own_neg + g * r_neg.clamp(0.0, 1.0);
    [polar * neg_share, d_neutral, polar * (1.0 - neg_share)]
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_combined_reading_is_a_distribution_that_keeps_the_neutral_share(
            raw in proptest::array::uniform3(0.001f32..1.0),
            g in 0.0f32..=1.0,
            r_neg in 0.0f32..=1.0,
        ) {
            let sum: f32 = raw.iter().sum();
            let diary = raw.map(|p| p / sum);
            let out = split(diary, g, r_neg);
            proptest::prop_assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            proptest::prop_assert!(out.iter().all(|p| (0.0..=1.0 + 1e-6).contains(p)));
            proptest::prop_assert_eq!(out[1], diary[1]);
            // No review at all: the diary head's reading.
            let same = split(diary, 0.0, r_neg);
            for (a, b) in same.iter().zip(&diary) {
                proptest::prop_assert!((a - b).abs() < 1e-5);
            }
            // Surely a review: the polar mass split as the review head says.
            let review = split(diary, 1.0, r_neg);
            proptest::prop_assert!((review[0] - (diary[0] + diary[2]) * r_neg).abs() < 1e-5);
        }
    }
}
