//! The embedding-based mood analyzer: valence from a logistic head, emotions
//! from prototypes, arousal from both.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use metachat_core::analysis::{Embedder, TextAnalyzer};

use crate::mood::Mood;

use crate::embed::{E5Embedder, MiniLmEmbedder};

use super::error::{MoodError, Result};
use super::{
    arousal_of, empty_mood, is_blank, mood_from_distribution, EmotionPrototypes, ValenceHead,
};

/// An [`Embedder`] that also says how many model windows each text was read
/// in (for [`Mood::windows`]). Implemented for [`E5Embedder`] and
/// [`MiniLmEmbedder`].
#[async_trait]
pub trait WindowedEmbedder: Embedder {
    /// One `(unit vector, windows)` per text, in order.
    async fn embed_windowed(&self, texts: &[String])
        -> metachat_core::Result<Vec<(Vec<f32>, u32)>>;
}

#[async_trait]
impl WindowedEmbedder for E5Embedder {
    async fn embed_windowed(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Vec<f32>, u32)>> {
        let out = self.embed_detailed(texts).await?;
        Ok(out.into_iter().map(|e| (e.vector, e.windows)).collect())
    }
}

#[async_trait]
impl WindowedEmbedder for MiniLmEmbedder {
    async fn embed_windowed(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Vec<f32>, u32)>> {
        let out = self.embed_detailed(texts).await?;
        Ok(out.into_iter().map(|e| (e.vector, e.windows)).collect())
    }
}

/// Mood from sentence embeddings: [`ValenceHead`] for valence,
/// [`EmotionPrototypes`] for the emotion distribution, arousal as documented
/// in [the module](super).
pub struct EmbeddingMoodAnalyzer<E> {
    embedder: E,
    head: ValenceHead,
    prototypes: EmotionPrototypes,
    model_id: String,
}

impl<E> fmt::Debug for EmbeddingMoodAnalyzer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingMoodAnalyzer")
            .field("model_id", &self.model_id)
            .field("temperature", &self.prototypes.temperature())
            .finish_non_exhaustive()
    }
}

impl<E: WindowedEmbedder> EmbeddingMoodAnalyzer<E> {
    /// Softmax temperature of the emotion prototypes, chosen on the
    /// development set (`data/emotion_dev.jsonl`) as the one with the lowest
    /// negative log-likelihood for e5 (the temperature does not change the
    /// argmax, so accuracy and macro-F1 do not depend on it; it only sets how
    /// peaked the distribution and the confidence are). See `eval_mood`.
    pub const DEFAULT_TEMPERATURE: f32 = 0.01;

    /// Builds the analyzer: embeds the emotion prototypes once.
    /// `embedder_id` names the embedder in the model id.
    ///
    /// # Errors
    /// [`MoodError::DimensionMismatch`] when the head does not fit the
    /// embedder; [`MoodError::Embed`] when embedding the prototypes fails.
    pub async fn new(embedder: E, head: ValenceHead, embedder_id: &str) -> Result<Self> {
        if head.weights.len() != embedder.dimensions() {
            return Err(MoodError::DimensionMismatch {
                path: PathBuf::from(&head.embedder),
                head: head.weights.len(),
                embedder: embedder.dimensions(),
            });
        }
        let prototypes = EmotionPrototypes::build(&embedder, Self::DEFAULT_TEMPERATURE).await?;
        let model_id = format!(
            "{embedder_id}+valence-head/{}+emotion-prototypes/v1",
            head.provenance.date
        );
        Ok(Self {
            embedder,
            head,
            prototypes,
            model_id,
        })
    }

