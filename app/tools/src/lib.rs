//! # metachat-tools
//!
//! MetaChat's mood-model tools, as binaries: `train_valence` trains the
//! valence heads, `eval_mood` measures every analyzer. This library holds
//! what both share: embedding with a cache under `<model dir>/.cache/`
//! (git-ignored), keyed by model and texts.
#![forbid(unsafe_code)]

pub mod fit;
pub mod mlp;
pub mod review_choice;

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

/// Embeds `texts` in batches of 32 with `f`, reusing a cached result for the
/// same model id, engine version, weight mode (the default one, as this
/// CPU resolves it: the arithmetic differs between modes) and texts.
pub fn embed_cached(
    model_dir: &Path,
    model_id: &str,
    texts: &[String],
    mut f: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    model_id.hash(&mut h);
    metachat_analysis::embed::VERSION.hash(&mut h);
    format!(
        "{:?}",
        metachat_analysis::embed::WeightMode::default().resolve()
    )
    .hash(&mut h);
    texts.hash(&mut h);
    let cache = model_dir
        .join(".cache")
        .join(format!("emb-{:016x}.json", h.finish()));
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(v) = serde_json::from_slice::<Vec<Vec<f32>>>(&bytes) {
            if v.len() == texts.len() {
                return Ok(v);
            }
        }
    }
    let start = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        out.extend(f(chunk)?);
    }
    eprintln!(
        "{model_id}: embedded {} texts in {:.1} s",
        texts.len(),
        start.elapsed().as_secs_f32()
    );
    if let Some(parent) = cache.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&cache, serde_json::to_vec(&out)?);
    Ok(out)
}

/// The seed the diary corpus was split with (`diary_corpus split`).
pub const SPLIT_SEED: u64 = 20_261_205;

/// Accuracy and macro-F1 of class indices over all `entries`, and the
/// accuracy per language (`[en, ru]`).
pub fn lang_accuracy(
    predicted: &[usize],
    gold: &[usize],
    entries: &[metachat_analysis::mood::corpus::DiaryEntry],
    classes: usize,
) -> (f64, f64, [f64; 2]) {
    use metachat_analysis::mood::eval::accuracy_macro_f1;
    let all: Vec<usize> = (0..classes).collect();
    let (acc, f1) = accuracy_macro_f1(predicted, gold, &all);
    let per = |lang: &str| {
        let (p, g): (Vec<usize>, Vec<usize>) = predicted
            .iter()
            .zip(gold)
            .zip(entries)
            .filter(|(_, e)| e.lang == lang)
            .map(|((p, g), _)| (*p, *g))
            .unzip();
        accuracy_macro_f1(&p, &g, &all).0
    };
    (acc, f1, [per("en"), per("ru")])
}

/// How a setting is ranked against the others: its worst part first (the
/// mood targets are floors per language and on reviews, so the setting
/// whose weakest part is strongest wins), then the mean of its parts.
/// Compare with `>` (tuples order lexicographically).
///
/// ```
/// use metachat_tools::floor_score;
/// // One weak part loses to a lower mean with no weak part.
/// assert!(floor_score(&[0.905, 0.905, 0.910]) > floor_score(&[0.925, 0.925, 0.885]));
/// // Equal worst parts: the mean decides.
/// assert!(floor_score(&[0.90, 0.95]) > floor_score(&[0.90, 0.91]));
/// ```
pub fn floor_score(parts: &[f64]) -> (f64, f64) {
    let worst = parts.iter().copied().fold(f64::INFINITY, f64::min);
    #[allow(clippy::cast_precision_loss)]
    let mean = parts.iter().sum::<f64>() / parts.len().max(1) as f64;
    (worst, mean)
}

/// A valence label's class index: its place in
/// [`ValenceLabel::ALL`](metachat_analysis::mood::ValenceLabel::ALL), the
/// order of the valence head's outputs.
pub fn valence_index(v: metachat_analysis::mood::ValenceLabel) -> usize {
    use metachat_analysis::mood::ValenceLabel;
    ValenceLabel::ALL.iter().position(|l| *l == v).unwrap_or(1)
}

/// Today's UTC date as `YYYY-MM-DD` (civil-from-days, Howard Hinnant's algorithm).
pub fn today() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
