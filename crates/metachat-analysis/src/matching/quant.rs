//! An i8 copy of the matrix that prunes an exact query without changing
//! its answer.
//!
//! Each row `x` is stored as codes `a = round(x / s)` with one scale
//! `s = max|xᵢ| / 127` per row, so `x = s·(a + e)` with `|eᵢ| ≤ ½`. For a
//! query `q = t·(b + f)` the exact score obeys
//!
//! ```text
//! |x·q − s·t·(a·b)| ≤ s·t·(½·‖a‖₁ + ½·‖b‖₁ + ¼·d) (+ a margin for f32 rounding)
//! ```
//!
//! A row has two parts, each with its own scale: the theme vector and the
//! mood part (`√p`). The bound is the sum of the two parts' bounds. One
//! scale for the whole row let the mood values (≈ 0.38, against ≈ 0.05 for
//! a theme component) set it, so the theme codes were coarse: on 100,000
//! uniform users about 3,800 rows survived a query, against about 220 with
//! a scale per part (a numpy simulation of this bound).
//!
//! A first pass over the codes (a quarter of the bytes of the f32 matrix)
//! gives every row a lower and an upper bound. Let τ be the k-th largest lower
//! bound: at least k rows score ≥ τ, so the k-th best exact score is ≥ τ, and
//! a row whose upper bound is below τ cannot be among the best k (nor tie with
//! the k-th). The surviving rows are then scored exactly in f32, with the same
//! kernel as a full scan, so the result is identical to the full exact scan.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::kernel::dot_i8_for_cpu;

/// Slack on the quantisation error bound of one code (½ plus float rounding
/// in the division).
const HALF: f32 = 0.500_1;
/// Absolute slack covering f32 rounding of both the exact and the
/// approximate score.
const MARGIN: f32 = 1e-4;

/// The codes of every row, kept in step with the f32 matrix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Codes {
    /// Values of a row's first part (the theme); the rest is the second.
    split: usize,
    codes: Vec<i8>,
    scale: Vec<[f32; 2]>,
    l1: Vec<[f32; 2]>,
}

/// A quantised vector: codes, and the scale and ‖codes‖₁ of each part.
pub(crate) struct Quantized {
    codes: Vec<i8>,
    scale: [f32; 2],
    l1: [f32; 2],
}

/// Codes of `x` with one scale `max|xᵢ| / 127` (0 for a zero or non-finite
/// part), appended to `codes`; returns the scale and ‖codes‖₁.
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // |code| ≤ 127
fn quantize_part(x: &[f32], codes: &mut Vec<i8>) -> (f32, f32) {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        codes.extend(std::iter::repeat_n(0, x.len()));
        return (0.0, 0.0);
    }
    let scale = max / 127.0;
    let start = codes.len();
    codes.extend(
        x.iter()
            .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
    );
    let l1 = codes[start..]
        .iter()
        .map(|&c| i32::from(c).abs())
        .sum::<i32>() as f32;
    (scale, l1)
}

/// `x` quantised in two parts, `x[..split]` and `x[split..]`.
pub(crate) fn quantize(x: &[f32], split: usize) -> Quantized {
    let split = split.min(x.len());
    let mut codes = Vec::with_capacity(x.len());
    let (s0, l0) = quantize_part(&x[..split], &mut codes);
    let (s1, l1) = quantize_part(&x[split..], &mut codes);
    Quantized {
        codes,
        scale: [s0, s1],
        l1: [l0, l1],
    }
}

/// Total order on f32 for a heap of lower bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound(f32);
impl Eq for Bound {}
impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The k largest lower bounds seen (a min-heap), and the rows that may
/// still make it.
struct Pass {
    lows: BinaryHeap<Reverse<Bound>>,
    candidates: Vec<(usize, f32)>,
}

impl Pass {
    fn tau(&self, k: usize) -> f32 {
        if self.lows.len() < k {
            f32::NEG_INFINITY
        } else {
            self.lows.peek().map_or(f32::NEG_INFINITY, |r| r.0 .0)
        }
    }

    fn offer_low(&mut self, k: usize, low: f32) {
        if self.lows.len() < k {
            self.lows.push(Reverse(Bound(low)));
        } else if let Some(mut min) = self.lows.peek_mut() {
            if low > min.0 .0 {
                *min = Reverse(Bound(low));
            }
        }
    }
}

impl Codes {
    /// No rows yet; rows will be quantised as `row[..split]` and
    /// `row[split..]`.
    pub(crate) fn new(split: usize) -> Self {
        Codes {
            split,
            ..Codes::default()
        }
    }

