//! A user's matching profile: a decayed mood distribution, a theme vector and
//! a few recent entry embeddings, all updatable one event at a time.

use std::time::Duration;

use crate::matching::TextId;
use crate::mood::{Emotion, Mood};
use metachat_core::event::Timestamp;
use serde::{Deserialize, Serialize};

use super::error::{check_vector, MatchError, Result};
use super::kernel::{clamp_unit, cosine, norm};

/// Number of emotion labels, the length of a mood distribution ([`Emotion::ALL`] order).
pub const MOOD_DIMS: usize = Emotion::ALL.len();

/// Default half-life of a mood's weight in the profile: 14 days.
pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Default number of recent entry embeddings kept per user for explanations.
pub const DEFAULT_RECENT_ENTRIES: usize = 8;

/// Largest theme dimension accepted (guards against absurd configurations).
pub const MAX_THEME_DIM: usize = 1 << 16;

/// How similarity weighs themes against moods.
///
/// `score = theme · cos(theme_a, theme_b) + mood · BC(mood_a, mood_b)`, where
/// `BC(p, q) = Σ √(pᵢ·qᵢ)` is the Bhattacharyya coefficient of the two mood
/// distributions (`1 − H²`, H the Hellinger distance): 1 for identical
/// distributions, 0 for disjoint ones. It is the dot product of the unit
/// vectors `√p` and `√q`, so the whole score is one inner product and the
/// index can scan a single matrix. The weights are stored normalised to sum
/// to 1, so the score lies in [−`theme`, 1] ⊂ [−1, 1].
///
/// Default: 0.6 theme, 0.4 mood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawWeights")]
pub struct SimilarityWeights {
    theme: f32,
    mood: f32,
}

#[derive(Deserialize)]
struct RawWeights {
    theme: f32,
    mood: f32,
}

impl TryFrom<RawWeights> for SimilarityWeights {
    type Error = MatchError;
    fn try_from(raw: RawWeights) -> Result<Self> {
        SimilarityWeights::new(raw.theme, raw.mood)
    }
}

impl Default for SimilarityWeights {
    fn default() -> Self {
        SimilarityWeights {
            theme: 0.6,
            mood: 0.4,
        }
    }
}

impl SimilarityWeights {
    /// Weights proportional to `theme` and `mood`, normalised to sum to 1.
    /// Refused: a negative or non-finite weight, or both zero.
    pub fn new(theme: f32, mood: f32) -> Result<Self> {
        if !theme.is_finite() || !mood.is_finite() {
            return Err(MatchError::InvalidWeights {
                reason: format!("weights must be finite (theme {theme}, mood {mood})"),
            });
        }
        if theme < 0.0 || mood < 0.0 {
            return Err(MatchError::InvalidWeights {
                reason: format!("weights must not be negative (theme {theme}, mood {mood})"),
            });
        }
        let sum = theme + mood;
        if sum <= 0.0 || !sum.is_finite() {
            return Err(MatchError::InvalidWeights {
                reason: "at least one weight must be positive".to_owned(),
            });
        }
        Ok(SimilarityWeights {
            theme: theme / sum,
            mood: mood / sum,
        })
    }

    /// The theme weight, in [0, 1].
    pub fn theme(&self) -> f32 {
        self.theme
    }

    /// The mood weight, `1 − theme`.
    pub fn mood(&self) -> f32 {
        self.mood
    }
}

/// Settings of a [`MatchProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProfileConfig")]
pub struct ProfileConfig {
    theme_dim: usize,
    half_life_secs: f64,
    recent_entries: usize,
}

#[derive(Deserialize)]
struct RawProfileConfig {
    theme_dim: usize,
    half_life_secs: f64,
    recent_entries: usize,
}

impl TryFrom<RawProfileConfig> for ProfileConfig {
    type Error = MatchError;
    fn try_from(raw: RawProfileConfig) -> Result<Self> {
        check_half_life(raw.half_life_secs)?;
        Ok(ProfileConfig::new(raw.theme_dim)?
            .with_recent_entries(raw.recent_entries)
            .with_half_life_secs(raw.half_life_secs))
    }
}

