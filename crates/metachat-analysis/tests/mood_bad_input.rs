//! Bad input for the mood analyzers: empty and whitespace-only text, emoji
//! only, mixed scripts, control characters, 1 MB of text, a missing or
//! corrupt lexicon file, an embedder that misbehaves. Nothing panics; each case
//! has the documented result or a typed error naming the file.

use std::path::Path;

use async_trait::async_trait;
use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::mood::{
    analyzer_from_model_dir, EmbeddingMoodAnalyzer, LexiconAnalyzer, MoodError, ValenceHead,
    WindowedEmbedder,
};
use metachat_analysis::{Embedder, Emotion, Mood, TextAnalyzer};

/// A lexicon built in the test (the real one needs `scripts/fetch-models`):
/// a few words with their VADER ratings and filler to pass the size check.
fn lexicon() -> LexiconAnalyzer {
    let mut text =
        String::from("good\t1.9\t0\t[]\nbad\t-2.5\t0\t[]\nhappy\t2.7\t0\t[]\nhate\t-2.7\t0\t[]\n");
    for i in 0..1500 {
        text.push_str(&format!("filler{i}\t0.1\t0\t[]\n"));
    }
    LexiconAnalyzer::from_lexicon_str(&text, Path::new("test-lexicon")).expect("lexicon")
}

fn assert_valid(m: &Mood) {
    assert!((-1.0..=1.0).contains(&m.valence), "{m:?}");
    assert!((0.0..=1.0).contains(&m.arousal), "{m:?}");
    assert!((0.0..=1.0).contains(&m.confidence), "{m:?}");
    assert_eq!(m.emotions.len(), 7);
    let sum: f32 = m.emotions.iter().map(|(_, p)| p).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{m:?}");
    assert_eq!(m.schema_version, Mood::SCHEMA_VERSION);
}

fn assert_empty_result(m: &Mood) {
    assert_valid(m);
    assert_eq!(
        (m.valence, m.arousal, m.confidence, m.windows),
        (0.0, 0.0, 0.0, 0)
    );
    assert_eq!(m.dominant, Emotion::Neutral);
}

#[test]
fn lexicon_blank_text_is_neutral_with_no_windows() {
    let a = lexicon();
    for t in ["", "   ", "\n\t\r", "\u{0}\u{1}\u{7f}", "\u{200b}\u{feff}"] {
        let m = a.analyze_one(t);
        if t.starts_with('\u{200b}') {
            // Zero-width characters are not whitespace to Rust: one token, no rating.
            assert_valid(&m);
            assert_eq!(m.dominant, Emotion::Neutral);
        } else {
            assert_empty_result(&m);
        }
    }
}

#[test]
fn lexicon_emoji_mixed_scripts_and_control_characters() {
    let a = lexicon();
    let sad = a.analyze_one("😭😭😭");
    assert_valid(&sad);
    assert!(
        sad.valence < 0.0 && sad.dominant == Emotion::Sadness,
        "{sad:?}"
    );
    let mixed = a.analyze_one("I am happy, я очень рада, 今日は良い日 🎉");
    assert_valid(&mixed);
    assert!(mixed.valence > 0.3, "{mixed:?}");
    let ctrl = a.analyze_one("good\u{0}bad\u{1b}[31m happy\u{7}");
    assert_valid(&ctrl);
    assert_eq!(ctrl.windows, 1);
}

#[test]
fn lexicon_reads_1_mb_of_text_without_panicking() {
    let a = lexicon();
    let unit = "I hate this, but it was good. Мне грустно! ";
    let text = unit.repeat(1_000_000 / unit.len() + 1);
    assert!(text.len() >= 1_000_000);
    let m = a.analyze_one(&text);
    assert_valid(&m);
    assert_eq!(m.windows, 1);
}

#[test]
fn missing_lexicon_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = LexiconAnalyzer::from_dir(dir.path()).expect_err("missing");
    assert!(matches!(err, MoodError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("vader_lexicon.txt"), "{err}");
}

#[test]
fn corrupt_lexicon_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = LexiconAnalyzer::lexicon_path(dir.path());
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    for bytes in [
        &b"good\t1.9\n"[..],
        &b"\xff\xfe\x00garbage"[..],
        &b"word\tNaN\n"[..],
    ] {
        std::fs::write(&path, bytes).expect("write");
        let err = LexiconAnalyzer::from_dir(dir.path()).expect_err("corrupt");
        assert!(matches!(err, MoodError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("vader_lexicon.txt"), "{err}");
    }
}

#[tokio::test]
async fn factory_with_no_models_errors_with_the_lexicon_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = analyzer_from_model_dir(dir.path())
        .await
        .expect_err("nothing there");
    assert!(err.to_string().contains("vader_lexicon.txt"), "{err}");
}

