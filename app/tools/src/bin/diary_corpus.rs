//! The diary corpus's one-time split and its statistics.
//!
//! - `diary_corpus split`: reads the drafts `data/diary/parts/*.jsonl`
//!   (entries as their authors wrote them), checks every entry against the
//!   guidelines, drops repeated texts, numbers the entries per language
//!   (`en-0001`, `ru-0001`, …) and splits them by a fixed seed, stratified by
//!   language, emotion and valence, into `train.jsonl` (60 %), `dev.jsonl`
//!   (20 %) and `test.jsonl` (20 %). It refuses to overwrite an existing
//!   split: the split is made once.
//! - `diary_corpus add`: appends later drafts (`data/diary/parts/*.jsonl`)
//!   to `train.jsonl` only, numbered after the entries there, dropping texts
//!   the corpus already holds; dev and test stay as they were split.
//! - `diary_corpus stats`: counts per split, language, emotion, valence,
//!   arousal, length and trait.
//!
//! Run: `cargo run -p metachat-tools --bin diary_corpus -- stats`

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use metachat_analysis::mood::corpus::{
    default_corpus_dir, load_split, parse_jsonl, DiaryEntry, Split, TRAITS,
};
use metachat_analysis::mood::eval::fold_assignment;

/// The seed of the split; changing it would make a new split.
const SEED: u64 = metachat_tools::SPLIT_SEED;

fn main() -> Result<()> {
    let dir = default_corpus_dir();
    match std::env::args().nth(1).as_deref() {
        Some("split") => split(&dir),
        Some("add") => add(&dir),
        Some("stats") | None => stats(&dir),
        Some(other) => bail!("unknown command {other:?}: split, add or stats"),
    }
}

fn split(dir: &Path) -> Result<()> {
    for s in Split::ALL {
        let path = dir.join(format!("{}.jsonl", s.name()));
        if path.exists() {
            bail!("{} exists: the split is made once", path.display());
        }
    }
    let (mut entries, parts, dropped) = drafts(dir, &HashSet::new())?;
    let mut per_lang: BTreeMap<String, usize> = BTreeMap::new();
    for e in &mut entries {
        let n = per_lang.entry(e.lang.clone()).or_default();
        *n += 1;
        e.id = format!("{}-{:04}", e.lang, n);
    }
    // Stratify by language, emotion and valence; in each stratum a seeded
    // order puts one in five into test, one in five into dev.
    let mut strata: BTreeMap<(String, &str, &str), Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        strata
            .entry((e.lang.clone(), e.emotion.name(), e.valence.name()))
            .or_default()
            .push(i);
    }
    let mut which = vec![Split::Train; entries.len()];
    for (k, members) in strata.values().enumerate() {
        let order = fold_assignment(members.len(), members.len().max(1), SEED + k as u64);
        for (m, &i) in members.iter().enumerate() {
            // `order` is a permutation of 0..n: position order[m] of the
            // shuffled stratum.
            which[i] = match order[m] % 5 {
                0 => Split::Test,
                1 => Split::Dev,
                _ => Split::Train,
            };
        }
    }
    for s in Split::ALL {
        let lines: Vec<String> = entries
            .iter()
            .zip(&which)
            .filter(|(_, w)| **w == s)
            .map(|(e, _)| serde_json::to_string(e))
            .collect::<std::result::Result<_, _>>()?;
        let path = dir.join(format!("{}.jsonl", s.name()));
        std::fs::write(&path, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {} entries", path.display(), lines.len());
    }
    println!(
        "{} entries from {parts} drafts ({dropped} repeated texts dropped), seed {SEED}",
        entries.len(),
    );
    Ok(())
}

/// The entries of `data/diary/parts/*.jsonl`, in file order, checked,
/// trimmed, without repeated texts or texts in `seen`; the number of draft
/// files and of texts dropped.
fn drafts(dir: &Path, seen: &HashSet<String>) -> Result<(Vec<DiaryEntry>, usize, usize)> {
    let mut seen = seen.clone();
    let mut parts: Vec<_> = std::fs::read_dir(dir.join("parts"))
        .context("reading data/diary/parts")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    parts.sort();
    let mut entries: Vec<DiaryEntry> = Vec::new();
    let mut dropped = 0;
    for part in &parts {
        let text = std::fs::read_to_string(part)?;
        for mut e in parse_jsonl(&text, part)? {
            e.text = e.text.trim().to_owned();
            let key = text_key(&e.text);
            if !seen.insert(key) {
                dropped += 1;
                continue;
            }
            e.traits.sort();
            e.traits.dedup();
            entries.push(e);
        }
    }
    Ok((entries, parts.len(), dropped))
}

/// What makes two texts the same: their letters and digits, lower-cased.
fn text_key(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

fn add(dir: &Path) -> Result<()> {
    let mut seen = HashSet::new();
    let mut per_lang: BTreeMap<String, usize> = BTreeMap::new();
    for s in Split::ALL {
        for e in load_split(dir, s)? {
            seen.insert(text_key(&e.text));
            let n: usize =
                e.id.rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            let max = per_lang.entry(e.lang.clone()).or_default();
            *max = (*max).max(n);
        }
    }
    let (mut entries, parts, dropped) = drafts(dir, &seen)?;
    for e in &mut entries {
        let n = per_lang.entry(e.lang.clone()).or_default();
        *n += 1;
        e.id = format!("{}-{:04}", e.lang, n);
    }
    let path = dir.join("train.jsonl");
    let mut text = std::fs::read_to_string(&path)?;
    for e in &entries {
        text += &serde_json::to_string(e)?;
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{}: {} entries added from {parts} drafts ({dropped} texts already in the corpus dropped)",
        path.display(),
        entries.len()
    );
    Ok(())
}

fn stats(dir: &Path) -> Result<()> {
    for s in Split::ALL {
        let entries = load_split(dir, s)?;
        println!("== {} ({} entries)", s.name(), entries.len());
        for lang in ["en", "ru"] {
            let es: Vec<&DiaryEntry> = entries.iter().filter(|e| e.lang == lang).collect();
            let count = |f: &dyn Fn(&DiaryEntry) -> String| {
                let mut m: BTreeMap<String, usize> = BTreeMap::new();
                for e in &es {
                    *m.entry(f(e)).or_default() += 1;
                }
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!("  {lang}: {} entries", es.len());
            println!("    emotion: {}", count(&|e| e.emotion.name().into()));
            println!("    valence: {}", count(&|e| e.valence.name().into()));
            println!("    arousal: {}", count(&|e| format!("{:?}", e.arousal)));
            println!(
                "    words: {}",
                count(&|e| match e.text.split_whitespace().count() {
                    0..=25 => "1-25".into(),
                    26..=80 => "26-80".into(),
                    _ => "81+".into(),
                })
            );
            let traits: Vec<String> = TRAITS
                .iter()
                .map(|t| {
                    let n = es
                        .iter()
                        .filter(|e| e.traits.iter().any(|x| x == t))
                        .count();
                    format!("{t} {n}")
                })
                .collect();
            println!("    traits: {}", traits.join(", "));
        }
    }
    Ok(())
}