fn check_half_life(secs: f64) -> Result<()> {
    if secs.is_finite() && secs > 0.0 {
        Ok(())
    } else {
        Err(MatchError::InvalidConfig {
            reason: format!("half-life must be a positive number of seconds, got {secs}"),
        })
    }
}

pub(crate) fn check_theme_dim(theme_dim: usize) -> Result<()> {
    if (1..=MAX_THEME_DIM).contains(&theme_dim) {
        Ok(())
    } else {
        Err(MatchError::InvalidConfig {
            reason: format!("theme dimension must be in 1..={MAX_THEME_DIM}, got {theme_dim}"),
        })
    }
}

impl ProfileConfig {
    /// Profiles of embeddings of `theme_dim` dimensions, with the default
    /// half-life ([`DEFAULT_HALF_LIFE`]) and [`DEFAULT_RECENT_ENTRIES`].
    pub fn new(theme_dim: usize) -> Result<Self> {
        check_theme_dim(theme_dim)?;
        Ok(ProfileConfig {
            theme_dim,
            half_life_secs: DEFAULT_HALF_LIFE.as_secs_f64(),
            recent_entries: DEFAULT_RECENT_ENTRIES,
        })
    }

    /// A mood `half_life` old weighs half as much as one of now. Refused: zero.
    pub fn with_half_life(self, half_life: Duration) -> Result<Self> {
        let secs = half_life.as_secs_f64();
        check_half_life(secs)?;
        Ok(self.with_half_life_secs(secs))
    }

    fn with_half_life_secs(mut self, secs: f64) -> Self {
        self.half_life_secs = secs;
        self
    }

    /// Keep the embeddings of the `n` newest entries (0: none; explanations
    /// then name no themes).
    pub fn with_recent_entries(mut self, n: usize) -> Self {
        self.recent_entries = n;
        self
    }

    /// Dimension of entry embeddings.
    pub fn theme_dim(&self) -> usize {
        self.theme_dim
    }

    /// The mood half-life.
    pub fn half_life(&self) -> Duration {
        Duration::from_secs_f64(self.half_life_secs)
    }

    /// How many recent entry embeddings a profile keeps.
    pub fn recent_entries(&self) -> usize {
        self.recent_entries
    }
}

/// The emotion distribution of `mood`, validated and normalised to sum to 1,
/// in [`Emotion::ALL`] order. Labels listed twice are summed.
pub fn mood_distribution(mood: &Mood) -> Result<[f64; MOOD_DIMS]> {
    let mut p = [0.0f64; MOOD_DIMS];
    for &(emotion, mass) in &mood.emotions {
        if !mass.is_finite() || mass < 0.0 {
            return Err(MatchError::InvalidMood {
                reason: format!("probability of {emotion:?} is {mass}"),
            });
        }
        let i = emotion_index(emotion);
        p[i] += f64::from(mass);
    }
    let sum: f64 = p.iter().sum();
    if sum <= 0.0 || !sum.is_finite() {
        return Err(MatchError::InvalidMood {
            reason: "the distribution has no mass".to_owned(),
        });
    }
    for x in &mut p {
        *x /= sum;
    }
    Ok(p)
}

/// Position of `emotion` in [`Emotion::ALL`].
pub fn emotion_index(emotion: Emotion) -> usize {
    Emotion::ALL
        .iter()
        .position(|&e| e == emotion)
        .unwrap_or(MOOD_DIMS - 1)
}

/// Exponentially decayed mood history: the weighted mean of the emotion
/// distributions of a user's moods, each weighing `2^(−age / half-life)`
/// relative to the newest one.
///
/// Sums are kept relative to the newest mood's time (`as_of`), in f64, so a
/// mood can be added in any order and removed again (an edited or deleted
/// entry) by subtracting exactly what it added. Every mood weighs 1 before
/// decay (confidence is not used as a weight). A mood older than about a
/// thousand half-lives than the newest one underflows to weight 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMoodHistory")]
pub struct MoodHistory {
    half_life_secs: f64,
    mass: [f64; MOOD_DIMS],
    weight: f64,
    as_of: Timestamp,
    count: u64,
}