#[tokio::test]
async fn factory_falls_back_to_the_lexicon_without_e5() {
    let real = model_dir();
    let lexicon = LexiconAnalyzer::lexicon_path(&real);
    if !lexicon.exists() {
        metachat_testkit::skip(format!(
            "{} missing; run scripts/fetch-models",
            lexicon.display()
        ));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dst = LexiconAnalyzer::lexicon_path(dir.path());
    std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&lexicon, &dst).expect("copy");
    let a = analyzer_from_model_dir(dir.path()).await.expect("fallback");
    assert!(a.is_fallback());
    assert_eq!(a.model_id(), LexiconAnalyzer::MODEL_ID);
}

/// An embedder that returns a fixed unit vector per text, or the wrong shape.
struct Fixed {
    dims: usize,
    wrong: bool,
}

#[async_trait]
impl Embedder for Fixed {
    async fn embed(&self, texts: &[String]) -> metachat_core::Result<Vec<Vec<f32>>> {
        let n = if self.wrong {
            texts.len().saturating_sub(1)
        } else {
            texts.len()
        };
        Ok((0..n)
            .map(|i| {
                let mut v = vec![0.0; self.dims];
                v[i % self.dims] = 1.0;
                v
            })
            .collect())
    }
    fn dimensions(&self) -> usize {
        self.dims
    }
}

#[async_trait]
impl WindowedEmbedder for Fixed {
    async fn embed_windowed(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Vec<f32>, u32)>> {
        Ok(self
            .embed(texts)
            .await?
            .into_iter()
            .map(|v| (v, 1))
            .collect())
    }
}

fn head(dims: usize) -> ValenceHead {
    let mut h = ValenceHead::builtin_e5().expect("built-in head");
    h.weights = vec![0.5; dims];
    h
}

#[tokio::test]
async fn embedding_analyzer_answers_blank_texts_without_the_model_and_keeps_order() {
    let a = EmbeddingMoodAnalyzer::new(
        Fixed {
            dims: 8,
            wrong: false,
        },
        head(8),
        "fixed",
    )
    .await
    .expect("analyzer");
    let texts: Vec<String> = ["", "hello", "  \n", "\u{0}", "world"]
        .map(String::from)
        .to_vec();
    let moods = a.analyze(&texts).await.expect("analyze");
    assert_eq!(moods.len(), 5);
    for i in [0, 2, 3] {
        assert_empty_result(&moods[i]);
    }
    for i in [1, 4] {
        assert_valid(&moods[i]);
        assert_eq!(moods[i].windows, 1);
    }
}

#[tokio::test]
async fn embedding_analyzer_rejects_a_head_of_the_wrong_width_and_a_short_answer() {
    let err = EmbeddingMoodAnalyzer::new(
        Fixed {
            dims: 8,
            wrong: false,
        },
        head(4),
        "fixed",
    )
    .await
    .expect_err("mismatch");
    assert!(
        matches!(
            err,
            MoodError::DimensionMismatch {
                head: 4,
                embedder: 8,
                ..
            }
        ),
        "{err:?}"
    );
    let err = EmbeddingMoodAnalyzer::new(
        Fixed {
            dims: 8,
            wrong: true,
        },
        head(8),
        "fixed",
    )
    .await
    .expect_err("bad embedding");
    assert!(matches!(err, MoodError::BadEmbedding { .. }), "{err:?}");
}

#[tokio::test]
async fn e5_analyzer_on_awkward_input() {
    let file = model_dir().join("e5").join("e5-small-q4.bin");
    if !file.exists() {
        metachat_testkit::skip(format!(
            "{} missing; run scripts/fetch-models",
            file.display()
        ));
        return;
    }
    let a = analyzer_from_model_dir(&model_dir())
        .await
        .expect("analyzer");
    assert!(!a.is_fallback());
    let long = "Сегодня был длинный день, и я много думал о работе. ".repeat(120);
    let texts: Vec<String> = [
        "",
        " \t",
        "😭😭😭",
        "I love it, я в восторге, 素晴らしい",
        "ok\u{0}\u{1b}[0m\u{7}fine",
        &long,
    ]
    .map(String::from)
    .to_vec();
    let moods = a.analyze(&texts).await.expect("analyze");
    assert_eq!(moods.len(), texts.len());
    assert_empty_result(&moods[0]);
    assert_empty_result(&moods[1]);
    for m in &moods[2..] {
        assert_valid(m);
    }
    assert!(
        moods[5].windows > 1,
        "a text over 512 tokens is read in several windows: {:?}",
        moods[5].windows
    );
}