    /// Replaces the softmax temperature of the emotion prototypes.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.prototypes = self.prototypes.with_temperature(temperature);
        self
    }

    /// The embedder.
    pub fn embedder(&self) -> &E {
        &self.embedder
    }

    /// The valence head.
    pub fn head(&self) -> &ValenceHead {
        &self.head
    }

    /// The emotion prototypes.
    pub fn prototypes(&self) -> &EmotionPrototypes {
        &self.prototypes
    }

    /// The mood of one embedding.
    pub fn mood_of_embedding(&self, v: &[f32], windows: u32) -> Mood {
        let valence = self.head.valence(v);
        let dist = self.prototypes.distribution(v);
        let arousal = 0.7 * arousal_of(&dist) + 0.3 * valence.abs();
        mood_from_distribution(valence, arousal, dist, &self.model_id, windows)
    }

    /// Analyzes a batch; blank texts are answered without the model.
    ///
    /// # Errors
    /// [`MoodError::Embed`] when the embedder fails, [`MoodError::BadEmbedding`]
    /// when it returns the wrong shape.
    pub async fn analyze_batch(&self, texts: &[String]) -> Result<Vec<Mood>> {
        Ok(self
            .analyze_batch_with_embeddings(texts)
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    /// Analyzes a batch and returns each text's embedding with its mood (one
    /// embedder pass gives both); blank texts are answered without the
    /// model and have no embedding.
    ///
    /// # Errors
    /// As [`analyze_batch`](Self::analyze_batch).
    pub async fn analyze_batch_with_embeddings(
        &self,
        texts: &[String],
    ) -> Result<Vec<(Mood, Option<Vec<f32>>)>> {
        let to_embed: Vec<String> = texts.iter().filter(|t| !is_blank(t)).cloned().collect();
        let vecs = if to_embed.is_empty() {
            Vec::new()
        } else {
            self.embedder
                .embed_windowed(&to_embed)
                .await
                .map_err(MoodError::Embed)?
        };
        let dims = self.embedder.dimensions();
        if vecs.len() != to_embed.len() || vecs.iter().any(|(v, _)| v.len() != dims) {
            return Err(MoodError::BadEmbedding {
                expected: to_embed.len(),
                got: vecs.len(),
                dims: vecs
                    .iter()
                    .map(|(v, _)| v.len())
                    .find(|&l| l != dims)
                    .unwrap_or(dims),
            });
        }
        let mut vecs = vecs.into_iter();
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            if is_blank(text) {
                out.push((empty_mood(&self.model_id), None));
                continue;
            }
            let Some((v, windows)) = vecs.next() else {
                break;
            };
            let mood = self.mood_of_embedding(&v, windows.max(1));
            out.push((mood, Some(v)));
        }
        Ok(out)
    }
}

#[async_trait]
impl<E: WindowedEmbedder> TextAnalyzer for EmbeddingMoodAnalyzer<E> {
    type Output = Mood;

    async fn analyze(&self, texts: &[String]) -> metachat_core::Result<Vec<Mood>> {
        Ok(self.analyze_batch(texts).await?)
    }

    async fn analyze_with_embeddings(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Mood, Option<Vec<f32>>)>> {
        Ok(self.analyze_batch_with_embeddings(texts).await?)
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metachat_core::analysis::Embedder;

    /// Bag of letters, normalised: a different unit vector for most texts.
    struct Letters;

    #[async_trait]
    impl Embedder for Letters {
        async fn embed(&self, texts: &[String]) -> metachat_core::Result<Vec<Vec<f32>>> {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = [0.1f32; 8];
                    for b in t.bytes() {
                        v[usize::from(b) % 8] += 1.0;
                    }
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter().map(|x| x / n).collect()
                })
                .collect())
        }
        fn dimensions(&self) -> usize {
            8
        }
    }

    #[async_trait]
    impl WindowedEmbedder for Letters {
        async fn embed_windowed(
            &self,
            texts: &[String],
        ) -> metachat_core::Result<Vec<(Vec<f32>, u32)>> {
            Ok(self
                .embed(texts)
                .await?
                .into_iter()
                .map(|v| (v, 1))
                .collect())
        }
    }

    #[tokio::test]
    async fn one_pass_gives_the_mood_and_the_embedding() {
        let mut head = ValenceHead::builtin_e5().expect("head");
        head.weights = (0..8).map(|i| i as f32 / 8.0 - 0.4).collect();
        let a = EmbeddingMoodAnalyzer::new(Letters, head, "letters")
            .await
            .expect("analyzer");
        let texts: Vec<String> = ["a good day", "  ", "zzz, awful"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let both = a.analyze_with_embeddings(&texts).await.expect("analyze");
        let moods = a.analyze(&texts).await.expect("analyze");
        let vecs = Letters.embed(&texts).await.expect("embed");
        assert_eq!(both.len(), 3);
        for (i, (mood, emb)) in both.iter().enumerate() {
            assert_eq!(*mood, moods[i]);
            if i == 1 {
                assert_eq!(*emb, None, "a blank text has no embedding");
            } else {
                assert_eq!(emb.as_ref(), Some(&vecs[i]));
                assert_eq!(*mood, a.mood_of_embedding(&vecs[i], 1));
            }
        }
    }
}
