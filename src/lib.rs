#![doc = include_str!("../README.md")]

pub use metachat_core as core;
pub use metachat_core::*;

/// Storage and bus backends.
pub use metachat_adapters as adapters;

/// Mood analysis, embeddings and matching.
#[cfg(feature = "analysis")]
pub use metachat_analysis as analysis_models;
