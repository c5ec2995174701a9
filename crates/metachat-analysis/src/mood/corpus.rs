//! The diary corpus: bilingual diary entries written for MetaChat's mood
//! analysis, each labelled with a three-way valence, one of the seven
//! emotions and an arousal level (`data/diary/`, with its `GUIDELINES.md`).
//!
//! The corpus is split once, by a fixed seed, into [`Split::Train`],
//! [`Split::Dev`] and [`Split::Test`] files (`metachat-tools`'s
//! `diary_corpus split` wrote them). Training reads the train split, choices
//! are made on the dev split, and the test split is read only for the final
//! figures.
//!
//! The files are read at run time from a directory
//! ([`default_corpus_dir`] in this source tree), not compiled in, so that no
//! binary carries them.
//!
//! ```no_run
//! use metachat_analysis::mood::corpus::{default_corpus_dir, load_split, Split};
//!
//! let dev = load_split(&default_corpus_dir(), Split::Dev)?;
//! let russian = dev.iter().filter(|e| e.lang == "ru").count();
//! println!("{} dev entries, {russian} in Russian", dev.len());
//! # Ok::<(), metachat_analysis::mood::MoodError>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{MoodError, Result};
use super::record::{Emotion, ValenceLabel};

/// One of the corpus's three parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// What heads are fitted on.
    Train,
    /// What every choice (hyper-parameters, temperature) is made on.
    Dev,
    /// Read only for the final figures.
    Test,
}

impl Split {
    /// Every split.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    /// `train`, `dev` or `test`: the file's stem.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// How activated the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArousalLevel {
    /// Calm, tired, drained, content.
    Low,
    /// Ordinary energy.
    Medium,
    /// Excited, furious, panicking, elated.
    High,
}

impl ArousalLevel {
    /// Every level, in a fixed order (the order of a head's classes).
    pub const ALL: [ArousalLevel; 3] =
        [ArousalLevel::Low, ArousalLevel::Medium, ArousalLevel::High];

    /// The level on the \[0, 1\] arousal scale of a [`Mood`](super::Mood):
    /// 0.15, 0.5 or 0.85.
    pub fn value(self) -> f32 {
        match self {
            ArousalLevel::Low => 0.15,
            ArousalLevel::Medium => 0.5,
            ArousalLevel::High => 0.85,
        }
    }
}

/// One labelled diary entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiaryEntry {
    /// `en-0001`, `ru-0001`, …
    pub id: String,
    /// `en` or `ru`.
    pub lang: String,
    /// The entry as written.
    pub text: String,
    /// The writer's overall feeling.
    pub valence: ValenceLabel,
    /// The writer's strongest feeling.
    pub emotion: Emotion,
    /// How activated the writer is.
    pub arousal: ArousalLevel,
    /// The hard cases it contains (`irony`, `negation`, `relief`, …).
    #[serde(default)]
    pub traits: Vec<String>,
}

/// The traits the guidelines name.
pub const TRAITS: [&str; 10] = [
    "irony",
    "negation",
    "mixed",
    "relief",
    "grief_implicit",
    "slang",
    "typos",
    "exclamation",
    "emoji",
    "long",
];

impl DiaryEntry {
    /// Why this entry breaks the guidelines' rules, or `None`: a known
    /// language, non-blank text, known traits, and an emotion that agrees
    /// with the valence (joy and love positive; sadness, anger and fear
    /// negative; neutral neutral; surprise any).
    pub fn violation(&self) -> Option<String> {
        if self.lang != "en" && self.lang != "ru" {
            return Some(format!("language {:?}", self.lang));
        }
        if super::is_blank(&self.text) {
            return Some("blank text".into());
        }
        if let Some(t) = self.traits.iter().find(|t| !TRAITS.contains(&t.as_str())) {
            return Some(format!("unknown trait {t:?}"));
        }
        let agrees = match self.emotion {
            Emotion::Joy | Emotion::Love => self.valence == ValenceLabel::Positive,
            Emotion::Sadness | Emotion::Anger | Emotion::Fear => {
                self.valence == ValenceLabel::Negative
            }
            Emotion::Neutral => self.valence == ValenceLabel::Neutral,
            Emotion::Surprise => true,
        };
        (!agrees).then(|| {
            format!(
                "emotion {} with valence {}",
                self.emotion.name(),
                self.valence.name()
            )
        })
    }
}

