//! The mood heads: softmax regressions on sentence embeddings for the
//! three-way valence, the seven emotions and the three arousal levels, kept
//! together in one file with their provenance, and their trainer.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::corpus::ArousalLevel;
use super::error::{MoodError, Result};
use super::record::{Emotion, ValenceLabel};
use super::review::ReviewReader;

/// A dense layer with ReLU: `max(0, W x + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// One row of weights per unit.
    pub weights: Vec<Vec<f32>>,
    /// One bias per unit.
    pub bias: Vec<f32>,
}

impl Dense {
    /// The layer's output for `x` (zeros for a vector of another length).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| {
                if w.len() == x.len() {
                    (w.iter().zip(x).map(|(a, c)| a * c).sum::<f32>() + b).max(0.0)
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// One softmax head: `p = softmax((W h + b) / temperature)`, where `h` is
/// the embedding, or its image by a hidden [`Dense`] layer when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxHead {
    /// Class names, in the order of the rows of `weights`.
    pub classes: Vec<String>,
    /// The hidden layer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Dense>,
    /// One row of weights per class, each as long as the hidden layer (or
    /// the embedding, without one).
    pub weights: Vec<Vec<f32>>,
    /// One bias per class.
    pub bias: Vec<f32>,
    /// Softmax temperature, fitted on the dev split (lowest log-loss) and
    /// applied to the folded probabilities ([`fold`](Self::fold)); it
    /// changes no argmax, only how sure the probabilities are.
    pub temperature: f32,
    /// For a head with more outputs than labels: the label each output
    /// counts for, the extra outputs after the labels. The valence head can
    /// give the review sentences it was trained on outputs of their own
    /// (`negative (review)`, `positive (review)`), so that reviews and diary
    /// entries each get their own boundary; they are read as negative and
    /// positive. Empty: one output per label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fold: Vec<usize>,
    /// The hyper-parameters chosen and what they scored on the dev split.
    pub choice: HeadChoice,
}

/// One setting of a head's training and what it scored on the dev split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadSetting {
    /// Hidden units (0: a linear head).
    pub hidden: usize,
    /// L2 strength.
    pub l2: f32,
    /// Weight of each review sentence relative to a diary entry (0 when the
    /// reviews were not used).
    pub review_weight: f32,
    /// Whether the review sentences had outputs of their own
    /// ([`SoftmaxHead::fold`]) instead of sharing the diary entries'.
    #[serde(default)]
    pub review_outputs: bool,
    /// Dev-split accuracy.
    pub dev_accuracy: f32,
    /// Dev-split macro-F1.
    pub dev_macro_f1: f32,
}

/// What was chosen for a head, and on what evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadChoice {
    /// The chosen setting.
    pub chosen: HeadSetting,
    /// Every setting tried.
    pub grid: Vec<HeadSetting>,
}

impl SoftmaxHead {
    /// The embedding length the head reads.
    pub fn dimensions(&self) -> usize {
        match &self.hidden {
            Some(h) => h.weights.first().map_or(0, Vec::len),
            None => self.weights.first().map_or(0, Vec::len),
        }
    }

    /// The label probabilities of an embedding (extra outputs added to the
    /// label they count for, [`fold`](Self::fold)); a vector of another
    /// length reads as uniform.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let k = self.labels();
        if x.len() != self.dimensions() {
            return vec![1.0 / k as f32; k];
        }
        let hidden;
        let x = match &self.hidden {
            Some(h) => {
                hidden = h.forward(x);
                &hidden[..]
            }
            None => x,
        };
        let t = if self.temperature > 0.0 {
            self.temperature
        } else {
            1.0
        };
        let logits: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, c)| a * c).sum::<f32>() + b)
            .collect();
        if self.fold.is_empty() {
            let scaled: Vec<f32> = logits.iter().map(|l| l / t).collect();
            return softmax(&scaled);
        }
        let tempered: Vec<f32> = fold_probabilities(&softmax(&logits), &self.fold, k)
            .iter()
            .map(|p| p.max(1e-30).ln() / t)
            .collect();
        softmax(&tempered)
    }

    /// How many labels the head reads out: the number of classes, less its
    /// extra outputs ([`fold`](Self::fold)).
    pub fn labels(&self) -> usize {
        if self.fold.is_empty() {
            self.weights.len()
        } else {
            self.fold.iter().max().map_or(0, |m| m + 1)
        }
    }

    fn check(
        &self,
        name: &str,
        classes: &[&str],
        dims: Option<usize>,
    ) -> std::result::Result<(), String> {
        let n = self.classes.len();
        if self.classes.len() < classes.len()
            || self.classes[..classes.len()] != *classes
            || (self.fold.is_empty() && n != classes.len())
        {
            return Err(format!(
                "{name}: classes {:?}, expected {classes:?}",
                self.classes
            ));
        }
        if !self.fold.is_empty()
            && (self.fold.len() != n
                || self
                    .fold
                    .iter()
                    .take(classes.len())
                    .copied()
                    .ne(0..classes.len())
                || self.fold.iter().any(|&f| f >= classes.len()))
        {
            return Err(format!(
                "{name}: fold {:?} does not map its {n} classes onto the {} labels",
                self.fold,
                classes.len()
            ));
        }
        if self.weights.len() != n || self.bias.len() != n {
            return Err(format!("{name}: one row and one bias per class expected"));
        }
        let d = dims.unwrap_or_else(|| self.dimensions());
        let (inner, hidden_ok) = match &self.hidden {
            Some(h) => (
                h.weights.len(),
                !h.weights.is_empty()
                    && h.bias.len() == h.weights.len()
                    && h.weights.iter().all(|w| w.len() == d),
            ),
            None => (d, true),
        };
        if d == 0
            || d != self.dimensions()
            || !hidden_ok
            || self.weights.iter().any(|w| w.len() != inner)
        {
            return Err(format!("{name}: rows of different or zero length"));
        }
        let hidden_values = self
            .hidden
            .iter()
            .flat_map(|h| h.weights.iter().flatten().chain(&h.bias));
        let finite = self
            .weights
            .iter()
            .flatten()
            .chain(&self.bias)
            .chain(hidden_values)
            .chain([&self.temperature])
            .all(|v| v.is_finite());
        if !finite || self.temperature <= 0.0 {
            return Err(format!(
                "{name}: weights or temperature not finite and positive"
            ));
        }
        Ok(())
    }
}

