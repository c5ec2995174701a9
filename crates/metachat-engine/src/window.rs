//! Long texts: split token sequences into overlapping windows, pool the window
//! embeddings back into one vector.

/// How a token sequence is cut into model-sized windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    /// Content tokens per window (the model's length minus its special tokens
    /// and any repeated prefix).
    pub size: usize,
    /// Tokens shared by consecutive windows.
    pub overlap: usize,
}

impl WindowPlan {
    /// A plan with `size` tokens per window and `overlap` shared tokens;
    /// `overlap` is clamped below `size` so windows always advance.
    pub fn new(size: usize, overlap: usize) -> Self {
        let size = size.max(1);
        WindowPlan {
            size,
            overlap: overlap.min(size - 1),
        }
    }

    /// The `[start, end)` ranges covering `len` tokens. One (possibly empty)
    /// range when the sequence fits; every token is in at least one range.
    pub fn ranges(&self, len: usize) -> Vec<(usize, usize)> {
        if len <= self.size {
            return vec![(0, len)];
        }
        let stride = self.size - self.overlap;
        let mut out = Vec::with_capacity(len.div_ceil(stride));
        let mut start = 0;
        loop {
            let end = (start + self.size).min(len);
            out.push((start, end));
            if end == len {
                break;
            }
            start += stride;
        }
        out
    }
}

/// Mean of unit vectors, re-normalised to unit length.
pub fn pool_windows(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut out = vec![0f32; dim];
    for v in vectors {
        for (o, x) in out.iter_mut().zip(v) {
            *o += *x;
        }
    }
    l2_normalize(&mut out);
    out
}

/// Scales `v` to unit length (left as is when it is all zeros).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// One embedded text: its unit vector and how it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The L2-normalised vector.
    pub vector: Vec<f32>,
    /// Model windows the text was read in (1 when it fit; more when a long
    /// text was split into overlapping windows whose embeddings were averaged).
    pub windows: u32,
    /// Tokens of the whole text, special tokens and prefix included, before windowing.
    pub tokens: usize,
}

/// Most tokens (rows × padded length) one forward pass may hold; bounds the
/// memory of a batch of long texts (the attention scores of 4,096 tokens at
/// 512 positions and 12 heads are ≈ 100 MB).
pub const TOKEN_BUDGET: usize = 4096;
/// Most sequences in one forward pass.
pub const MAX_ROWS: usize = 32;

/// Runs `forward` over every window of every text, in length-sorted chunks
/// under [`TOKEN_BUDGET`], and pools each text's window vectors.
///
/// `windows[i]` holds the full model inputs (special tokens included) of
/// text `i`; `tokens[i]` is the text's token count before windowing.
pub(crate) fn run_windows<E>(
    windows: Vec<Vec<Vec<u32>>>,
    tokens: Vec<usize>,
    mut forward: impl FnMut(&[Vec<u32>]) -> Result<Vec<Vec<f32>>, E>,
) -> Result<Vec<Embedding>, E> {
    let mut flat: Vec<(usize, Vec<u32>)> = Vec::new();
    let counts: Vec<usize> = windows.iter().map(Vec::len).collect();
    for (i, ws) in windows.into_iter().enumerate() {
        flat.extend(ws.into_iter().map(|w| (i, w)));
    }
    // Longest first, so each chunk pads little.
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by_key(|&j| std::cmp::Reverse(flat[j].1.len()));
    let mut per_text: Vec<Vec<Vec<f32>>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    let mut at = 0;
    while at < order.len() {
        let longest = flat[order[at]].1.len().max(1);
        let rows = (TOKEN_BUDGET / longest)
            .clamp(1, MAX_ROWS)
            .min(order.len() - at);
        let chunk: Vec<Vec<u32>> = order[at..at + rows]
            .iter()
            .map(|&j| std::mem::take(&mut flat[j].1))
            .collect();
        let out = forward(&chunk)?;
        for (&j, mut v) in order[at..at + rows].iter().zip(out) {
            l2_normalize(&mut v);
            per_text[flat[j].0].push(v);
        }
        at += rows;
    }
    Ok(per_text
        .into_iter()
        .zip(tokens)
        .map(|(vs, tokens)| Embedding {
            windows: u32::try_from(vs.len()).unwrap_or(u32::MAX),
            vector: if vs.len() == 1 {
                vs.into_iter().next().unwrap_or_default()
            } else {
                pool_windows(&vs)
            },
            tokens,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sequences_are_one_window() {
        let p = WindowPlan::new(510, 64);
        assert_eq!(p.ranges(0), vec![(0, 0)]);
        assert_eq!(p.ranges(510), vec![(0, 510)]);
    }

    #[test]
    fn long_sequences_are_covered_with_overlap() {
        let p = WindowPlan::new(10, 3);
        let r = p.ranges(25);
        assert_eq!(r, vec![(0, 10), (7, 17), (14, 24), (21, 25)]);
        for w in r.windows(2) {
            assert_eq!(w[0].1 - w[1].0, 3);
        }
        let p = WindowPlan::new(4, 10);
        assert_eq!(p.overlap, 3);
        assert_eq!(p.ranges(6).last(), Some(&(2, 6)));
    }

    #[test]
    fn pooling_renormalises() {
        let v = pool_windows(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        let n: f32 = v.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-6);
        assert!((v[0] - v[1]).abs() < 1e-6);
    }
}
