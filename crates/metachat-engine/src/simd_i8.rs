//! The i8 dot product of the matching index's prefilter pass
//! (`metachat_analysis::matching`) with AVX-512 BW intrinsics: 32 codes
//! widened to i16 and multiplied in pairs into i32 (`vpmaddwd`) per step, the
//! tail read with a masked load.
//!
//! The portable version, in the matching kernel, left the
//! products to the auto-vectoriser, which multiplied one i32 a lane
//! (`vpmulld`). Integer sums are exact, so both give the same result.
//!
//! The module's only `unsafe` is the call into the `#[target_feature]`
//! function, reachable only after the run-time check of those features, and
//! the loads, which stay inside both slices (asserted lengths, masked tail).
#![allow(unsafe_code)]

/// An i8 dot product: `Σ a[i]·b[i]` over the shorter slice.
pub type DotI8 = fn(&[i8], &[i8]) -> i32;

/// The AVX-512 dot product (`Σ a[i]·b[i]` over the shorter slice), or
/// `None` when this CPU lacks AVX-512 F, BW and VL. Callers look it up once
/// per pass, not once per row.
pub fn dot_for_cpu() -> Option<DotI8> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Some(dot_checked);
        }
    }
    None
}

/// Handed out only by [`dot_for_cpu`], after its feature check.
#[cfg(target_arch = "x86_64")]
fn dot_checked(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    // SAFETY: this function is private and reachable only through
    // `dot_for_cpu`, which returns it after checking the features.
    unsafe { dot_avx512(&a[..n], &b[..n]) }
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
