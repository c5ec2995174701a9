//! Our MiniLM embedder against PyTorch `sentence-transformers` on the same
//! files. Opt-in (`#[ignore]`, so `scripts/test` and CI do not run it): it
//! needs `models/python-st` to hold sentence-transformers, a 5 GB install
//! that is not fetched by default. Run it with
//! `cargo test -p metachat-engine --test minilm_agreement -- --ignored`;
//! without that install it fails, saying what is missing.

use std::process::Command;

use metachat_engine::model_dir::{minilm_dir, model_dir};
use metachat_engine::MiniLmEmbedder;

const SCRIPT: &str = r#"
import json, sys, torch
torch.set_num_threads(2)
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(sys.argv[1], device="cpu")
m.max_seq_length = 256
texts = json.load(open(sys.argv[2], encoding="utf-8"))
print(json.dumps(m.encode(texts, normalize_embeddings=True).tolist()))
"#;

#[test]
#[ignore = "opt-in: needs sentence-transformers (5 GB) in models/python-st"]
fn minilm_agrees_with_sentence_transformers() {
    let st = model_dir().join("python-st");
    assert!(
        st.join("sentence_transformers").exists()
            && minilm_dir().join("model.safetensors").exists(),
        "{} (`pip install --target {} sentence-transformers`) or models/minilm is missing",
        st.display(),
        st.display()
    );
    let texts: Vec<String> = [
        "I love walking in the park on sunny mornings.",
        "The meeting was cancelled again and I am furious.",
        "short",
        "",
        "A somewhat longer sentence, with punctuation; numbers like 3.14 and emoji 🎉 too!",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), serde_json::to_string(&texts).unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(minilm_dir())
        .arg(input.path())
        .env("PYTHONPATH", &st)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).expect("JSON");
    let ours = MiniLmEmbedder::load(minilm_dir())
        .unwrap()
        .embed_blocking(&texts)
        .unwrap();
    let mut min = f32::MAX;
    for ((t, a), b) in texts.iter().zip(&ours).zip(&reference) {
        let c: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        min = min.min(c);
        assert!(c > 0.9999, "cosine {c} for {t:?}");
    }
    eprintln!("MiniLM vs sentence-transformers: min cosine {min:.6}");
}
