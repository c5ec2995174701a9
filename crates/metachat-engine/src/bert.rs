//! The BERT encoder both embedders run (post-LayerNorm, exact GELU,
//! absolute positions, token type 0), mean-pooled over the tokens: e5's
//! weights come from the `E5S1` file ([`super::e5_model`]), MiniLM's from
//! safetensors ([`super::minilm`]).
//!
//! Written on plain slices rather than candle tensors, for reasons that were
//! measured (`benches/README.md`, *Embeddings*):
//! - **No padding.** The tokens of every sequence of a batch are packed into
//!   one `[T, H]` matrix, so the dense layers run on the real tokens only
//!   and attention runs per sequence; nothing is masked.
//! - **Both cores on small products.** The `gemm` crate's own split leaves
//!   the second core idle on products of few rows, so products of fewer
//!   than [`SPLIT_BELOW_ROWS`] rows run as column ranges side by side
//!   ([`super::gemm::matmul`]).
//! - **No per-op tensors.** Buffers are allocated once per forward pass;
//!   bias, GELU and the residual LayerNorm are applied in place.

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};
use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::e5_file::{dequantize_q4_0, Q4_BLOCK, Q4_BLOCK_BYTES};
use super::error::{EmbedError, Result};
use super::gemm::{matmul, View};
use super::ops::{add_bias, add_layer_norm, bias_gelu_in_place, simd, softmax_in_place};
use super::q8::{self, Q4Packed, Q8Rows};

/// Below this many tokens in a batch, an f32 product runs as column ranges
/// side by side, one per rayon thread; from it on, the `gemm` crate splits
/// the work itself (splitting every size measured 4–10 % slower on MiniLM's
/// batches of 8 and 32 long texts, 1,816 and 7,264 tokens).
pub(crate) const SPLIT_BELOW_ROWS: usize = 1024;

/// Element-wise work below this many values stays on the calling thread.
const PAR_MIN_VALUES: usize = 1 << 15;

/// A dense layer `x·Wᵀ + b`.
pub(crate) struct Linear {
    w: Weight,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

enum Weight {
    /// Q4_0 blocks in a candle quantized tensor (CPUs without AVX-512 VNNI).
    Quantized(QMatMul),
    /// Q4_0 packed for the AVX-512 VNNI kernel, activations quantised to
    /// int8 on the fly.
    Q8(Q4Packed),
    /// f32 `Wᵀ`, contiguous `[in, out]`.
    F32(Vec<f32>),
}

impl Linear {
    /// `w` `[out, in]` (f32 or quantized), `b` `[out]`.
    pub(crate) fn new(w: QMatMul, b: &Tensor) -> candle_core::Result<Self> {
        let (w, (out, inp)) = match w {
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => {
                let dims = t.dims2()?;
                let wt = t.to_dtype(DType::F32)?.t()?.contiguous()?;
                (Weight::F32(wt.flatten_all()?.to_vec1::<f32>()?), dims)
            }
            QMatMul::QTensor(q) => {
                let dims = q.shape().dims2()?;
                (Weight::Quantized(QMatMul::QTensor(q)), dims)
            }
        };
        let b = bias(b, out)?;
        Ok(Linear { w, b, inp, out })
    }

    /// Q4_0 `blocks` of `[out, in]` for the VNNI kernel; `None` when the CPU
    /// lacks it or the shape does not fit it.
    pub(crate) fn q4(
        blocks: &[u8],
        out: usize,
        inp: usize,
        b: &Tensor,
    ) -> candle_core::Result<Option<Self>> {
        if !q8::available() {
            return Ok(None);
        }
        let Some(w) = Q4Packed::new(blocks, out, inp) else {
            return Ok(None);
        };
        Ok(Some(Linear {
            inp: w.inp(),
            out: w.out(),
            w: Weight::Q8(w),
            b: bias(b, out)?,
        }))
    }