#[derive(Deserialize)]
struct RawMoodHistory {
    half_life_secs: f64,
    mass: [f64; MOOD_DIMS],
    weight: f64,
    as_of: Timestamp,
    count: u64,
}

impl TryFrom<RawMoodHistory> for MoodHistory {
    type Error = MatchError;
    fn try_from(raw: RawMoodHistory) -> Result<Self> {
        check_half_life(raw.half_life_secs)?;
        let finite_nonneg = |x: f64| x.is_finite() && x >= 0.0;
        if !raw.mass.iter().all(|&x| finite_nonneg(x)) || !finite_nonneg(raw.weight) {
            return Err(MatchError::InvalidSnapshot {
                reason: "mood history holds negative or non-finite sums".to_owned(),
            });
        }
        Ok(MoodHistory {
            half_life_secs: raw.half_life_secs,
            mass: raw.mass,
            weight: raw.weight,
            as_of: raw.as_of,
            count: raw.count,
        })
    }
}

impl MoodHistory {
    /// An empty history with the half-life of `config`.
    pub fn new(config: &ProfileConfig) -> Self {
        MoodHistory {
            half_life_secs: config.half_life_secs,
            mass: [0.0; MOOD_DIMS],
            weight: 0.0,
            as_of: Timestamp(0),
            count: 0,
        }
    }

    fn decay(&self, older_by_micros: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)] // micros → seconds, precision is ample
        let secs = older_by_micros as f64 / 1e6;
        (-secs / self.half_life_secs).exp2()
    }

    /// Adds the mood of an entry recorded at `at`.
    pub fn add(&mut self, at: Timestamp, mood: &Mood) -> Result<()> {
        let p = mood_distribution(mood)?;
        if self.count == 0 {
            self.mass = [0.0; MOOD_DIMS];
            self.weight = 0.0;
            self.as_of = at;
        } else if at > self.as_of {
            let f = self.decay(at.0 - self.as_of.0);
            for m in &mut self.mass {
                *m *= f;
            }
            self.weight *= f;
            self.as_of = at;
        }
        let w = self.decay(self.as_of.0 - at.0.min(self.as_of.0));
        for (m, x) in self.mass.iter_mut().zip(p) {
            *m += w * x;
        }
        self.weight += w;
        self.count += 1;
        Ok(())
    }

    /// Removes a mood added before with the same `at` and `mood` (the old
    /// mood of an edited entry, or a deleted entry's).
    pub fn remove(&mut self, at: Timestamp, mood: &Mood) -> Result<()> {
        let p = mood_distribution(mood)?;
        if self.count == 0 {
            return Err(MatchError::EmptyMood);
        }
        self.count -= 1;
        if self.count == 0 {
            self.mass = [0.0; MOOD_DIMS];
            self.weight = 0.0;
            return Ok(());
        }
        let w = self.decay(self.as_of.0 - at.0.min(self.as_of.0));
        for (m, x) in self.mass.iter_mut().zip(p) {
            *m = (*m - w * x).max(0.0);
        }
        self.weight = (self.weight - w).max(0.0);
        Ok(())
    }

    /// The decayed distribution over [`Emotion::ALL`], summing to 1; `None`
    /// with no moods.
    #[allow(clippy::cast_possible_truncation)] // probabilities in [0, 1]
    pub fn distribution(&self) -> Option<[f32; MOOD_DIMS]> {
        let sum: f64 = self.mass.iter().sum();
        if self.count == 0 || sum <= 0.0 || !sum.is_finite() {
            return None;
        }
        let mut out = [0.0f32; MOOD_DIMS];
        for (o, m) in out.iter_mut().zip(self.mass) {
            *o = (m / sum) as f32;
        }
        Some(out)
    }

    /// The most probable label of [`distribution`](Self::distribution).
    pub fn dominant(&self) -> Option<Emotion> {
        let d = self.distribution()?;
        let mut best = 0;
        for i in 1..MOOD_DIMS {
            if d[i] > d[best] {
                best = i;
            }
        }
        Some(Emotion::ALL[best])
    }

    /// The decayed number of moods as seen at `now`: how much recent evidence
    /// the distribution rests on (1.0 = one mood of right now).
    pub fn recency(&self, now: Timestamp) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.weight * self.decay(now.0.saturating_sub(self.as_of.0))
    }

    /// Time of the newest mood; `None` with no moods.
    pub fn as_of(&self) -> Option<Timestamp> {
        (self.count > 0).then_some(self.as_of)
    }

    /// Number of moods held.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True with no moods.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The running sum and count of a user's entry embeddings; its direction is
