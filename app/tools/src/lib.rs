//! # metachat-tools
//!
//! MetaChat's mood-model tools, as binaries: `train_valence` trains the
//! valence heads, `eval_mood` measures every analyzer. This library holds
//! what both share: embedding with a cache under `<model dir>/.cache/`
//! (git-ignored), keyed by model and texts.
#![forbid(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

/// Embeds `texts` in batches of 32 with `f`, reusing a cached result for the
/// same model id and texts.
pub fn embed_cached(
    model_dir: &Path,
    model_id: &str,
    texts: &[String],
    mut f: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    model_id.hash(&mut h);
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
