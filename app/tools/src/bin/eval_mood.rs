//! Measures every mood analyzer: valence-sign accuracy and macro-F1 on yelp
//! (held out), 10-fold cross-validation on amazon + imdb, and emotion accuracy
//! and macro-F1 on our development set (`data/emotion_dev.jsonl`), printed as
//! a table. Also prints the prototype softmax temperature with the lowest
//! negative log-likelihood on the development set.
//!
//! Run: `cargo run --release -p metachat-tools --bin eval_mood`
//! (needs `scripts/fetch-models` first; embeddings are cached under
//! `models/.cache/`).

use anyhow::Result;
use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::embed::{E5Embedder, E5Prefix, MiniLmEmbedder};
use metachat_analysis::mood::eval::{
    dev_set, emotion_metrics, fold_assignment, load_sentiment, valence_metrics, DevEntry,
    LabelledSentence,
};
use metachat_analysis::mood::{
    train_logistic, EmbeddingMoodAnalyzer, LexiconAnalyzer, ValenceHead, WindowedEmbedder,
};
use metachat_analysis::{Emotion, Mood};

use metachat_tools::embed_cached;

const FOLDS: usize = 10;
const SEED: u64 = 20_240_601;

struct Row {
    name: String,
    yelp: (f64, f64),
    cv: Option<(f64, f64)>,
    other: Option<(f64, f64)>,
    dev: (f64, f64),
    dev_en: (f64, f64),
    dev_ru: (f64, f64),
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = model_dir();
    let yelp = load_sentiment(&dir, "yelp")?;
    let mut train = load_sentiment(&dir, "amazon")?;
    train.extend(load_sentiment(&dir, "imdb")?);
    let dev = dev_set()?;
    let mut rows = Vec::new();

    // Lexicon: nothing trained, so amazon + imdb is a plain test set for it.
    let lexicon = LexiconAnalyzer::from_dir(&dir)?;
    let lex = |d: &[LabelledSentence]| -> Vec<f32> {
        d.iter()
            .map(|s| lexicon.analyze_one(&s.text).valence)
            .collect()
    };
    let dev_moods: Vec<Mood> = dev.iter().map(|e| lexicon.analyze_one(&e.text)).collect();
    let (d, en, ru) = dev_scores(&dev, &dev_moods);
    rows.push(Row {
        name: LexiconAnalyzer::MODEL_ID.into(),
        yelp: valence_metrics(&lex(&yelp), &yelp),
        cv: None,
        other: Some(valence_metrics(&lex(&train), &train)),
        dev: d,
        dev_en: en,
        dev_ru: ru,
    });

    if let Ok(e5) = E5Embedder::load(dir.join("e5")) {
        let e5 = e5.with_prefix(E5Prefix::Query);
        let id = format!("{} (prefix \"query: \")", E5Embedder::MODEL_ID);
        let f = |b: &[String]| Ok(e5.embed_blocking(b)?);
        rows.push(
            evaluate(
                "e5",
                &id,
                e5.clone(),
                ValenceHead::builtin_e5()?,
                f,
                &yelp,
                &train,
                &dev,
            )
            .await?,
        );
    } else {
        eprintln!("e5 model missing: row skipped (run scripts/fetch-models)");
    }
    if let Ok(minilm) = MiniLmEmbedder::load(dir.join("minilm")) {
        let f = |b: &[String]| Ok(minilm.embed_blocking(b)?);
        let head = ValenceHead::builtin_minilm()?;
        rows.push(
            evaluate(
                "minilm",
                MiniLmEmbedder::MODEL_ID,
                minilm.clone(),
                head,
                f,
                &yelp,
                &train,
                &dev,
            )
            .await?,
        );
    } else {
        eprintln!("MiniLM model missing: row skipped (run scripts/fetch-models)");
    }

