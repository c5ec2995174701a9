//! Measures every mood analyzer and prints the tables of the README's mood
//! section:
//!
//! 1. per language on the diary corpus's **test split** (read here and
//!    nowhere else): three-way valence accuracy and macro-F1, valence sign
//!    accuracy on the positive and negative entries, emotion accuracy and
//!    macro-F1 over the seven labels, arousal-level accuracy;
//! 2. valence sign accuracy and macro-F1 on **yelp** (held out: no training
//!    or choice reads it), and 10-fold cross-validation on **amazon + imdb**
//!    (each fold's valence head, and review reader when the heads have one,
//!    refitted with its chosen setting on the rest of its training data and
//!    nine folds of the reviews).
//!
//! Analyzers: the lexicon (VADER with our keywords; nothing trained, so the
//! reviews are a plain test set for it), e5 and MiniLM with their mood heads
//! (`data/mood_heads_*.json`), and e5 and MiniLM with the earlier reader
//! (binary valence head and emotion prototypes), for comparison.
//!
//! Three-way valence of readers without a neutral class: the lexicon uses
//! VADER's convention (compound ≥ 0.05 positive, ≤ −0.05 negative); the
//! binary heads call `|valence| < 0.2` neutral.
//!
//! Run: `cargo run --release -p metachat-tools --bin eval_mood`
//! (needs `scripts/fetch-models` first; embeddings are cached under
//! `models/.cache/`, keyed by model, engine version, weight mode and texts).

use std::path::Path;

use anyhow::Result;
use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::embed::{E5Embedder, E5Prefix, MiniLmEmbedder};
use metachat_analysis::mood::corpus::{default_corpus_dir, load_split, DiaryEntry, Split};
use metachat_analysis::mood::eval::{
    accuracy_macro_f1, dev_set, fold_assignment, load_sentiment, valence_metrics, LabelledSentence,
};
use metachat_analysis::mood::{
    pool_sentences, sentences_of, EmbeddingMoodAnalyzer, LexiconAnalyzer, MoodHeads, ReviewReader,
    ValenceHead, ValenceLabel, WindowedEmbedder,
};
use metachat_analysis::{Emotion, Mood};

use metachat_tools::embed_cached;
use metachat_tools::fit::{implied_valence, tempered, train_model, train_review_reader, Example};

const FOLDS: usize = 10;
const SEED: u64 = 20_240_601;
/// |valence| below this is neutral for readers without a neutral class.
const BINARY_NEUTRAL_BAND: f32 = 0.2;

/// What an analyzer said about one text.
struct Reading {
    valence: f32,
    label: ValenceLabel,
    emotion: Emotion,
    arousal: f32,
}

struct Row {
    name: String,
    test: Vec<Reading>,
    yelp: Vec<f32>,
    reviews: Vec<f32>,
    reviews_are_cv: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = model_dir();
    let test = load_split(&default_corpus_dir(), Split::Test)?;
    let yelp = load_sentiment(&dir, "yelp")?;
    let mut reviews = load_sentiment(&dir, "amazon")?;
    reviews.extend(load_sentiment(&dir, "imdb")?);
    let mut rows = Vec::new();

    let lexicon = LexiconAnalyzer::from_dir(&dir)?;
    let lex = |texts: &mut dyn Iterator<Item = &String>| -> Vec<Mood> {
        texts.map(|t| lexicon.analyze_one(t)).collect()
    };
    let lex_label = |v: f32| {
        if v >= 0.05 {
            ValenceLabel::Positive
        } else if v <= -0.05 {
            ValenceLabel::Negative
        } else {
            ValenceLabel::Neutral
        }
    };
    rows.push(Row {
        name: LexiconAnalyzer::MODEL_ID.into(),
        test: lex(&mut test.iter().map(|e| &e.text))
            .into_iter()
            .map(|m| Reading {
                valence: m.valence,
                label: lex_label(m.valence),
                emotion: m.dominant,
                arousal: m.arousal,
            })
            .collect(),
        yelp: lex(&mut yelp.iter().map(|s| &s.text))
            .iter()
            .map(|m| m.valence)
            .collect(),
        reviews: lex(&mut reviews.iter().map(|s| &s.text))
            .iter()
            .map(|m| m.valence)
            .collect(),
        reviews_are_cv: false,
    });

