//! Errors of the mood analyzers.

use std::path::PathBuf;

/// `Result` with [`MoodError`] as its default error type.
pub type Result<T, E = MoodError> = std::result::Result<T, E>;

/// What went wrong while building or running a mood analyzer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MoodError {
    /// A file the analyzer needs is not there.
    #[error("missing model file {}: run scripts/fetch-models", path.display())]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A file that exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not what the analyzer expects.
    #[error("corrupt file {}: {reason}", path.display())]
    Corrupt {
        /// The file (or, for data compiled into the crate, its name).
        path: PathBuf,
        /// What was wrong, with a line number where there is one.
        reason: String,
    },
    /// A valence head whose width differs from the embedder's.
    #[error("valence head {} has {head} weights, but the embedder gives {embedder} dimensions", path.display())]
    DimensionMismatch {
        /// The head's file.
        path: PathBuf,
        /// Weights in the head.
        head: usize,
        /// The embedder's [`dimensions`](metachat_core::analysis::Embedder::dimensions).
        embedder: usize,
    },
    /// The embedder failed (model inference, input it refused).
    #[error("embedding failed: {0}")]
    Embed(#[source] metachat_core::Error),
    /// The embedder returned a different number of vectors than texts, or a
    /// vector of the wrong length.
    #[error("embedder returned {got} vectors of {dims} dimensions for {expected} texts")]
    BadEmbedding {
        /// Texts sent.
        expected: usize,
        /// Vectors received.
        got: usize,
        /// Length of the first wrong vector.
        dims: usize,
    },
}

impl From<MoodError> for metachat_core::Error {
    fn from(e: MoodError) -> Self {
        match e {
            MoodError::Embed(inner) => inner,
            other => metachat_core::Error::backend(other),
        }
    }
}

impl MoodError {
    /// Reads a whole text file: [`MoodError::MissingFile`] when it is not
    /// there, [`MoodError::Io`] for any other failure.
    pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
        std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                MoodError::MissingFile {
                    path: path.to_owned(),
                }
            } else {
                MoodError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })
    }
}
