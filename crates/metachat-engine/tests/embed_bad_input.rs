//! Bad input for the embedders: odd texts, huge texts, missing, corrupt and
//! wrong-architecture model files. Tests that need the real models skip
//! (printing SKIPPED) without them, and fail under `CI=true`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use metachat_core::analysis::Embedder;
use metachat_engine::model_dir::{e5_dir, minilm_dir};
use metachat_engine::{E5Embedder, E5Prefix, EmbedError, MiniLmEmbedder, MODEL_FILE_E5};

#[track_caller]
fn skip(what: &Path) {
    metachat_testkit::skip(format!(
        "{} missing; run scripts/fetch-models",
        what.display()
    ));
}

fn e5() -> Option<&'static E5Embedder> {
    static M: OnceLock<Option<E5Embedder>> = OnceLock::new();
    let m = M.get_or_init(|| E5Embedder::load(e5_dir()).ok()).as_ref();
    if m.is_none() {
        skip(&e5_dir().join(MODEL_FILE_E5));
    }
    m
}

fn minilm() -> Option<&'static MiniLmEmbedder> {
    static M: OnceLock<Option<MiniLmEmbedder>> = OnceLock::new();
    let m = M
        .get_or_init(|| MiniLmEmbedder::load(minilm_dir()).ok())
        .as_ref();
    if m.is_none() {
        skip(&minilm_dir());
    }
    m
}

fn e5_bytes() -> Option<Vec<u8>> {
    let p = e5_dir().join(MODEL_FILE_E5);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            skip(&p);
            None
        }
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_string()).collect()
}

/// Every vector is finite, unit length, of the model's dimension.
fn assert_unit(vs: &[Vec<f32>], dim: usize) {
    for v in vs {
        assert_eq!(v.len(), dim);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    }
}

// ---------- texts ----------

#[test]
fn empty_and_whitespace_embed_the_prefix_alone() {
    let Some(m) = e5() else { return };
    let texts = s(&["", "   ", "\t\n  \r\n", "passage: "]);
    let out = m.embed_detailed_blocking(&texts).unwrap();
    let vs: Vec<Vec<f32>> = out.iter().map(|e| e.vector.clone()).collect();
    assert_unit(&vs, 384);
    // Documented: empty/whitespace text = `<s> ▁passage: </s>` (whitespace
    // collapses to one ▁ or is dropped), one window.
    assert_eq!(
        m.token_ids(""),
        m.token_ids("   ")
            .iter()
            .copied()
            .take(m.token_ids("").len())
            .collect::<Vec<_>>()[..]
    );
    assert!(out.iter().all(|e| e.windows == 1));
    assert!(
        dot(&vs[0], &vs[1]) > 0.98,
        "empty and blank texts should be near-identical"
    );
    assert!(
        out[0].tokens <= 6,
        "empty text has only specials and the prefix: {}",
        out[0].tokens
    );

    let Some(ml) = minilm() else { return };
    let out = ml.embed_detailed_blocking(&s(&["", "   \n"])).unwrap();
    assert_eq!(out[0].tokens, 2, "[CLS] [SEP]");
    assert_eq!(out[0].vector, out[1].vector);
    assert_unit(&[out[0].vector.clone()], 384);
}

#[test]
fn emoji_mixed_scripts_and_control_characters() {
    let Some(m) = e5() else { return };
    let texts = s(&[
        "😀😀😀🎉🔥",
        "🙂",
        "Сегодня good day, 今日は晴れ, اليوم جميل",
        "tab\there\u{0}nul\u{7}bell\u{1b}[31mansi\u{200b}zero-width\u{feff}bom",
        "\u{202e}reversed\u{202c} \u{fffd}\u{fffd}",
    ]);
    let out = m.embed_blocking(&texts).unwrap();
    assert_unit(&out, 384);
    // Control characters are dropped by the normaliser: same tokens as without.
    assert_eq!(m.token_ids("a\u{7}b"), m.token_ids("ab"));
    // Different texts give different vectors (no constant output).
    assert!(dot(&out[0], &out[2]) < 0.999);

    let Some(ml) = minilm() else { return };
    let out = ml.embed_blocking(&texts).unwrap();
    assert_unit(&out, 384);
}

