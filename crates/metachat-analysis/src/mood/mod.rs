//! Mood analysis: the [`MoodAnalyzer`] implementations.
//!
//! - [`EmbeddingMoodAnalyzer`]: a sentence embedder (multilingual e5 by
//!   default) read by trained [`MoodHeads`]: a three-way valence with
//!   calibrated probabilities, the seven emotions and an arousal level, from
//!   the mean of the embeddings of a text's [`sentences`]. The heads were
//!   trained on the [`corpus`] of diary entries written for MetaChat
//!   (`metachat-tools`'s `train_mood`), and `eval_mood` measures them. The
//!   earlier reader, a logistic [`ValenceHead`] with [`EmotionPrototypes`],
//!   is kept for embedders without heads.
//! - [`LexiconAnalyzer`]: VADER's rules with its lexicon and our own emotion
//!   keywords; needs no model, and is the fallback when the model files are
//!   missing.
//!
//! [`analyzer_from_model_dir`] picks one from what a model directory holds.
//!
//! # Output
//! Each text gets a [`Mood`]: valence in \[-1, 1\] with its three-way
//! [`ValenceLabel`] (and the label's probability where the analyzer's
//! probabilities are calibrated), arousal in \[0, 1\], a probability per
//! [`Emotion`] (in [`Emotion::ALL`] order, summing to 1), the dominant label
//! and its probability as the confidence, the model id,
//! [`Mood::SCHEMA_VERSION`] and the number of model windows the text was read
//! in. Empty or whitespace-only text is never sent to a model: it is valence 0,
//! neutral, arousal 0, neutral emotion with probability 1, confidence 0 and
//! `windows == 0`.
//!
//! # Arousal
//! With [`MoodHeads`], arousal is the arousal head's expected level (low
//! 0.15, medium 0.5, high 0.85). Otherwise it is read off the emotion
//! distribution: each label has an arousal level on Russell's circumplex
//! ([`AROUSAL`]: anger 0.9, fear 0.8, surprise 0.8, joy 0.7, love 0.5,
//! sadness 0.3, neutral 0.1), and the distribution's expected level
//! ([`arousal_of`]) is mixed with the text's intensity
//! (`0.7 · arousal_of + 0.3 · intensity`; intensity is `|valence|` for the
//! embedding analyzer, `|compound|` plus punctuation and capitals emphasis for
//! the lexicon).

pub mod corpus;
mod embedding;
mod error;
pub mod eval;
mod head;
mod heads;
mod lexicon;
mod prototypes;
mod record;
mod review;
mod sentences;

pub use embedding::{EmbeddingMoodAnalyzer, WindowedEmbedder};
pub use error::{MoodError, Result};
pub use head::{train_logistic, LogisticFit, ValenceHead, ValenceHeadProvenance};
pub use heads::{
    argmax, fit_temperature, fold_probabilities, softmax, train_softmax, Dense, HeadChoice,
    HeadSetting, HeadsOutput, JointScore, JointSetting, MoodHeads, MoodHeadsProvenance, Pooling,
    SoftmaxFit, SoftmaxHead,
};
pub use lexicon::{LexiconAnalyzer, LexiconScore};
pub use prototypes::EmotionPrototypes;
pub use record::{Emotion, Mood, MoodAnalyzer, ValenceLabel};
pub use review::{ReviewChoice, ReviewReader, ReviewSetting};
pub use sentences::{pool_sentences, sentence_counts, sentences, sentences_of};

use std::path::Path;

use async_trait::async_trait;
use metachat_core::analysis::TextAnalyzer;

use crate::embed::{E5Embedder, E5Prefix};

/// Arousal level per label, in [`Emotion::ALL`] order.
pub const AROUSAL: [f32; 7] = [0.7, 0.3, 0.9, 0.8, 0.5, 0.8, 0.1];

/// Expected arousal of a distribution in [`Emotion::ALL`] order.
pub fn arousal_of(dist: &[f32; 7]) -> f32 {
    dist.iter()
        .zip(AROUSAL)
        .map(|(p, a)| p * a)
        .sum::<f32>()
        .clamp(0.0, 1.0)
}