    /// `y[t, out] := x[t, in] · Wᵀ (+ b)`; returns the bias still to add,
    /// empty when `y` already holds it. The f32 product leaves it to the
    /// caller, which adds it in the pass that follows (GELU, LayerNorm):
    /// copying it into `y` first was a serial pass of its own (4 % of a
    /// MiniLM profile).
    #[must_use = "the returned bias is still to be added"]
    fn forward(
        &self,
        x: &[f32],
        t: usize,
        y: &mut [f32],
        q8: &mut Q8Rows,
    ) -> candle_core::Result<&[f32]> {
        let (inp, out) = (self.inp, self.out);
        let y = &mut y[..t * out];
        match &self.w {
            Weight::F32(wt) => {
                let threads = if t < SPLIT_BELOW_ROWS {
                    rayon::current_num_threads()
                } else {
                    0
                };
                matmul(
                    y,
                    out,
                    false,
                    View::rows(&x[..t * inp], t, inp),
                    View::rows(wt, inp, out),
                    1.0,
                    threads,
                );
                return Ok(&self.b);
            }
            Weight::Q8(w) => {
                q8.quantize(x, t, inp);
                q8::matmul(y, q8, t, w, &self.b, rayon::current_num_threads());
            }
            Weight::Quantized(q) => {
                let xt = Tensor::from_slice(&x[..t * inp], (1, t, inp), &Device::Cpu)?;
                let r = q.forward(&xt)?.flatten_all()?.to_vec1::<f32>()?;
                for (yr, rr) in y.chunks_exact_mut(out).zip(r.chunks_exact(out)) {
                    for ((o, v), b) in yr.iter_mut().zip(rr).zip(&self.b) {
                        *o = v + b;
                    }
                }
            }
        }
        Ok(&[])
    }
}

/// A bias tensor's values, checked to be `out` of them.
fn bias(b: &Tensor, out: usize) -> candle_core::Result<Vec<f32>> {
    let b = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if b.len() != out {
        candle_core::bail!("bias of {} values for {out} outputs", b.len());
    }
    Ok(b)
}

/// LayerNorm over the hidden dimension.
pub(crate) struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    /// Weight and bias `[hidden]`.
    pub(crate) fn new(w: &Tensor, b: &Tensor, eps: f32) -> candle_core::Result<Self> {
        let v = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
        Ok(LayerNorm {
            w: v(w)?,
            b: v(b)?,
            eps,
        })
    }

    /// Each row of `x` `[t, hidden]` := LayerNorm(row + the row of `add` +
    /// `add_bias`); `add` empty: no residual, `add_bias` empty: no bias.
    fn forward(&self, x: &mut [f32], add: &[f32], add_bias: &[f32]) {
        let h = self.w.len();
        rows_chunked(x, h, |first, rows| {
            simd(
                #[inline(always)]
                || {
                    for (i, r) in rows.chunks_exact_mut(h).enumerate() {
                        let at = (first + i) * h;
                        let a = add.get(at..at + h).unwrap_or(&[]);
                        add_layer_norm(r, a, add_bias, &self.w, &self.b, self.eps);
                    }
                },
            );
        });
    }
}

