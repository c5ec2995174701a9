//! multilingual-e5-small's BERT encoder ([`Encoder`]) with weights from an
//! `E5S1` file: Q4_0 matrices as candle quantized tensors ([`QMatMul`]) or
//! dequantised to f32, chosen by [`WeightMode`].

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul};
use candle_core::{Device, Tensor};

use super::bert::{Encoder, Layer, LayerNorm, Linear, WordTable};
use super::e5_file::{dequantize_q4_0, E5File, E5Header};
use super::error::Result;

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

/// The encoder, ready to run.
pub(crate) struct E5Model {
    header: E5Header,
    encoder: Encoder,
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
        let encoder = Encoder {
            hidden: h.hidden,
            heads: h.heads,
            vocab: h.vocab,
            max_positions: h.max_positions,
            word: WordTable::Q4(file.tensor("emb.word")?.1.to_vec()),
            pos: vec("emb.pos", &[h.max_positions, h.hidden])?,
            type0: Tensor::from_vec(type_all[..h.hidden].to_vec(), h.hidden, &device)?,
            eln: ln("emb.ln.w", "emb.ln.b")?,
            layers,
        };
        Ok(E5Model { header: h, encoder })
    }

    pub(crate) fn header(&self) -> &E5Header {
        &self.header
    }

    /// Mean-pooled (not yet normalised) embeddings of a batch of full token
    /// sequences (with `<s>`/`</s>`), each at most `max_positions` long.
    pub(crate) fn forward(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.encoder.forward(seqs)
    }
}
