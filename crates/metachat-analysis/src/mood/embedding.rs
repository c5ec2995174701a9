//! The embedding-based mood analyzer: valence, emotions and arousal from
//! trained [`MoodHeads`], or (the earlier reader, kept for embedders without
//! heads) valence from a logistic head, emotions from prototypes and arousal
//! from both.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use metachat_core::analysis::{Embedder, TextAnalyzer};

use crate::mood::Mood;

use crate::embed::{E5Embedder, MiniLmEmbedder};

use super::error::{MoodError, Result};
use super::{
    argmax, arousal_of, empty_mood, is_blank, mood_from_distribution, pool_sentences,
    sentence_counts, sentences, sentences_of, EmotionPrototypes, MoodHeads, Pooling, ValenceHead,
    ValenceLabel,
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

/// Mood from sentence embeddings, read by trained [`MoodHeads`]
/// ([`with_heads`](Self::with_heads)), or by a [`ValenceHead`] for valence
/// and [`EmotionPrototypes`] for the emotion distribution
/// ([`new`](Self::new)), arousal as documented in [the module](super).
pub struct EmbeddingMoodAnalyzer<E> {
    embedder: E,
    reader: Reader,
    model_id: String,
}

/// How an embedding becomes a mood.
enum Reader {
    Heads(Box<MoodHeads>),
    Prototypes {
        head: Box<ValenceHead>,
        prototypes: EmotionPrototypes,
    },
}

impl<E> fmt::Debug for EmbeddingMoodAnalyzer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingMoodAnalyzer")
            .field("model_id", &self.model_id)
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
            reader: Reader::Prototypes {
                head: Box::new(head),
                prototypes,
            },
            model_id,
        })
    }

    /// Builds the analyzer on trained heads: valence is `P(positive) −
    /// P(negative)` of the valence head (with the review reader's split for
    /// text that reads as a review, [`MoodHeads::review`], and read jointly
    /// with the emotion head as [`MoodHeads::read`] does), the emotion
    /// distribution is the emotion head's, arousal the arousal head's
    /// expected level.
    /// `embedder_id` names the embedder in the model id, beside the heads'
    /// version ([`MoodHeads::version`]).
    ///
    /// # Errors
    /// [`MoodError::DimensionMismatch`] when the heads do not fit the
    /// embedder.
    pub fn with_heads(embedder: E, heads: MoodHeads, embedder_id: &str) -> Result<Self> {
        if heads.dimensions() != embedder.dimensions() {
            return Err(MoodError::DimensionMismatch {
                path: PathBuf::from(&heads.embedder),
                head: heads.dimensions(),
                embedder: embedder.dimensions(),
            });
        }
        let model_id = format!("{embedder_id}+mood-heads/{}", heads.version());
        Ok(Self {
            embedder,
            reader: Reader::Heads(Box::new(heads)),
            model_id,
        })
    }

    /// Replaces the softmax temperature of the emotion prototypes (no effect
    /// on an analyzer built on heads, whose temperatures are in their file).
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        if let Reader::Prototypes { prototypes, .. } = &mut self.reader {
            *prototypes = prototypes.clone().with_temperature(temperature);
        }
        self
    }

    /// The embedder.
    pub fn embedder(&self) -> &E {
        &self.embedder
    }

    /// The trained heads, when the analyzer reads with them.
    pub fn heads(&self) -> Option<&MoodHeads> {
        match &self.reader {
            Reader::Heads(h) => Some(h),
            Reader::Prototypes { .. } => None,
        }
    }

    /// The valence head, when the analyzer reads with prototypes.
    pub fn head(&self) -> Option<&ValenceHead> {
        match &self.reader {
            Reader::Heads(_) => None,
            Reader::Prototypes { head, .. } => Some(head),
        }
    }

    /// The emotion prototypes, when the analyzer reads with them.
    pub fn prototypes(&self) -> Option<&EmotionPrototypes> {
        match &self.reader {
            Reader::Heads(_) => None,
            Reader::Prototypes { prototypes, .. } => Some(prototypes),
        }
    }

    /// The mood of `v`, the embedding of a text of `sentences` sentences
    /// ([`sentences`](super::sentences) of it: the heads' review reader
    /// hears it, [`MoodHeads::read`]) read in `windows` windows.
    pub fn mood_of_embedding(&self, v: &[f32], windows: u32, sentences: usize) -> Mood {
        match &self.reader {
            Reader::Heads(heads) => {
                let out = heads.read(v, sentences);
                let valence = out.valence[2] - out.valence[0];
                let k = argmax(&out.valence);
                let label = (ValenceLabel::ALL[k], Some(out.valence[k]));
                mood_from_distribution(
                    valence,
                    label,
                    out.arousal,
                    out.emotion,
                    &self.model_id,
                    windows,
                )
            }
            Reader::Prototypes { head, prototypes } => {
                let valence = head.valence(v);
                let dist = prototypes.distribution(v);
                let arousal = 0.7 * arousal_of(&dist) + 0.3 * valence.abs();
                let label = ValenceLabel::with_band(valence, Mood::BINARY_NEUTRAL_BAND, false);
                mood_from_distribution(
                    valence,
                    (label, None),
                    arousal,
                    dist,
                    &self.model_id,
                    windows,
                )
            }
        }
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
        let vecs: Vec<(Vec<f32>, u32, usize)> = match self.heads().map(|h| h.pooling) {
            Some(Pooling::Sentences) => self.embed_sentences(&to_embed).await?,
            _ => self
                .embed(&to_embed)
                .await?
                .into_iter()
                .zip(&to_embed)
                .map(|((v, w), t)| (v, w, sentences(t).len()))
                .collect(),
        };
        let mut vecs = vecs.into_iter();
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            if is_blank(text) {
                out.push((empty_mood(&self.model_id), None));
                continue;
            }
            let Some((v, windows, count)) = vecs.next() else {
                break;
            };
            let mood = self.mood_of_embedding(&v, windows.max(1), count);
            out.push((mood, Some(v)));
        }
        Ok(out)
    }
}