/// Peak resident memory of this process, in bytes (Linux), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_megabyte_of_mostly_blank_text_finishes_in_windows() {
    let Some(m) = e5() else { return };
    // 1 MB: 1,500 words, each followed by ~670 bytes of spaces, tabs,
    // newlines and control characters (normalised away or collapsed).
    let filler = " \t\n\u{7}  \r\n ".repeat(60);
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 1_000_000 {
        text.push_str(["сегодня", "today", "радость", "worry", "дождь"][i % 5]);
        text.push_str(&filler);
        i += 1;
    }
    let out = m
        .embed_detailed_blocking(std::slice::from_ref(&text))
        .unwrap();
    let e = &out[0];
    assert!(e.tokens > 1_000, "{} tokens", e.tokens);
    assert!(
        e.windows >= 3,
        "{} tokens in {} windows",
        e.tokens,
        e.windows
    );
    assert_unit(std::slice::from_ref(&e.vector), 384);
}

#[test]
fn long_text_windows_cover_every_token() {
    let Some(m) = e5() else { return };
    let text = "Сегодня был длинный день, and I wrote a lot about it. ".repeat(120);
    let out = m
        .embed_detailed_blocking(std::slice::from_ref(&text))
        .unwrap();
    let e = &out[0];
    // 510 content tokens per window, 64 shared with the next (the prefix is
    // repeated in later windows): at least ceil((tokens - 2 - 510) / 440) + 1.
    let need = (e.tokens - 2 - 510).div_ceil(510 - 64) + 1;
    assert!(
        e.windows as usize >= need,
        "{} tokens in {} windows",
        e.tokens,
        e.windows
    );
    assert_unit(std::slice::from_ref(&e.vector), 384);
    // A repetitive text: the pooled vector is close to one window of it.
    let one = m
        .embed_blocking(&["Сегодня был длинный день, and I wrote a lot about it. ".repeat(20)])
        .unwrap();
    assert!(dot(&e.vector, &one[0]) > 0.95);
}

/// A full megabyte of prose (≈ 300,000 tokens, ≈ 700 windows): several
/// minutes of CPU in release, so run on demand:
/// `cargo test --release -p metachat-analysis --test embed_bad_input -- --ignored`.
#[test]
#[ignore = "minutes of CPU: run with --ignored in release"]
fn a_megabyte_of_prose_is_windowed_in_bounded_memory() {
    let Some(m) = e5() else { return };
    let unit = "Сегодня был длинный день, and I wrote a lot about it. ";
    let text: String = unit.repeat(1_000_000 / unit.len() + 1);
    let start = std::time::Instant::now();
    let out = m
        .embed_detailed_blocking(std::slice::from_ref(&text))
        .unwrap();
    let e = &out[0];
    assert!(e.tokens > 100_000, "{} tokens", e.tokens);
    assert!(
        e.windows as usize >= (e.tokens - 2) / 510,
        "{} windows",
        e.windows
    );
    assert_unit(std::slice::from_ref(&e.vector), 384);
    if let Some(peak) = peak_rss() {
        // Model (≈ 0.5 GB) + one forward chunk (≈ 0.3 GB) + token ids; not
        // proportional to the number of windows.
        assert!(peak < 2 << 30, "peak RSS {} MB", peak >> 20);
        eprintln!("peak RSS {} MB", peak >> 20);
    }
    eprintln!(
        "1 MB: {} tokens, {} windows, {:?}",
        e.tokens,
        e.windows,
        start.elapsed()
    );
}

