//! Emotion prototypes: embeddings of short descriptions of each feeling
//! (`data/emotion_prototypes.txt`, written for this project in English and
//! Russian). A text's score for a label is its mean cosine to the label's
//! descriptions; the scores go through a softmax with a temperature.

use std::path::PathBuf;

use metachat_core::analysis::Embedder;

use super::error::{MoodError, Result};
use super::Emotion;

const PROTOTYPE_FILE: &str = "crates/metachat-analysis/data/emotion_prototypes.txt";
const PROTOTYPES: &str = include_str!("../../data/emotion_prototypes.txt");

/// Labelled descriptions, embedded.
#[derive(Debug, Clone)]
pub struct EmotionPrototypes {
    /// `(label index in Emotion::ALL, unit vector)`.
    vectors: Vec<(usize, Vec<f32>)>,
    counts: [usize; 7],
    temperature: f32,
}

impl EmotionPrototypes {
    /// The descriptions compiled into the crate, as `(label index, text)`.
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] for a line without a known label (the file is
    /// compiled in, so a unit test guards this).
    pub fn descriptions() -> Result<Vec<(usize, &'static str)>> {
        let mut out = Vec::new();
        for (n, line) in PROTOTYPES.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line.split_once(':').and_then(|(label, text)| {
                let k = Emotion::ALL.iter().position(|e| e.name() == label.trim())?;
                Some((k, text.trim()))
            });
            match parsed {
                Some(p) if !p.1.is_empty() => out.push(p),
                _ => {
                    return Err(MoodError::Corrupt {
                        path: PathBuf::from(PROTOTYPE_FILE),
                        reason: format!("line {}: expected `label: description`", n + 1),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Embeds the descriptions with `embedder`.
    ///
    /// # Errors
    /// [`MoodError::Embed`] when the embedder fails, [`MoodError::BadEmbedding`]
    /// when it returns the wrong shape.
    pub async fn build<E: Embedder + ?Sized>(embedder: &E, temperature: f32) -> Result<Self> {
        let descriptions = Self::descriptions()?;
        let texts: Vec<String> = descriptions.iter().map(|(_, t)| (*t).to_owned()).collect();
        let vecs = embedder.embed(&texts).await.map_err(MoodError::Embed)?;
        let dims = embedder.dimensions();
        if vecs.len() != texts.len() || vecs.iter().any(|v| v.len() != dims) {
            return Err(MoodError::BadEmbedding {
                expected: texts.len(),
                got: vecs.len(),
                dims: vecs
                    .iter()
                    .map(Vec::len)
                    .find(|&l| l != dims)
                    .unwrap_or(dims),
            });
        }
        let mut counts = [0; 7];
        for (k, _) in &descriptions {
            counts[*k] += 1;
        }
        Ok(Self {
            vectors: descriptions.iter().map(|(k, _)| *k).zip(vecs).collect(),
            counts,
            temperature,
        })
    }

    /// The softmax temperature.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Returns a copy with another temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    /// Mean cosine of `x` (a unit vector) to each label's descriptions, in
    /// [`Emotion::ALL`] order.
    pub fn label_scores(&self, x: &[f32]) -> [f32; 7] {
        let mut sums = [0.0f32; 7];
        for (k, v) in &self.vectors {
            sums[*k] += v.iter().zip(x).map(|(a, b)| a * b).sum::<f32>();
        }
        let mut out = [0.0; 7];
        for k in 0..7 {
            if self.counts[k] > 0 {
                out[k] = sums[k] / self.counts[k] as f32;
            }
        }
        out
    }

    /// The emotion distribution: `softmax(label_scores / temperature)`.
    pub fn distribution(&self, x: &[f32]) -> [f32; 7] {
        softmax(&self.label_scores(x), self.temperature)
    }
}

/// `softmax(scores / temperature)`, numerically stable; a non-positive
/// temperature gives a one-hot argmax.
pub(crate) fn softmax(scores: &[f32; 7], temperature: f32) -> [f32; 7] {
    let max = scores.iter().copied().fold(f32::MIN, f32::max);
    if temperature <= 0.0 || !temperature.is_finite() {
        let k = scores.iter().position(|&s| s == max).unwrap_or(6);
        let mut out = [0.0; 7];
        out[k] = 1.0;
        return out;
    }
    let e = scores.map(|s| ((s - max) / temperature).exp());
    let total: f32 = e.iter().sum();
    e.map(|x| x / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_descriptions_in_both_languages() {
        let d = EmotionPrototypes::descriptions().expect("prototypes parse");
        for k in 0..7 {
            let texts: Vec<&str> = d.iter().filter(|(l, _)| *l == k).map(|(_, t)| *t).collect();
            let cyrillic = texts
                .iter()
                .filter(|t| {
                    t.chars()
                        .any(|c| ('а'..='я').contains(&c.to_lowercase().next().unwrap_or(c)))
                })
                .count();
            assert!(cyrillic >= 2 && texts.len() - cyrillic >= 2, "label {k}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_orders_like_scores() {
        let p = softmax(&[0.8, 0.82, 0.7, 0.7, 0.7, 0.7, 0.75], 0.02);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(p[1] > p[0] && p[0] > p[6]);
    }
}
