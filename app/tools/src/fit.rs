//! What `train_mood` and `eval_mood` share: training one head of either
//! kind (linear softmax, or one hidden layer) on indexed examples, and the
//! valence an emotion implies.

use anyhow::Result;

use metachat_analysis::mood::{
    fold_probabilities, train_softmax, HeadSetting, SoftmaxFit, ValenceLabel,
};
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

/// The outputs of the valence head whose review sentences have their own
/// ([`HeadSetting::review_outputs`]): the three labels, then a review's
/// negative and positive, read as negative and positive.
pub const REVIEW_OUTPUTS_FOLD: [usize; 5] = [0, 1, 2, 0, 2];

/// A fitted head of either kind.
#[derive(Debug)]
pub enum Net {
    /// A linear softmax head.
    Linear(SoftmaxFit),
    /// A head with one hidden layer.
    Hidden(Mlp),
}

/// A fitted head and how its outputs fold onto the labels.
#[derive(Debug)]
pub struct Model {
    /// The network.
    pub net: Net,
    /// The label of each output ([`SoftmaxHead::fold`](metachat_analysis::mood::SoftmaxHead::fold));
    /// empty: one output per label.
    pub fold: Vec<usize>,
    /// How many labels.
    pub labels: usize,
}

impl Model {
    /// Label probabilities of one vector (outputs folded onto labels).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let p = match &self.net {
            Net::Linear(f) => f.probabilities(x),
            Net::Hidden(m) => m.probabilities(x),
        };
        fold_probabilities(&p, &self.fold, self.labels)
    }
}

/// Trains the head of setting `s` on `examples` (vectors from `xs`, labels
/// below `classes`). With [`HeadSetting::review_outputs`] (valence only:
/// three classes, reviews negative or positive) the reviews are trained
/// on outputs of their own ([`REVIEW_OUTPUTS_FOLD`]).
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
    let own = s.review_outputs && classes == 3;
    let ex_y: Vec<usize> = examples
        .iter()
        .map(|e| match (own && e.review, e.y) {
            (true, 0) => 3,
            (true, 2) => 4,
            (_, y) => y,
        })
        .collect();
    let fold = if own {
        REVIEW_OUTPUTS_FOLD.to_vec()
    } else {
        Vec::new()
    };
    let (labels, classes) = (classes, fold.len().max(classes));
    let w: Vec<f32> = examples
        .iter()
        .map(|e| if e.review { s.review_weight } else { 1.0 })
        .collect();
    let net = if s.hidden == 0 {
        Net::Linear(train_softmax(&ex_x, &ex_y, &w, classes, s.l2, ITERATIONS))
    } else {
        Net::Hidden(train_mlp(
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
    };
    Ok(Model { net, fold, labels })
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
