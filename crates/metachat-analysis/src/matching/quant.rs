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
//! A first pass over the codes (a quarter of the bytes of the f32 matrix)
//! gives every row a lower and an upper bound. Let τ be the k-th largest lower
//! bound: at least k rows score ≥ τ, so the k-th best exact score is ≥ τ, and
//! a row whose upper bound is below τ cannot be among the best k (nor tie with
//! the k-th). The surviving rows are then scored exactly in f32, with the same
//! kernel as a full scan, so the result is identical to the full exact scan.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::kernel::dot_i8;

/// Slack on the quantisation error bound of one code (½ plus float rounding
/// in the division).
const HALF: f32 = 0.500_1;
/// Absolute slack covering f32 rounding of both the exact and the
/// approximate score.
const MARGIN: f32 = 1e-4;

/// The codes of every row, kept in step with the f32 matrix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Codes {
    codes: Vec<i8>,
    scale: Vec<f32>,
    l1: Vec<f32>,
}

/// A quantised vector: codes, scale and ‖codes‖₁.
pub(crate) struct Quantized {
    codes: Vec<i8>,
    scale: f32,
    l1: f32,
}

#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // |code| ≤ 127
pub(crate) fn quantize(x: &[f32]) -> Quantized {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        return Quantized {
            codes: vec![0; x.len()],
            scale: 0.0,
            l1: 0.0,
        };
    }
    let scale = max / 127.0;
    let codes: Vec<i8> = x
        .iter()
        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let l1 = codes.iter().map(|&c| i32::from(c).abs()).sum::<i32>() as f32;
    Quantized { codes, scale, l1 }
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
    pub(crate) fn push(&mut self, row: &[f32]) {
        let q = quantize(row);
        self.codes.extend_from_slice(&q.codes);
        self.scale.push(q.scale);
        self.l1.push(q.l1);
    }

    pub(crate) fn set(&mut self, slot: usize, row: &[f32]) {
        let q = quantize(row);
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
        #[allow(clippy::cast_precision_loss)] // d ≤ 65,543
        let quarter_d = HALF * HALF * d as f32;
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
            let st = s * query.scale;
            #[allow(clippy::cast_precision_loss)] // |dot| < 2²⁴: exact
            let approx = st * dot_i8(row, &query.codes) as f32;
            let bound = st * (HALF * l1 + HALF * query.l1 + quarter_d) + MARGIN;
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
        let q = quantize(query);
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
