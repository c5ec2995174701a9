//! Dot products written so that the compiler vectorises them: sixteen
//! independent accumulators over `chunks_exact(16)` (four SSE or two AVX
//! registers, no loop-carried dependency between lanes), then the tail.
//!
//! The summation order is fixed, so one pair of vectors always gives the
//! bit-identical result, whatever row of the index holds it.

const LANES: usize = 16;

/// `Σ a[i]·b[i]` over the shorter of the two slices.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ta.iter().zip(tb) {
        tail += x * y;
    }
    // Pairwise reduction of the lanes (also vectorised).
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            acc[i] += acc[i + half];
        }
        half /= 2;
    }
    acc[0] + tail
}

/// An i8 dot product: `Σ a[i]·b[i]` over the shorter slice, exact in i32
/// (|sum| ≤ 127²·len; fine for every length below 133,000).
pub(crate) type DotI8 = metachat_engine::simd_i8::DotI8;

/// The fastest [`DotI8`] this CPU runs: `metachat_engine::simd_i8`'s AVX-512 BW
/// kernel where available, else [`dot_i8_portable`] (same results). Loops
/// over many rows take it once, not per row.
pub(crate) fn dot_i8_for_cpu() -> DotI8 {
    metachat_engine::simd_i8::dot_for_cpu().unwrap_or(dot_i8_portable)
}

/// A [`DotI8`] in portable code, with the same lane layout as [`dot`].
pub(crate) fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (&x, &y) in ta.iter().zip(tb) {
        sum += i32::from(x) * i32::from(y);
    }
    sum
}

/// Euclidean norm, accumulated in f64.
pub(crate) fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Cosine similarity in [-1, 1]; 0 if either vector is zero.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    clamp_unit(d / (na * nb))
}

/// Narrows to f32 and clamps into [-1, 1] (rounding can step just outside).
#[allow(clippy::cast_possible_truncation)] // f64 → f32 of a value in [-1, 1]
pub(crate) fn clamp_unit(x: f64) -> f32 {
    (x as f32).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_for_every_tail_length() {
        for n in 0..70usize {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    #[allow(clippy::cast_possible_truncation)] // wrapping to i8 on purpose
    fn dot_i8_is_exact() {
        for n in 0..70usize {
            let a: Vec<i8> = (0..n).map(|i| ((i * 37) % 255) as u8 as i8).collect();
            let b: Vec<i8> = (0..n).map(|i| ((i * 101 + 3) % 255) as u8 as i8).collect();
            let naive: i32 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            assert_eq!(dot_i8_for_cpu()(&a, &b), naive, "n = {n}");
            assert_eq!(dot_i8_portable(&a, &b), naive, "n = {n}");
        }
        assert_eq!(dot_i8_for_cpu()(&[-128; 40], &[-128; 40]), 40 * 128 * 128);
        assert_eq!(dot_i8_for_cpu()(&[1, 2, 3], &[1, 1]), 3);
        assert_eq!(dot_i8_portable(&[1, 2, 3], &[1, 1]), 3);
    }

    #[test]
    fn cosine_of_zero_vector_is_zero() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[2.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-7);
        assert!((cosine(&[1.0, 0.0], &[-3.0, 0.0]) + 1.0).abs() < 1e-7);
    }
}