/// `data/diary` of this crate's source tree.
pub fn default_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/diary")
}

/// Reads `<dir>/<split>.jsonl`.
///
/// # Errors
/// [`MoodError::MissingFile`] or [`MoodError::Io`] for the file;
/// [`MoodError::Corrupt`] naming the line of an entry that does not parse or
/// breaks the guidelines ([`DiaryEntry::violation`]), or of a repeated id.
pub fn load_split(dir: &Path, split: Split) -> Result<Vec<DiaryEntry>> {
    let path = dir.join(format!("{}.jsonl", split.name()));
    let text = MoodError::read_text(&path)?;
    parse_jsonl(&text, &path)
}

/// Parses JSON Lines of [`DiaryEntry`]s; `origin` names the source in errors.
/// Blank lines are skipped.
///
/// # Errors
/// [`MoodError::Corrupt`] with the line number, as [`load_split`].
pub fn parse_jsonl(text: &str, origin: &Path) -> Result<Vec<DiaryEntry>> {
    let mut out: Vec<DiaryEntry> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let corrupt = |reason: String| MoodError::Corrupt {
            path: origin.to_owned(),
            reason: format!("line {}: {reason}", n + 1),
        };
        let e: DiaryEntry = serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
        if let Some(v) = e.violation() {
            return Err(corrupt(format!("{}: {v}", e.id)));
        }
        if !ids.insert(e.id.clone()) {
            return Err(corrupt(format!("id {} repeated", e.id)));
        }
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(valence: &str, emotion: &str) -> String {
        format!(
            r#"{{"id":"en-0001","lang":"en","text":"x","valence":"{valence}","emotion":"{emotion}","arousal":"low"}}"#
        )
    }

    #[test]
    fn an_entry_that_breaks_the_rules_is_refused_with_its_line() {
        let p = Path::new("t.jsonl");
        assert_eq!(
            parse_jsonl(&line("positive", "joy"), p).expect("ok").len(),
            1
        );
        assert_eq!(
            parse_jsonl(&line("neutral", "surprise"), p)
                .expect("ok")
                .len(),
            1
        );
        for (v, e) in [
            ("negative", "joy"),
            ("positive", "anger"),
            ("positive", "neutral"),
        ] {
            let err = parse_jsonl(&format!("\n{}", line(v, e)), p).expect_err("refused");
            let msg = err.to_string();
            assert!(msg.contains("line 2") && msg.contains("t.jsonl"), "{msg}");
        }
        let twice = format!("{}\n{}", line("positive", "joy"), line("positive", "joy"));
        assert!(parse_jsonl(&twice, p)
            .expect_err("repeated")
            .to_string()
            .contains("repeated"));
        assert!(parse_jsonl(r#"{"id":"x"}"#, p).is_err());
    }

    /// The committed corpus: every split parses, the splits are disjoint,
    /// and each split holds both languages and every label.
    #[test]
    fn the_committed_corpus_is_split_and_covers_every_label() {
        let dir = default_corpus_dir();
        let mut ids = std::collections::HashSet::new();
        let mut total = 0;
        for split in Split::ALL {
            let entries = load_split(&dir, split).expect("split parses");
            total += entries.len();
            for e in &entries {
                assert!(ids.insert(e.id.clone()), "{} in two splits", e.id);
            }
            for lang in ["en", "ru"] {
                for emotion in Emotion::ALL {
                    assert!(
                        entries
                            .iter()
                            .any(|e| e.lang == lang && e.emotion == emotion),
                        "{} has no {lang} {emotion:?}",
                        split.name()
                    );
                }
                for v in ValenceLabel::ALL {
                    assert!(
                        entries.iter().any(|e| e.lang == lang && e.valence == v),
                        "{} has no {lang} {v:?}",
                        split.name()
                    );
                }
            }
        }
        assert!(total >= 2_000, "{total} entries");
    }
}
