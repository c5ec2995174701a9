//! What `train_mood` and `eval_mood` share: training one head of either
//! kind (linear softmax, or one hidden layer) on indexed examples, and the
//! valence an emotion implies.

use anyhow::Result;

use metachat_analysis::mood::{
    fold_probabilities, train_softmax, HeadChoice, HeadSetting, ReviewChoice, ReviewReader,
    ReviewSetting, SoftmaxFit, SoftmaxHead, ValenceLabel,
};
use metachat_analysis::Emotion;

use crate::mlp::{train_mlp, Mlp, MlpSettings};

/// Gradient steps of a linear head.
pub const ITERATIONS: usize = 300;
/// Seed of a hidden layer's initial weights and batch order.
pub const MLP_SEED: u64 = 7;
/// How many times the valence head's chosen setting is trained, from
/// seeds `MLP_SEED`, `MLP_SEED + 1`, ..., for the head that ships (the mean
/// of their logits, [`train_model_members`]; the dev split chooses the
/// setting with one). In `eval_mood`'s grouped corpus CV (2026-12-06) the
/// mean of 5 read entries by writers the heads never saw at a valence sign
/// accuracy of 0.873 (en) and 0.900 (ru), one head at 0.871 and 0.894.
pub const VALENCE_MEMBERS: usize = 5;

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
    train_model_members(xs, examples, classes, s, 1)
}

/// [`train_model`], a head with a hidden layer trained `members` times
/// from different initial weights and batch orders (seeds `MLP_SEED`,
/// `MLP_SEED + 1`, ...) and read as the mean of their logits
/// ([`Mlp::mean_of`]). A linear head has one optimum, so it is trained
/// once whatever `members` says.
///
/// # Errors
/// A tensor error from training a hidden layer.
pub fn train_model_members(
    xs: &[Vec<f32>],
    examples: &[Example],
    classes: usize,
    s: HeadSetting,
    members: usize,
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
        let trained = (0..members.max(1) as u64)
            .map(|k| {
                train_mlp(
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
                        seed: MLP_SEED + k,
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Net::Hidden(
            Mlp::mean_of(trained)
                .ok_or_else(|| anyhow::anyhow!("members of one setting have one shape"))?,
        )
    };
    Ok(Model { net, fold, labels })
}

/// Trains a review reader of setting `s`: its gate on the diary texts
/// `diary` (vector indices) against the review sentences `reviews` (index,
/// positive), the two classes weighted equally in all; its valence head on
/// the review sentences alone. Its choice holds `s` only.
pub fn train_review_reader(
    xs: &[Vec<f32>],
    diary: &[usize],
    reviews: &[(usize, bool)],
    s: ReviewSetting,
) -> ReviewReader {
    let mut gx: Vec<Vec<f32>> = diary.iter().map(|&i| xs[i].clone()).collect();
    let mut gy = vec![0usize; gx.len()];
    #[allow(clippy::cast_precision_loss)]
    let (wd, wr) = (
        1.0 / diary.len().max(1) as f32,
        1.0 / reviews.len().max(1) as f32,
    );
    let mut gw = vec![wd; gx.len()];
    let rx: Vec<Vec<f32>> = reviews.iter().map(|&(i, _)| xs[i].clone()).collect();
    let ry: Vec<usize> = reviews.iter().map(|&(_, pos)| usize::from(pos)).collect();
    gx.extend(rx.iter().cloned());
    gy.extend(std::iter::repeat_n(1, rx.len()));
    gw.extend(std::iter::repeat_n(wr, rx.len()));
    let gate = train_softmax(&gx, &gy, &gw, 2, s.gate_l2, ITERATIONS);
    let valence = train_softmax(&rx, &ry, &vec![1.0; rx.len()], 2, s.valence_l2, ITERATIONS);
    let head = |fit: SoftmaxFit, classes: [&str; 2], l2: f32| SoftmaxHead {
        classes: classes.iter().map(|c| (*c).to_owned()).collect(),
        hidden: None,
        weights: fit.weights,
        bias: fit.bias,
        temperature: 1.0,
        fold: Vec::new(),
        choice: HeadChoice {
            chosen: HeadSetting {
                hidden: 0,
                l2,
                review_weight: 0.0,
                review_outputs: false,
                dev_accuracy: 0.0,
                dev_macro_f1: 0.0,
            },
            grid: Vec::new(),
        },
    };
    let reader = ReviewReader {
        gate: head(gate, ["diary", "review"], s.gate_l2),
        valence: head(valence, ["negative", "positive"], s.valence_l2),
        shift: 0.0,
        one_sentence_shift: 0.0,
        choice: ReviewChoice {
            chosen: s,
            without: [0.0; 2],
            grid: Vec::new(),
        },
    };
    read_at(&reader, &s)
}

/// `reader` read as setting `s` says: its shift, its further shift for
/// texts of one sentence and its review head's temperature (what a grid
/// varies without refitting; the fits are those of `s`'s L2 strengths).
pub fn read_at(reader: &ReviewReader, s: &ReviewSetting) -> ReviewReader {
    let mut reader = reader.clone();
    reader.shift = s.shift;
    reader.one_sentence_shift = s.one_sentence_shift;
    reader.valence.temperature = s.valence_temperature;
    reader
}

/// `p` tempered: `softmax(ln p / t)`.
pub fn tempered(p: &[f32], t: f32) -> Vec<f32> {
    let scaled: Vec<f32> = p.iter().map(|q| q.max(1e-12).ln() / t.max(1e-6)).collect();
    metachat_analysis::mood::softmax(&scaled)
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

/// `head` with its chosen setting fitted on `examples`; its temperature and
/// dev figures are kept from the fit that chose it.
pub fn refit(
    head: SoftmaxHead,
    xs: &[Vec<f32>],
    examples: &[Example],
    classes: usize,
) -> Result<SoftmaxHead> {
    refit_members(head, xs, examples, classes, 1)
}

/// [`refit`] with `members` hidden layers read as one
/// ([`train_model_members`]).
///
/// # Errors
/// A tensor error from training a hidden layer.
pub fn refit_members(
    mut head: SoftmaxHead,
    xs: &[Vec<f32>],
    examples: &[Example],
    classes: usize,
    members: usize,
) -> Result<SoftmaxHead> {
    let model = train_model_members(xs, examples, classes, head.choice.chosen, members)?;
    match model.net {
        Net::Linear(f) => {
            head.hidden = None;
            head.weights = f.weights;
            head.bias = f.bias;
        }
        Net::Hidden(m) => {
            head.hidden = Some(m.hidden);
            head.weights = m.output.weights;
            head.bias = m.output.bias;
        }
    }
    if !model.fold.is_empty() {
        // The extra outputs are named for the label they count for.
        for &label in &model.fold[head.classes.len()..] {
            let name = format!("{} (review)", head.classes[label]);
            head.classes.push(name);
        }
        head.fold = model.fold;
    }
    Ok(head)
}
