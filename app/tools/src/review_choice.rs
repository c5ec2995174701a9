//! Choosing the review reader (`ReviewReader`: a gate and a review-only
//! valence head) for `train_mood`, without reading yelp: each setting is
//! judged on a review domain left out of its training (trained with amazon,
//! read on imdb, and the other way round) and on the diary corpus's dev
//! split, against the valence head alone on the same data.

use anyhow::Result;

use metachat_analysis::mood::corpus::DiaryEntry;
use metachat_analysis::mood::{argmax, HeadSetting, ReviewReader, ReviewSetting};

use crate::fit::{read_at, tempered, train_model, train_review_reader, Example};
use crate::{floor_score, lang_accuracy};

/// Gate L2 strengths tried.
pub const GATE_L2: [f32; 2] = [0.01, 0.1];
/// Review valence head L2 strengths tried.
pub const VALENCE_L2: [f32; 2] = [0.3, 3.0];
/// Gate log-odds shifts tried.
pub const SHIFTS: [f32; 5] = [0.0, 1.0, 2.0, 3.0, 4.0];
/// Review valence head temperatures tried.
pub const TEMPERATURES: [f32; 4] = [1.0, 0.5, 0.2, 0.1];
/// Further gate shifts tried for texts of one sentence
/// (`ReviewReader::one_sentence_shift`).
pub const ONE_SENTENCE_SHIFTS: [f32; 5] = [0.0, 1.0, 2.0, 4.0, 8.0];

/// A reader setting's knobs in words, for the tools' lines: `gate l2 0.1
/// valence l2 3 temperature 1 shift 0 (one sentence +2)`, padded so that
/// a grid's lines align.
pub fn describe(s: &ReviewSetting) -> String {
    format!(
        "gate l2 {:<5} valence l2 {:<4} temperature {:<4} shift {} (one sentence +{})",
        s.gate_l2, s.valence_l2, s.valence_temperature, s.shift, s.one_sentence_shift
    )
}

/// What the choice reads.
#[derive(Debug, Clone)]
pub struct ReviewData<'a> {
    /// Every vector.
    pub xs: &'a [Vec<f32>],
    /// The sentence count of each vector's text.
    pub sentences: &'a [usize],
    /// The valence head's training examples (diary texts and reviews).
    pub valence: &'a [Example],
    /// The vector indices of the first review domain (amazon); the other
    /// reviews are the second (imdb).
    pub first_domain: std::ops::Range<usize>,
    /// Reviews the reader trains on besides the valence head's (the rated
    /// snippets: vector index, positive), each in the domain
    /// `first_domain` puts it in. They are trained on with their domain and
    /// never read as the left-out one, so the left-out figure stays on the
    /// amazon or imdb sentences, as the floor it is held to was set.
    pub snippets: &'a [(usize, bool)],
    /// The dev split's vectors.
    pub dev_x: &'a [Vec<f32>],
    /// The sentence count of each dev entry.
    pub dev_sentences: &'a [usize],
    /// Dev valence classes.
    pub dev_y: &'a [usize],
    /// Dev entries (for their language).
    pub dev: &'a [DiaryEntry],
}

/// What [`choose_review`] found.
#[derive(Debug, Clone)]
pub struct ReviewOutcome {
    /// The best setting on dev and the left-out domain, `None` when the
    /// valence head alone scores at least as well. (`train_mood` chooses
    /// on writers held out, `writer_cv`, and prints this beside it.)
    pub chosen: Option<ReviewSetting>,
    /// Dev and left-out-domain accuracy of the valence head alone.
    pub without: [f32; 2],
    /// Every setting tried.
    pub grid: Vec<ReviewSetting>,
}

