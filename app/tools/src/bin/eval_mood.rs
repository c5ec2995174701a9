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
//!    nine folds of the reviews; the review reader also in every fold on
//!    the rated review snippets the heads' provenance names);
//! 3. for e5's heads, 10-fold cross-validation on the corpus's **train and
//!    dev** entries, grouped by the part (writer) an entry was written in:
//!    valence and emotion accuracy per language from 6,798 entries each
//!    instead of the test split's 202 each, on writers
//!    the fold's heads never read (the settings are the shipped ones,
//!    chosen on dev; a head shipped as the mean of several, as the e5
//!    valence head is, is refitted as the mean of as many).
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
//! (`-- --valence-grid`: the corpus CV also for larger hidden layers and
//! more L2 in the valence head, each one head; `-- --members N`: also for
//! the shipped valence setting trained N times and read as the mean of the
//! N, where the shipped head is the mean of `VALENCE_MEMBERS`)
//! (needs `scripts/fetch-models` first; embeddings are cached under
//! `models/.cache/`, keyed by model, engine version, weight mode and texts).

use std::path::Path;

use anyhow::Result;
use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::embed::{E5Embedder, E5Prefix, MiniLmEmbedder};
use metachat_analysis::matching::emotion_index;
use metachat_analysis::mood::corpus::{default_corpus_dir, load_split, DiaryEntry, Split};
use metachat_analysis::mood::eval::{
    accuracy_macro_f1, dev_set, fold_assignment, load_rated_snippets, load_sentiment,
    valence_metrics, LabelledSentence,
};
use metachat_analysis::mood::{
    argmax, pool_sentences, sentences, sentences_of, EmbeddingMoodAnalyzer, HeadSetting,
    LexiconAnalyzer, MoodHeads, ReviewReader, SoftmaxHead, ValenceHead, ValenceLabel,
    WindowedEmbedder,
};
use metachat_analysis::{Emotion, Mood};

use metachat_tools::fit::{
    implied_valence, refit, refit_members, tempered, train_model_members, train_review_reader,
    Example,
};
use metachat_tools::writer_cv::{part_of, writer_folds, BILINGUAL_PARTS, FOLDS as WRITER_FOLDS};
use metachat_tools::{embed_cached, valence_index};

