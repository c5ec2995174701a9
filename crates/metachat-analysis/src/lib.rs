//! # metachat-analysis
//!
//! Mood analysis, embeddings and matching for MetaChat, implementing the
//! `MoodAnalyzer` and `Embedder` traits of `metachat-core`. The candle models
//! arrive with their own issue; this crate is a placeholder until then.

pub use metachat_core::analysis::{Embedder, Emotion, Mood, MoodAnalyzer};

pub mod embed;
pub mod matching;
pub mod mood;
