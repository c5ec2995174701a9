//! How much the e5 mood reading depends on the encoder's weight mode: the
//! shipped heads read the diary corpus's test split and yelp from
//! embeddings computed with the Q4_0 weights dequantised to f32
//! (`WeightMode::Dequantized`, the default on a CPU without AVX-512 VNNI)
//! and kept 4-bit with int8 activations (`WeightMode::Quantized`, the
//! default with VNNI). Prints, per set, the cosine between the two modes'
//! pooled vectors, how many readings change label, and each mode's
//! accuracy.
//!
//! Without VNNI, `Quantized` runs candle's Q4_0 × Q8_0 kernels: the same
//! quantisation of the activations as the VNNI kernel, summed in another
//! order, so close to but not bit for bit what a VNNI machine computes.
//!
//! Run: `cargo run --release -p metachat-tools --bin weight_modes`
//! (needs `scripts/fetch-models`; nothing is cached, nothing chosen).

use anyhow::Result;

use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::embed::{E5Embedder, E5Prefix, WeightMode};
use metachat_analysis::matching::emotion_index;
use metachat_analysis::mood::corpus::{default_corpus_dir, load_split, Split};
use metachat_analysis::mood::eval::load_sentiment;
use metachat_analysis::mood::{
    argmax, pool_sentences, sentence_counts, sentences_of, MoodHeads, ValenceLabel,
};
use metachat_tools::valence_index;

/// One set of texts with, per text, the gold labels it is scored on.
struct Set {
    name: String,
    texts: Vec<String>,
    /// Gold three-way valence class, when the set has one.
    valence: Vec<Option<usize>>,
    /// Gold sign (1 positive, 0 negative), for the positive and negative
    /// texts.
    sign: Vec<Option<usize>>,
    /// Gold emotion class, when the set has one.
    emotion: Vec<Option<usize>>,
}

fn main() -> Result<()> {
    let dir = model_dir();
    let heads = MoodHeads::builtin_e5()?;
    let test = load_split(&default_corpus_dir(), Split::Test)?;
    let mut sets = Vec::new();
    for lang in ["en", "ru"] {
        let entries: Vec<_> = test.iter().filter(|e| e.lang == lang).collect();
        sets.push(Set {
            name: format!("test split, {lang}"),
            texts: entries.iter().map(|e| e.text.clone()).collect(),
            valence: entries
                .iter()
                .map(|e| Some(valence_index(e.valence)))
                .collect(),
            sign: entries.iter().map(|e| sign_of(e.valence)).collect(),
            emotion: entries
                .iter()
                .map(|e| Some(emotion_index(e.emotion)))
                .collect(),
        });
    }
    let yelp = load_sentiment(&dir, "yelp")?;
    sets.push(Set {
        name: "yelp".into(),
        texts: yelp.iter().map(|s| s.text.clone()).collect(),
        valence: vec![None; yelp.len()],
        sign: yelp
            .iter()
            .map(|s| Some(usize::from(s.positive())))
            .collect(),
        emotion: vec![None; yelp.len()],
    });

    let modes = [WeightMode::Dequantized, WeightMode::Quantized];
    let encoders = modes
        .iter()
        .map(|&m| Ok(E5Embedder::load_with(dir.join("e5"), m)?.with_prefix(E5Prefix::Query)))
        .collect::<Result<Vec<_>>>()?;
    println!("| set | texts | cosine min / mean | valence label changed | sign changed | emotion changed | sign acc f32 / q8 | 3-way acc f32 / q8 | emotion acc f32 / q8 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for set in &sets {
        let (flat, owner) = sentences_of(&set.texts);
        let sentences = sentence_counts(&owner, set.texts.len());
        let pooled: Vec<Vec<Vec<f32>>> = encoders
            .iter()
            .map(|e| {
                let mut v = Vec::with_capacity(flat.len());
                for chunk in flat.chunks(32) {
                    v.extend(e.embed_blocking(chunk)?);
                }
                Ok(pool_sentences(
                    &v,
                    &owner,
                    set.texts.len(),
                    heads.dimensions(),
                ))
            })
            .collect::<Result<_>>()?;
        let cos: Vec<f32> = pooled[0]
            .iter()
            .zip(&pooled[1])
            .map(|(a, b)| cosine(a, b))
            .collect();
        let reads: Vec<Vec<_>> = pooled
            .iter()
            .map(|p| {
                p.iter()
                    .zip(&sentences)
                    .map(|(x, &k)| heads.read(x, k))
                    .collect()
            })
            .collect();
        let label = |i: usize, m: usize| argmax(&reads[m][i].valence);
        let emotion = |i: usize, m: usize| argmax(&reads[m][i].emotion);
        let n = set.texts.len();
        let changed =
            |f: &dyn Fn(usize, usize) -> usize| (0..n).filter(|&i| f(i, 0) != f(i, 1)).count();
        let acc = |gold: &[Option<usize>], f: &dyn Fn(usize, usize) -> usize, m: usize| {
            let scored: Vec<usize> = (0..n).filter(|&i| gold[i].is_some()).collect();
            let right = scored.iter().filter(|&&i| gold[i] == Some(f(i, m))).count();
            ratio(right, scored.len())
        };
        let sign =
            |i: usize, m: usize| usize::from(reads[m][i].valence[2] > reads[m][i].valence[0]);
        let pair = |gold: &[Option<usize>], f: &dyn Fn(usize, usize) -> usize| {
            if gold.iter().all(Option::is_none) {
                "–".to_owned()
            } else {
                format!("{} / {}", acc(gold, f, 0), acc(gold, f, 1))
            }
        };
        #[allow(clippy::cast_precision_loss)]
        let mean = cos.iter().sum::<f32>() / cos.len().max(1) as f32;
        println!(
            "| {} | {n} | {:.6} / {:.6} | {} | {} | {} | {} | {} | {} |",
            set.name,
            cos.iter().copied().fold(f32::INFINITY, f32::min),
            mean,
            changed(&label),
            changed(&sign),
            changed(&emotion),
            pair(&set.sign, &sign),
            pair(&set.valence, &label),
            pair(&set.emotion, &emotion),
        );
    }
    Ok(())
}

fn sign_of(v: ValenceLabel) -> Option<usize> {
    match v {
        ValenceLabel::Negative => Some(0),
        ValenceLabel::Positive => Some(1),
        ValenceLabel::Neutral => None,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(f32::MIN_POSITIVE)
}

fn ratio(right: usize, of: usize) -> String {
    #[allow(clippy::cast_precision_loss)]
    let r = right as f64 / of.max(1) as f64;
    format!("{r:.3}")
}