    let data = Data {
        test: &test,
        yelp: &yelp,
        reviews: &reviews,
    };
    let heads_file = |short: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../../crates/metachat-analysis/data/mood_heads_{short}.json"
        ))
    };
    if let Ok(e5) = E5Embedder::load(dir.join("e5")) {
        let e5 = e5.with_prefix(E5Prefix::Query);
        let id = format!("{} (prefix \"query: \")", E5Embedder::MODEL_ID);
        let f = |b: &[String]| Ok(e5.embed_blocking(b)?);
        let heads = MoodHeads::from_file(&heads_file("e5"))?;
        rows.push(with_heads("e5", &id, e5.clone(), heads, f, &data).await?);
        rows.push(earlier("e5", &id, e5.clone(), ValenceHead::builtin_e5()?, f, &data).await?);
    } else {
        eprintln!("e5 model missing: rows skipped (run scripts/fetch-models)");
    }
    if let Ok(minilm) = MiniLmEmbedder::load(dir.join("minilm")) {
        let id = MiniLmEmbedder::MODEL_ID;
        let f = |b: &[String]| Ok(minilm.embed_blocking(b)?);
        match MoodHeads::from_file(&heads_file("minilm")) {
            Ok(heads) => {
                rows.push(with_heads("minilm", id, minilm.clone(), heads, f, &data).await?)
            }
            Err(e) => eprintln!("MiniLM heads: {e}: row skipped"),
        }
        let head = ValenceHead::builtin_minilm()?;
        rows.push(earlier("minilm", id, minilm.clone(), head, f, &data).await?);
    } else {
        eprintln!("MiniLM model missing: rows skipped (run scripts/fetch-models)");
    }

    print_tables(&rows, &data);
    Ok(())
}

struct Data<'a> {
    test: &'a [DiaryEntry],
    yelp: &'a [LabelledSentence],
    reviews: &'a [LabelledSentence],
}

fn texts<T>(d: &[T], f: impl Fn(&T) -> &String) -> Vec<String> {
    d.iter().map(|x| f(x).clone()).collect()
}

/// The row of an embedder read by its trained heads. The test split and
/// yelp are read from the heads' pooled features (checked against the
/// analyzer's own output on the first test entries); the review CV refits the
/// valence head's chosen setting per fold on its training data (corpus
/// train and dev, and the emotion examples, as `train_mood` does) and nine
/// folds of reviews; heads trained without reviews read them as a plain
/// test.
async fn with_heads<E: WindowedEmbedder>(
    short: &str,
    id: &str,
    embedder: E,
    heads: MoodHeads,
    f: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>> + Clone,
    data: &Data<'_>,
) -> Result<Row> {
    let dir = model_dir();
    let pooled = |t: Vec<String>| -> Result<Vec<Vec<f32>>> {
        let (flat, owner) = sentences_of(&t);
        let v = embed_cached(&dir, id, &flat, f.clone())?;
        let dims = v.first().map_or(0, Vec::len);
        Ok(pool_sentences(&v, &owner, t.len(), dims))
    };
    let x_test = pooled(texts(data.test, |e| &e.text))?;
    let x_yelp = pooled(texts(data.yelp, |s| &s.text))?;
    let x_rev = pooled(texts(data.reviews, |s| &s.text))?;

    let choice = heads.valence.choice.chosen;
    let reviews_are_cv = choice.review_weight > 0.0;
    let cv = if reviews_are_cv {
        let corpus = default_corpus_dir();
        let mut own: Vec<DiaryEntry> = load_split(&corpus, Split::Train)?;
        own.extend(load_split(&corpus, Split::Dev)?);
        let vi = |v: ValenceLabel| ValenceLabel::ALL.iter().position(|l| *l == v).unwrap_or(1);
        let mut own_texts = texts(&own, |e| &e.text);
        let mut own_y: Vec<usize> = own.iter().map(|e| vi(e.valence)).collect();
        for e in dev_set()? {
            if let Some(v) = implied_valence(e.label) {
                own_texts.push(e.text);
                own_y.push(vi(v));
            }
        }
        let mut xs = pooled(own_texts)?;
        let n_own = xs.len();
        xs.extend(x_rev.iter().cloned());
        let folds = fold_assignment(data.reviews.len(), FOLDS, SEED);
        let mut cv = vec![0.0f32; data.reviews.len()];
        for k in 0..FOLDS {
            let mut examples: Vec<Example> = own_y
                .iter()
                .enumerate()
                .map(|(x, &y)| Example {
                    x,
                    y,
                    review: false,
                })
                .collect();
            for (i, s) in data.reviews.iter().enumerate() {
                if folds[i] != k {
                    let y = if s.positive() { 2 } else { 0 };
                    examples.push(Example {
                        x: n_own + i,
                        y,
                        review: true,
                    });
                }
            }
            let model = train_model(&xs, &examples, 3, choice)?;
            // The review reader, when the heads have one, refitted on the
            // same texts with its chosen setting.
            let reader = heads.review.as_ref().map(|r| {
                let diary: Vec<usize> = (0..n_own).collect();
                let reviews: Vec<(usize, bool)> = examples
                    .iter()
                    .filter(|e| e.review)
                    .map(|e| (e.x, e.y == 2))
                    .collect();
                train_review_reader(&xs, &diary, &reviews, r.choice.chosen)
            });
            for i in (0..data.reviews.len()).filter(|&i| folds[i] == k) {
                cv[i] = joint_valence(
                    &heads,
                    reader.as_ref(),
                    &model.probabilities(&x_rev[i]),
                    &x_rev[i],
                );
            }
        }
        cv
    } else {
        x_rev
            .iter()
            .map(|x| {
                let out = heads.read(x);
                out.valence[2] - out.valence[0]
            })
            .collect()
    };

    let analyzer = EmbeddingMoodAnalyzer::with_heads(embedder, heads, id)?;
    // What is measured is what ships: the analyzer's own moods of the first
    // test entries equal the ones read here from the cached features.
    let first: Vec<String> = texts(&data.test[..data.test.len().min(16)], |e| &e.text);
    for (m, x) in analyzer.analyze_batch(&first).await?.iter().zip(&x_test) {
        let here = analyzer.mood_of_embedding(x, 1);
        anyhow::ensure!(
            (m.valence - here.valence).abs() < 1e-3 && m.dominant == here.dominant,
            "the analyzer's mood differs from the cached features' ({} / {})",
            m.valence,
            here.valence
        );
    }
    let test = x_test
        .iter()
        .map(|x| {
            let m = analyzer.mood_of_embedding(x, 1);
            Reading {
                valence: m.valence,
                label: m.valence_label,
                emotion: m.dominant,
                arousal: m.arousal,
            }
        })
        .collect();
    Ok(Row {
        name: format!("{short}: {}", model_id(&analyzer)),
        test,
        yelp: x_yelp
            .iter()
            .map(|x| analyzer.mood_of_embedding(x, 1).valence)
            .collect(),
        reviews: cv,
        reviews_are_cv,
    })
}