impl<E: WindowedEmbedder> EmbeddingMoodAnalyzer<E> {
    /// One `(vector, windows)` per text, checked for shape.
    async fn embed(&self, texts: &[String]) -> Result<Vec<(Vec<f32>, u32)>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vecs = self
            .embedder
            .embed_windowed(texts)
            .await
            .map_err(MoodError::Embed)?;
        let dims = self.embedder.dimensions();
        if vecs.len() != texts.len() || vecs.iter().any(|(v, _)| v.len() != dims) {
            return Err(MoodError::BadEmbedding {
                expected: texts.len(),
                got: vecs.len(),
                dims: vecs
                    .iter()
                    .map(|(v, _)| v.len())
                    .find(|&l| l != dims)
                    .unwrap_or(dims),
            });
        }
        Ok(vecs)
    }

    /// [`Pooling::Sentences`]: every sentence of every text embedded in one
    /// call, then each text's mean, scaled to unit length; its windows are
    /// the sum of its sentences'; with each text's sentence count.
    async fn embed_sentences(&self, texts: &[String]) -> Result<Vec<(Vec<f32>, u32, usize)>> {
        let (flat, owner) = sentences_of(texts);
        let vecs = self.embed(&flat).await?;
        let mut windows = vec![0u32; texts.len()];
        for ((_, w), &i) in vecs.iter().zip(&owner) {
            windows[i] += w;
        }
        let vectors: Vec<Vec<f32>> = vecs.into_iter().map(|(v, _)| v).collect();
        let pooled = pool_sentences(&vectors, &owner, texts.len(), self.embedder.dimensions());
        let counts = sentence_counts(&owner, texts.len());
        Ok(pooled
            .into_iter()
            .zip(windows)
            .zip(counts)
            .map(|((v, w), c)| (v, w, c))
            .collect())
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
                assert_eq!(*mood, a.mood_of_embedding(&vecs[i], 1, 1));
            }
        }
    }
}