    pub(crate) fn push(&mut self, row: &[f32]) {
        let q = quantize(row, self.split);
        self.codes.extend_from_slice(&q.codes);
        self.scale.push(q.scale);
        self.l1.push(q.l1);
    }

    pub(crate) fn set(&mut self, slot: usize, row: &[f32]) {
        let q = quantize(row, self.split);
        let d = row.len();
        if let Some(dst) = self.codes.get_mut(slot * d..(slot + 1) * d) {
            dst.copy_from_slice(&q.codes);
        }
        if let (Some(s), Some(l)) = (self.scale.get_mut(slot), self.l1.get_mut(slot)) {
            *s = q.scale;
            *l = q.l1;
        }
    }

    /// Mirrors `swap_remove` of row `slot` (rows have `d` values).
    pub(crate) fn swap_remove(&mut self, slot: usize, d: usize) {
        let last = self.scale.len() - 1;
        if slot != last {
            self.codes.copy_within(last * d..(last + 1) * d, slot * d);
        }
        self.codes.truncate(last * d);
        self.scale.swap_remove(slot);
        self.l1.swap_remove(slot);
        if self.codes.capacity() > 2 * self.codes.len() + 4096 * d {
            self.codes.shrink_to_fit();
        }
    }

    pub(crate) fn reserve(&mut self, rows: usize, d: usize) {
        self.codes.reserve(rows.saturating_mul(d));
        self.scale.reserve(rows);
        self.l1.reserve(rows);
    }

    fn pass(
        &self,
        first: usize,
        codes: &[i8],
        query: &Quantized,
        k: usize,
        exclude: Option<usize>,
    ) -> Pass {
        let d = query.codes.len();
        let split = self.split.min(d);
        #[allow(clippy::cast_precision_loss)] // d ≤ 65,543
        let quarter_d = [HALF * HALF * split as f32, HALF * HALF * (d - split) as f32];
        let (qa, qb) = query.codes.split_at(split);
        let dot_i8 = dot_i8_for_cpu();
        let mut pass = Pass {
            lows: BinaryHeap::with_capacity(k + 1),
            candidates: Vec::new(),
        };
        let mut tau = f32::NEG_INFINITY;
        for (i, row) in codes.chunks_exact(d).enumerate() {
            let slot = first + i;
            if exclude == Some(slot) {
                continue;
            }
            let (Some(&s), Some(&l1)) = (self.scale.get(slot), self.l1.get(slot)) else {
                continue;
            };
            let (ra, rb) = row.split_at(split);
            let st = [s[0] * query.scale[0], s[1] * query.scale[1]];
            #[allow(clippy::cast_precision_loss)] // |dot| < 2²⁴: exact
            let approx = st[0] * dot_i8(ra, qa) as f32 + st[1] * dot_i8(rb, qb) as f32;
            let bound = st[0] * (HALF * l1[0] + HALF * query.l1[0] + quarter_d[0])
                + st[1] * (HALF * l1[1] + HALF * query.l1[1] + quarter_d[1])
                + MARGIN;
            let high = approx + bound;
            if high < tau {
                continue;
            }
            pass.candidates.push((slot, high));
            pass.offer_low(k, approx - bound);
            tau = pass.tau(k);
        }
        pass
    }

    /// The rows that may be among the best `k` for the f32 `query`, in
    /// ascending slot order. `k` must be ≥ 1.
    pub(crate) fn candidates(
        &self,
        query: &[f32],
        k: usize,
        exclude: Option<usize>,
        block_rows: Option<usize>,
    ) -> Vec<usize> {
        let q = quantize(query, self.split);
        let d = query.len();
        let passes: Vec<Pass> = match block_rows {
            Some(rows) => self
                .codes
                .par_chunks(rows.max(1) * d)
                .enumerate()
                .map(|(b, chunk)| self.pass(b * rows.max(1), chunk, &q, k, exclude))
                .collect(),
            None => vec![self.pass(0, &self.codes, &q, k, exclude)],
        };
        let mut all = Pass {
            lows: BinaryHeap::with_capacity(k + 1),
            candidates: Vec::new(),
        };
        for p in &passes {
            for low in &p.lows {
                all.offer_low(k, low.0 .0);
            }
        }
        let tau = all.tau(k);
        passes
            .into_iter()
            .flat_map(|p| p.candidates)
            .filter(|&(_, high)| high >= tau)
            .map(|(slot, _)| slot)
            .collect()
    }
}