    println!();
    println!("| analyzer | valence yelp acc | yelp macro-F1 | amazon+imdb 10-fold CV acc / F1 | emotion dev acc | dev macro-F1 | dev EN acc / F1 | dev RU acc / F1 |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let cv = match (r.cv, r.other) {
            (Some((a, f)), _) => format!("{a:.3} / {f:.3}"),
            (None, Some((a, f))) => format!("{a:.3} / {f:.3} (untrained: plain test)"),
            _ => "n/a".into(),
        };
        println!(
            "| {} | {:.3} | {:.3} | {} | {:.3} | {:.3} | {:.3} / {:.3} | {:.3} / {:.3} |",
            r.name,
            r.yelp.0,
            r.yelp.1,
            cv,
            r.dev.0,
            r.dev.1,
            r.dev_en.0,
            r.dev_en.1,
            r.dev_ru.0,
            r.dev_ru.1
        );
    }
    println!(
        "\nyelp: {} sentences; amazon+imdb: {}; dev set: {} entries ({} en, {} ru)",
        yelp.len(),
        train.len(),
        dev.len(),
        dev.iter().filter(|e| e.lang == "en").count(),
        dev.iter().filter(|e| e.lang == "ru").count()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn evaluate<E: WindowedEmbedder>(
    short: &str,
    id: &str,
    embedder: E,
    head: ValenceHead,
    f: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>> + Clone,
    yelp: &[LabelledSentence],
    train: &[LabelledSentence],
    dev: &[DevEntry],
) -> Result<Row> {
    let dir = model_dir();
    let texts = |d: &[LabelledSentence]| d.iter().map(|s| s.text.clone()).collect::<Vec<_>>();
    let x_yelp = embed_cached(&dir, id, &texts(yelp), f.clone())?;
    let x_train = embed_cached(&dir, id, &texts(train), f.clone())?;
    let dev_texts: Vec<String> = dev.iter().map(|e| e.text.clone()).collect();
    let x_dev = embed_cached(&dir, id, &dev_texts, f)?;
    let l2 = head.provenance.l2;
    let analyzer = EmbeddingMoodAnalyzer::new(embedder, head, id).await?;

    let yelp_val: Vec<f32> = x_yelp
        .iter()
        .map(|x| analyzer.mood_of_embedding(x, 1).valence)
        .collect();

    // 10-fold CV on amazon + imdb with the head's L2 (pooled predictions).
    let ys: Vec<bool> = train.iter().map(LabelledSentence::positive).collect();
    let folds = fold_assignment(train.len(), FOLDS, SEED);
    let mut cv_val = vec![0.0f32; train.len()];
    for k in 0..FOLDS {
        let (tx, ty): (Vec<Vec<f32>>, Vec<bool>) = (0..train.len())
            .filter(|&i| folds[i] != k)
            .map(|i| (x_train[i].clone(), ys[i]))
            .unzip();
        let fit = train_logistic(&tx, &ty, l2, 400);
        for i in (0..train.len()).filter(|&i| folds[i] == k) {
            cv_val[i] = 2.0 * fit.probability(&x_train[i]) - 1.0;
        }
    }

    // Temperature: lowest dev-set NLL (does not change the argmax).
    let mut best = (f32::MAX, 0.0);
    for t in [0.002f32, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1] {
        let p = analyzer.prototypes().clone().with_temperature(t);
        let nll: f32 = x_dev
            .iter()
            .zip(dev)
            .map(|(x, e)| {
                let k = Emotion::ALL.iter().position(|l| *l == e.label).unwrap_or(6);
                -p.distribution(x)[k].max(1e-9).ln()
            })
            .sum::<f32>()
            / dev.len() as f32;
        eprintln!("{short}: temperature {t:<6} dev NLL {nll:.3}");
        if nll < best.0 {
            best = (nll, t);
        }
    }
    eprintln!(
        "{short}: lowest dev NLL at temperature {} (default {})",
        best.1,
        EmbeddingMoodAnalyzer::<E>::DEFAULT_TEMPERATURE
    );

    let dev_moods: Vec<Mood> = x_dev
        .iter()
        .map(|x| analyzer.mood_of_embedding(x, 1))
        .collect();
    let (d, en, ru) = dev_scores(dev, &dev_moods);
    Ok(Row {
        name: format!("{short}: {}", analyzer.model_id_str()),
        yelp: valence_metrics(&yelp_val, yelp),
        cv: Some(valence_metrics(&cv_val, train)),
        other: None,
        dev: d,
        dev_en: en,
        dev_ru: ru,
    })
}

type Pair = (f64, f64);

fn dev_scores(dev: &[DevEntry], moods: &[Mood]) -> (Pair, Pair, Pair) {
    let pick = |lang: Option<&str>| {
        let (p, g): (Vec<Emotion>, Vec<Emotion>) = dev
            .iter()
            .zip(moods)
            .filter(|(e, _)| lang.is_none_or(|l| e.lang == l))
            .map(|(e, m)| (m.dominant, e.label))
            .unzip();
        emotion_metrics(&p, &g)
    };
    (pick(None), pick(Some("en")), pick(Some("ru")))
}

trait ModelIdStr {
    fn model_id_str(&self) -> String;
}

impl<E: WindowedEmbedder> ModelIdStr for EmbeddingMoodAnalyzer<E> {
    fn model_id_str(&self) -> String {
        metachat_analysis::TextAnalyzer::model_id(self).to_owned()
    }
}