/// `f(i, chunk i)` over `chunk`-value pieces of `xs`: on rayon's pool when
/// `xs` holds at least [`PAR_MIN_VALUES`], else on the calling thread.
fn chunked(xs: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if xs.len() >= PAR_MIN_VALUES {
        xs.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        xs.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// [`chunked`] in pieces of whole `row`-value rows, about
/// `PAR_MIN_VALUES / 4` values each: `f(index of the piece's first row, piece)`.
fn rows_chunked(xs: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let per = (PAR_MIN_VALUES / 4 / row).max(1);
    chunked(xs, per * row, |i, c| f(i * per, c));
}

/// One encoder layer.
pub(crate) struct Layer {
    /// Query, key and value stacked: `[3·hidden]` outputs in that order.
    pub(crate) qkv: Linear,
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
    pub(crate) ffn: usize,
    pub(crate) vocab: usize,
    pub(crate) max_positions: usize,
    pub(crate) word: WordTable,
    /// Position embeddings `[max_positions, hidden]`.
    pub(crate) pos: Vec<f32>,
    /// Token-type 0 embedding `[hidden]`.
    pub(crate) type0: Vec<f32>,
    pub(crate) eln: LayerNorm,
    pub(crate) layers: Vec<Layer>,
    /// Buffers of finished passes, reused by the next ones.
    pub(crate) scratch: ScratchPool,
}

/// The activation buffers of one forward pass.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    heads: Vec<f32>,
    tmp: Vec<f32>,
    mid: Vec<f32>,
    q8: Q8Rows,
}

/// Buffers kept between forward passes: fresh multi-megabyte buffers per
/// pass cost page faults and zeroing (≈ 5 % of a profile). Holds as many
/// sets as passes ran at once, each as large as the largest pass it served
/// (≈ 76 MB for e5 at the 4,096-token budget of `window::TOKEN_BUDGET`).
#[derive(Default)]
pub(crate) struct ScratchPool(Mutex<Vec<Scratch>>);

impl ScratchPool {
    fn take(&self) -> Scratch {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, s: Scratch) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(s);
    }
}

/// The first `n` values of `v`, grown (never shrunk) to hold them; what
/// they held is stale: every user overwrites all of them.
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

impl Encoder {
    /// Mean-pooled (not yet normalised) embeddings of a batch of full token
    /// sequences (special tokens included), each at most `max_positions`
    /// long. An empty sequence gives an empty vector.
    pub(crate) fn forward(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let hid = self.hidden;
        let mut segs = Vec::with_capacity(seqs.len());
        let mut t = 0;
        for s in seqs {
            if s.len() > self.max_positions {
                return Err(EmbedError::Tokenizer(format!(
                    "sequence of {} tokens exceeds the model's {} positions",
                    s.len(),
                    self.max_positions
                )));
            }
            if let Some(&id) = s.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(EmbedError::Tokenizer(format!(
                    "token id {id} outside the vocabulary of {}",
                    self.vocab
                )));
            }
            segs.push((t, s.len()));
            t += s.len();
        }
        if t == 0 {
            return Ok(vec![Vec::new(); seqs.len()]);
        }

        let mut scratch = self.scratch.take();
        let Scratch {
            x,
            qkv,
            ctx,
            heads,
            tmp,
            mid,
            q8,
        } = &mut scratch;
        let x = sized(x, t * hid);
        let ids = seqs.iter().flat_map(|s| s.iter().enumerate());
        for (out, (p, &id)) in x.chunks_exact_mut(hid).zip(ids) {
            let id = id as usize;
            match &self.word {
                WordTable::Q4(bytes) => {
                    let row = hid / Q4_BLOCK * Q4_BLOCK_BYTES;
                    dequantize_q4_0(&bytes[id * row..(id + 1) * row], out);
                }
                WordTable::F32(rows) => out.copy_from_slice(&rows[id * hid..(id + 1) * hid]),
            }
            let pos = &self.pos[p * hid..(p + 1) * hid];
            for ((o, p), ty) in out.iter_mut().zip(pos).zip(&self.type0) {
                *o += p + ty;
            }
        }
        self.eln.forward(x, &[], &[]);