#[test]
fn minilm_windows_long_text() {
    let Some(m) = minilm() else { return };
    let text = "the quick brown fox jumps over the lazy dog ".repeat(200);
    let out = m.embed_detailed_blocking(&[text]).unwrap();
    assert!(out[0].tokens > 1800);
    assert!(out[0].windows >= 8, "{} windows", out[0].windows);
    assert_unit(&[out[0].vector.clone()], 384);
}

#[test]
fn batch_results_do_not_depend_on_batch_neighbours() {
    let Some(m) = e5() else { return };
    let a = "Мне грустно сегодня.".to_string();
    let long = "A much longer entry about many different things that happened. ".repeat(20);
    let alone = m.embed_blocking(std::slice::from_ref(&a)).unwrap();
    let mixed = m.embed_blocking(&[long, a]).unwrap();
    assert!(
        dot(&alone[0], &mixed[1]) > 0.9999,
        "padding leaked into the embedding"
    );
}

/// Texts of every kind the packed batches mix: empty, one token, Russian,
/// English, emoji, a long one (several hundred tokens, one e5 window).
const POOL: &[&str] = &[
    "",
    "ok",
    "Мне грустно сегодня, и я не знаю почему.",
    "Ran my first marathon today and I am proud of it!",
    "🙂🙂 fine, I guess",
    "Long day. Work, then the hospital, then the long ride home in the rain. Long day. Work, then the hospital, then the long ride home in the rain. Long day. Work, then the hospital, then the long ride home in the rain. Long day. Work, then the hospital, then the long ride home in the rain. Long day. Work, then the hospital, then the long ride home in the rain.",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// The encoder packs a batch's tokens into one matrix: whatever the
    /// batch holds and in whatever order, each text embeds as it does alone.
    #[test]
    fn packed_batches_embed_each_text_as_alone(
        picks in proptest::collection::vec(0..POOL.len(), 1..7),
    ) {
        let texts: Vec<String> = picks.iter().map(|&i| POOL[i].to_string()).collect();
        if let Some(m) = e5() {
            let batch = m.embed_blocking(&texts).unwrap();
            for (t, v) in texts.iter().zip(&batch) {
                let alone = m.embed_blocking(std::slice::from_ref(t)).unwrap();
                proptest::prop_assert!(dot(&alone[0], v) > 0.9999, "e5: {t:?} differs in a batch");
            }
        }
        if let Some(m) = minilm() {
            let batch = m.embed_blocking(&texts).unwrap();
            for (t, v) in texts.iter().zip(&batch) {
                let alone = m.embed_blocking(std::slice::from_ref(t)).unwrap();
                proptest::prop_assert!(dot(&alone[0], v) > 0.9999, "MiniLM: {t:?} differs in a batch");
            }
        }
    }
}

#[test]
fn query_and_passage_prefixes_differ() {
    let Some(m) = e5() else { return };
    let t = s(&["how to sleep better"]);
    let p = m.embed_blocking(&t).unwrap();
    let q = m.with_prefix(E5Prefix::Query).embed_blocking(&t).unwrap();
    assert!(dot(&p[0], &q[0]) < 0.999);
    assert_ne!(
        m.with_prefix(E5Prefix::Query).token_ids("x"),
        m.token_ids("x")
    );
}

#[tokio::test]
async fn embedder_trait_runs_on_the_blocking_pool() {
    let Some(m) = e5() else { return };
    let out = Embedder::embed(m, &s(&["hello", "привет"])).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(m.dimensions(), 384);
    assert!(Embedder::embed(m, &[]).await.unwrap().is_empty());
}