/// The valence the analyzer would read from a fold's valence
/// probabilities `p` (at temperature 1), its review reader and the shipped
/// emotion head on `x`: `p` tempered as the shipped valence head is,
/// combined with the fold's review reader (`ReviewReader::combine`), then
/// read jointly with the emotion head as the heads file says
/// (`MoodHeads::joint`).
fn joint_valence(heads: &MoodHeads, reader: Option<&ReviewReader>, p: &[f32], x: &[f32]) -> f32 {
    let p = tempered(p, heads.valence.temperature);
    let mut out = heads.read_independently(x);
    out.valence.copy_from_slice(&p);
    if let Some(r) = reader {
        out.valence = r.combine(out.valence, x);
    }
    let out = out.joint(heads.joint.mismatch);
    out.valence[2] - out.valence[0]
}

/// The row of an embedder read the earlier way (binary valence head,
/// emotion prototypes); its review CV refits the binary head per fold.
async fn earlier<E: WindowedEmbedder>(
    short: &str,
    id: &str,
    embedder: E,
    head: ValenceHead,
    f: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>> + Clone,
    data: &Data<'_>,
) -> Result<Row> {
    let dir = model_dir();
    let x_test = embed_cached(&dir, id, &texts(data.test, |e| &e.text), f.clone())?;
    let x_yelp = embed_cached(&dir, id, &texts(data.yelp, |s| &s.text), f.clone())?;
    let x_rev = embed_cached(&dir, id, &texts(data.reviews, |s| &s.text), f)?;
    let l2 = head.provenance.l2;
    let analyzer = EmbeddingMoodAnalyzer::new(embedder, head, id).await?;
    let ys: Vec<bool> = data
        .reviews
        .iter()
        .map(LabelledSentence::positive)
        .collect();
    let folds = fold_assignment(data.reviews.len(), FOLDS, SEED);
    let mut cv = vec![0.0f32; data.reviews.len()];
    for k in 0..FOLDS {
        let (tx, ty): (Vec<Vec<f32>>, Vec<bool>) = (0..data.reviews.len())
            .filter(|&i| folds[i] != k)
            .map(|i| (x_rev[i].clone(), ys[i]))
            .unzip();
        let fit = metachat_analysis::mood::train_logistic(&tx, &ty, l2, 400);
        for i in (0..data.reviews.len()).filter(|&i| folds[i] == k) {
            cv[i] = 2.0 * fit.probability(&x_rev[i]) - 1.0;
        }
    }
    let test = x_test
        .iter()
        .map(|x| {
            let m = analyzer.mood_of_embedding(x, 1);
            Reading {
                valence: m.valence,
                label: binary_label(m.valence),
                emotion: m.dominant,
                arousal: m.arousal,
            }
        })
        .collect();
    Ok(Row {
        name: format!("{short} (earlier reader): {}", model_id(&analyzer)),
        test,
        yelp: x_yelp
            .iter()
            .map(|x| analyzer.mood_of_embedding(x, 1).valence)
            .collect(),
        reviews: cv,
        reviews_are_cv: true,
    })
}

