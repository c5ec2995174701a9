//! Contracts of text analysis and text embedding, in batches. The toolkit
//! defines no analysis result of its own: an analyzer says what it
//! produces ([`TextAnalyzer::Output`], e.g. the `Mood` of
//! `metachat-analysis`). Implementations live in `metachat-analysis`; a
//! worker that reads texts from the log is generic over these traits.
//!
//! ```
//! use async_trait::async_trait;
//! use metachat_core::analysis::TextAnalyzer;
//!
//! /// Counts the words of each text.
//! struct WordCount;
//!
//! #[async_trait]
//! impl TextAnalyzer for WordCount {
//!     type Output = usize;
//!     async fn analyze(&self, texts: &[String]) -> metachat_core::Result<Vec<usize>> {
//!         Ok(texts.iter().map(|t| t.split_whitespace().count()).collect())
//!     }
//!     fn model_id(&self) -> &str {
//!         "word-count/1"
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> metachat_core::Result<()> {
//! let counts = WordCount.analyze(&["dear diary".into(), "".into()]).await?;
//! assert_eq!(counts, [2, 0]);
//! # Ok(())
//! # }
//! ```

use async_trait::async_trait;

use crate::error::Result;

/// Reads texts, in batches, into an [`Output`](TextAnalyzer::Output) each.
#[async_trait]
pub trait TextAnalyzer: Send + Sync {
    /// What one text reads as.
    type Output: Send + 'static;

    /// One output per input text, in order.
    async fn analyze(&self, texts: &[String]) -> Result<Vec<Self::Output>>;

    /// One output per input text, in order, each with the text's embedding
    /// where the analyzer computes one on the way (so one forward pass gives
    /// both). The default calls [`analyze`](TextAnalyzer::analyze) and gives
    /// no embeddings.
    async fn analyze_with_embeddings(
        &self,
        texts: &[String],
    ) -> Result<Vec<(Self::Output, Option<Vec<f32>>)>> {
        Ok(self
            .analyze(texts)
            .await?
            .into_iter()
            .map(|m| (m, None))
            .collect())
    }

    /// The model id stamped on results (name and version).
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
