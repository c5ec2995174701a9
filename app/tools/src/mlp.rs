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

    /// One classifier whose logits are the mean of the `members`' logits
    /// (an ensemble in the shape of a single head, so the heads file and the
    /// analyzer read it as any other): the hidden layers side by side, each
    /// member's output weights divided by their number, the biases averaged.
    /// `None` for no members or members of different shapes (classes, or
    /// input width).
    pub fn mean_of(members: Vec<Mlp>) -> Option<Mlp> {
        let first = members.first()?;
        let classes = first.output.bias.len();
        let inputs = first.hidden.weights.first().map(Vec::len);
        let same_shape = members.iter().all(|m| {
            m.hidden.weights.iter().all(|row| Some(row.len()) == inputs)
                && m.output.bias.len() == classes
                && m.output.weights.len() == classes
                && m.output
                    .weights
                    .iter()
                    .all(|row| row.len() == m.hidden.bias.len())
                && m.hidden.weights.len() == m.hidden.bias.len()
        });
        if !same_shape {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let k = members.len() as f32;
        let mut hidden = Dense {
            weights: Vec::new(),
            bias: Vec::new(),
        };
        let mut output = SoftmaxFit {
            weights: vec![Vec::new(); classes],
            bias: vec![0.0; classes],
        };
        for m in members {
            hidden.weights.extend(m.hidden.weights);
            hidden.bias.extend(m.hidden.bias);
            for (c, row) in m.output.weights.into_iter().enumerate() {
                output.weights[c].extend(row.into_iter().map(|w| w / k));
                output.bias[c] += m.output.bias[c] / k;
            }
        }
        Some(Mlp { hidden, output })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn logits(m: &Mlp, x: &[f32]) -> Vec<f32> {
        let h = m.hidden.forward(x);
        m.output
            .weights
            .iter()
            .zip(&m.output.bias)
            .map(|(w, b)| w.iter().zip(&h).map(|(a, c)| a * c).sum::<f32>() + b)
            .collect()
    }

    /// An MLP of `hidden` units over `d` inputs into `classes`, with
    /// weights drawn from `seed`.
    fn random_mlp(seed: u64, d: usize, hidden: usize, classes: usize) -> Mlp {
        let mut rng = Rng(seed);
        let mut rows = |r: usize, c: usize| -> Vec<Vec<f32>> {
            (0..r)
                .map(|_| (0..c).map(|_| rng.uniform(1.0)).collect())
                .collect()
        };
        let hw = rows(hidden, d);
        let hb = rows(1, hidden).remove(0);
        let ow = rows(classes, hidden);
        let ob = rows(1, classes).remove(0);
        Mlp {
            hidden: Dense {
                weights: hw,
                bias: hb,
            },
            output: SoftmaxFit {
                weights: ow,
                bias: ob,
            },
        }
    }

    proptest! {
        /// The mean's logits are the mean of the members' logits, for any
        /// members and input.
        #[test]
        fn the_mean_reads_the_mean_of_the_members_logits(
            seeds in proptest::collection::vec(any::<u64>(), 1..6),
            d in 1usize..8,
            hidden in 1usize..6,
            classes in 2usize..5,
            x_seed in any::<u64>(),
        ) {
            let members: Vec<Mlp> = seeds.iter().map(|&s| random_mlp(s, d, hidden, classes)).collect();
            let mut rng = Rng(x_seed);
            let x: Vec<f32> = (0..d).map(|_| rng.uniform(2.0)).collect();
            let per_member: Vec<Vec<f32>> = members.iter().map(|m| logits(m, &x)).collect();
            let mean = Mlp::mean_of(members).expect("members of one shape");
            prop_assert_eq!(mean.hidden.bias.len(), hidden * seeds.len());
            let got = logits(&mean, &x);
            for c in 0..classes {
                let want = per_member.iter().map(|l| l[c]).sum::<f32>() / seeds.len() as f32;
                prop_assert!((got[c] - want).abs() <= 1e-4 * (1.0 + want.abs()), "class {}: {} vs {}", c, got[c], want);
            }
        }
    }

    #[test]
    fn members_of_different_shapes_or_none_have_no_mean() {
        assert!(Mlp::mean_of(Vec::new()).is_none());
        let a = random_mlp(1, 4, 3, 2);
        let b = random_mlp(2, 4, 3, 3);
        assert!(Mlp::mean_of(vec![a.clone(), b]).is_none());
        // Members that read inputs of different widths.
        let c = random_mlp(3, 5, 3, 2);
        assert!(Mlp::mean_of(vec![a, c]).is_none());
    }
}
