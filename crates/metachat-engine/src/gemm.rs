//! Safe, bounds-checked calls into the `gemm` crate's f32 kernels (the ones
//! candle uses; with its `x86-v4` feature they run AVX-512 where the CPU has
//! it), for the encoder's products on plain row-major slices.
//!
//! The only `unsafe` of the crate: `gemm::gemm` takes raw pointers and
//! strides. Every call checks that each view's farthest element lies inside
//! its slice; the destination is a `&mut` slice, so it aliases nothing; the
//! column-parallel product hands each thread a disjoint column range of it.
#![allow(unsafe_code)]

use gemm::Parallelism;

/// A strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// Row stride.
    pub(crate) rs: usize,
    /// Column stride.
    pub(crate) cs: usize,
}

impl<'a> View<'a> {
    /// A contiguous row-major `rows × cols` matrix.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub(crate) fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn check(&self, what: &str) {
        assert!(
            span(self.rows, self.cols, self.rs, self.cs) <= self.data.len(),
            "gemm: {what} view {}×{} (strides {}, {}) outside its {} elements",
            self.rows,
            self.cols,
            self.rs,
            self.cs,
            self.data.len()
        );
    }
}

/// One past the farthest element a `rows × cols` view with these strides reads.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// Columns a thread's share is rounded to (one AVX-512 register of f32).
const COL_ALIGN: usize = 16;

/// `dst := (accumulate ? dst : 0) + scale · lhs · rhs`, where `dst` is
/// `lhs.rows × rhs.cols` with row stride `dst_rs` and unit column stride.
///
/// `threads > 1` splits the columns of `dst` into that many disjoint ranges
/// computed side by side on rayon's pool (each range single-threaded): on
/// products of few rows this keeps every core busy where the crate's own
/// split leaves one idle. `threads == 0` lets the crate split by itself.
///
/// # Panics
/// When the shapes disagree or a view reaches outside its slice.
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: View<'_>,
    rhs: View<'_>,
    scale: f32,
    threads: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "gemm: inner dimensions differ");
    lhs.check("lhs");
    rhs.check("rhs");
    assert!(
        span(m, n, dst_rs, 1) <= dst.len(),
        "gemm: destination {m}×{n} (row stride {dst_rs}) outside its {} elements",
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let run = |j0: usize, width: usize, par: Parallelism| {
        // SAFETY: the bounds above put every (i, j) with i < m, j < n inside
        // the three slices; [j0, j0 + width) ⊆ [0, n); `dst` is borrowed
        // mutably for the whole call and concurrent calls write disjoint
        // column ranges of it.
        unsafe {
            gemm::gemm(
                m,
                width,
                k,
                dst_ptr.get().add(j0),
                1,
                dst_rs as isize,
                accumulate,
                lhs.data.as_ptr(),
                lhs.cs as isize,
                lhs.rs as isize,
                rhs.data.as_ptr().add(j0 * rhs.cs),
                rhs.cs as isize,
                rhs.rs as isize,
                1.0,
                scale,
                false,
                false,
                false,
                par,
            );
        }
    };
    let parts = threads.min(n.div_ceil(COL_ALIGN));
    if threads == 0 {
        run(0, n, Parallelism::Rayon(rayon::current_num_threads()));
    } else if parts <= 1 {
        run(0, n, Parallelism::None);
    } else {
        let per = n.div_ceil(parts).div_ceil(COL_ALIGN) * COL_ALIGN;
        rayon::scope(|s| {
            let mut j0 = 0;
            while j0 < n {
                let width = per.min(n - j0);
                s.spawn(move |_| run(j0, width, Parallelism::None));
                j0 += width;
            }
        });
    }
}

/// A raw pointer that may cross to rayon's threads (see the SAFETY notes of
/// its users).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `Send` value).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: only used by `matmul` here and in `q8`, whose threads write
// disjoint columns of the output.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|p| a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs])
                    .sum();
            }
        }
        out
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn every_split_agrees_with_the_naive_product() {
        for &(m, k, n) in &[(1, 3, 5), (7, 33, 70), (20, 64, 129), (3, 0, 4)] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let (av, bv) = (View::rows(&a, m, k), View::rows(&b, k, n));
            let want = naive(av, bv);
            for threads in [0, 1, 2, 3] {
                let mut got = vec![7f32; m * n];
                matmul(&mut got, n, false, av, bv, 1.0, threads);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4,
                        "{m}×{k}×{n} threads {threads}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn strided_transposed_views_accumulate_and_scale() {
        // lhs: columns 2..6 of a [4, 10] buffer; rhs: the transpose of its
        // columns 5..9 (like Q·Kᵀ of one head in the stacked QKV rows).
        let buf = data(40, 3);
        let cols = |from: usize| View {
            data: &buf[from..],
            rows: 4,
            cols: 4,
            rs: 10,
            cs: 1,
        };
        let (q, k) = (cols(2), cols(5).t());
        let want = naive(q, k);
        let mut got = vec![1f32; 4 * 6];
        matmul(&mut got, 6, true, q, k, 0.5, 2);
        for i in 0..4 {
            for j in 0..4 {
                let w = 1.0 + 0.5 * want[i * 4 + j];
                assert!((got[i * 6 + j] - w).abs() < 1e-5);
            }
            assert_eq!(
                &got[i * 6 + 4..i * 6 + 6],
                &[1.0, 1.0],
                "columns past n untouched"
            );
        }
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 5];
        let b = vec![0f32; 6];
        let mut d = vec![0f32; 4];
        matmul(
            &mut d,
            2,
            false,
            View::rows(&a, 2, 3),
            View::rows(&b, 3, 2),
            1.0,
            1,
        );
    }
}