/// Where and how the heads were trained, kept in their file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoodHeadsProvenance {
    /// The command that wrote the file.
    pub command: String,
    /// The training data and where it comes from.
    pub data: String,
    /// How an entry was turned into a vector (prefix, pooling).
    pub features: String,
    /// The seed of the corpus split.
    pub seed: u64,
    /// UTC date of training, `YYYY-MM-DD`.
    pub date: String,
    /// The rated review snippets the review reader was trained on besides
    /// amazon and imdb, by name
    /// ([`eval::RATED_SNIPPETS`](super::eval::RATED_SNIPPETS)), so that an
    /// evaluation refits the reader on what it was trained on. Empty in
    /// heads trained before 2026-12-07 (the afternoon), which had none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_snippets: Vec<String>,
}

/// How a text becomes the vector the heads read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The embedding of the whole text (a long text: the mean of its
    /// windows).
    #[default]
    Whole,
    /// The mean of the embeddings of the text's [`sentences`](super::sentences),
    /// scaled to unit length.
    Sentences,
}

/// The valence, emotion and arousal heads of one embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoodHeads {
    /// File format version ([`MoodHeads::FORMAT`]).
    pub format: u32,
    /// The embedder (and input prefix) the heads were trained on.
    pub embedder: String,
    /// How a text becomes the vector the heads read.
    #[serde(default)]
    pub pooling: Pooling,
    /// Three-way valence, classes in [`ValenceLabel::ALL`] order.
    pub valence: SoftmaxHead,
    /// Seven emotions, classes in [`Emotion::ALL`] order.
    pub emotion: SoftmaxHead,
    /// Arousal levels, classes in [`ArousalLevel::ALL`] order.
    pub arousal: SoftmaxHead,
    /// How the valence and emotion heads are read together
    /// ([`HeadsOutput::joint`]); absent in older files: independently.
    #[serde(default)]
    pub joint: JointSetting,
    /// The second valence reader for review-like text (format 3); absent:
    /// the valence head alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewReader>,
    /// Training provenance.
    pub provenance: MoodHeadsProvenance,
}

/// The weight of a valence and emotion pair that do not go together, chosen
/// on the dev split, with every weight tried and its dev accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointSetting {
    /// The chosen weight: 1 reads the heads independently, 0 rules
    /// mismatched pairs out.
    pub mismatch: f32,
    /// Whether the joint reading gives way as a text reads as a review
    /// ([`JointSetting::weight`]; format 4). The pairs that go together,
    /// and the emotion head itself, were learnt from diary entries; a
    /// review's valence is the review reader's to say. Absent in older
    /// files: the weight is `mismatch` whatever the text.
    #[serde(default)]
    pub fades_on_reviews: bool,
    /// Every weight tried.
    #[serde(default)]
    pub grid: Vec<JointScore>,
}

impl Default for JointSetting {
    fn default() -> Self {
        JointSetting {
            mismatch: 1.0,
            fades_on_reviews: false,
            grid: Vec::new(),
        }
    }
}

impl JointSetting {
    /// The mismatch weight for one text, given the review gate's
    /// probability that it is a review (`None`: heads without a review
    /// reader). When the setting [fades on reviews](Self::fades_on_reviews)
    /// the weight moves from [`mismatch`](Self::mismatch) towards 1
    /// (independent reading) in proportion to that probability:
    /// `mismatch + p · (1 − mismatch)`; otherwise it is `mismatch`.
    ///
    /// ```
    /// use metachat_analysis::mood::JointSetting;
    /// let joint = JointSetting { mismatch: 0.2, fades_on_reviews: true, grid: Vec::new() };
    /// assert_eq!(joint.weight(None), 0.2);
    /// assert_eq!(joint.weight(Some(0.0)), 0.2);
    /// assert_eq!(joint.weight(Some(1.0)), 1.0);
    /// assert!((joint.weight(Some(0.5)) - 0.6).abs() < 1e-6);
    /// ```
    pub fn weight(&self, review_probability: Option<f32>) -> f32 {
        match review_probability {
            Some(p) if self.fades_on_reviews => {
                let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
                self.mismatch + p * (1.0 - self.mismatch)
            }
            _ => self.mismatch,
        }
    }
}

/// One weight tried on the dev split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JointScore {
    /// The weight.
    pub mismatch: f32,
    /// Valence accuracy on dev (both languages).
    pub valence_accuracy: f32,
    /// Emotion accuracy on dev (both languages).
    pub emotion_accuracy: f32,
}

/// What the heads read off one embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadsOutput {
    /// Probability per [`ValenceLabel::ALL`].
    pub valence: [f32; 3],
    /// Probability per [`Emotion::ALL`].
    pub emotion: [f32; 7],
    /// Expected arousal level on \[0, 1\] ([`ArousalLevel::value`]).
    pub arousal: f32,
}