/// the theme vector. An entry's embedding can be subtracted again when the
/// entry is edited or deleted. Sums are kept in f64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTheme")]
pub struct ThemeVector {
    sum: Vec<f64>,
    count: u64,
}

#[derive(Deserialize)]
struct RawTheme {
    sum: Vec<f64>,
    count: u64,
}

impl TryFrom<RawTheme> for ThemeVector {
    type Error = MatchError;
    fn try_from(raw: RawTheme) -> Result<Self> {
        check_theme_dim(raw.sum.len())?;
        if !raw.sum.iter().all(|x| x.is_finite()) {
            return Err(MatchError::InvalidSnapshot {
                reason: "theme sum holds non-finite values".to_owned(),
            });
        }
        Ok(ThemeVector {
            sum: raw.sum,
            count: raw.count,
        })
    }
}

impl ThemeVector {
    /// An empty theme of `config.theme_dim()` dimensions.
    pub fn new(config: &ProfileConfig) -> Self {
        ThemeVector {
            sum: vec![0.0; config.theme_dim],
            count: 0,
        }
    }

    /// Adds one entry's embedding.
    pub fn add(&mut self, embedding: &[f32]) -> Result<()> {
        check_vector(embedding, self.sum.len())?;
        for (s, &x) in self.sum.iter_mut().zip(embedding) {
            *s += f64::from(x);
        }
        self.count += 1;
        Ok(())
    }

    /// Subtracts an embedding added before.
    pub fn remove(&mut self, embedding: &[f32]) -> Result<()> {
        check_vector(embedding, self.sum.len())?;
        if self.count == 0 {
            return Err(MatchError::EmptyTheme);
        }
        self.count -= 1;
        if self.count == 0 {
            self.sum.iter_mut().for_each(|s| *s = 0.0);
        } else {
            for (s, &x) in self.sum.iter_mut().zip(embedding) {
                *s -= f64::from(x);
            }
        }
        Ok(())
    }

    /// The normalised mean embedding (unit length); `None` with no entries
    /// or when they cancel out.
    #[allow(clippy::cast_possible_truncation)] // components of a unit vector
    pub fn direction(&self) -> Option<Vec<f32>> {
        if self.count == 0 {
            return None;
        }
        let n = self.sum.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n <= f64::EPSILON || !n.is_finite() {
            return None;
        }
        Some(self.sum.iter().map(|x| (x / n) as f32).collect())
    }

    /// Number of entries summed.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True with no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Dimension of the embeddings.
    pub fn dim(&self) -> usize {
        self.sum.len()
    }
}

/// One recent entry's embedding, kept to explain a match by its closest
/// themes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentEntry {
    /// The entry.
    pub entry: TextId,
    /// When it was written (or last edited).
    pub at: Timestamp,
    /// Its embedding.
    pub embedding: Vec<f32>,
}

