//! Typed errors of the embedders.

use std::path::PathBuf;

/// `Result` with [`EmbedError`] as its default error type.
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// What went wrong loading a model or embedding texts.
///
/// Every variant about a file names the file, so a server can log it and fall
/// back to the lexicon analyzer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A model file (or the model directory) does not exist.
    #[error("model file {path} is missing (run scripts/fetch-models)")]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is truncated or its contents are inconsistent.
    #[error("corrupt model file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the offset where it helps.
        reason: String,
    },
    /// The file or directory holds a model of another kind than the loader reads.
    #[error("{path} is not the expected model: {reason}")]
    WrongArchitecture {
        /// The file or directory.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The tokenizer failed on a text or could not be built.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The tensor library failed (shapes, memory).
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The blocking worker thread panicked or was cancelled.
    #[error("embedding worker failed: {0}")]
    Worker(String),
}

impl EmbedError {
    pub(crate) fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> Self {
        EmbedError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl From<EmbedError> for metachat_core::error::Error {
    fn from(e: EmbedError) -> Self {
        metachat_core::error::Error::Backend {
            source: Box::new(e),
        }
    }
}