const FOLDS: usize = 10;
/// The valence settings (hidden units, L2) `--valence-grid` adds.
const VALENCE_GRID: [(usize, f32); 5] = [(64, 3.0), (128, 1.0), (128, 3.0), (256, 1.0), (256, 3.0)];
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
    /// The grouped corpus CV (e5's heads only): per valence setting, the
    /// figures per language.
    corpus_cv: Option<Vec<(CvSetting, Vec<CvLine>)>>,
    test: Vec<Reading>,
    yelp: Vec<f32>,
    reviews: Vec<f32>,
    reviews_are_cv: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    // `--valence-grid`: the corpus CV also for other valence settings than
    // the shipped one (a larger hidden layer, more L2), to compare them on
    // writers the heads never read.
    let args: Vec<String> = std::env::args().collect();
    let grid = args.iter().any(|a| a == "--valence-grid");
    // `--members N`: the shipped valence setting also as an ensemble of N.
    let members: Option<usize> = match args.iter().position(|a| a == "--members") {
        Some(i) => Some(
            args.get(i + 1)
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| anyhow::anyhow!("--members takes a count above 0"))?,
        ),
        None => None,
    };
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
        corpus_cv: None,
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
        let shipped = heads.valence.choice.chosen;
        let mut settings = vec![(shipped, members_of(&heads.valence))];
        if grid {
            for (hidden, l2) in VALENCE_GRID {
                settings.push((
                    HeadSetting {
                        hidden,
                        l2,
                        ..shipped
                    },
                    1,
                ));
            }
        }
        if let Some(n) = members {
            settings.push((shipped, n));
        }
        rows.push(with_heads("e5", &id, e5.clone(), heads, f, &data, Some(settings)).await?);
        rows.push(earlier("e5", &id, e5.clone(), ValenceHead::builtin_e5()?, f, &data).await?);
    } else {
        eprintln!("e5 model missing: rows skipped (run scripts/fetch-models)");
    }
    if let Ok(minilm) = MiniLmEmbedder::load(dir.join("minilm")) {
        let id = MiniLmEmbedder::MODEL_ID;
        let f = |b: &[String]| Ok(minilm.embed_blocking(b)?);
        match MoodHeads::from_file(&heads_file("minilm")) {
            Ok(heads) => {
                rows.push(with_heads("minilm", id, minilm.clone(), heads, f, &data, None).await?)
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

/// How many sentences each text has (`mood::sentences`, as the analyzer
/// counts them for the review gate).
fn counts(texts: &[String]) -> Vec<usize> {
    texts.iter().map(|t| sentences(t).len()).collect()
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
    corpus_cv: Option<Vec<CvSetting>>,
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
    let n_test = counts(&texts(data.test, |e| &e.text));
    let n_yelp = counts(&texts(data.yelp, |s| &s.text));
    let n_rev = counts(&texts(data.reviews, |s| &s.text));
    // The rated snippets the heads were trained on besides amazon + imdb
    // (none before 2026-12-07): trained on in every fold, never read.
    let mut snippets = Vec::new();
    for name in &heads.provenance.review_snippets {
        snippets.extend(load_rated_snippets(&dir, name)?);
    }

    let choice = heads.valence.choice.chosen;
    let reviews_are_cv = choice.review_weight > 0.0;
    // The corpus's train and dev entries, then the emotion examples that
    // imply a valence, then the reviews: what the review CV trains on (and
    // the corpus CV reads), in one order so their embeddings are cached once.
    let corpus = default_corpus_dir();
    let mut own: Vec<DiaryEntry> = load_split(&corpus, Split::Train)?;
    own.extend(load_split(&corpus, Split::Dev)?);
    let mut own_texts = texts(&own, |e| &e.text);
    let mut own_y: Vec<usize> = own.iter().map(|e| valence_index(e.valence)).collect();
    let mut extra_emotion = Vec::new();
    for e in dev_set()? {
        if let Some(v) = implied_valence(e.label) {
            own_texts.push(e.text);
            own_y.push(valence_index(v));
            extra_emotion.push(emotion_index(e.label));
        }
    }
    let mut n_xs = counts(&own_texts);
    n_xs.extend_from_slice(&n_rev);
    let snippet_texts = texts(&snippets, |s| &s.text);
    n_xs.extend(counts(&snippet_texts));
    let xs = if reviews_are_cv || corpus_cv.is_some() {
        let mut xs = pooled(own_texts)?;
        xs.extend(x_rev.iter().cloned());
        xs.extend(pooled(snippet_texts)?);
        xs
    } else {
        Vec::new()
    };
    let n_own = own_y.len();
    // The snippets' places in `xs`, for the review reader.
    let snippet_examples: Vec<(usize, bool)> = snippets
        .iter()
        .enumerate()
        .map(|(j, s)| (n_own + data.reviews.len() + j, s.positive()))
        .collect();
    let members = members_of(&heads.valence);
    let cv = if reviews_are_cv {
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
            let model = train_model_members(&xs, &examples, 3, choice, members)?;
            // The review reader, when the heads have one, refitted on the
            // same texts with its chosen setting.
            let reader = heads.review.as_ref().map(|r| {
                let diary: Vec<usize> = (0..n_own).collect();
                let mut reviews: Vec<(usize, bool)> = examples
                    .iter()
                    .filter(|e| e.review)
                    .map(|e| (e.x, e.y == 2))
                    .collect();
                reviews.extend(snippet_examples.iter().copied());
                train_review_reader(&xs, &diary, &reviews, r.choice.chosen)
            });
            for i in (0..data.reviews.len()).filter(|&i| folds[i] == k) {
                cv[i] = joint_valence(
                    &heads,
                    reader.as_ref(),
                    &model.probabilities(&x_rev[i]),
                    &x_rev[i],
                    n_rev[i],
                );
            }
        }
        cv
    } else {
        x_rev
            .iter()
            .zip(&n_rev)
            .map(|(x, &n)| {
                let out = heads.read(x, n);
                out.valence[2] - out.valence[0]
            })
            .collect()
    };

    let analyzer = EmbeddingMoodAnalyzer::with_heads(embedder, heads, id)?;
    // What is measured is what ships: the analyzer's own moods of the first
    // test entries equal the ones read here from the cached features.
    let first: Vec<String> = texts(&data.test[..data.test.len().min(16)], |e| &e.text);
    for ((m, x), &n) in analyzer
        .analyze_batch(&first)
        .await?
        .iter()
        .zip(&x_test)
        .zip(&n_test)
    {
        let here = analyzer.mood_of_embedding(x, 1, n);
        anyhow::ensure!(
            (m.valence - here.valence).abs() < 1e-3 && m.dominant == here.dominant,
            "the analyzer's mood differs from the cached features' ({} / {})",
            m.valence,
            here.valence
        );
    }
    let test = x_test
        .iter()
        .zip(&n_test)
        .map(|(x, &n)| {
            let m = analyzer.mood_of_embedding(x, 1, n);
            Reading {
                valence: m.valence,
                label: m.valence_label,
                emotion: m.dominant,
                arousal: m.arousal,
            }
        })
        .collect();
    let corpus_cv = if let Some(settings) = corpus_cv {
        let data = CorpusCv {
            own: &own,
            own_y: &own_y,
            extra_emotion: &extra_emotion,
            xs: &xs,
            sentences: &n_xs,
            reviews: data.reviews,
            snippets: &snippet_examples,
        };
        let shipped = analyzer
            .heads()
            .ok_or_else(|| anyhow::anyhow!("an analyzer built on heads has heads"))?;
        Some(grouped_corpus_cv(shipped, &data, &settings)?)
    } else {
        None
    };
    Ok(Row {
        name: format!("{short}: {}", model_id(&analyzer)),
        corpus_cv,
        test,
        yelp: x_yelp
            .iter()
            .zip(&n_yelp)
            .map(|(x, &n)| analyzer.mood_of_embedding(x, 1, n).valence)
            .collect(),
        reviews: cv,
        reviews_are_cv,
    })
}

/// What the corpus CV reads: the corpus's train and dev entries, the valence
/// of each of them and of the emotion examples after them (`own_y`), those
/// examples' emotions, and the vectors of all these and of the reviews.
struct CorpusCv<'a> {
    own: &'a [DiaryEntry],
    own_y: &'a [usize],
    extra_emotion: &'a [usize],
    xs: &'a [Vec<f32>],
    /// The sentence count of each of `xs`'s texts.
    sentences: &'a [usize],
    /// amazon + imdb, their vectors after `own_y`'s in `xs`.
    reviews: &'a [LabelledSentence],
    /// The rated snippets the review reader trains on (vector index,
    /// positive).
    snippets: &'a [(usize, bool)],
}

/// How many heads of its chosen setting `head` is the mean of
/// ([`refit_members`]): its hidden units over the chosen number (1 for a
/// linear head).
fn members_of(head: &SoftmaxHead) -> usize {
    match (&head.hidden, head.choice.chosen.hidden) {
        (Some(h), units) if units > 0 => (h.bias.len() / units).max(1),
        _ => 1,
    }
}

/// Per language: entries, three-way valence accuracy, entries with a sign,
/// sign accuracy, emotion accuracy.
type CvLine = (&'static str, usize, f64, usize, f64, f64);

/// A valence setting the corpus CV reads with, and how many members
/// ([`refit_members`]).
type CvSetting = (HeadSetting, usize);

/// Grouped 10-fold cross-validation on the corpus's train and dev entries:
/// whole parts (one writer's entries, both languages) are held out
/// together, so a fold is read by heads that never saw its writer. Per
/// fold the valence and emotion heads and the review reader are refitted
/// with their shipped settings (chosen by `train_mood` on dev) on the
/// other parts, the emotion examples and the reviews, and the held-out
/// entries are read as the analyzer reads (`MoodHeads::read`: review
/// reader and joint reading included). The emotion examples without an
/// implied valence are left out of the emotion head's training here (they
/// are not among the embedded texts). The test split is not read.
fn grouped_corpus_cv(
    shipped: &MoodHeads,
    d: &CorpusCv<'_>,
    settings: &[CvSetting],
) -> Result<Vec<(CvSetting, Vec<CvLine>)>> {
    let n_corpus = d.own.len();
    let n_own = d.own_y.len();
    let fold = writer_folds(d.own.iter().map(|e| e.id.as_str()))?;
    let mut reads =
        vec![vec![(ValenceLabel::Neutral, 0.0f32, Emotion::Neutral); n_corpus]; settings.len()];
    for k in 0..WRITER_FOLDS {
        let kept = |i: usize| fold[i] != k;
        let mut valence: Vec<Example> = (0..n_own)
            .filter(|&i| i >= n_corpus || kept(i))
            .map(|i| Example {
                x: i,
                y: d.own_y[i],
                review: false,
            })
            .collect();
        let diary: Vec<usize> = valence.iter().map(|e| e.x).collect();
        let reviews: Vec<(usize, bool)> = d
            .reviews
            .iter()
            .enumerate()
            .map(|(i, s)| (n_own + i, s.positive()))
            .collect();
        valence.extend(reviews.iter().map(|&(x, positive)| Example {
            x,
            y: if positive { 2 } else { 0 },
            review: true,
        }));
        let mut reader_reviews = reviews.clone();
        reader_reviews.extend_from_slice(d.snippets);
        let mut emotion: Vec<Example> = (0..n_corpus)
            .filter(|&i| kept(i))
            .map(|i| Example {
                x: i,
                y: emotion_index(d.own[i].emotion),
                review: false,
            })
            .collect();
        emotion.extend(d.extra_emotion.iter().enumerate().map(|(j, &y)| Example {
            x: n_corpus + j,
            y,
            review: false,
        }));
        let mut heads = shipped.clone();
        heads.emotion = refit(shipped.emotion.clone(), d.xs, &emotion, 7)?;
        if let Some(r) = &shipped.review {
            let mut reader = train_review_reader(d.xs, &diary, &reader_reviews, r.choice.chosen);
            reader.choice = r.choice.clone();
            heads.review = Some(reader);
        }
        for (s, &(setting, members)) in settings.iter().enumerate() {
            let mut head = shipped.valence.clone();
            head.choice.chosen = setting;
            heads.valence = refit_members(head, d.xs, &valence, 3, members)?;
            for i in (0..n_corpus).filter(|&i| !kept(i)) {
                let out = heads.read(&d.xs[i], d.sentences[i]);
                let label = ValenceLabel::ALL[argmax(&out.valence)];
                let emotion = Emotion::ALL[argmax(&out.emotion)];
                reads[s][i] = (label, out.valence[2] - out.valence[0], emotion);
            }
        }
    }
    Ok(settings
        .iter()
        .zip(&reads)
        .map(|(setting, reads)| (*setting, cv_lines(d.own, reads)))
        .collect())
}

/// The corpus CV's figures per language from its readings of `own`, and
/// for English once more on the bilingual rounds' parts alone (the entries
/// that were there before the seventh round's English-only parts, so that
/// a corpus with and without those parts is read on the same entries).
fn cv_lines(own: &[DiaryEntry], reads: &[(ValenceLabel, f32, Emotion)]) -> Vec<CvLine> {
    let mut lines = Vec::new();
    let bilingual = |e: &DiaryEntry| part_of(&e.id).is_some_and(|p| p < BILINGUAL_PARTS);
    let groups: [(&'static str, &str, bool); 3] = [
        ("en", "en", false),
        ("ru", "ru", false),
        ("en, parts 1–40", "en", true),
    ];
    for (name, lang, only_bilingual) in groups {
        let pick: Vec<_> = own
            .iter()
            .zip(reads)
            .filter(|(e, _)| e.lang == lang && (!only_bilingual || bilingual(e)))
            .collect();
        let n = pick.len();
        let share = |ok: usize, of: usize| ok as f64 / of.max(1) as f64;
        let three = pick.iter().filter(|(e, r)| r.0 == e.valence).count();
        let signed: Vec<bool> = pick
            .iter()
            .filter(|(e, _)| e.valence != ValenceLabel::Neutral)
            .map(|(e, r)| (r.1 > 0.0) == (e.valence == ValenceLabel::Positive))
            .collect();
        let sign = signed.iter().filter(|ok| **ok).count();
        let emotion = pick.iter().filter(|(e, r)| r.2 == e.emotion).count();
        lines.push((
            name,
            n,
            share(three, n),
            signed.len(),
            share(sign, signed.len()),
            share(emotion, n),
        ));
    }
    lines
}

/// The valence the analyzer would read from a fold's valence
/// probabilities `p` (at temperature 1), its review reader and the shipped
/// emotion head on `x`: `p` tempered as the shipped valence head is,
/// combined with the fold's review reader (`ReviewReader::combine`), then
/// read jointly with the emotion head as the heads file says
/// (`MoodHeads::joint`).
fn joint_valence(
    heads: &MoodHeads,
    reader: Option<&ReviewReader>,
    p: &[f32],
    x: &[f32],
    sentences: usize,
) -> f32 {
    let p = tempered(p, heads.valence.temperature);
    let mut out = heads.read_independently(x, sentences);
    out.valence.copy_from_slice(&p);
    let g = reader.map(|r| r.review_probability(x, sentences));
    if let (Some(r), Some(g)) = (reader, g) {
        out.valence = r.combine_at(out.valence, g, x);
    }
    let out = out.joint(heads.joint.weight(g));
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
    let n_test = counts(&texts(data.test, |e| &e.text));
    let n_yelp = counts(&texts(data.yelp, |s| &s.text));
    let test = x_test
        .iter()
        .zip(&n_test)
        .map(|(x, &n)| {
            let m = analyzer.mood_of_embedding(x, 1, n);
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
        corpus_cv: None,
        test,
        yelp: x_yelp
            .iter()
            .zip(&n_yelp)
            .map(|(x, &n)| analyzer.mood_of_embedding(x, 1, n).valence)
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
    for r in rows {
        let Some(per_setting) = &r.corpus_cv else {
            continue;
        };
        println!(
            "\n## Diary corpus, train + dev, {WRITER_FOLDS}-fold CV grouped by the part an entry was written in: {}\n",
            r.name
        );
        println!("| valence head | lang | entries | valence acc (3-way) | valence sign acc (pos/neg entries) | emotion acc (7) |");
        println!("|---|---|---|---|---|---|");
        for (k, ((setting, members), lines)) in per_setting.iter().enumerate() {
            let head = format!(
                "{} hidden, L2 {}{}{}",
                setting.hidden,
                setting.l2,
                if *members > 1 {
                    format!(", mean of {members}")
                } else {
                    String::new()
                },
                if k == 0 { " (shipped)" } else { "" }
            );
            for (lang, n, three, signed, sign, emotion) in lines {
                println!(
                    "| {head} | {lang} | {n} | {three:.3} | {sign:.3} ({signed}) | {emotion:.3} |"
                );
            }
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