/// A user's matching profile: what [`MatchIndex`](super::MatchIndex) indexes.
///
/// Fed one event at a time: [`add_entry`](Self::add_entry) /
/// [`edit_entry`](Self::edit_entry) / [`remove_entry`](Self::remove_entry)
/// with the entry's embedding, [`add_mood`](Self::add_mood) /
/// [`remove_mood`](Self::remove_mood) with its mood. Removal needs the value
/// that was added (a projection keeps it beside the entry). Only the newest
/// [`ProfileConfig::recent_entries`] embeddings are kept for explanations;
/// a removed recent entry is not replaced by an older one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchProfile {
    theme: ThemeVector,
    mood: MoodHistory,
    recent: Vec<RecentEntry>,
    recent_cap: usize,
}

impl MatchProfile {
    /// An empty profile.
    pub fn new(config: &ProfileConfig) -> Self {
        MatchProfile {
            theme: ThemeVector::new(config),
            mood: MoodHistory::new(config),
            recent: Vec::new(),
            recent_cap: config.recent_entries,
        }
    }

    /// A new entry (or a re-added one) with its embedding.
    pub fn add_entry(&mut self, entry: TextId, at: Timestamp, embedding: &[f32]) -> Result<()> {
        self.theme.add(embedding)?;
        self.remember(entry, at, embedding);
        Ok(())
    }

    /// An edited entry: its old embedding is replaced by the new one.
    /// Nothing changes if either vector is refused.
    pub fn edit_entry(
        &mut self,
        entry: TextId,
        at: Timestamp,
        old: &[f32],
        new: &[f32],
    ) -> Result<()> {
        check_vector(new, self.theme.dim())?;
        self.theme.remove(old)?;
        self.theme.add(new)?;
        self.recent.retain(|r| r.entry != entry);
        self.remember(entry, at, new);
        Ok(())
    }

    /// A deleted entry, with the embedding it was added with.
    pub fn remove_entry(&mut self, entry: TextId, embedding: &[f32]) -> Result<()> {
        self.theme.remove(embedding)?;
        self.recent.retain(|r| r.entry != entry);
        Ok(())
    }

    /// The mood of an entry recorded at `at`.
    pub fn add_mood(&mut self, at: Timestamp, mood: &Mood) -> Result<()> {
        self.mood.add(at, mood)
    }

    /// Removes a mood added before (same `at`, same mood).
    pub fn remove_mood(&mut self, at: Timestamp, mood: &Mood) -> Result<()> {
        self.mood.remove(at, mood)
    }

    fn remember(&mut self, entry: TextId, at: Timestamp, embedding: &[f32]) {
        if self.recent_cap == 0 {
            return;
        }
        self.recent.retain(|r| r.entry != entry);
        self.recent.push(RecentEntry {
            entry,
            at,
            embedding: embedding.to_vec(),
        });
        // Newest first; ties by entry id so the order does not depend on arrival.
        self.recent
            .sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.entry.cmp(&b.entry)));
        self.recent.truncate(self.recent_cap);
    }

    /// The theme accumulator.
    pub fn theme(&self) -> &ThemeVector {
        &self.theme
    }

    /// The mood history.
    pub fn mood(&self) -> &MoodHistory {
        &self.mood
    }

    /// The newest entries' embeddings, newest first.
    pub fn recent(&self) -> &[RecentEntry] {
        &self.recent
    }

    /// The vectors to index or to query with.
    pub fn vectors(&self) -> MatchVectors {
        MatchVectors {
            theme: self.theme.direction(),
            mood: self.mood.distribution(),
            recent: self.recent.clone(),
        }
    }
}

/// What the index holds of one user: the unit theme vector, the mood
/// distribution and the recent entries. Either part may be absent (no
/// entries, no moods); an absent part contributes 0 to the similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawVectors")]
pub struct MatchVectors {
    theme: Option<Vec<f32>>,
    mood: Option<[f32; MOOD_DIMS]>,
    recent: Vec<RecentEntry>,
}

#[derive(Deserialize)]
struct RawVectors {
    theme: Option<Vec<f32>>,
    mood: Option<[f32; MOOD_DIMS]>,
    recent: Vec<RecentEntry>,
}

