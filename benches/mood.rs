//! Lexicon mood analyzer throughput (texts/s), target ≥ 100,000 texts/s.
//!
//! Run: `cargo bench --bench mood --features analysis` (needs the VADER
//! lexicon from `scripts/fetch-models`). Texts: the first 200 yelp sentences
//! (≈ 11 words each, English) and a set of Russian diary-like lines from the
//! development set; one iteration analyzes one text.

use criterion::{Criterion, Throughput};
use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::mood::eval::{dev_set, load_sentiment};
use metachat_analysis::mood::LexiconAnalyzer;

fn lexicon(c: &mut Criterion) {
    let dir = model_dir();
    let analyzer = match LexiconAnalyzer::from_dir(&dir) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("SKIPPED mood bench: {e}");
            return;
        }
    };
    let en: Vec<String> = match load_sentiment(&dir, "yelp") {
        Ok(d) => d.into_iter().take(200).map(|s| s.text).collect(),
        Err(e) => {
            eprintln!("SKIPPED mood bench: {e}");
            return;
        }
    };
    let ru: Vec<String> = dev_set()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.lang == "ru")
        .map(|e| e.text)
        .collect();
    let mut group = c.benchmark_group("lexicon");
    for (name, texts) in [("short_en", &en), ("diary_ru", &ru)] {
        if texts.is_empty() {
            continue;
        }
        group.throughput(Throughput::Elements(texts.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = 0.0f32;
                for t in texts.iter() {
                    acc += analyzer.analyze_one(t).valence;
                }
                std::hint::black_box(acc)
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lexicon(&mut c);
    c.final_summary();
}
