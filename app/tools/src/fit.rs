//! What `train_mood` and `eval_mood` share: training one head of either
//! kind (linear softmax, or one hidden layer) on indexed examples, and the
//! valence an emotion implies.

use anyhow::Result;

use metachat_analysis::mood::{train_softmax, HeadSetting, SoftmaxFit, ValenceLabel};
use metachat_analysis::Emotion;

use crate::mlp::{train_mlp, Mlp, MlpSettings};

/// Gradient steps of a linear head.
pub const ITERATIONS: usize = 300;
/// Seed of a hidden layer's initial weights and batch order.
pub const MLP_SEED: u64 = 7;

/// One training example: its vector's index, its label, whether it is a
/// review sentence.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// Index of its vector.
    pub x: usize,
    /// Its class.
    pub y: usize,
    /// A review sentence (weighted by the setting's review weight).
    pub review: bool,
}

/// A fitted head of either kind.
#[derive(Debug)]
pub enum Model {
    /// A linear softmax head.
    Linear(SoftmaxFit),
    /// A head with one hidden layer.
    Hidden(Mlp),
}

impl Model {
    /// Class probabilities of one vector.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        match self {
            Model::Linear(f) => f.probabilities(x),
            Model::Hidden(m) => m.probabilities(x),
        }
    }
}

/// Trains the head of setting `s` on `examples` (vectors from `xs`).
///
/// # Errors
/// A tensor error from training a hidden layer.
pub fn train_model(
    xs: &[Vec<f32>],
    examples: &[Example],
    classes: usize,
    s: HeadSetting,
) -> Result<Model> {
    let ex_x: Vec<Vec<f32>> = examples.iter().map(|e| xs[e.x].clone()).collect();
    let ex_y: Vec<usize> = examples.iter().map(|e| e.y).collect();
    let w: Vec<f32> = examples
        .iter()
        .map(|e| if e.review { s.review_weight } else { 1.0 })
        .collect();
    Ok(if s.hidden == 0 {
        Model::Linear(train_softmax(&ex_x, &ex_y, &w, classes, s.l2, ITERATIONS))
    } else {
        Model::Hidden(train_mlp(
            &ex_x,
            &ex_y,
            &w,
            classes,
            MlpSettings {
                hidden: s.hidden,
                l2: s.l2,
                epochs: 60,
                batch: 128,
                lr: 1e-3,
                seed: MLP_SEED,
            },
        )?)
    })
}

/// The valence an emotion implies by the guidelines (none for surprise).
pub fn implied_valence(e: Emotion) -> Option<ValenceLabel> {
    match e {
        Emotion::Joy | Emotion::Love => Some(ValenceLabel::Positive),
        Emotion::Sadness | Emotion::Anger | Emotion::Fear => Some(ValenceLabel::Negative),
        Emotion::Neutral => Some(ValenceLabel::Neutral),
        Emotion::Surprise => None,
    }
}