// ---------- model files ----------

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn missing_model_files_name_the_file() {
    let d = tmp();
    let gone = d.path().join("nope");
    match E5Embedder::load(&gone) {
        Err(EmbedError::Missing { path }) => assert_eq!(path, gone),
        other => panic!("{other:?}"),
    }
    // An empty directory: the error names the model file inside it.
    match E5Embedder::load(d.path()) {
        Err(EmbedError::Missing { path }) => assert_eq!(path, d.path().join(MODEL_FILE_E5)),
        other => panic!("{other:?}"),
    }
    match MiniLmEmbedder::load(d.path()) {
        Err(EmbedError::Missing { path }) => assert_eq!(path, d.path().join("config.json")),
        other => panic!("{other:?}"),
    }
    let err = MiniLmEmbedder::load(&gone).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_corrupt(r: Result<E5Embedder, EmbedError>, file: &Path, needle: &str) {
    match r {
        Err(EmbedError::Corrupt { path, reason }) => {
            assert_eq!(path, file);
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            );
        }
        other => panic!("expected Corrupt({needle}), got {other:?}"),
    }
}

#[test]
fn truncated_e5_files_are_typed_errors() {
    let Some(bytes) = e5_bytes() else { return };
    let d = tmp();
    // Cut in the header, the vocabulary, the directory and the weights.
    for cut in [
        0usize,
        3,
        10,
        60,
        1_000,
        2_000_000,
        4_638_000,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let p = write(d.path(), "cut.bin", &bytes[..cut]);
        let r = E5Embedder::load(&p);
        match r {
            Err(EmbedError::Corrupt { path, .. })
            | Err(EmbedError::WrongArchitecture { path, .. }) => {
                assert_eq!(path, p, "cut at {cut}")
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let p = write(d.path(), "cut.bin", &bytes[..bytes.len() - 1]);
    expect_corrupt(E5Embedder::load(&p), &p, "past the end");
}

#[test]
fn corrupt_e5_headers_and_tensors_are_typed_errors() {
    let Some(bytes) = e5_bytes() else { return };
    let d = tmp();
    let patch = |at: usize, v: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    // Bad magic.
    let p = write(d.path(), "m.bin", &patch(0, b"GGUF"));
    assert!(matches!(
        E5Embedder::load(&p),
        Err(EmbedError::WrongArchitecture { .. })
    ));
    // Unknown version.
    let p = write(d.path(), "v.bin", &patch(4, &7u32.to_le_bytes()));
    assert!(matches!(
        E5Embedder::load(&p),
        Err(EmbedError::WrongArchitecture { .. })
    ));
    // Negative hidden size.
    let p = write(d.path(), "h.bin", &patch(8, &(-384i32).to_le_bytes()));
    expect_corrupt(E5Embedder::load(&p), &p, "hidden size");
    // Heads that do not divide the hidden size.
    let p = write(d.path(), "nh.bin", &patch(16, &7i32.to_le_bytes()));
    expect_corrupt(E5Embedder::load(&p), &p, "inconsistent shape");
    // Hidden size 768 (consistent, but not what is stored): tensors of the wrong size.
    let p = write(d.path(), "wrong.bin", &patch(8, &768i32.to_le_bytes()));
    expect_corrupt(E5Embedder::load(&p), &p, "expected");
    // Two layers more than stored: a tensor is missing.
    let p = write(d.path(), "l.bin", &patch(12, &14i32.to_le_bytes()));
    expect_corrupt(E5Embedder::load(&p), &p, "missing");
    // An UNK id beyond the vocabulary.
    let p = write(d.path(), "unk.bin", &patch(60, &999_999i32.to_le_bytes()));
    expect_corrupt(E5Embedder::load(&p), &p, "UNK id");
    // A piece-blob length beyond the file.
    let p = write(d.path(), "blob.bin", &patch(64, &u64::MAX.to_le_bytes()));
    expect_corrupt(E5Embedder::load(&p), &p, "piece blob length");
}

#[test]
fn wrong_tensor_sizes_in_the_directory_are_typed_errors() {
    let Some(bytes) = e5_bytes() else { return };
    // Find the first directory entry ("emb.word") and change its element count.
    let name = b"emb.word";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("tensor directory");
    let count_at = at + name.len() + 1;
    let mut b = bytes.clone();
    b[count_at..count_at + 4].copy_from_slice(&1_000u32.to_le_bytes());
    let d = tmp();
    let p = write(d.path(), "sz.bin", &b);
    expect_corrupt(E5Embedder::load(&p), &p, "emb.word");
}

#[test]
fn wrong_architecture_directories_are_refused() {
    let (e5d, mld) = (e5_dir(), minilm_dir());
    if !e5d.join(MODEL_FILE_E5).exists() {
        return skip(&e5d);
    }
    if !mld.join("model.safetensors").exists() {
        return skip(&mld);
    }
    // The e5 loader pointed at MiniLM's folder, and at its safetensors file.
    assert!(matches!(
        E5Embedder::load(&mld),
        Err(EmbedError::WrongArchitecture { .. })
    ));
    assert!(matches!(
        E5Embedder::load(mld.join("model.safetensors")),
        Err(EmbedError::WrongArchitecture { .. })
    ));
    // The MiniLM loader pointed at e5's folder, and at the E5S1 file.
    assert!(matches!(
        MiniLmEmbedder::load(&e5d),
        Err(EmbedError::WrongArchitecture { .. })
    ));
    assert!(matches!(
        MiniLmEmbedder::load(e5d.join(MODEL_FILE_E5)),
        Err(EmbedError::WrongArchitecture { .. })
    ));
    // A BERT config of another architecture.
    let d = tmp();
    write(
        d.path(),
        "config.json",
        br#"{"model_type": "xlm-roberta", "hidden_size": 384}"#,
    );
    assert!(matches!(
        MiniLmEmbedder::load(d.path()),
        Err(EmbedError::WrongArchitecture { .. })
    ));
}

#[test]
fn corrupt_minilm_files_are_typed_errors() {
    let mld = minilm_dir();
    let files = ["config.json", "tokenizer.json", "model.safetensors"];
    if files.iter().any(|f| !mld.join(f).exists()) {
        return skip(&mld);
    }
    for broken in files {
        let d = tmp();
        for f in files {
            let bytes = std::fs::read(mld.join(f)).unwrap();
            let bytes = if f == broken {
                bytes[..bytes.len() / 3].to_vec()
            } else {
                bytes
            };
            write(d.path(), f, &bytes);
        }
        match MiniLmEmbedder::load(d.path()) {
            Err(EmbedError::Corrupt { path, .. }) => assert_eq!(path, d.path().join(broken)),
            other => panic!("{broken} truncated: {other:?}"),
        }
    }
    // Weights of the wrong shape for config.json: a config claiming hidden 512.
    let d = tmp();
    for f in files {
        std::fs::copy(mld.join(f), d.path().join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(mld.join("config.json"))
        .unwrap()
        .replace("\"hidden_size\": 384", "\"hidden_size\": 512");
    write(d.path(), "config.json", cfg.as_bytes());
    match MiniLmEmbedder::load(d.path()) {
        Err(EmbedError::Corrupt { path, .. }) => {
            assert_eq!(path, d.path().join("model.safetensors"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bert_with_another_activation_is_refused() {
    let mld = minilm_dir();
    let files = ["config.json", "tokenizer.json", "model.safetensors"];
    if files.iter().any(|f| !mld.join(f).exists()) {
        return skip(&mld);
    }
    let d = tmp();
    for f in files {
        std::fs::copy(mld.join(f), d.path().join(f)).unwrap();
    }
    // The encoder runs the exact GELU only; a ReLU BERT must not load as if
    // it were one.
    let cfg = std::fs::read_to_string(mld.join("config.json")).unwrap();
    assert!(cfg.contains("\"hidden_act\": \"gelu\""), "{cfg}");
    let cfg = cfg.replace("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\"");
    write(d.path(), "config.json", cfg.as_bytes());
    match MiniLmEmbedder::load(d.path()) {
        Err(EmbedError::WrongArchitecture { path, reason }) => {
            assert_eq!(path, d.path().join("config.json"));
            assert!(reason.contains("hidden_act"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
