//! Contracts of mood analysis and text embedding. Implementations live in
//! `metachat-analysis`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The emotion labels a [`Mood`] distributes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emotion {
    /// Joy, happiness.
    Joy,
    /// Sadness, grief.
    Sadness,
    /// Anger, irritation.
    Anger,
    /// Fear, anxiety.
    Fear,
    /// Love, affection.
    Love,
    /// Surprise.
    Surprise,
    /// No marked emotion.
    Neutral,
}

impl Emotion {
    /// Every label, in a fixed order.
    pub const ALL: [Emotion; 7] = [
        Emotion::Joy,
        Emotion::Sadness,
        Emotion::Anger,
        Emotion::Fear,
        Emotion::Love,
        Emotion::Surprise,
        Emotion::Neutral,
    ];
}

/// The mood of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mood {
    /// Negative (-1) to positive (1).
    pub valence: f32,
    /// Calm (0) to excited (1).
    pub arousal: f32,
    /// Probability per label, summing to 1, in [`Emotion::ALL`] order.
    pub emotions: Vec<(Emotion, f32)>,
    /// The most probable label.
    pub dominant: Emotion,
    /// Confidence in the dominant label, 0..=1.
    pub confidence: f32,
    /// Which model produced it, with its version.
    pub model_id: String,
    /// Layout version of this record ([`Mood::SCHEMA_VERSION`]); records
    /// written before the field existed read as 1.
    #[serde(default = "Mood::schema_v1")]
    pub schema_version: u32,
    /// How many model windows the text was read in: 1 when it fit in one, more
    /// when a long text was split and pooled (never silently cut), 0 when there
    /// was nothing to read (empty text). Analyzers without a window read the
    /// whole text as 1.
    #[serde(default = "Mood::one_window")]
    pub windows: u32,
}

impl Mood {
    /// The current layout version of [`Mood`].
    pub const SCHEMA_VERSION: u32 = 1;

    fn schema_v1() -> u32 {
        1
    }

    fn one_window() -> u32 {
        1
    }
}

/// Reads the mood of texts, in batches.
#[async_trait]
pub trait MoodAnalyzer: Send + Sync {
    /// One [`Mood`] per input text, in order.
    async fn analyze(&self, texts: &[String]) -> Result<Vec<Mood>>;

    /// One [`Mood`] per input text, in order, each with the text's
    /// embedding where the analyzer computes one on the way (so one forward
    /// pass gives both). The default calls [`analyze`](MoodAnalyzer::analyze)
    /// and gives no embeddings.
    async fn analyze_with_embeddings(
        &self,
        texts: &[String],
    ) -> Result<Vec<(Mood, Option<Vec<f32>>)>> {
        Ok(self
            .analyze(texts)
            .await?
            .into_iter()
            .map(|m| (m, None))
            .collect())
    }
    /// The model id stamped on results.
    fn model_id(&self) -> &str;
}

/// Turns texts into unit vectors, in batches.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// One L2-normalised vector of [`dimensions`](Embedder::dimensions) per text.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
    /// Vector length.
    fn dimensions(&self) -> usize;
}
