//! A one-hidden-layer classifier (ReLU, softmax) trained with candle's
//! autograd and Adam, for the mood heads. Training is deterministic: the
//! initial weights and the order of the mini-batches come from a seeded
//! generator. The standardisation of the inputs is folded into the first
//! layer, so the result reads raw embeddings.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use metachat_analysis::mood::{Dense, SoftmaxFit};

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct MlpSettings {
    /// Hidden units.
    pub hidden: usize,
    /// L2 penalty on the weights (not the biases): `l2 / 2 · |W|²` divided
    /// by the batch's size, as scikit-learn's `alpha`.
    pub l2: f32,
    /// Passes over the data.
    pub epochs: usize,
    /// Examples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
}

/// A trained classifier: the hidden layer and the softmax layer over it.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// The hidden layer (ReLU), reading raw embeddings.
    pub hidden: Dense,
    /// The output layer over the hidden units.
    pub output: SoftmaxFit,
}

impl Mlp {
    /// Class probabilities of one embedding.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        self.output.probabilities(&self.hidden.forward(x))
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-a, a).
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn uniform(&mut self, a: f32) -> f32 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * 2.0 - 1.0) * f64::from(a)) as f32
    }
}

/// Trains on `xs` (rows of equal length) with labels `ys` below `classes`
/// and per-example weights `ws` (examples of weight 0 are left out).
///
/// # Errors
/// A tensor error from candle (shapes are checked here, so only an
/// allocation failure is expected).
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
pub fn train_mlp(
    xs: &[Vec<f32>],
    ys: &[usize],
    ws: &[f32],
    classes: usize,
    s: MlpSettings,
) -> Result<Mlp> {
    let keep: Vec<usize> = (0..xs.len().min(ys.len()).min(ws.len()))
        .filter(|&i| ys[i] < classes && ws[i] > 0.0)
        .collect();
    anyhow::ensure!(!keep.is_empty(), "no examples to train on");
    let d = xs[keep[0]].len();
    let n = keep.len();
    // Weighted standardisation.
    let total: f64 = keep.iter().map(|&i| f64::from(ws[i])).sum();
    let mut mean = vec![0.0f64; d];
    for &i in &keep {
        for (m, v) in mean.iter_mut().zip(&xs[i]) {
            *m += f64::from(ws[i]) * f64::from(*v) / total;
        }
    }
    let mut sd = vec![0.0f64; d];
    for &i in &keep {
        for ((q, v), m) in sd.iter_mut().zip(&xs[i]).zip(&mean) {
            *q += f64::from(ws[i]) * (f64::from(*v) - m).powi(2) / total;
        }
    }
    sd.iter_mut().for_each(|q| *q = q.sqrt().max(1e-6));
    let mut flat = Vec::with_capacity(n * d);
    for &i in &keep {
        flat.extend(
            xs[i]
                .iter()
                .zip(&mean)
                .zip(&sd)
                .map(|((v, m), q)| ((f64::from(*v) - m) / q) as f32),
        );
    }
    let dev = Device::Cpu;
    let x_all = Tensor::from_vec(flat, (n, d), &dev)?;
    let y_all: Vec<u32> = keep.iter().map(|&i| ys[i] as u32).collect();
    let w_all: Vec<f32> = keep
        .iter()
        .map(|&i| (f64::from(ws[i]) * n as f64 / total) as f32)
        .collect();

    let mut rng = Rng(s.seed);
    let mut init = |rows: usize, cols: usize| -> Result<Var> {
        let a = (6.0 / (rows + cols) as f32).sqrt();
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.uniform(a)).collect();
        Ok(Var::from_tensor(&Tensor::from_vec(v, (rows, cols), &dev)?)?)
    };
    let w1 = init(s.hidden, d)?;
    let w2 = init(classes, s.hidden)?;
    let b1 = Var::zeros(s.hidden, DType::F32, &dev)?;
    let b2 = Var::zeros(classes, DType::F32, &dev)?;
    let mut opt = AdamW::new(
        vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()],
        ParamsAdamW {
            lr: s.lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let batch = s.batch.clamp(1, n);
    for _ in 0..s.epochs {
        for i in (1..n).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for chunk in order.chunks(batch) {
            let idx = Tensor::from_vec(chunk.to_vec(), chunk.len(), &dev)?;
            let x = x_all.index_select(&idx, 0)?;
            let y: Vec<u32> = chunk.iter().map(|&k| y_all[k as usize]).collect();
            let y = Tensor::from_vec(y, (chunk.len(), 1), &dev)?;
            let w: Vec<f32> = chunk.iter().map(|&k| w_all[k as usize]).collect();
            let w = Tensor::from_vec(w, chunk.len(), &dev)?;
            let h = x.matmul(&w1.t()?)?.broadcast_add(&b1)?.relu()?;
            let logits = h.matmul(&w2.t()?)?.broadcast_add(&b2)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let nll = logp.gather(&y, 1)?.squeeze(1)?.neg()?;
            let data = (nll * &w)?.mean_all()?;
            let scale = f64::from(s.l2) / 2.0 / chunk.len() as f64;
            let penalty = ((w1.sqr()?.sum_all()? + w2.sqr()?.sum_all()?)? * scale)?;
            opt.backward_step(&(data + penalty)?)?;
        }
    }
    // Fold the standardisation into the hidden layer.
    let w1v: Vec<Vec<f32>> = w1.as_tensor().to_vec2()?;
    let b1v: Vec<f32> = b1.as_tensor().to_vec1()?;
    let mut hw = Vec::with_capacity(s.hidden);
    let mut hb = Vec::with_capacity(s.hidden);
    for (row, b) in w1v.iter().zip(&b1v) {
        let shift: f64 = row
            .iter()
            .zip(&sd)
            .zip(&mean)
            .map(|((w, q), m)| f64::from(*w) / q * m)
            .sum();
        hw.push(
            row.iter()
                .zip(&sd)
                .map(|(w, q)| (f64::from(*w) / q) as f32)
                .collect(),
        );
        hb.push((f64::from(*b) - shift) as f32);
    }
    Ok(Mlp {
        hidden: Dense {
            weights: hw,
            bias: hb,
        },
        output: SoftmaxFit {
            weights: w2.as_tensor().to_vec2()?,
            bias: b2.as_tensor().to_vec1()?,
        },
    })
}
