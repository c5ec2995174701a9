//! The i8 dot product of the prefilter pass ([`super::quant`]) with AVX-512
//! BW intrinsics: 32 codes widened to i16 and multiplied in pairs into i32
//! (`vpmaddwd`) per step, the tail read with a masked load.
//!
//! The portable version in [`super::kernel::dot_i8`] left the products to
//! the auto-vectoriser, which multiplied one i32 a lane (`vpmulld`). Integer
//! sums are exact, so both give the same result.
//!
//! The module's only `unsafe` is the call into the `#[target_feature]`
//! function, made after the run-time check of those features, and the
//! loads, which stay inside both slices (asserted lengths, masked tail).
#![allow(unsafe_code)]

/// `Σ a[i]·b[i]` over the shorter slice; `None` when this CPU lacks AVX-512
/// F, BW and VL.
#[inline]
pub(crate) fn dot(a: &[i8], b: &[i8]) -> Option<i32> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            let n = a.len().min(b.len());
            // SAFETY: the features were checked just above.
            return Some(unsafe { dot_avx512(&a[..n], &b[..n]) });
        }
    }
    let _ = (a, b);
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dot_avx512(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 ≤ n: both 32-byte loads lie inside the slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                _mm256_loadu_si256(b.as_ptr().add(i).cast()),
            )
        };
        let p = _mm512_madd_epi16(_mm512_cvtepi8_epi16(x), _mm512_cvtepi8_epi16(y));
        acc = _mm512_add_epi32(acc, p);
        i += 32;
    }
    if i < n {
        // n − i < 32 bytes remain: the mask reads exactly those.
        let m: __mmask32 = (1u32 << (n - i)) - 1;
        // SAFETY: a masked load touches only the bytes its mask selects,
        // all inside the slices.
        let (x, y) = unsafe {
            (
                _mm256_maskz_loadu_epi8(m, a.as_ptr().add(i).cast()),
                _mm256_maskz_loadu_epi8(m, b.as_ptr().add(i).cast()),
            )
        };
        let p = _mm512_madd_epi16(_mm512_cvtepi8_epi16(x), _mm512_cvtepi8_epi16(y));
        acc = _mm512_add_epi32(acc, p);
    }
    _mm512_reduce_add_epi32(acc)
}