impl HeadsOutput {
    /// Whether emotion `e` goes with valence `v`: joy and love with
    /// positive, sadness, anger and fear with negative, no marked emotion
    /// with neutral, surprise with any (the diary corpus's guidelines).
    pub fn compatible(v: ValenceLabel, e: Emotion) -> bool {
        match e {
            Emotion::Joy | Emotion::Love => v == ValenceLabel::Positive,
            Emotion::Sadness | Emotion::Anger | Emotion::Fear => v == ValenceLabel::Negative,
            Emotion::Neutral => v == ValenceLabel::Neutral,
            Emotion::Surprise => true,
        }
    }

    /// The two heads read jointly: the valence and emotion distributions
    /// as a product of the two with a pair that does not go together
    /// ([`HeadsOutput::compatible`]) weighted by `mismatch` (0: ruled out,
    /// 1: the heads read independently), each then the marginal of that
    /// product. "Positive, mostly anger" becomes unlikely unless both heads
    /// insist on it; each head's evidence informs the other. A weight of 1
    /// (or more) returns the independent reading unchanged.
    #[must_use]
    pub fn joint(&self, mismatch: f32) -> HeadsOutput {
        if mismatch >= 1.0 {
            return self.clone();
        }
        let w = |v: ValenceLabel, e: Emotion| {
            if Self::compatible(v, e) {
                1.0
            } else {
                mismatch.clamp(0.0, 1.0)
            }
        };
        let mut valence = [0.0f32; 3];
        let mut emotion = [0.0f32; 7];
        for (i, &v) in ValenceLabel::ALL.iter().enumerate() {
            for (j, &e) in Emotion::ALL.iter().enumerate() {
                let p = self.valence[i] * self.emotion[j] * w(v, e);
                valence[i] += p;
                emotion[j] += p;
            }
        }
        let total: f32 = valence.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return self.clone();
        }
        valence.iter_mut().for_each(|p| *p /= total);
        emotion.iter_mut().for_each(|p| *p /= total);
        HeadsOutput {
            valence,
            emotion,
            arousal: self.arousal,
        }
    }
}

impl MoodHeads {
    /// The current file format: 3 added [`MoodHeads::review`], 4
    /// [`JointSetting::fades_on_reviews`], 5
    /// [`ReviewReader::one_sentence_shift`]. Files of formats 2 to 4
    /// (without them) still load and read as they did.
    pub const FORMAT: u32 = 5;

    /// Parses heads from their JSON; `origin` names them in errors.
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] for bad JSON, an unknown format, classes other
    /// than the labels in order, rows of different lengths, values that
    /// are not finite, or a joint mismatch weight outside 0..=1.
    pub fn from_json(json: &str, origin: &Path) -> Result<Self> {
        let corrupt = |reason: String| MoodError::Corrupt {
            path: origin.to_owned(),
            reason,
        };
        let heads: Self = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
        heads.validate().map_err(corrupt)?;
        Ok(heads)
    }

    /// Why these heads cannot be read, if they cannot: an unknown format,
    /// classes other than the labels in order, rows of different lengths,
    /// values that are not finite, a joint weight outside 0..=1.
    fn validate(&self) -> std::result::Result<(), String> {
        if !(2..=Self::FORMAT).contains(&self.format) {
            return Err(format!("unknown format {}", self.format));
        }
        let v: Vec<&str> = ValenceLabel::ALL.iter().map(|l| l.name()).collect();
        let e: Vec<&str> = Emotion::ALL.iter().map(|l| l.name()).collect();
        self.valence.check("valence", &v, None)?;
        let d = Some(self.dimensions());
        self.emotion.check("emotion", &e, d)?;
        self.arousal
            .check("arousal", &["low", "medium", "high"], d)?;
        if let Some(r) = &self.review {
            r.gate.check("review gate", &["diary", "review"], d)?;
            r.valence
                .check("review valence", &["negative", "positive"], d)?;
            if !r.shift.is_finite() {
                return Err(format!("review shift {} is not finite", r.shift));
            }
            if !r.one_sentence_shift.is_finite() {
                return Err(format!(
                    "review one-sentence shift {} is not finite",
                    r.one_sentence_shift
                ));
            }
        }
        let m = self.joint.mismatch;
        if !(m.is_finite() && (0.0..=1.0).contains(&m)) {
            return Err(format!("joint mismatch {m} is not within 0..=1"));
        }
        Ok(())
    }

    /// Reads a heads file.
    ///
    /// # Errors
    /// [`MoodError::MissingFile`], [`MoodError::Io`] or [`MoodError::Corrupt`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = MoodError::read_text(path)?;
        Self::from_json(&json, path)
    }

    /// The heads for multilingual e5 that ship in this crate
    /// (`data/mood_heads_e5.json`).
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] if the compiled-in file were damaged.
    pub fn builtin_e5() -> Result<Self> {
        Self::from_json(
            include_str!("../../data/mood_heads_e5.json"),
            &PathBuf::from("crates/metachat-analysis/data/mood_heads_e5.json"),
        )
    }

    /// The embedding length the heads read.
    pub fn dimensions(&self) -> usize {
        self.valence.dimensions()
    }

    /// The heads' version for a model id: their provenance date and the
    /// first 8 hex digits of the SHA-256 of their JSON, so that two heads
    /// files trained on the same day are told apart (a mood event's id is
    /// derived from its model id, and the same id would be taken for a
    /// redelivery).
    ///
    /// ```
    /// use metachat_analysis::mood::MoodHeads;
    /// let heads = MoodHeads::builtin_e5()?;
    /// let version = heads.version();
    /// assert!(version.starts_with(&heads.provenance.date));
    /// let mut other = heads.clone();
    /// other.valence.bias[0] += 0.5;
    /// assert_ne!(other.version(), version);
    /// assert_eq!(heads.clone().version(), version);
    /// # Ok::<(), metachat_analysis::mood::MoodError>(())
    /// ```
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialising plain numbers and strings cannot fail; an empty
        // digest input would still give a version.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(json);
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", self.provenance.date)
    }

    /// Valence, emotion and arousal of `x`, the embedding of a text of
    /// `sentences` sentences ([`sentences`](super::sentences) of it), the
    /// valence and emotion heads read together as [`MoodHeads::joint`] says
    /// (with the weight [`JointSetting::weight`] gives for the review
    /// gate's probability, when there is a review reader, which hears the
    /// sentence count: [`ReviewReader::review_probability`]).
    pub fn read(&self, x: &[f32], sentences: usize) -> HeadsOutput {
        let (out, review) = self.read_with_gate(x, sentences);
        out.joint(self.joint.weight(review))
    }

    /// Each head's own reading of `x` (a text of `sentences` sentences):
    /// the valence head's with the review reader's,
    /// [`ReviewReader::combine`], when there is one.
    pub fn read_independently(&self, x: &[f32], sentences: usize) -> HeadsOutput {
        self.read_with_gate(x, sentences).0
    }

    /// [`read_independently`](Self::read_independently) and the review
    /// gate's probability it used (`None` without a review reader), the
    /// gate read once.
    fn read_with_gate(&self, x: &[f32], sentences: usize) -> (HeadsOutput, Option<f32>) {
        let mut valence = [0.0; 3];
        valence.copy_from_slice(&self.valence.probabilities(x));
        let review = self.review.as_ref().map(|r| {
            let g = r.review_probability(x, sentences);
            valence = r.combine_at(valence, g, x);
            g
        });
        let mut emotion = [0.0; 7];
        emotion.copy_from_slice(&self.emotion.probabilities(x));
        let arousal = self
            .arousal
            .probabilities(x)
            .iter()
            .zip(ArousalLevel::ALL)
            .map(|(p, l)| p * l.value())
            .sum();
        (
            HeadsOutput {
                valence,
                emotion,
                arousal,
            },
            review,
        )
    }
}

