//! Trains the valence heads (logistic regression on sentence embeddings) and
//! writes them with their provenance to
//! `crates/metachat-analysis/data/valence_head_{e5,minilm}.json`.
//!
//! Run: `cargo run --release -p metachat-tools --bin train_valence [-- e5|minilm]`
//! (needs `scripts/fetch-models` first).
//!
//! Training data: amazon + imdb of the UCI "Sentiment Labelled Sentences"
//! (npm `sentiment` 5.0.2, `test/fixtures/`), nothing else. yelp is the held-out
//! test set of `eval_mood` and is never read here. The L2 strength is chosen by
//! 10-fold cross-validation on amazon + imdb.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::embed::{E5Embedder, E5Prefix, MiniLmEmbedder};
use metachat_analysis::mood::eval::{fold_assignment, load_sentiment, LabelledSentence};
use metachat_analysis::mood::{train_logistic, ValenceHead, ValenceHeadProvenance};
use metachat_tools::{embed_cached, today};

const L2_GRID: [f32; 10] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0];
const FOLDS: usize = 10;
const SEED: u64 = 20_240_601;
const ITERATIONS: usize = 400;

fn main() -> Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let dir = model_dir();
    let mut train: Vec<LabelledSentence> = load_sentiment(&dir, "amazon")?;
    train.extend(load_sentiment(&dir, "imdb")?);
    let texts: Vec<String> = train.iter().map(|s| s.text.clone()).collect();
    let ys: Vec<bool> = train.iter().map(LabelledSentence::positive).collect();
    println!("training data: {} sentences (amazon + imdb)", texts.len());

    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/metachat-analysis/data");
    if which == "all" || which == "e5" {
        let e5 = E5Embedder::load(dir.join("e5"))?.with_prefix(E5Prefix::Query);
        let id = format!("{} (prefix \"query: \")", E5Embedder::MODEL_ID);
        let xs = embed_cached(&dir, &id, &texts, |b| Ok(e5.embed_blocking(b)?))?;
        fit_and_write(&xs, &ys, &id, "e5", &out_dir.join("valence_head_e5.json"))?;
    }
    if which == "all" || which == "minilm" {
        let minilm = MiniLmEmbedder::load(dir.join("minilm"))?;
        let xs = embed_cached(&dir, MiniLmEmbedder::MODEL_ID, &texts, |b| {
            Ok(minilm.embed_blocking(b)?)
        })?;
        fit_and_write(
            &xs,
            &ys,
            MiniLmEmbedder::MODEL_ID,
            "minilm",
            &out_dir.join("valence_head_minilm.json"),
        )?;
    }
    Ok(())
}

fn fit_and_write(
    xs: &[Vec<f32>],
    ys: &[bool],
    embedder: &str,
    short: &str,
    path: &PathBuf,
) -> Result<()> {
    let folds = fold_assignment(xs.len(), FOLDS, SEED);
    let mut grid = Vec::new();
    for l2 in L2_GRID {
        let mut correct = 0usize;
        for f in 0..FOLDS {
            let (mut tx, mut ty, mut vx, mut vy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (i, x) in xs.iter().enumerate() {
                if folds[i] == f {
                    vx.push(x.clone());
                    vy.push(ys[i]);
                } else {
                    tx.push(x.clone());
                    ty.push(ys[i]);
                }
            }
            let fit = train_logistic(&tx, &ty, l2, ITERATIONS);
            correct += vx
                .iter()
                .zip(&vy)
                .filter(|(x, y)| (fit.probability(x) > 0.5) == **y)
                .count();
        }
        let acc = correct as f32 / xs.len() as f32;
        println!("{short}: l2 {l2:<7} 10-fold CV accuracy {acc:.4}");
        grid.push((l2, acc));
    }
    let (l2, cv_accuracy) = grid
        .iter()
        .copied()
        .fold((L2_GRID[0], f32::MIN), |best, cur| {
            if cur.1 > best.1 {
                cur
            } else {
                best
            }
        });
    let fit = train_logistic(xs, ys, l2, ITERATIONS);
    let head = ValenceHead {
        format: ValenceHead::FORMAT,
        embedder: embedder.to_owned(),
        weights: fit.weights,
        bias: fit.bias,
        provenance: ValenceHeadProvenance {
            command: format!("cargo run --release -p metachat-tools --bin train_valence -- {short}"),
            data: "amazon.json + imdb.json (1,000 labelled sentences each; the trailing empty placeholder \
                   is dropped) of the UCI Sentiment Labelled Sentences \
                   (Kotzias et al. 2015), as shipped by the npm package sentiment@5.0.2 in test/fixtures/; \
                   yelp.json is held out and never read by training"
                .to_owned(),
            examples: xs.len(),
            date: today(),
            l2,
            cv_folds: FOLDS,
            cv_accuracy,
            cv_grid: grid,
        },
    };
    std::fs::write(path, serde_json::to_string_pretty(&head)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{short}: chose l2 {l2} (CV accuracy {cv_accuracy:.4}); wrote {}",
        path.display()
    );
    Ok(())
}
