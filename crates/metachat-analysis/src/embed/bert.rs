//! The BERT encoder both embedders run (post-LayerNorm, exact GELU,
//! absolute positions, token type 0), mean-pooled over the tokens: e5's
//! weights come from the `E5S1` file ([`super::e5_model`]), MiniLM's from
//! safetensors ([`super::minilm`]).
//!
//! Our own rather than candle-transformers' `BertModel` for one reason that
//! was measured: candle's GEMM leaves the second core idle on the small
//! products of short texts, so products of fewer than [`SPLIT_BELOW_ROWS`]
//! rows run as two column halves on two threads.

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor, D};

use super::e5_file::{dequantize_q4_0, Q4_BLOCK, Q4_BLOCK_BYTES};
use super::error::{EmbedError, Result};

/// Below this many input rows (tokens in the batch) an f32 product runs as
/// two column halves on two threads. Measured on the 2-core machine (e5,
/// sentences/s): one short text +19–23 %, 8 short texts +13 %, one long
/// text +9 %; for 8 or 32 long texts splitting cost 6–12 %, hence the bound.
/// MiniLM: one short text +15 %, one long text (256 rows) −8 %; a bound of
/// 256 lost e5's gains on 8 short and 1 long text, so e5, the default,
/// decides.
pub(crate) const SPLIT_BELOW_ROWS: usize = 1024;

/// A dense layer `x·Wᵀ + b`.
pub(crate) struct Linear {
    w: Weight,
    b: Tensor,
}

enum Weight {
    /// Q4_0 blocks in a candle quantized tensor.
    Quantized(QMatMul),
    /// f32 `Wᵀ`, contiguous [in, out], and its two column halves (views of
    /// the same storage) for inputs of fewer than [`SPLIT_BELOW_ROWS`] rows.
    F32 {
        wt: Tensor,
        halves: (Tensor, Tensor),
    },
}

impl Linear {
    /// `w` [out, in] (f32 or quantized), `b` [out].
    pub(crate) fn new(w: QMatMul, b: Tensor) -> candle_core::Result<Self> {
        let w = match w {
            QMatMul::Tensor(t) => {
                let wt = t.t()?.contiguous()?;
                let cols = wt.dim(1)?;
                let half = cols / 2;
                let halves = (wt.narrow(1, 0, half)?, wt.narrow(1, half, cols - half)?);
                Weight::F32 { wt, halves }
            }
            q => Weight::Quantized(q),
        };
        Ok(Linear { w, b })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let y = match &self.w {
            Weight::Quantized(q) => return q.forward(x)?.broadcast_add(&self.b),
            Weight::F32 {
                halves: (w0, w1), ..
            } if b * l < SPLIT_BELOW_ROWS => {
                let x2 = x.reshape((b * l, h))?;
                let (y0, y1) = rayon::join(|| x2.matmul(w0), || x2.matmul(w1));
                Tensor::cat(&[y0?, y1?], 1)?
            }
            Weight::F32 { wt, .. } => x.reshape((b * l, h))?.matmul(wt)?,
        };
        y.broadcast_add(&self.b)?.reshape((b, l, ()))
    }
}

/// LayerNorm over the last dimension.
pub(crate) struct LayerNorm {
    pub(crate) w: Tensor,
    pub(crate) b: Tensor,
    pub(crate) eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

/// One encoder layer.
pub(crate) struct Layer {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) ao: Linear,
    pub(crate) aln: LayerNorm,
    pub(crate) fi: Linear,
    pub(crate) fo: Linear,
    pub(crate) oln: LayerNorm,
}

/// The word-embedding table.
pub(crate) enum WordTable {
    /// Q4_0 rows (e5: 250k rows stay 4-bit; dequantised on lookup).
    Q4(Vec<u8>),
    /// f32 rows, `vocab × hidden`.
    F32(Vec<f32>),
}

/// A BERT encoder ready to run.
pub(crate) struct Encoder {
    pub(crate) hidden: usize,
    pub(crate) heads: usize,
    pub(crate) vocab: usize,
    pub(crate) max_positions: usize,
    pub(crate) word: WordTable,
    /// Position embeddings [max_positions, hidden].
    pub(crate) pos: Tensor,
    /// Token-type 0 embedding [hidden].
    pub(crate) type0: Tensor,
    pub(crate) eln: LayerNorm,
    pub(crate) layers: Vec<Layer>,
}

impl Encoder {
    /// Mean-pooled (not yet normalised) embeddings of a batch of full token
    /// sequences (special tokens included), each at most `max_positions`
    /// long; shorter ones are padded and masked.
    pub(crate) fn forward(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let b = seqs.len();
        let l = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || l == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        if l > self.max_positions {
            return Err(EmbedError::Tokenizer(format!(
                "sequence of {l} tokens exceeds the model's {} positions",
                self.max_positions
            )));
        }
        let hid = self.hidden;
        let mut emb = vec![0f32; b * l * hid];
        let mut mask = vec![0f32; b * l];
        for (i, s) in seqs.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(EmbedError::Tokenizer(format!(
                        "token id {id} outside the vocabulary of {}",
                        self.vocab
                    )));
                }
                let at = (i * l + t) * hid;
                let out = &mut emb[at..at + hid];
                match &self.word {
                    WordTable::Q4(bytes) => {
                        let row = hid / Q4_BLOCK * Q4_BLOCK_BYTES;
                        dequantize_q4_0(&bytes[id * row..(id + 1) * row], out);
                    }
                    WordTable::F32(rows) => out.copy_from_slice(&rows[id * hid..(id + 1) * hid]),
                }
                mask[i * l + t] = 1.0;
            }
        }
        let device = Device::Cpu;
        let x = Tensor::from_vec(emb, (b, l, hid), &device)?;
        let x = x
            .broadcast_add(&self.pos.narrow(0, 0, l)?)?
            .broadcast_add(&self.type0)?;
        let mut x = self.eln.forward(&x)?;
        let mask = Tensor::from_vec(mask, (b, l), &device)?;
        // Additive attention bias: 0 for tokens, -1e9 for padding.
        let bias = ((mask.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let (nh, hd) = (self.heads, hid / self.heads);
        let scale = 1.0 / (hd as f64).sqrt();
        let heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, l, nh, hd))?.transpose(1, 2)?.contiguous()
        };
        for layer in &self.layers {
            let q = heads(layer.q.forward(&x)?)?;
            let k = heads(layer.k.forward(&x)?)?;
            let v = heads(layer.v.forward(&x)?)?;
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let ctx = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, hid))?;
            let a = layer.ao.forward(&ctx)?;
            x = layer.aln.forward(&(a + &x)?)?;
            let m = layer.fi.forward(&x)?.gelu_erf()?;
            let o = layer.fo.forward(&m)?;
            x = layer.oln.forward(&(o + &x)?)?;
        }
        Ok(masked_mean(&x, &mask)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?)
    }
}

/// Mean over the sequence dimension of `x` [B, L, H] where `mask` [B, L] is 1.
pub(crate) fn masked_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m3 = mask.to_dtype(x.dtype())?.unsqueeze(D::Minus1)?;
    x.broadcast_mul(&m3)?.sum(1)?.broadcast_div(&m3.sum(1)?)
}