/// The review setting that reads the dev split and the left-out review
/// domain best (en, ru and review accuracy, each the mean over both
/// directions, ranked by [`floor_score`]: the worst of the three, then
/// their mean), against the valence head alone (setting `chosen`, at
/// `temperature`). Prints every line.
///
/// # Errors
/// A tensor error from training a hidden layer.
pub fn choose_review(
    d: &ReviewData<'_>,
    chosen: HeadSetting,
    temperature: f32,
) -> Result<ReviewOutcome> {
    let diary: Vec<Example> = d.valence.iter().copied().filter(|e| !e.review).collect();
    let diary_x: Vec<usize> = diary.iter().map(|e| e.x).collect();
    let mut grid: Vec<(ReviewSetting, [f64; 3])> = Vec::new();
    for &gate_l2 in &GATE_L2 {
        for &valence_l2 in &VALENCE_L2 {
            for &valence_temperature in &TEMPERATURES {
                for &shift in &SHIFTS {
                    for &one_sentence_shift in &ONE_SENTENCE_SHIFTS {
                        grid.push((
                            ReviewSetting {
                                gate_l2,
                                valence_l2,
                                valence_temperature,
                                shift,
                                one_sentence_shift,
                                dev_accuracy: 0.0,
                                review_accuracy: 0.0,
                            },
                            [0.0; 3],
                        ));
                    }
                }
            }
        }
    }
    let mut without = [0.0f64; 3];
    for first in [true, false] {
        let (trained, left): (Vec<Example>, Vec<Example>) = d
            .valence
            .iter()
            .filter(|e| e.review)
            .partition(|e| d.first_domain.contains(&e.x) == first);
        let labelled =
            |r: &[Example]| -> Vec<(usize, bool)> { r.iter().map(|e| (e.x, e.y == 2)).collect() };
        let (mut kept, left_out) = (labelled(&trained), labelled(&left));
        kept.extend(
            d.snippets
                .iter()
                .filter(|(x, _)| d.first_domain.contains(x) == first),
        );
        let mut examples = diary.clone();
        examples.extend(trained);
        let head = train_model(d.xs, &examples, 3, chosen)?;
        let read = |x: &[f32]| -> [f32; 3] {
            let p = tempered(&head.probabilities(x), temperature);
            [p[0], p[1], p[2]]
        };
        let dev_p: Vec<[f32; 3]> = d.dev_x.iter().map(|x| read(x)).collect();
        let out_p: Vec<[f32; 3]> = left_out.iter().map(|(i, _)| read(&d.xs[*i])).collect();
        let score = |dev_p: &[[f32; 3]], out_p: &[[f32; 3]]| -> [f64; 3] {
            let pred: Vec<usize> = dev_p.iter().map(|p| argmax(p)).collect();
            let (_, _, per) = lang_accuracy(&pred, d.dev_y, d.dev, 3);
            let right = out_p
                .iter()
                .zip(&left_out)
                .filter(|(p, (_, pos))| (p[2] > p[0]) == *pos)
                .count();
            #[allow(clippy::cast_precision_loss)]
            let reviews = right as f64 / left_out.len().max(1) as f64;
            [per[0], per[1], reviews]
        };
        let base = score(&dev_p, &out_p);
        println!(
            "review reader: {} trained: the valence head alone dev en {:.3}, ru {:.3}, left-out domain {:.3}",
            if first { "first domain" } else { "second domain" },
            base[0],
            base[1],
            base[2]
        );
        for (w, b) in without.iter_mut().zip(base) {
            *w += b / 2.0;
        }
        // One fit per pair of L2 strengths; the shift and the temperature
        // only change how it is read.
        let mut fitted: Vec<((f32, f32), ReviewReader)> = Vec::new();
        for (s, total) in &mut grid {
            let key = (s.gate_l2, s.valence_l2);
            if !fitted.iter().any(|f| f.0 == key) {
                fitted.push((key, train_review_reader(d.xs, &diary_x, &kept, *s)));
            }
            let Some((_, base)) = fitted.iter().find(|f| f.0 == key) else {
                continue;
            };
            let reader = read_at(base, s);
            let dev_c: Vec<[f32; 3]> = dev_p
                .iter()
                .zip(d.dev_x.iter().zip(d.dev_sentences))
                .map(|(p, (x, &n))| reader.combine(*p, x, n))
                .collect();
            let out_c: Vec<[f32; 3]> = out_p
                .iter()
                .zip(&left_out)
                .map(|(p, (i, _))| reader.combine(*p, &d.xs[*i], d.sentences[*i]))
                .collect();
            let sc = score(&dev_c, &out_c);
            #[allow(clippy::cast_possible_truncation)]
            {
                s.dev_accuracy += ((sc[0] + sc[1]) / 4.0) as f32;
                s.review_accuracy += (sc[2] / 2.0) as f32;
            }
            for (t, v) in total.iter_mut().zip(sc) {
                *t += v / 2.0;
            }
        }
    }
    let scored: Vec<(ReviewSetting, (f64, f64))> = grid
        .iter()
        .map(|(s, parts)| (*s, floor_score(parts)))
        .collect();
    for (s, (worst, mean)) in &scored {
        println!(
            "review reader: {}: dev {:.3}, left-out domain {:.3}, worst {worst:.4}, mean {mean:.4}",
            describe(s),
            s.dev_accuracy,
            s.review_accuracy
        );
    }
    let base_score = floor_score(&without);
    println!(
        "review reader: without: dev {:.3}, left-out domain {:.3}, worst {:.4}, mean {:.4}",
        (without[0] + without[1]) / 2.0,
        without[2],
        base_score.0,
        base_score.1
    );
    let best = scored
        .iter()
        .fold(None::<&(ReviewSetting, (f64, f64))>, |b, g| match b {
            Some(b) if b.1 >= g.1 => Some(b),
            _ => Some(g),
        })
        .filter(|b| b.1 > base_score)
        .map(|b| b.0);
    #[allow(clippy::cast_possible_truncation)]
    Ok(ReviewOutcome {
        chosen: best,
        without: [((without[0] + without[1]) / 2.0) as f32, without[2] as f32],
        grid: grid.into_iter().map(|g| g.0).collect(),
    })
}