/// Builds a [`Mood`] from a distribution in [`Emotion::ALL`] order.
pub(crate) fn mood_from_distribution(
    valence: f32,
    (valence_label, valence_probability): (ValenceLabel, Option<f32>),
    arousal: f32,
    dist: [f32; 7],
    model_id: &str,
    windows: u32,
) -> Mood {
    let (k, &p) =
        dist.iter().enumerate().fold(
            (6, &f32::MIN),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        );
    Mood {
        valence: sanitize(valence).clamp(-1.0, 1.0),
        valence_label,
        valence_probability: valence_probability.map(|p| sanitize(p).clamp(0.0, 1.0)),
        arousal: sanitize(arousal).clamp(0.0, 1.0),
        emotions: Emotion::ALL
            .iter()
            .copied()
            .zip(dist.map(sanitize))
            .collect(),
        dominant: Emotion::ALL[k],
        confidence: sanitize(p).clamp(0.0, 1.0),
        model_id: model_id.to_owned(),
        schema_version: Mood::SCHEMA_VERSION,
        windows,
    }
}

/// The documented result for a text with nothing to read.
pub(crate) fn empty_mood(model_id: &str) -> Mood {
    let mut dist = [0.0; 7];
    dist[6] = 1.0;
    let mut mood =
        mood_from_distribution(0.0, (ValenceLabel::Neutral, None), 0.0, dist, model_id, 0);
    mood.confidence = 0.0;
    mood
}

/// True when a text has nothing an analyzer could read: empty, or only
/// whitespace and control characters.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// The analyzer [`analyzer_from_model_dir`] picked.
#[derive(Debug)]
#[non_exhaustive]
pub enum DefaultMoodAnalyzer {
    /// multilingual e5 with the built-in mood heads.
    E5(Box<EmbeddingMoodAnalyzer<E5Embedder>>),
    /// The lexicon fallback.
    Lexicon(LexiconAnalyzer),
}

impl DefaultMoodAnalyzer {
    /// True when this is the lexicon fallback.
    pub fn is_fallback(&self) -> bool {
        matches!(self, DefaultMoodAnalyzer::Lexicon(_))
    }
}

#[async_trait]
impl TextAnalyzer for DefaultMoodAnalyzer {
    type Output = Mood;

    async fn analyze(&self, texts: &[String]) -> metachat_core::Result<Vec<Mood>> {
        match self {
            DefaultMoodAnalyzer::E5(a) => a.analyze(texts).await,
            DefaultMoodAnalyzer::Lexicon(a) => a.analyze(texts).await,
        }
    }

    async fn analyze_with_embeddings(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Mood, Option<Vec<f32>>)>> {
        match self {
            DefaultMoodAnalyzer::E5(a) => a.analyze_with_embeddings(texts).await,
            DefaultMoodAnalyzer::Lexicon(a) => a.analyze_with_embeddings(texts).await,
        }
    }

    fn model_id(&self) -> &str {
        match self {
            DefaultMoodAnalyzer::E5(a) => a.model_id(),
            DefaultMoodAnalyzer::Lexicon(a) => a.model_id(),
        }
    }
}

/// The best analyzer a model directory allows: the e5 analyzer when
/// `<dir>/e5/e5-small-q4.bin` loads, else the [`LexiconAnalyzer`] from
/// `<dir>/vader/vader_lexicon.txt` with a loud `tracing::warn!`.
///
/// # Errors
/// When e5 cannot be used and the lexicon file is missing or corrupt: the
/// lexicon's [`MoodError`], which names the file.
pub async fn analyzer_from_model_dir(dir: &Path) -> Result<DefaultMoodAnalyzer> {
    let e5_error = match E5Embedder::load(dir.join("e5")) {
        Ok(e5) => {
            let id = format!("{} (prefix \"query: \")", E5Embedder::MODEL_ID);
            let heads = MoodHeads::builtin_e5()?;
            match EmbeddingMoodAnalyzer::with_heads(e5.with_prefix(E5Prefix::Query), heads, &id) {
                Ok(a) => return Ok(DefaultMoodAnalyzer::E5(Box::new(a))),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    };
    let lexicon = LexiconAnalyzer::from_dir(dir)?;
    tracing::warn!(
        model_dir = %dir.display(),
        reason = %e5_error,
        "MOOD ANALYSIS IS DEGRADED: the e5 model is unavailable, falling back to the \
         lexicon baseline (VADER, English-centred, lower accuracy); run scripts/fetch-models"
    );
    Ok(DefaultMoodAnalyzer::Lexicon(lexicon))
}

fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}