impl TryFrom<RawVectors> for MatchVectors {
    type Error = MatchError;
    fn try_from(raw: RawVectors) -> Result<Self> {
        MatchVectors::new(raw.theme.as_deref(), raw.mood.as_ref(), raw.recent)
    }
}

impl MatchVectors {
    /// Validates and normalises raw parts: the theme is scaled to unit
    /// length (a zero vector counts as absent), the mood distribution to sum
    /// to 1 (non-negative, finite, some mass). Dimensions are checked by the
    /// index, which knows them.
    pub fn new(
        theme: Option<&[f32]>,
        mood: Option<&[f32; MOOD_DIMS]>,
        recent: Vec<RecentEntry>,
    ) -> Result<Self> {
        let theme = match theme {
            None => None,
            Some(t) => {
                check_vector(t, t.len())?;
                let n = norm(t);
                #[allow(clippy::cast_possible_truncation)] // components of a unit vector
                (n > 0.0 && n.is_finite())
                    .then(|| t.iter().map(|&x| (f64::from(x) / n) as f32).collect())
            }
        };
        let mood = match mood {
            None => None,
            Some(p) => {
                check_vector(p, MOOD_DIMS)?;
                if p.iter().any(|&x| x < 0.0) {
                    return Err(MatchError::InvalidMood {
                        reason: "negative probability".to_owned(),
                    });
                }
                let sum: f64 = p.iter().map(|&x| f64::from(x)).sum();
                if sum <= 0.0 {
                    return Err(MatchError::InvalidMood {
                        reason: "the distribution has no mass".to_owned(),
                    });
                }
                let mut out = [0.0f32; MOOD_DIMS];
                for (o, &x) in out.iter_mut().zip(p) {
                    #[allow(clippy::cast_possible_truncation)] // a probability
                    {
                        *o = (f64::from(x) / sum) as f32;
                    }
                }
                Some(out)
            }
        };
        for r in &recent {
            check_vector(&r.embedding, r.embedding.len())?;
        }
        Ok(MatchVectors {
            theme,
            mood,
            recent,
        })
    }

    /// The unit theme vector.
    pub fn theme(&self) -> Option<&[f32]> {
        self.theme.as_deref()
    }

    /// The mood distribution, summing to 1.
    pub fn mood(&self) -> Option<&[f32; MOOD_DIMS]> {
        self.mood.as_ref()
    }

    /// The recent entries.
    pub fn recent(&self) -> &[RecentEntry] {
        &self.recent
    }
}

/// A similarity score and its two parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// `weights.theme · theme + weights.mood · mood`, in [-1, 1].
    pub score: f32,
    /// Cosine of the theme vectors, in [-1, 1]; 0 if either is absent.
    pub theme: f32,
    /// Bhattacharyya coefficient of the mood distributions, in [0, 1]; 0 if
    /// either is absent.
    pub mood: f32,
}

/// Bhattacharyya coefficient `Σ √(pᵢ·qᵢ)` of two distributions, in [0, 1].
pub fn mood_similarity(p: &[f32; MOOD_DIMS], q: &[f32; MOOD_DIMS]) -> f32 {
    let bc: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| (f64::from(a.max(0.0)) * f64::from(b.max(0.0))).sqrt())
        .sum();
    clamp_unit(bc).max(0.0)
}

/// The similarity of two users, as [`SimilarityWeights`] defines it. The
/// index computes the same value (in f32, up to rounding).
pub fn similarity(a: &MatchVectors, b: &MatchVectors, weights: SimilarityWeights) -> Similarity {
    let theme = match (a.theme(), b.theme()) {
        (Some(x), Some(y)) if x.len() == y.len() => cosine(x, y),
        _ => 0.0,
    };
    let mood = match (a.mood(), b.mood()) {
        (Some(p), Some(q)) => mood_similarity(p, q),
        _ => 0.0,
    };
    let score = clamp_unit(
        f64::from(weights.theme()) * f64::from(theme) + f64::from(weights.mood()) * f64::from(mood),
    );
    Similarity { score, theme, mood }
}
