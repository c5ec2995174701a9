//! The valence head: logistic regression on sentence embeddings, and its
//! trainer.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{MoodError, Result};

/// Where and how a head was trained, kept in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValenceHeadProvenance {
    /// The command that wrote the file.
    pub command: String,
    /// The training data and where it comes from.
    pub data: String,
    /// Examples trained on.
    pub examples: usize,
    /// UTC date of training, `YYYY-MM-DD`.
    pub date: String,
    /// The L2 strength chosen by cross-validation.
    pub l2: f32,
    /// Folds of the cross-validation.
    pub cv_folds: usize,
    /// Mean cross-validated accuracy at the chosen L2.
    pub cv_accuracy: f32,
    /// Cross-validated accuracy for every L2 tried, `(l2, accuracy)`.
    pub cv_grid: Vec<(f32, f32)>,
}

/// A logistic head: `valence = tanh((w · x + b) / 2) = 2 σ(w · x + b) − 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValenceHead {
    /// File format version (1).
    pub format: u32,
    /// The embedder (and input prefix) the head was trained on.
    pub embedder: String,
    /// One weight per embedding dimension.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
    /// Training provenance.
    pub provenance: ValenceHeadProvenance,
}

impl ValenceHead {
    /// The current file format.
    pub const FORMAT: u32 = 1;

    /// Parses a head from its JSON; `origin` names it in errors.
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] for bad JSON, an unknown format, no weights or
    /// weights that are not finite.
    pub fn from_json(json: &str, origin: &Path) -> Result<Self> {
        let corrupt = |reason: String| MoodError::Corrupt {
            path: origin.to_owned(),
            reason,
        };
        let head: Self = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
        if head.format != Self::FORMAT {
            return Err(corrupt(format!("unknown format {}", head.format)));
        }
        if head.weights.is_empty()
            || !head
                .weights
                .iter()
                .chain([&head.bias])
                .all(|w| w.is_finite())
        {
            return Err(corrupt("weights missing or not finite".into()));
        }
        Ok(head)
    }

    /// Reads a head file.
    ///
    /// # Errors
    /// [`MoodError::MissingFile`], [`MoodError::Io`] or [`MoodError::Corrupt`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = MoodError::read_text(path)?;
        Self::from_json(&json, path)
    }

    /// The head for multilingual e5 that ships in this crate
    /// (`data/valence_head_e5.json`).
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] if the compiled-in file were damaged.
    pub fn builtin_e5() -> Result<Self> {
        Self::from_json(
            include_str!("../../data/valence_head_e5.json"),
            &PathBuf::from("crates/metachat-analysis/data/valence_head_e5.json"),
        )
    }

    /// The head for all-MiniLM-L6-v2 that ships in this crate
    /// (`data/valence_head_minilm.json`).
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] if the compiled-in file were damaged.
    pub fn builtin_minilm() -> Result<Self> {
        Self::from_json(
            include_str!("../../data/valence_head_minilm.json"),
            &PathBuf::from("crates/metachat-analysis/data/valence_head_minilm.json"),
        )
    }

    /// The logit `w · x + b`; a vector of another length reads as 0.
    pub fn logit(&self, x: &[f32]) -> f32 {
        if x.len() != self.weights.len() {
            return 0.0;
        }
        dot(&self.weights, x) + self.bias
    }

    /// Valence in \[-1, 1\]: `tanh(logit / 2)`, i.e. `2 P(positive) − 1`.
    pub fn valence(&self, x: &[f32]) -> f32 {
        (self.logit(x) / 2.0).tanh()
    }
}

/// Weights and bias of a fitted logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    /// One weight per feature.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
}

impl LogisticFit {
    /// The probability of the positive class.
    pub fn probability(&self, x: &[f32]) -> f32 {
        sigmoid(dot(&self.weights, x) + self.bias)
    }
}

