//! Choosing the weight of the joint reading ([`HeadsOutput::joint`]: a
//! valence and an emotion that do not go together, "positive, mostly
//! anger", down-weighted) from readings of labelled entries, for
//! `train_mood` on the dev split and for `writer_cv` on writers held out.

use metachat_analysis::mood::corpus::DiaryEntry;
use metachat_analysis::mood::{argmax, HeadsOutput, JointScore, JointSetting, ValenceLabel};
use metachat_analysis::Emotion;

/// One entry's reading: the valence probabilities (after the review
/// reader, where there is one), the emotion probabilities, and the review
/// gate's probability (`None` without a reader).
pub type Reading = ([f32; 3], [f32; 7], Option<f32>);

/// The weight among `mismatches` whose joint reading of `readings` reads
/// the entries best: the mean of the three-way valence and the emotion
/// accuracies in each language. Each weight is scored as it will be read:
/// with a reader (`fades_on_reviews`) faded by the entry's own gate
/// probability ([`JointSetting::weight`]). Ties go to the weight listed
/// first (the grids run from 1, reading the heads independently, down).
/// Prints a line per weight, prefixed with `name`.
pub fn choose_joint(
    name: &str,
    readings: &[Reading],
    entries: &[&DiaryEntry],
    fades_on_reviews: bool,
    mismatches: &[f32],
) -> JointSetting {
    let mut grid = Vec::new();
    let mut best = (f64::MIN, 1.0f32);
    for &mismatch in mismatches {
        let setting = JointSetting {
            mismatch,
            fades_on_reviews,
            grid: Vec::new(),
        };
        let (mut v_right, mut e_right, mut n) = ([0usize; 2], [0usize; 2], [0usize; 2]);
        for ((valence, emotion, gate), entry) in readings.iter().zip(entries) {
            let joint = HeadsOutput {
                valence: *valence,
                emotion: *emotion,
                arousal: 0.0,
            }
            .joint(setting.weight(*gate));
            let lang = usize::from(entry.lang != "en");
            n[lang] += 1;
            v_right[lang] +=
                usize::from(ValenceLabel::ALL[argmax(&joint.valence)] == entry.valence);
            e_right[lang] += usize::from(Emotion::ALL[argmax(&joint.emotion)] == entry.emotion);
        }
        #[allow(clippy::cast_precision_loss)]
        let acc = |r: [usize; 2]| -> [f64; 2] { [0, 1].map(|l| r[l] as f64 / n[l].max(1) as f64) };
        #[allow(clippy::cast_precision_loss)]
        let all = |r: [usize; 2]| (r[0] + r[1]) as f32 / (n[0] + n[1]).max(1) as f32;
        let (va, ea) = (acc(v_right), acc(e_right));
        let score = (va[0] + va[1] + ea[0] + ea[1]) / 4.0;
        println!(
            "{name}: mismatch {mismatch:<5} valence {:.3} (en {:.3}, ru {:.3}), emotion {:.3} (en {:.3}, ru {:.3})",
            all(v_right), va[0], va[1], all(e_right), ea[0], ea[1]
        );
        grid.push(JointScore {
            mismatch,
            valence_accuracy: all(v_right),
            emotion_accuracy: all(e_right),
        });
        if score > best.0 + 1e-9 {
            best = (score, mismatch);
        }
    }
    println!(
        "{name}: chose mismatch {}{}",
        best.1,
        if fades_on_reviews {
            ", fading on reviews"
        } else {
            ""
        }
    );
    JointSetting {
        mismatch: best.1,
        fades_on_reviews,
        grid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metachat_analysis::mood::corpus::ArousalLevel;

    fn entry(valence: ValenceLabel, emotion: Emotion) -> DiaryEntry {
        DiaryEntry {
            id: "en-0001".into(),
            lang: "en".into(),
            text: String::new(),
            valence,
            emotion,
            arousal: ArousalLevel::Medium,
            traits: Vec::new(),
        }
    }

    #[test]
    fn the_joint_reading_is_chosen_where_it_mends_a_mismatch_and_not_on_reviews() {
        // The valence head leans positive on an angry entry; the emotion
        // head is sure of anger: read jointly, the entry is negative.
        let angry = entry(ValenceLabel::Negative, Emotion::Anger);
        let mut anger = [0.0f32; 7];
        anger[2] = 0.9;
        anger[0] = 0.1;
        let leaning = ([0.45, 0.0, 0.55], anger, None);
        let out = choose_joint("test", &[leaning], &[&angry], false, &[1.0, 0.2, 0.0]);
        assert!((out.mismatch - 0.2).abs() < f32::EPSILON, "{out:?}");
        assert_eq!(out.grid.len(), 3);
        assert!(out.grid[0].valence_accuracy < out.grid[1].valence_accuracy);
        // Read as a sure review, the weight fades to 1: no weight mends it,
        // and the tie goes to reading the heads independently.
        let review = (leaning.0, leaning.1, Some(1.0));
        let out = choose_joint("test", &[review], &[&angry], true, &[1.0, 0.2, 0.0]);
        assert!((out.mismatch - 1.0).abs() < f32::EPSILON, "{out:?}");
        assert!(out.fades_on_reviews);
    }
}
