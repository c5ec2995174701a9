//! What the mood analyzers produce: a [`Mood`] over the [`Emotion`] labels,
//! and [`MoodAnalyzer`], the core [`TextAnalyzer`] whose output is a mood.

use metachat_core::analysis::TextAnalyzer;
use serde::{Deserialize, Serialize};

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

    /// The label's name as serialised (`joy`, `sadness`, …).
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Joy => "joy",
            Emotion::Sadness => "sadness",
            Emotion::Anger => "anger",
            Emotion::Fear => "fear",
            Emotion::Love => "love",
            Emotion::Surprise => "surprise",
            Emotion::Neutral => "neutral",
        }
    }

    /// Parses a label name written by [`name`](Emotion::name).
    pub fn from_name(name: &str) -> Option<Emotion> {
        Emotion::ALL.into_iter().find(|e| e.name() == name)
    }
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

/// A [`TextAnalyzer`] that reads [`Mood`]s: every analyzer of this crate, and
/// any other whose output is a mood (implemented for all of them).
pub trait MoodAnalyzer: TextAnalyzer<Output = Mood> {}

impl<T: TextAnalyzer<Output = Mood> + ?Sized> MoodAnalyzer for T {}
