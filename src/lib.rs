#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use metachat_core::{
    aggregate, bus, codec, error, event, memory, projection, read_model, relay, store, Error,
    Result,
};

/// The given/when/then harness for aggregates.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use metachat_conformance::testing;

/// Storage and bus backends, one module per cargo feature: `sled` (default),
/// `kafka`, `cassandra`, `eventstoredb`.
pub use metachat_adapters as adapters;

/// Crypto-shredding: per-subject data keys, sealed values and the key vault.
#[cfg(feature = "shred")]
#[cfg_attr(docsrs, doc(cfg(feature = "shred")))]
pub use metachat_shred as shred;

/// Text analysis: the core contracts ([`TextAnalyzer`](analysis::TextAnalyzer),
/// [`Embedder`](analysis::Embedder)) and, with the `analysis` feature, the
/// mood analyzers, the embedding models and the matching index.
pub mod analysis {
    pub use metachat_core::analysis::{Embedder, TextAnalyzer};

    #[cfg(feature = "analysis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "analysis")))]
    pub use metachat_analysis::{embed, matching, mood, Emotion, Mood, MoodAnalyzer};
}
