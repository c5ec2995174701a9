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

/// The three-way valence of a text: what a reader would call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValenceLabel {
    /// The writer feels bad.
    Negative,
    /// No clear feeling either way, or feelings that balance out.
    Neutral,
    /// The writer feels good.
    Positive,
}

impl ValenceLabel {
    /// Every label, in a fixed order (the order of a head's classes).
    pub const ALL: [ValenceLabel; 3] = [
        ValenceLabel::Negative,
        ValenceLabel::Neutral,
        ValenceLabel::Positive,
    ];

    /// The label's name as serialised (`negative`, `neutral`, `positive`).
    pub fn name(self) -> &'static str {
        match self {
            ValenceLabel::Negative => "negative",
            ValenceLabel::Neutral => "neutral",
            ValenceLabel::Positive => "positive",
        }
    }

    /// Parses a label name written by [`name`](ValenceLabel::name).
    pub fn from_name(name: &str) -> Option<ValenceLabel> {
        ValenceLabel::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The mood of one text.
///
/// # Versions
/// [`Mood::SCHEMA_VERSION`] is 2. Version 1 had no
/// [`valence_label`](Mood::valence_label) and no
/// [`valence_probability`](Mood::valence_probability); a version 1 record is upcast as it is read
/// ([`Mood::upcast_v1_label`]), so every [`Mood`] in memory is version 2.
/// A record of a later version, or a version 2 record without its label, is
/// refused with a deserialisation error.
///
/// ```
/// use metachat_analysis::{Mood, mood::ValenceLabel};
///
/// // A record written by version 1 of the lexicon analyzer.
/// let v1 = r#"{"valence":0.4,"arousal":0.5,"emotions":[["joy",1.0]],
///     "dominant":"joy","confidence":1.0,"model_id":"lexicon-vader-3.3.2+keywords/v1",
///     "schema_version":1,"windows":1}"#;
/// let mood: Mood = serde_json::from_str(v1)?;
/// assert_eq!(mood.schema_version, 2);
/// assert_eq!(mood.valence_label, ValenceLabel::Positive);
/// assert_eq!(mood.valence_probability, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MoodRecord")]
pub struct Mood {
    /// Negative (-1) to positive (1).
    pub valence: f32,
    /// The three-way valence: what a reader would call the text.
    pub valence_label: ValenceLabel,
    /// The probability of [`valence_label`](Mood::valence_label), from an
    /// analyzer whose three-way probabilities are calibrated (the e5 mood
    /// heads); `None` from one without (the lexicon, a binary valence head)
    /// and for a record upcast from version 1.
    pub valence_probability: Option<f32>,
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
    /// Layout version of this record ([`Mood::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// How many model windows the text was read in: 1 when it fit in one, more
    /// when a long text was split and pooled (never silently cut), 0 when there
    /// was nothing to read (empty text). Analyzers without a window read the
    /// whole text as 1.
    pub windows: u32,
}

/// A stored [`Mood`] of any version, as it is read.
#[derive(Deserialize)]
struct MoodRecord {
    valence: f32,
    #[serde(default)]
    valence_label: Option<ValenceLabel>,
    #[serde(default)]
    valence_probability: Option<f32>,
    arousal: f32,
    emotions: Vec<(Emotion, f32)>,
    dominant: Emotion,
    confidence: f32,
    model_id: String,
    /// Records written before the field existed are version 1.
    #[serde(default = "Mood::schema_v1")]
    schema_version: u32,
    #[serde(default = "Mood::one_window")]
    windows: u32,
}

impl TryFrom<MoodRecord> for Mood {
    type Error = String;

    /// Upcasts a version 1 record; refuses a version 2 record without its
    /// label, and a version this code does not know.
    fn try_from(r: MoodRecord) -> Result<Self, String> {
        let valence_label = match (r.schema_version, r.valence_label) {
            (1, None) => Mood::upcast_v1_label(r.valence, &r.model_id),
            (1 | 2, Some(label)) => label,
            (2, None) => return Err("a version 2 mood without valence_label".into()),
            (v, _) => return Err(format!("mood schema version {v} is not known here")),
        };
        Ok(Mood {
            valence: r.valence,
            valence_label,
            valence_probability: r.valence_probability,
            arousal: r.arousal,
            emotions: r.emotions,
            dominant: r.dominant,
            confidence: r.confidence,
            model_id: r.model_id,
            schema_version: Mood::SCHEMA_VERSION,
            windows: r.windows,
        })
    }
}

impl Mood {
    /// The current layout version of [`Mood`].
    pub const SCHEMA_VERSION: u32 = 2;

    /// `|valence|` below which a reader without a neutral class (a binary
    /// valence head) calls a text neutral.
    pub const BINARY_NEUTRAL_BAND: f32 = 0.2;

    /// The lexicon's neutral band: VADER's convention, compound within
    /// ±0.05 is neutral.
    pub const LEXICON_NEUTRAL_BAND: f32 = 0.05;

    /// The three-way label of a version 1 record, which had only the
    /// continuous valence: the lexicon's (model id `lexicon-…`) by VADER's
    /// convention ([`LEXICON_NEUTRAL_BAND`](Mood::LEXICON_NEUTRAL_BAND),
    /// inclusive), any other analyzer's by the sign outside
    /// [`BINARY_NEUTRAL_BAND`](Mood::BINARY_NEUTRAL_BAND).
    pub fn upcast_v1_label(valence: f32, model_id: &str) -> ValenceLabel {
        if model_id.starts_with("lexicon-") {
            ValenceLabel::with_band(valence, Mood::LEXICON_NEUTRAL_BAND, true)
        } else {
            ValenceLabel::with_band(valence, Mood::BINARY_NEUTRAL_BAND, false)
        }
    }

    fn schema_v1() -> u32 {
        1
    }

    fn one_window() -> u32 {
        1
    }
}

impl ValenceLabel {
    /// The label of a continuous valence with a neutral band: positive
    /// above `band`, negative below `-band`, neutral between; `inclusive`
    /// makes `±band` itself positive or negative (VADER's `>= 0.05`).
    /// Not-a-number is neutral.
    pub fn with_band(valence: f32, band: f32, inclusive: bool) -> ValenceLabel {
        let outside = |v: f32| if inclusive { v >= band } else { v > band };
        if outside(valence) {
            ValenceLabel::Positive
        } else if outside(-valence) {
            ValenceLabel::Negative
        } else {
            ValenceLabel::Neutral
        }
    }
}

/// A [`TextAnalyzer`] that reads [`Mood`]s: every analyzer of this crate, and
/// any other whose output is a mood (implemented for all of them).
pub trait MoodAnalyzer: TextAnalyzer<Output = Mood> {}

impl<T: TextAnalyzer<Output = Mood> + ?Sized> MoodAnalyzer for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any version 1 record reads as version 2: its label is the sign
        /// outside its analyzer's neutral band, it has no probability, and
        /// its version 2 encoding reads back unchanged.
        #[test]
        fn a_v1_record_reads_as_v2_with_its_bands_label(
            valence in -1.0f32..=1.0,
            lexicon in any::<bool>(),
        ) {
            let model = if lexicon { "lexicon-vader-3.3.2+keywords/v1" } else { "e5+valence-head/v1" };
            let v1 = serde_json::json!({
                "valence": valence, "arousal": 0.5, "emotions": [["joy", 1.0]],
                "dominant": "joy", "confidence": 1.0, "model_id": model,
            });
            let mood: Mood = serde_json::from_value(v1).expect("a v1 record reads");
            prop_assert_eq!(mood.schema_version, Mood::SCHEMA_VERSION);
            prop_assert_eq!(mood.windows, 1);
            prop_assert_eq!(mood.valence_probability, None);
            let (band, inclusive) = if lexicon { (0.05, true) } else { (0.2, false) };
            let outside = |v: f32| if inclusive { v >= band } else { v > band };
            let expected = if outside(valence) {
                ValenceLabel::Positive
            } else if outside(-valence) {
                ValenceLabel::Negative
            } else {
                ValenceLabel::Neutral
            };
            prop_assert_eq!(mood.valence_label, expected);
            let again: Mood =
                serde_json::from_str(&serde_json::to_string(&mood).expect("encode")).expect("decode");
            prop_assert_eq!(again, mood);
        }
    }
}