        let qkv = sized(qkv, t * 3 * hid);
        let ctx = sized(ctx, t * hid);
        let heads = sized(heads, t * hid);
        let tmp = sized(tmp, t * hid);
        let mid = sized(mid, t * self.ffn);
        for layer in &self.layers {
            let b = layer.qkv.forward(x, t, qkv, q8)?;
            if !b.is_empty() {
                rows_chunked(qkv, b.len(), |_, c| {
                    simd(
                        #[inline(always)]
                        || add_bias(c, b),
                    );
                });
            }
            self.attention(qkv, &segs, heads, ctx);
            let b = layer.ao.forward(ctx, t, tmp, q8)?;
            layer.aln.forward(x, tmp, b);
            let b = layer.fi.forward(x, t, mid, q8)?;
            rows_chunked(mid, self.ffn, |_, c| {
                simd(
                    #[inline(always)]
                    || bias_gelu_in_place(c, b),
                );
            });
            let b = layer.fo.forward(mid, t, tmp, q8)?;
            layer.oln.forward(x, tmp, b);
        }

        let pooled = segs
            .iter()
            .map(|&(a, l)| {
                let mut v = vec![0f32; if l == 0 { 0 } else { hid }];
                for row in x[a * hid..(a + l) * hid].chunks_exact(hid) {
                    for (o, r) in v.iter_mut().zip(row) {
                        *o += r;
                    }
                }
                #[allow(clippy::cast_precision_loss)]
                let inv = 1.0 / l.max(1) as f32;
                v.iter_mut().for_each(|o| *o *= inv);
                v
            })
            .collect();
        self.scratch.give(scratch);
        Ok(pooled)
    }

    /// Scaled dot-product attention of each sequence over its own tokens,
    /// one task per (sequence, head): `ctx[T, H]` from `qkv[T, 3H]`.
    ///
    /// Each task writes its `[l, head_dim]` result into its own piece of
    /// `heads`, which holds every sequence's rows head by head (piece order
    /// = task order); a pass per sequence then interleaves the heads into
    /// `ctx`. The score matrix of a task lives in a per-thread buffer.
    fn attention(&self, qkv: &[f32], segs: &[(usize, usize)], heads: &mut [f32], ctx: &mut [f32]) {
        thread_local! {
            static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        let hid = self.hidden;
        let hd = hid / self.heads;
        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / (hd as f32).sqrt();
        let mut tasks = Vec::with_capacity(segs.len() * self.heads);
        let mut rest = &mut heads[..];
        for &(a, l) in segs {
            for h in 0..self.heads {
                let (piece, r) = rest.split_at_mut(l * hd);
                rest = r;
                if l > 0 {
                    tasks.push((a, l, h, piece));
                }
            }
        }
        tasks.into_par_iter().for_each(|(a, l, h, out)| {
            let head = |part: usize| View {
                data: &qkv[a * 3 * hid + part * hid + h * hd..],
                rows: l,
                cols: hd,
                rs: 3 * hid,
                cs: 1,
            };
            SCORES.with_borrow_mut(|p| {
                let p = sized(p, l * l);
                matmul(p, l, false, head(0), head(1).t(), scale, 1);
                // A plain loop: `for_each` would leave the row loop (and
                // the kernel in it) out of line, compiled without AVX-512.
                simd(
                    #[inline(always)]
                    || {
                        for row in p.chunks_exact_mut(l) {
                            softmax_in_place(row);
                        }
                    },
                );
                matmul(out, hd, false, View::rows(p, l, l), head(2), 1.0, 1);
            });
        });
        let mut pairs = Vec::with_capacity(segs.len());
        let (mut c_rest, mut h_rest) = (&mut ctx[..], &heads[..]);
        for &(_, l) in segs {
            let (c, cr) = c_rest.split_at_mut(l * hid);
            let (h, hr) = h_rest.split_at(l * hid);
            (c_rest, h_rest) = (cr, hr);
            if l > 0 {
                pairs.push((c, h, l));
            }
        }
        pairs.into_par_iter().for_each(|(c, hs, l)| {
            for (h, piece) in hs.chunks_exact(l * hd).enumerate() {
                for (row, r) in c.chunks_exact_mut(hid).zip(piece.chunks_exact(hd)) {
                    row[h * hd..(h + 1) * hd].copy_from_slice(r);
                }
            }
        });
    }
}
