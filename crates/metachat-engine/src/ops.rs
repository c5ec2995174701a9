//! The encoder's element-wise kernels on plain slices: LayerNorm (with the
//! residual add), softmax and the exact (erf) GELU.
//!
//! Written so that the compiler vectorises them: `exp` and `erf` are
//! polynomial approximations in straight-line f32 arithmetic (libm's `expf`
//! and `erff` are opaque calls, one value at a time: `erff` alone was 8 % of
//! a profile of the encoder); every reduction keeps [`LANES`] partial
//! results (a strict left-to-right f32 sum cannot be vectorised); and no
//! kernel converts f32 to an integer type (Rust's saturating `as` cast was
//! checked one value at a time, which left softmax and GELU scalar). Callers
//! run them inside [`simd`], which compiles them for the widest instruction
//! set the CPU has (AVX-512, AVX2, else SSE2). Errors, checked by the tests
//! below against f64: `exp` relative ≤ 2e-7, `erf` absolute ≤ 1e-6.

/// Partial results a reduction keeps: one AVX-512 register of f32.
const LANES: usize = 16;

/// Runs `f` compiled for the best SIMD level this CPU offers (pulp's
/// run-time dispatch); the `#[inline(always)]` kernels of this module
/// called inside it are vectorised for that level. Mark the closure
/// `#[inline(always)]` too: a closure left out of line is compiled for the
/// baseline (SSE2) alone.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Sum of `xs` in [`LANES`] partial sums.
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    chunks.remainder().iter().sum::<f32>() + acc.iter().sum::<f32>()
}

/// Largest value of `xs` (−∞ when empty).
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    let rest = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    acc.iter().copied().fold(rest, f32::max)
}

/// `e^x` for `x` in f32's range (below −87.3 it returns 0's neighbourhood,
/// above 88 it saturates near 2¹²⁷).
///
/// No float-to-int conversion: `as i32` saturates and maps NaN to 0, and
/// that check kept LLVM from vectorising the loops that call this. The
/// integer `n` is read from the low mantissa bits of `x·log₂e + 1.5·2²³`
/// instead.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split into a part exact in f32 and the rest (Cody–Waite).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r on [-ln2/2, ln2/2]: Cephes' expf polynomial.
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2ⁿ from its exponent bits: `t`'s bits are those of 1.5·2²³ plus `n`
    // (its unit in the last place is 1), and the shift keeps the low 9 of
    // them, `n + 127` ∈ [1, 254] after the clamp.
    let bits = t.to_bits().wrapping_add(127) << 23;
    er * f32::from_bits(bits)
}

/// The error function, Abramowitz & Stegun 7.1.26 with an accurate `exp`.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// The exact GELU, `x · Φ(x)`, of `x + bias` in place: `xs` holds whole
/// rows of `bias.len()` values (`bias` empty: none added).
#[inline(always)]
pub(crate) fn bias_gelu_in_place(xs: &mut [f32], bias: &[f32]) {
    if !bias.is_empty() {
        add_bias(xs, bias);
    }
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `xs += bias` over whole rows of `bias.len()` values.
#[inline(always)]
pub(crate) fn add_bias(xs: &mut [f32], bias: &[f32]) {
    for row in xs.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

/// Softmax of one row, in place.
#[inline(always)]
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let m = max(row);
    for v in row.iter_mut() {
        *v = exp(*v - m);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// `x := LayerNorm(x + add + add_bias)` for one row (`add` empty: no
/// residual; `add_bias` empty: no bias).
#[inline(always)]
pub(crate) fn add_layer_norm(
    x: &mut [f32],
    add: &[f32],
    add_bias: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    if !add.is_empty() {
        for (v, a) in x.iter_mut().zip(add) {
            *v += a;
        }
    }
    if !add_bias.is_empty() {
        for (v, a) in x.iter_mut().zip(add_bias) {
            *v += a;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += (v - mean) * (v - mean);
        }
    }
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    let var = (rest + acc.iter().sum::<f32>()) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, w), b) in x.iter_mut().zip(w).zip(b) {
        *v = (*v - mean) * inv * w + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // Maclaurin series for |x| < 3; beyond, the asymptotic series of
        // erfc (its truncation error there is below 1e-8).
        if x.abs() < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let x2 = x * x;
            let series = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2)
                - 15.0 / (8.0 * x2 * x2 * x2)
                + 105.0 / (16.0 * x2 * x2 * x2 * x2);
            let erfc = (-x2).exp() / (x.abs() * std::f64::consts::PI.sqrt()) * series;
            x.signum() * (1.0 - erfc)
        }
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + f64::from(i) * (87.0 + 20.0) / 200_000.0;
            #[allow(clippy::cast_possible_truncation)]
            let x = x as f32;
            let got = f64::from(exp(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        for i in 0..=100_000 {
            let x = -6.0 + f64::from(i) * 12.0 / 100_000.0;
            #[allow(clippy::cast_possible_truncation)]
            let x32 = x as f32;
            worst = worst.max((f64::from(erf(x32)) - erf64(f64::from(x32))).abs());
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
        assert!(erf(0.0).abs() < 1e-6 && erf(-2.0) == -erf(2.0));
    }

    #[test]
    fn bias_gelu_adds_the_bias_of_each_column_first() {
        let bias = [0.5f32, -1.0, 2.0];
        let x0: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 2.0).collect();
        let mut x = x0.clone();
        bias_gelu_in_place(&mut x, &bias);
        for (i, (&got, &v)) in x.iter().zip(&x0).enumerate() {
            let z = f64::from(v + bias[i % 3]);
            let want = 0.5 * z * (1.0 + erf64(z / std::f64::consts::SQRT_2));
            assert!((f64::from(got) - want).abs() < 1e-5, "{i}: {got} vs {want}");
        }
        let mut y = x0.clone();
        bias_gelu_in_place(&mut y, &[]);
        let mut z = x0.clone();
        add_bias(&mut z, &[0.0; 3]);
        bias_gelu_in_place(&mut z, &[0.0; 3]);
        assert_eq!(y, z);
    }

    #[test]
    fn layer_norm_and_softmax() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        add_layer_norm(&mut x, &[0.5; 4], &[0.5; 4], &[1.0; 4], &[0.5; 4], 0.0);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        assert!((mean - 0.5).abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        let mut r = vec![0.0, 1.0, -1e9];
        softmax_in_place(&mut r);
        assert!((r[0] + r[1] - 1.0).abs() < 1e-6 && r[2] < 1e-30);
        assert!((r[1] / r[0] - std::f32::consts::E).abs() < 1e-5);
        // Rows longer than the partial sums: the vectorised reductions.
        let mut long: Vec<f32> = (0..37).map(|i| (i % 5) as f32).collect();
        softmax_in_place(&mut long);
        let total: f32 = long.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert!((long[4] / long[0] - 4f32.exp()).abs() < 1e-3);
        let mut x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        add_layer_norm(&mut x, &[], &[], &[2.0; 37], &[0.0; 37], 0.0);
        let mean: f32 = x.iter().sum::<f32>() / 37.0;
        let var: f32 = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 37.0;
        assert!(
            mean.abs() < 1e-5 && (var - 4.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }
}
