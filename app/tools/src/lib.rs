//! # metachat-tools
//!
//! MetaChat's mood-model tools, as binaries: `train_valence` trains the
//! valence heads, `eval_mood` measures every analyzer. This library holds
//! what both share: embedding with a cache under `<model dir>/.cache/`
//! (git-ignored), keyed by model and texts ([`embed_cached`]).
#![forbid(unsafe_code)]

pub mod fit;
pub mod joint_choice;
pub mod mlp;
pub mod review_choice;
pub mod writer_cv;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

/// Embeds `texts` in batches of 32 with `f`, reusing cached vectors made
/// with the same model id, engine version and weight mode (the default one,
/// as this CPU resolves it: the arithmetic differs between modes).
///
/// Two caches under `<model dir>/.cache/`: one file per list of texts
/// (`emb-…`, read back whole when the same list comes again), and one pool
/// per model (`pool-…`) of every text embedded with it. A new list takes
/// from the pool the vectors of the texts it shares with lists embedded
/// before, so adding entries to the corpus embeds only the new ones and
/// leaves the others' vectors bit for bit as they were.
///
/// # Errors
/// What `f` returns, or fewer or more vectors than texts from it.
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
    let model_key = h.clone().finish();
    texts.hash(&mut h);
    let dir = model_dir.join(".cache");
    let list = dir.join(format!("emb-{:016x}.json", h.finish()));
    let pool_path = dir.join(format!("pool-{model_key:016x}.json"));
    if let Ok(bytes) = std::fs::read(&list) {
        if let Ok(v) = serde_json::from_slice::<Vec<Vec<f32>>>(&bytes) {
            if v.len() == texts.len() {
                if !pool_path.exists() {
                    let pool: HashMap<&String, &Vec<f32>> = texts.iter().zip(&v).collect();
                    write_cache(&pool_path, &pool);
                }
                return Ok(v);
            }
        }
    }
    let mut pool: HashMap<String, Vec<f32>> = std::fs::read(&pool_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut missing: Vec<String> = texts
        .iter()
        .filter(|t| !pool.contains_key(*t))
        .cloned()
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let start = Instant::now();
    for chunk in missing.chunks(32) {
        let vs = f(chunk)?;
        anyhow::ensure!(
            vs.len() == chunk.len(),
            "{model_id}: {} vectors for {} texts",
            vs.len(),
            chunk.len()
        );
        pool.extend(chunk.iter().cloned().zip(vs));
    }
    eprintln!(
        "{model_id}: embedded {} of {} texts in {:.1} s (the rest from the pool)",
        missing.len(),
        texts.len(),
        start.elapsed().as_secs_f32()
    );
    let out: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| pool.get(t).cloned().unwrap_or_default())
        .collect();
    if !missing.is_empty() {
        write_cache(&pool_path, &pool);
    }
    write_cache(&list, &out);
    Ok(out)
}

/// Writes `value` as JSON to a temporary file beside `path` and renames it
/// into place, so that an interrupted run leaves the old cache or none,
/// never half a file. A cache that cannot be written is reported and
/// skipped: the vectors are still returned.
fn write_cache(path: &Path, value: &impl serde::Serialize) {
    let tmp = path.with_extension("json.tmp");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(serde_json::to_vec(value)?))
        .and_then(|bytes| Ok(std::fs::write(&tmp, bytes)?))
        .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if let Err(e) = written {
        eprintln!("cache {} not written: {e:#}", path.display());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An embedder whose every call gives new vectors (the call number),
    /// so a text embedded twice would show it.
    fn counting<'a>(
        calls: &'a std::cell::Cell<u32>,
        embedded: &'a std::cell::Cell<usize>,
    ) -> impl FnMut(&[String]) -> Result<Vec<Vec<f32>>> + 'a {
        move |batch: &[String]| {
            calls.set(calls.get() + 1);
            embedded.set(embedded.get() + batch.len());
            #[allow(clippy::cast_precision_loss)]
            Ok(batch
                .iter()
                .map(|t| vec![calls.get() as f32, t.len() as f32])
                .collect())
        }
    }

    #[test]
    fn a_longer_list_embeds_only_its_new_texts_and_keeps_the_old_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, embedded) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let first: Vec<String> = ["a", "bb", "a"].map(String::from).to_vec();
        let v1 = embed_cached(dir.path(), "m", &first, counting(&calls, &embedded)).unwrap();
        assert_eq!(embedded.get(), 2, "a repeated text is embedded once");
        assert_eq!(v1[0], v1[2]);

        let again = embed_cached(dir.path(), "m", &first, counting(&calls, &embedded)).unwrap();
        assert_eq!((again, embedded.get()), (v1.clone(), 2));

        let mut longer = first.clone();
        longer.extend(["ccc", "bb"].map(String::from));
        let v2 = embed_cached(dir.path(), "m", &longer, counting(&calls, &embedded)).unwrap();
        assert_eq!(embedded.get(), 3, "only \"ccc\" is new");
        assert_eq!(&v2[..3], &v1[..]);
        assert_eq!(v2[4], v1[1]);
        // The embedder's second call (the same list again was read back whole).
        assert_eq!(v2[3], vec![2.0, 3.0]);

        // Another model shares nothing.
        embed_cached(dir.path(), "other", &first, counting(&calls, &embedded)).unwrap();
        assert_eq!(embedded.get(), 5);
    }

    #[test]
    fn an_embedder_that_returns_too_few_vectors_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let texts: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let err = embed_cached(dir.path(), "m", &texts, |_| Ok(vec![vec![1.0]])).unwrap_err();
        assert!(err.to_string().contains("1 vectors for 2 texts"), "{err}");
    }
}