/// Weights and biases of a fitted softmax regression.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxFit {
    /// One row per class.
    pub weights: Vec<Vec<f32>>,
    /// One bias per class.
    pub bias: Vec<f32>,
}

impl SoftmaxFit {
    /// Class probabilities of `x` at temperature 1.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, c)| a * c).sum::<f32>() + b)
            .collect();
        softmax(&logits)
    }

    /// The most probable class.
    pub fn predict(&self, x: &[f32]) -> usize {
        argmax(&self.probabilities(x))
    }
}

/// Fits L2-regularised softmax regression over `classes` classes: minimises
/// the weighted mean log-loss plus `l2 / 2 · |W|²` over standardised
/// features (biases not penalised) by Nesterov-accelerated gradient descent
/// with the step from the loss's Lipschitz bound; the standardisation is
/// folded back into the returned weights. `sample_weights` (one per example,
/// non-negative) scale each example's loss. Deterministic. Labels at or past
/// `classes` and examples of weight 0 are ignored; no examples give a zero
/// model.
pub fn train_softmax(
    xs: &[Vec<f32>],
    ys: &[usize],
    sample_weights: &[f32],
    classes: usize,
    l2: f32,
    iterations: usize,
) -> SoftmaxFit {
    let d = xs.first().map_or(0, Vec::len);
    let keep: Vec<usize> = (0..xs.len().min(ys.len()).min(sample_weights.len()))
        .filter(|&i| ys[i] < classes && sample_weights[i] > 0.0 && xs[i].len() == d)
        .collect();
    let zero = SoftmaxFit {
        weights: vec![vec![0.0; d]; classes],
        bias: vec![0.0; classes],
    };
    if keep.is_empty() || d == 0 || classes == 0 {
        return zero;
    }
    let sw: Vec<f64> = keep.iter().map(|&i| f64::from(sample_weights[i])).collect();
    let total: f64 = sw.iter().sum();
    let sw: Vec<f64> = sw.iter().map(|w| w / total).collect();
    // Weighted standardisation.
    let mut mean = vec![0.0f64; d];
    for (&i, w) in keep.iter().zip(&sw) {
        for (m, v) in mean.iter_mut().zip(&xs[i]) {
            *m += w * f64::from(*v);
        }
    }
    let mut sd = vec![0.0f64; d];
    for (&i, w) in keep.iter().zip(&sw) {
        for ((s, v), m) in sd.iter_mut().zip(&xs[i]).zip(&mean) {
            *s += w * (f64::from(*v) - m).powi(2);
        }
    }
    sd.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
    let z: Vec<Vec<f64>> = keep
        .iter()
        .map(|&i| {
            xs[i]
                .iter()
                .zip(&mean)
                .zip(&sd)
                .map(|((v, m), s)| (f64::from(*v) - m) / s)
                .collect()
        })
        .collect();
    let y: Vec<usize> = keep.iter().map(|&i| ys[i]).collect();
    let l2 = f64::from(l2);

    // Lipschitz bound of the softmax loss: 0.5 · λmax(Σ wᵢ zᵢzᵢᵀ) + l2.
    let mut v = vec![1.0 / (d as f64).sqrt(); d];
    let mut lambda = 0.0;
    for _ in 0..50 {
        let mut u = vec![0.0; d];
        for (row, w) in z.iter().zip(&sw) {
            let s: f64 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            for (ui, ri) in u.iter_mut().zip(row) {
                *ui += w * s * ri;
            }
        }
        lambda = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        if lambda == 0.0 {
            break;
        }
        v = u.iter().map(|x| x / lambda).collect();
    }
    let step = 1.0 / (0.5 * (lambda + 1.0) + l2);

    let mut w = vec![vec![0.0f64; d]; classes];
    let mut b = vec![0.0f64; classes];
    let mut w_prev = w.clone();
    let mut b_prev = b.clone();
    for t in 1..=iterations {
        let mom = (t as f64 - 1.0) / (t as f64 + 2.0);
        let wl: Vec<Vec<f64>> = w
            .iter()
            .zip(&w_prev)
            .map(|(r, p)| r.iter().zip(p).map(|(a, q)| a + mom * (a - q)).collect())
            .collect();
        let bl: Vec<f64> = b
            .iter()
            .zip(&b_prev)
            .map(|(a, q)| a + mom * (a - q))
            .collect();
        let mut gw = vec![vec![0.0f64; d]; classes];
        let mut gb = vec![0.0f64; classes];
        let mut logits = vec![0.0f64; classes];
        for ((row, &yi), wi) in z.iter().zip(&y).zip(&sw) {
            for (c, l) in logits.iter_mut().enumerate() {
                *l = row.iter().zip(&wl[c]).map(|(a, q)| a * q).sum::<f64>() + bl[c];
            }
            let max = logits.iter().copied().fold(f64::MIN, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            for c in 0..classes {
                let p = (logits[c] - max).exp() / sum;
                let r = wi * (p - if c == yi { 1.0 } else { 0.0 });
                gb[c] += r;
                for (g, x) in gw[c].iter_mut().zip(row) {
                    *g += r * x;
                }
            }
        }
        w_prev = std::mem::take(&mut w);
        b_prev = std::mem::take(&mut b);
        w = wl
            .iter()
            .zip(&gw)
            .map(|(r, g)| {
                r.iter()
                    .zip(g)
                    .map(|(wi, gi)| wi - step * (gi + l2 * wi))
                    .collect()
            })
            .collect();
        b = bl.iter().zip(&gb).map(|(bi, gi)| bi - step * gi).collect();
    }
    // Fold the standardisation back: w' = w / sd, b' = b − Σ w mean / sd.
    #[allow(clippy::cast_possible_truncation)]
    let weights: Vec<Vec<f32>> = w
        .iter()
        .map(|r| r.iter().zip(&sd).map(|(wi, s)| (wi / s) as f32).collect())
        .collect();
    #[allow(clippy::cast_possible_truncation)]
    let bias: Vec<f32> = w
        .iter()
        .zip(&b)
        .map(|(r, bi)| {
            let shift: f64 = r
                .iter()
                .zip(&sd)
                .zip(&mean)
                .map(|((wi, s), m)| wi / s * m)
                .sum();
            (bi - shift) as f32
        })
        .collect();
    SoftmaxFit { weights, bias }
}

/// The temperature among `grid` with the lowest mean log-loss of `logits`
/// (rows of class scores at temperature 1) against `ys`.
pub fn fit_temperature(logits: &[Vec<f32>], ys: &[usize], grid: &[f32]) -> f32 {
    let mut best = (f64::MAX, 1.0);
    for &t in grid {
        let nll: f64 = logits
            .iter()
            .zip(ys)
            .map(|(l, &y)| {
                let scaled: Vec<f32> = l.iter().map(|v| v / t).collect();
                -f64::from(softmax(&scaled)[y].max(1e-9)).ln()
            })
            .sum::<f64>()
            / logits.len().max(1) as f64;
        if nll < best.0 {
            best = (nll, t);
        }
    }
    best.1
}

/// Probabilities over `labels` labels from probabilities over outputs,
/// each output's added to the label `fold` maps it to (see
/// [`SoftmaxHead::fold`]); an empty `fold` returns `p` as it is.
pub fn fold_probabilities(p: &[f32], fold: &[usize], labels: usize) -> Vec<f32> {
    if fold.is_empty() {
        return p.to_vec();
    }
    let mut out = vec![0.0; labels];
    for (q, &l) in p.iter().zip(fold) {
        if let Some(o) = out.get_mut(l) {
            *o += q;
        }
    }
    out
}

/// Softmax of `logits` (stable; empty in, empty out).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// The index of the largest value (the first of equals; 0 for empty).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |best, (i, &x)| if x > best.1 { (i, x) } else { best },
        )
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distribution<const N: usize>(raw: [f32; N]) -> [f32; N] {
        let sum: f32 = raw.iter().sum();
        raw.map(|x| x / sum)
    }

    proptest::proptest! {
        #[test]
        fn the_joint_weight_fades_from_the_mismatch_to_one_with_the_review_probability(
            mismatch in 0.0f32..=1.0,
            p in 0.0f32..=1.0,
            q in 0.0f32..=1.0,
        ) {
            let fading = JointSetting { mismatch, fades_on_reviews: true, grid: Vec::new() };
            let fixed = JointSetting { fades_on_reviews: false, ..fading.clone() };
            // Without a reader, or without fading, the chosen weight.
            proptest::prop_assert_eq!(fading.weight(None), mismatch);
            proptest::prop_assert_eq!(fixed.weight(Some(p)), mismatch);
            // Fading: within [mismatch, 1], from mismatch (a diary entry)
            // to 1 (surely a review), never falling as p rises.
            let w = fading.weight(Some(p));
            proptest::prop_assert!(w >= mismatch - 1e-6 && w <= 1.0 + 1e-6);
            proptest::prop_assert!((fading.weight(Some(0.0)) - mismatch).abs() < 1e-6);
            proptest::prop_assert!((fading.weight(Some(1.0)) - 1.0).abs() < 1e-6);
            let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
            proptest::prop_assert!(fading.weight(Some(lo)) <= fading.weight(Some(hi)) + 1e-6);
            // A probability that is not one reads as no review at all.
            proptest::prop_assert_eq!(fading.weight(Some(f32::NAN)), mismatch);
        }

        #[test]
        fn joint_reading_gives_distributions_and_is_the_identity_at_one(
            v in proptest::array::uniform3(0.001f32..1.0),
            e in proptest::array::uniform7(0.001f32..1.0),
            mismatch in 0.0f32..=1.0,
        ) {
            let out = HeadsOutput { valence: distribution(v), emotion: distribution(e), arousal: 0.4 };
            let joint = out.joint(mismatch);
            for p in joint.valence.iter().chain(&joint.emotion) {
                proptest::prop_assert!((0.0..=1.0 + 1e-5).contains(p));
            }
            proptest::prop_assert!((joint.valence.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            proptest::prop_assert!((joint.emotion.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            proptest::prop_assert_eq!(joint.arousal, out.arousal);
            let same = out.joint(1.0);
            for (a, b) in same.valence.iter().zip(&out.valence).chain(same.emotion.iter().zip(&out.emotion)) {
                proptest::prop_assert!((a - b).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_joint_weight_outside_zero_to_one_is_a_typed_error() {
        let heads = MoodHeads::builtin_e5().expect("the built-in heads");
        let mut json: serde_json::Value = serde_json::to_value(&heads).unwrap();
        for bad in [serde_json::json!(2.0), serde_json::json!(-0.5)] {
            json["joint"]["mismatch"] = bad.clone();
            let err = MoodHeads::from_json(&json.to_string(), Path::new("heads.json")).unwrap_err();
            assert!(
                matches!(&err, MoodError::Corrupt { reason, .. } if reason.contains("joint mismatch")),
                "{bad}: {err:?}"
            );
        }
        // A file without the field reads the heads independently.
        json.as_object_mut().unwrap().remove("joint");
        let old = MoodHeads::from_json(&json.to_string(), Path::new("heads.json")).unwrap();
        assert_eq!(old.joint, JointSetting::default());
    }

    #[test]
    fn heads_that_fade_read_a_sure_review_independently_and_a_sure_diary_jointly() {
        let mut heads = MoodHeads::builtin_e5().expect("the built-in heads");
        let reader = heads
            .review
            .clone()
            .expect("the e5 heads have a review reader");
        heads.joint.mismatch = 0.05;
        heads.joint.fades_on_reviews = true;
        // An embedding on which the joint reading moves the valence.
        let d = heads.dimensions();
        let x = (0..d * 4)
            .map(|i| {
                (0..d)
                    .map(|j| ((i * 31 + j * 7) % 13) as f32 / 13.0 - 0.5)
                    .collect::<Vec<_>>()
            })
            .find(|x| {
                let out = heads.read_independently(x, 2);
                (out.joint(0.05).valence[0] - out.valence[0]).abs() > 1e-3
            })
            .expect("some embedding is read differently jointly");
        let close = |a: &HeadsOutput, b: &HeadsOutput| {
            a.valence
                .iter()
                .zip(&b.valence)
                .all(|(p, q)| (p - q).abs() < 1e-4)
        };
        // The gate sure it is a review: read independently.
        heads.review = Some(ReviewReader {
            shift: 200.0,
            ..reader.clone()
        });
        assert!(close(&heads.read(&x, 2), &heads.read_independently(&x, 2)));
        // Sure it is a diary entry: read jointly at the chosen weight.
        heads.review = Some(ReviewReader {
            shift: -200.0,
            ..reader.clone()
        });
        assert!(close(
            &heads.read(&x, 2),
            &heads.read_independently(&x, 2).joint(0.05)
        ));
        // Not fading: jointly, whatever the gate says.
        heads.joint.fades_on_reviews = false;
        heads.review = Some(ReviewReader {
            shift: 200.0,
            ..reader
        });
        assert!(close(
            &heads.read(&x, 2),
            &heads.read_independently(&x, 2).joint(0.05)
        ));
    }

    #[test]
    fn joint_reading_resolves_a_mismatch_by_the_surer_head() {
        // The valence head is sure it is positive, the emotion head
        // hesitates between anger and joy: read together, joy.
        let out = HeadsOutput {
            valence: [0.05, 0.05, 0.9],
            emotion: [0.35, 0.05, 0.4, 0.05, 0.05, 0.05, 0.05],
            arousal: 0.5,
        };
        assert_eq!(Emotion::ALL[argmax(&out.emotion)], Emotion::Anger);
        let joint = out.joint(0.05);
        assert_eq!(Emotion::ALL[argmax(&joint.emotion)], Emotion::Joy);
        assert_eq!(
            ValenceLabel::ALL[argmax(&joint.valence)],
            ValenceLabel::Positive
        );
    }

    #[test]
    fn learns_three_regions_it_was_not_told() {
        // class = which third of [0, 1) x0 falls in; x1 is noise.
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..30usize {
            for j in 0..10 {
                let a = i as f32 / 30.0;
                xs.push(vec![a, j as f32 / 10.0]);
                ys.push(i / 10);
            }
        }
        let w = vec![1.0; xs.len()];
        let fit = train_softmax(&xs, &ys, &w, 3, 1e-5, 2_000);
        let correct = xs
            .iter()
            .zip(&ys)
            .filter(|(x, y)| fit.predict(x) == **y)
            .count();
        assert!(
            correct as f32 / xs.len() as f32 > 0.9,
            "{correct} of {}",
            xs.len()
        );
    }

    #[test]
    fn a_zero_weight_example_changes_nothing() {
        let xs = vec![vec![0.0, 1.0], vec![1.0, 0.0], vec![0.5, 0.5]];
        let a = train_softmax(&xs[..2], &[0, 1], &[1.0, 1.0], 2, 1e-2, 200);
        let b = train_softmax(&xs, &[0, 1, 0], &[1.0, 1.0, 0.0], 2, 1e-2, 200);
        assert_eq!(a, b);
    }

    #[test]
    fn temperature_only_rescales() {
        let logits = vec![vec![2.0, 0.0], vec![0.0, 2.0], vec![2.0, 0.0]];
        // Always right: the sharpest temperature wins.
        assert_eq!(fit_temperature(&logits, &[0, 1, 0], &[0.5, 1.0, 2.0]), 0.5);
        // Right two times in three: a softer one wins.
        assert_eq!(fit_temperature(&logits, &[0, 1, 1], &[0.5, 1.0, 2.0]), 2.0);
    }

    /// A linear three-label head with two review outputs over 2-d inputs.
    fn folded_head(temperature: f32) -> SoftmaxHead {
        let names = [
            "negative",
            "neutral",
            "positive",
            "negative (review)",
            "positive (review)",
        ];
        SoftmaxHead {
            classes: names.iter().map(|s| (*s).to_owned()).collect(),
            hidden: None,
            weights: vec![
                vec![-1.0, 0.0],
                vec![0.0, 0.5],
                vec![1.0, 0.0],
                vec![-2.0, 1.0],
                vec![2.0, 1.0],
            ],
            bias: vec![0.0, 0.2, 0.0, -0.5, -0.5],
            temperature,
            fold: vec![0, 1, 2, 0, 2],
            choice: HeadChoice {
                chosen: HeadSetting {
                    hidden: 0,
                    l2: 1.0,
                    review_weight: 1.0,
                    review_outputs: true,
                    dev_accuracy: 0.0,
                    dev_macro_f1: 0.0,
                },
                grid: Vec::new(),
            },
        }
    }

    proptest::proptest! {
        #[test]
        fn a_folded_head_reads_the_sum_of_its_outputs_per_label(
            x in proptest::array::uniform2(-3.0f32..3.0),
            t in 0.3f32..4.0,
        ) {
            let head = folded_head(1.0);
            let logits: Vec<f32> = head.weights.iter().zip(&head.bias)
                .map(|(w, b)| w[0] * x[0] + w[1] * x[1] + b).collect();
            let raw = softmax(&logits);
            let p = head.probabilities(&x);
            proptest::prop_assert_eq!(p.len(), 3);
            proptest::prop_assert!((p[0] - (raw[0] + raw[3])).abs() < 1e-5);
            proptest::prop_assert!((p[1] - raw[1]).abs() < 1e-5);
            proptest::prop_assert!((p[2] - (raw[2] + raw[4])).abs() < 1e-5);
            // A temperature sharpens or softens the folded reading and
            // keeps its order.
            let tempered = folded_head(t).probabilities(&x);
            proptest::prop_assert!((tempered.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            proptest::prop_assert_eq!(argmax(&tempered), argmax(&p));
        }
    }

    #[test]
    fn an_unfolded_head_reads_as_before() {
        // Tempering the log of the softmax is tempering the logits.
        let mut head = folded_head(2.0);
        head.classes.truncate(3);
        head.weights.truncate(3);
        head.bias.truncate(3);
        head.fold.clear();
        let x = [0.7, -1.2];
        let logits: Vec<f32> = head
            .weights
            .iter()
            .zip(&head.bias)
            .map(|(w, b)| (w[0] * x[0] + w[1] * x[1] + b) / 2.0)
            .collect();
        let want = softmax(&logits);
        for (a, b) in head.probabilities(&x).iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn a_fold_that_does_not_map_onto_the_labels_is_refused() {
        let labels = ["negative", "neutral", "positive"];
        assert_eq!(folded_head(1.0).check("valence", &labels, Some(2)), Ok(()));
        for (fold, why) in [
            (vec![0, 1, 2, 0], "one label per output"),
            (vec![0, 1, 2, 0, 3], "a label that does not exist"),
            (vec![1, 0, 2, 0, 2], "the labels' own outputs moved"),
        ] {
            let mut head = folded_head(1.0);
            head.fold = fold;
            let err = head.check("valence", &labels, Some(2)).unwrap_err();
            assert!(err.contains("fold"), "{why}: {err}");
        }
        // Extra outputs without a fold are refused as extra classes.
        let mut head = folded_head(1.0);
        head.fold.clear();
        assert!(head.check("valence", &labels, Some(2)).is_err());
    }

    #[test]
    fn a_format_2_file_reads_with_the_valence_head_alone() {
        let heads = MoodHeads::builtin_e5().expect("the built-in heads");
        let mut json: serde_json::Value = serde_json::to_value(&heads).unwrap();
        json["format"] = 2.into();
        json.as_object_mut().unwrap().remove("review");
        let old = MoodHeads::from_json(&json.to_string(), Path::new("heads.json")).unwrap();
        assert!(old.review.is_none());
        let x: Vec<f32> = (0..heads.dimensions())
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 40.0)
            .collect();
        let alone = old.read_independently(&x, 2);
        for (a, b) in alone.valence.iter().zip(old.valence.probabilities(&x)) {
            assert!((a - b).abs() < 1e-6);
        }
        // With a reader, the valence is the reader's combination of the
        // valence head's reading.
        if let Some(r) = &heads.review {
            let mut diary = [0.0; 3];
            diary.copy_from_slice(&heads.valence.probabilities(&x));
            let want = r.combine(diary, &x, 2);
            let got = heads.read_independently(&x, 2).valence;
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 1e-6);
            }
        }
        // A format 3 file (before the joint reading could fade on
        // reviews) reads jointly at its weight, whatever the gate says.
        let mut json3 = serde_json::to_value(&heads).unwrap();
        json3["format"] = 3.into();
        json3["joint"]
            .as_object_mut()
            .unwrap()
            .remove("fades_on_reviews");
        let three = MoodHeads::from_json(&json3.to_string(), Path::new("h.json")).unwrap();
        assert!(!three.joint.fades_on_reviews);
        let w = three.joint.weight(Some(1.0));
        assert_eq!(w, three.joint.mismatch);
        // A format 4 file (before the one-sentence shift) reads every text
        // at the one shift.
        let mut json4 = serde_json::to_value(&heads).unwrap();
        json4["format"] = 4.into();
        json4["review"]
            .as_object_mut()
            .unwrap()
            .remove("one_sentence_shift");
        let four = MoodHeads::from_json(&json4.to_string(), Path::new("h.json")).unwrap();
        if let Some(r) = &four.review {
            assert_eq!(r.one_sentence_shift, 0.0);
            assert_eq!(r.review_probability(&x, 1), r.review_probability(&x, 2));
        }
        for format in [1, MoodHeads::FORMAT + 1] {
            json["format"] = format.into();
            let err = MoodHeads::from_json(&json.to_string(), Path::new("h.json")).unwrap_err();
            assert!(
                err.to_string().contains("unknown format"),
                "{format}: {err}"
            );
        }
    }

    #[test]
    fn the_one_sentence_shift_moves_only_texts_of_one_sentence() {
        let heads = MoodHeads::builtin_e5().expect("the built-in heads");
        let mut reader = heads
            .review
            .clone()
            .expect("the built-in heads have a review reader");
        let x: Vec<f32> = (0..heads.dimensions())
            .map(|i| ((i * 11 % 17) as f32 - 8.0) / 50.0)
            .collect();
        // The shift that puts this text at even odds, so that the extra
        // shift can be read off the probability.
        let g = reader.gate.probabilities(&x);
        reader.shift = g[0].max(1e-30).ln() - g[1].max(1e-30).ln();
        reader.one_sentence_shift = 0.0;
        let (one, more) = (
            reader.review_probability(&x, 1),
            reader.review_probability(&x, 3),
        );
        assert_eq!(one, more, "no extra shift: the count does not matter");
        reader.one_sentence_shift = 3.0;
        assert!((one - 0.5).abs() < 1e-4, "{one}");
        let shifted = reader.review_probability(&x, 1);
        assert!(
            (shifted - 1.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-4,
            "{shifted}"
        );
        assert_eq!(reader.review_probability(&x, 3), more);
        // A blank text (no sentence) reads as one.
        assert_eq!(reader.review_probability(&x, 0), shifted);
        // Through the heads: a sure one-sentence review is the review head's
        // split, a text of several sentences keeps the gate's own weight.
        let mut sure = heads.clone();
        reader.one_sentence_shift = 200.0;
        sure.review = Some(reader.clone());
        let mut diary = [0.0; 3];
        diary.copy_from_slice(&heads.valence.probabilities(&x));
        let r_neg = reader.valence.probabilities(&x)[0];
        let got = sure.read_independently(&x, 1).valence;
        assert!((got[0] - (diary[0] + diary[2]) * r_neg).abs() < 1e-5);
        let several = sure.read_independently(&x, 4).valence;
        let want = reader.combine_at(diary, more, &x);
        for (a, b) in several.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn a_damaged_review_reader_is_refused() {
        let heads = MoodHeads::builtin_e5().expect("the built-in heads");
        let reader = heads
            .review
            .clone()
            .expect("the built-in heads have a review reader");
        type Damage = fn(&mut ReviewReader);
        let cases: [(&str, Damage); 5] = [
            ("review gate", |r| r.gate.classes.reverse()),
            ("review valence", |r| {
                r.valence.weights[0].pop();
            }),
            ("review valence", |r| r.valence.bias[1] = f32::NAN),
            ("review shift", |r| r.shift = f32::INFINITY),
            ("review one-sentence shift", |r| {
                r.one_sentence_shift = f32::NAN;
            }),
        ];
        for (what, damage) in cases {
            let mut bad = heads.clone();
            let mut r = reader.clone();
            damage(&mut r);
            bad.review = Some(r);
            let err = bad.validate().unwrap_err();
            assert!(err.contains(what), "{what}: {err}");
        }
        // Through the file: a gate with its classes swapped.
        let mut json: serde_json::Value = serde_json::to_value(&heads).unwrap();
        json["review"]["gate"]["classes"] = serde_json::json!(["review", "diary"]);
        let err = MoodHeads::from_json(&json.to_string(), Path::new("h.json")).unwrap_err();
        assert!(
            matches!(&err, MoodError::Corrupt { reason, .. } if reason.contains("review gate")),
            "{err:?}"
        );
    }

    #[test]
    fn damaged_heads_are_refused_with_their_file() {
        let err = MoodHeads::from_json("{\"format\":2}", Path::new("h.json")).expect_err("bad");
        assert!(err.to_string().contains("h.json"));
    }
}
