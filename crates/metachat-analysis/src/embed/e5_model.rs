//! multilingual-e5-small's BERT encoder in candle, with weights from an
//! `E5S1` file: Q4_0 matrices as candle quantized tensors ([`QMatMul`]) or
//! dequantised to f32, chosen by [`WeightMode`].

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul};
use candle_core::{DType, Device, Module, Tensor, D};

use super::e5_file::{dequantize_q4_0, E5File, E5Header, Q4_BLOCK, Q4_BLOCK_BYTES};
use super::error::{EmbedError, Result};

/// How the Q4_0 matrices are held at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// Dequantised once at load to f32 (≈ 85 MB for the encoder), multiplied
    /// with candle's f32 GEMM. Measured faster on this machine; the default.
    #[default]
    Dequantized,
    /// Kept as Q4_0 blocks in candle quantized tensors (≈ 21 MB), multiplied
    /// with candle's Q4_0 × Q8_0 kernels.
    Quantized,
}

/// A dense layer `x·Wᵀ + b`.
struct Linear {
    w: Weight,
    b: Tensor,
}

enum Weight {
    /// Q4_0 blocks in a candle quantized tensor.
    Quantized(QMatMul),
    /// f32 `Wᵀ`, contiguous [in, out], and its two column halves (views
    /// of the same storage) for inputs of fewer than [`SPLIT_BELOW_ROWS`]
    /// rows.
    F32 {
        wt: Tensor,
        halves: (Tensor, Tensor),
    },
}

/// Below this many input rows (tokens in the batch) an f32 product runs as
/// two column halves on two threads: candle's GEMM leaves the second core
/// idle on such small products. Measured on the 2-core machine (e5,
/// sentences/s): one short text +23 %, 8 short texts +14 %, one long text
/// +9 %; for 8 or 32 long texts splitting cost 6–12 %, hence the bound.
const SPLIT_BELOW_ROWS: usize = 1024;

impl Linear {
    fn new(w: QMatMul, b: Tensor) -> candle_core::Result<Self> {
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

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    ao: Linear,
    aln: LayerNorm,
    fi: Linear,
    fo: Linear,
    oln: LayerNorm,
}

/// The encoder, ready to run.
pub(crate) struct E5Model {
    header: E5Header,
    /// Word embeddings stay Q4_0 bytes; rows are dequantised on lookup.
    word: Vec<u8>,
    pos: Tensor,
    type0: Tensor,
    eln: LayerNorm,
    layers: Vec<Layer>,
    device: Device,
}

impl std::fmt::Debug for E5Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Model")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl E5Model {
    pub(crate) fn load(file: &E5File, mode: WeightMode) -> Result<Self> {
        let h = file.header;
        let device = Device::Cpu;
        let vec = |name: &str, dims: &[usize]| -> Result<Tensor> {
            Ok(Tensor::from_vec(file.f32_tensor(name)?, dims, &device)?)
        };
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<QMatMul> {
            let (_, bytes) = file.tensor(name)?;
            Ok(match mode {
                WeightMode::Quantized => {
                    let q = qtensor_from_ggml(GgmlDType::Q4_0, bytes, vec![rows, cols], &device)?;
                    QMatMul::from_qtensor(q)?
                }
                WeightMode::Dequantized => {
                    let mut w = vec![0f32; rows * cols];
                    dequantize_q4_0(bytes, &mut w);
                    QMatMul::Tensor(Tensor::from_vec(w, (rows, cols), &device)?)
                }
            })
        };
        let linear = |l: usize, n: &str, rows: usize, cols: usize| -> Result<Linear> {
            Ok(Linear::new(
                matrix(&format!("l{l}.{n}.w"), rows, cols)?,
                vec(&format!("l{l}.{n}.b"), &[rows])?,
            )?)
        };
        let ln = |w: &str, b: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                w: vec(w, &[h.hidden])?,
                b: vec(b, &[h.hidden])?,
                eps: h.layer_norm_eps,
            })
        };
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            layers.push(Layer {
                q: linear(l, "q", h.hidden, h.hidden)?,
                k: linear(l, "k", h.hidden, h.hidden)?,
                v: linear(l, "v", h.hidden, h.hidden)?,
                ao: linear(l, "ao", h.hidden, h.hidden)?,
                aln: ln(&format!("l{l}.aln.w"), &format!("l{l}.aln.b"))?,
                fi: linear(l, "fi", h.ffn, h.hidden)?,
                fo: linear(l, "fo", h.hidden, h.ffn)?,
                oln: ln(&format!("l{l}.oln.w"), &format!("l{l}.oln.b"))?,
            });
        }
        let type_all = file.f32_tensor("emb.type")?;
        Ok(E5Model {
            header: h,
            word: file.tensor("emb.word")?.1.to_vec(),
            pos: vec("emb.pos", &[h.max_positions, h.hidden])?,
            type0: Tensor::from_vec(type_all[..h.hidden].to_vec(), h.hidden, &device)?,
            eln: ln("emb.ln.w", "emb.ln.b")?,
            layers,
            device,
        })
    }

    pub(crate) fn header(&self) -> &E5Header {
        &self.header
    }

    /// Mean-pooled (not yet normalised) embeddings of a batch of full token
    /// sequences (with `<s>`/`</s>`), each at most `max_positions` long.
    pub(crate) fn forward(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let h = &self.header;
        let b = seqs.len();
        let l = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || l == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        if l > h.max_positions {
            return Err(EmbedError::Tokenizer(format!(
                "sequence of {l} tokens exceeds the model's {} positions",
                h.max_positions
            )));
        }
        let hid = h.hidden;
        let row_bytes = hid / Q4_BLOCK * Q4_BLOCK_BYTES;
        let mut emb = vec![0f32; b * l * hid];
        let mut mask = vec![0f32; b * l];
        for (i, s) in seqs.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                let id = id as usize;
                if id >= h.vocab {
                    return Err(EmbedError::Tokenizer(format!(
                        "token id {id} outside the vocabulary of {}",
                        h.vocab
                    )));
                }
                let at = (i * l + t) * hid;
                dequantize_q4_0(
                    &self.word[id * row_bytes..(id + 1) * row_bytes],
                    &mut emb[at..at + hid],
                );
                mask[i * l + t] = 1.0;
            }
        }
        let x = Tensor::from_vec(emb, (b, l, hid), &self.device)?;
        let x = x
            .broadcast_add(&self.pos.narrow(0, 0, l)?)?
            .broadcast_add(&self.type0)?;
        let mut x = self.eln.forward(&x)?;
        let mask = Tensor::from_vec(mask, (b, l), &self.device)?;
        // Additive attention bias: 0 for tokens, -1e9 for padding.
        let bias = ((mask.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let (nh, hd) = (h.heads, hid / h.heads);
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