/// Fits L2-regularised logistic regression: minimises the mean log-loss plus
/// `l2 / 2 · |w|²` over standardised features (the bias is not penalised),
/// by Nesterov-accelerated gradient descent with the step `1 / L` from the
/// loss's Lipschitz bound; the standardisation is folded back into the
/// returned weights. Deterministic. Returns a zero model for empty input.
pub fn train_logistic(xs: &[Vec<f32>], ys: &[bool], l2: f32, iterations: usize) -> LogisticFit {
    let n = xs.len().min(ys.len());
    let d = xs.first().map_or(0, Vec::len);
    if n == 0 || d == 0 {
        return LogisticFit {
            weights: vec![0.0; d],
            bias: 0.0,
        };
    }
    // Standardise.
    let mut mean = vec![0.0f64; d];
    for x in &xs[..n] {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut sd = vec![0.0f64; d];
    for x in &xs[..n] {
        for ((s, v), m) in sd.iter_mut().zip(x).zip(&mean) {
            *s += (f64::from(*v) - m).powi(2);
        }
    }
    sd.iter_mut()
        .for_each(|s| *s = (*s / n as f64).sqrt().max(1e-6));
    let z: Vec<Vec<f64>> = xs[..n]
        .iter()
        .map(|x| {
            x.iter()
                .zip(&mean)
                .zip(&sd)
                .map(|((v, m), s)| (f64::from(*v) - m) / s)
                .collect()
        })
        .collect();
    let y: Vec<f64> = ys[..n].iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
    let l2 = f64::from(l2);

    // Lipschitz bound: 0.25 · λmax(ZᵀZ / n) + l2, λmax by power iteration.
    let mut v = vec![1.0 / (d as f64).sqrt(); d];
    let mut lambda = 0.0;
    for _ in 0..50 {
        let mut u = vec![0.0; d];
        for row in &z {
            let s: f64 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            for (ui, ri) in u.iter_mut().zip(row) {
                *ui += s * ri / n as f64;
            }
        }
        lambda = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        if lambda == 0.0 {
            break;
        }
        v = u.iter().map(|x| x / lambda).collect();
    }
    let step = 1.0 / (0.25 * (lambda + 1.0) + l2);

    // Parameters: w (d) and b; Nesterov momentum.
    let mut w = vec![0.0f64; d];
    let mut b = 0.0f64;
    let mut w_prev = w.clone();
    let mut b_prev = b;
    for t in 1..=iterations {
        let mom = (t as f64 - 1.0) / (t as f64 + 2.0);
        let wl: Vec<f64> = w
            .iter()
            .zip(&w_prev)
            .map(|(a, p)| a + mom * (a - p))
            .collect();
        let bl = b + mom * (b - b_prev);
        let mut gw = vec![0.0f64; d];
        let mut gb = 0.0;
        for (row, yi) in z.iter().zip(&y) {
            let p = sigmoid64(row.iter().zip(&wl).map(|(a, c)| a * c).sum::<f64>() + bl);
            let r = p - yi;
            gb += r;
            for (g, x) in gw.iter_mut().zip(row) {
                *g += r * x;
            }
        }
        w_prev = std::mem::take(&mut w);
        b_prev = b;
        w = wl
            .iter()
            .zip(&gw)
            .map(|(wi, g)| wi - step * (g / n as f64 + l2 * wi))
            .collect();
        b = bl - step * gb / n as f64;
    }
    // Fold the standardisation back: w' = w / sd, b' = b − Σ w mean / sd.
    #[allow(clippy::cast_possible_truncation)]
    let weights: Vec<f32> = w.iter().zip(&sd).map(|(wi, s)| (wi / s) as f32).collect();
    let shift: f64 = w
        .iter()
        .zip(&sd)
        .zip(&mean)
        .map(|((wi, s), m)| wi / s * m)
        .sum();
    #[allow(clippy::cast_possible_truncation)]
    let bias = (b - shift) as f32;
    LogisticFit { weights, bias }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_rule_it_was_not_told() {
        // y = x0 − x1 > 0.1, on a deterministic grid of points.
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..20 {
            for j in 0..20 {
                let (a, b) = (i as f32 / 19.0, j as f32 / 19.0);
                xs.push(vec![a, b, 0.5]);
                ys.push(a - b > 0.1);
            }
        }
        let fit = train_logistic(&xs, &ys, 1e-4, 500);
        let correct = xs
            .iter()
            .zip(&ys)
            .filter(|(x, y)| (fit.probability(x) > 0.5) == **y)
            .count();
        assert!(correct as f32 / xs.len() as f32 > 0.95, "{correct}");
        assert!(fit.weights[0] > 0.0 && fit.weights[1] < 0.0);
    }

    #[test]
    fn corrupt_head_names_its_file() {
        let err =
            ValenceHead::from_json("{\"format\":1}", Path::new("h.json")).expect_err("corrupt");
        assert!(err.to_string().contains("h.json"));
    }
}
