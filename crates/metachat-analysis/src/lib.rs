//! # metachat-analysis
//!
//! Mood analysis, text embeddings and people-matching for MetaChat,
//! implementing the `MoodAnalyzer` and `Embedder` traits of
//! `metachat-core`. Depend on it (or on the facade's `analysis` feature) to
//! read diary entries' moods and match people; it has no cargo features of
//! its own.
//!
//! - [`embed`]: multilingual-e5-small (Russian and English, the default) and
//!   all-MiniLM-L6-v2 (English) on our own CPU BERT encoder: packed batches,
//!   AVX-512 f32 products, and for e5 an AVX-512 VNNI int8 kernel on its
//!   4-bit weights where the CPU has it. Model files come from packages,
//!   fetched by `scripts/fetch-models`, never from a model hub.
//! - [`mood`]: valence, arousal and emotions from the embeddings (a trained
//!   linear head and emotion prototypes), with a VADER lexicon fallback that
//!   needs no model.
//! - [`matching`]: per-user profiles (decayed mood, theme vector), exact
//!   top-k with explanations, an HNSW index for a million users, and the
//!   matching projection.

pub use metachat_core::analysis::{Embedder, Emotion, Mood, MoodAnalyzer};

pub mod embed;
pub mod matching;
pub mod mood;