fn binary_label(v: f32) -> ValenceLabel {
    if v.abs() < BINARY_NEUTRAL_BAND {
        ValenceLabel::Neutral
    } else if v > 0.0 {
        ValenceLabel::Positive
    } else {
        ValenceLabel::Negative
    }
}

fn model_id<E: WindowedEmbedder>(a: &EmbeddingMoodAnalyzer<E>) -> String {
    metachat_analysis::TextAnalyzer::model_id(a).to_owned()
}

/// The arousal level nearest to a value (cut at 1/3 and 2/3).
fn arousal_level(v: f32) -> usize {
    if v < 1.0 / 3.0 {
        0
    } else if v < 2.0 / 3.0 {
        1
    } else {
        2
    }
}

fn print_tables(rows: &[Row], data: &Data<'_>) {
    println!(
        "\n## Diary corpus, test split ({} entries)\n",
        data.test.len()
    );
    println!("| analyzer | lang | valence acc (3-way) | valence macro-F1 | valence sign acc (pos/neg entries) | emotion acc (7) | emotion macro-F1 | arousal acc (3) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        for lang in ["en", "ru"] {
            let pick: Vec<(&DiaryEntry, &Reading)> = data
                .test
                .iter()
                .zip(&r.test)
                .filter(|(e, _)| e.lang == lang)
                .collect();
            let (vp, vg): (Vec<ValenceLabel>, Vec<ValenceLabel>) =
                pick.iter().map(|(e, m)| (m.label, e.valence)).unzip();
            let (va, vf) = accuracy_macro_f1(&vp, &vg, &ValenceLabel::ALL);
            let signed: Vec<_> = pick
                .iter()
                .filter(|(e, _)| e.valence != ValenceLabel::Neutral)
                .map(|(e, m)| (m.valence > 0.0) == (e.valence == ValenceLabel::Positive))
                .collect();
            let sign = signed.iter().filter(|ok| **ok).count() as f64 / signed.len().max(1) as f64;
            let (ep, eg): (Vec<Emotion>, Vec<Emotion>) =
                pick.iter().map(|(e, m)| (m.emotion, e.emotion)).unzip();
            let (ea, ef) = accuracy_macro_f1(&ep, &eg, &Emotion::ALL);
            let (ap, ag): (Vec<usize>, Vec<usize>) = pick
                .iter()
                .map(|(e, m)| (arousal_level(m.arousal), e.arousal as usize))
                .unzip();
            let (aa, _) = accuracy_macro_f1(&ap, &ag, &[0, 1, 2]);
            println!(
                "| {} | {lang} ({}) | {va:.3} | {vf:.3} | {sign:.3} ({}) | {ea:.3} | {ef:.3} | {aa:.3} |",
                r.name,
                pick.len(),
                signed.len()
            );
        }
    }
    println!("\n## Reviews: valence sign\n");
    println!("| analyzer | yelp acc (held out) | yelp macro-F1 | amazon + imdb acc / macro-F1 |");
    println!("|---|---|---|---|");
    for r in rows {
        let (ya, yf) = valence_metrics(&r.yelp, data.yelp);
        let (ra, rf) = valence_metrics(&r.reviews, data.reviews);
        let how = if r.reviews_are_cv {
            "10-fold CV"
        } else {
            "untrained: plain test"
        };
        println!(
            "| {} | {ya:.3} | {yf:.3} | {ra:.3} / {rf:.3} ({how}) |",
            r.name
        );
    }
    println!(
        "\nyelp: {} sentences; amazon + imdb: {}",
        data.yelp.len(),
        data.reviews.len()
    );
}
