//! Measured valence accuracy on yelp, the held-out set of the UCI Sentiment
//! Labelled Sentences (never used for training or tuning): e5 analyzer
//! ≥ 0.93 (0.935 measured with the heads of 2026-12-07 whose review reader
//! also trains on VADER's rated review snippets; 0.928 with those of the
//! same morning whose review gate hears the sentence count, 0.915 before
//! it; 0.925 with the heads of 2026-12-06; the history is in
//! `docs/mood-heads.md`), lexicon baseline ≥ 0.75. The numbers are computed here, from the
//! analyzers' own output; nothing is stored.
//!
//! Needs `scripts/fetch-models`. With `CI=true` a missing model fails the
//! test; elsewhere it prints SKIPPED and why. The e5 test embeds 1,000
//! sentences, so it is slow without optimisation (use `--release`).

use metachat_analysis::embed::model_dir::model_dir;
use metachat_analysis::mood::eval::{
    load_rated_snippets, load_sentiment, valence_metrics, LabelledSentence, RATED_SNIPPETS,
};
use metachat_analysis::mood::{analyzer_from_model_dir, LexiconAnalyzer};
use metachat_analysis::TextAnalyzer;

#[track_caller]
fn skip(reason: &str) {
    metachat_testkit::skip(format!("{reason}; run scripts/fetch-models"));
}

fn yelp() -> Option<Vec<LabelledSentence>> {
    match load_sentiment(&model_dir(), "yelp") {
        Ok(d) => Some(d),
        Err(e) => {
            skip(&format!("yelp data unavailable ({e})"));
            None
        }
    }
}

/// VADER's rated review snippets, which the review reader trains on, load
/// from the fetched sdist with both signs in both domains, and keep yelp
/// held out: no yelp sentence longer than three words is among them (one
/// generic line, "Highly recommended.", is in both).
#[test]
fn rated_snippets_load_and_keep_yelp_held_out() {
    let Some(yelp) = yelp() else { return };
    let normal = |t: &str| t.trim().to_lowercase();
    let yelp: std::collections::HashSet<String> = yelp.iter().map(|s| normal(&s.text)).collect();
    for name in RATED_SNIPPETS {
        let snippets = match load_rated_snippets(&model_dir(), name) {
            Ok(s) => s,
            Err(e) => return skip(&format!("{name} unavailable ({e})")),
        };
        let positive = snippets.iter().filter(|s| s.positive()).count();
        eprintln!("{name}: {} snippets, {positive} positive", snippets.len());
        assert!(
            positive > 0 && positive < snippets.len(),
            "{name}: one sign only"
        );
        for s in &snippets {
            assert!(
                !(yelp.contains(&normal(&s.text)) && s.text.split_whitespace().count() > 3),
                "{name} holds the yelp sentence {:?}",
                s.text
            );
        }
    }
}

#[test]
fn lexicon_valence_accuracy_on_yelp_is_at_least_0_75() {
    let Some(yelp) = yelp() else { return };
    let lexicon = match LexiconAnalyzer::from_dir(&model_dir()) {
        Ok(l) => l,
        Err(e) => return skip(&e.to_string()),
    };
    let valences: Vec<f32> = yelp
        .iter()
        .map(|s| lexicon.analyze_one(&s.text).valence)
        .collect();
    let (acc, f1) = valence_metrics(&valences, &yelp);
    eprintln!(
        "lexicon on yelp: accuracy {acc:.3}, macro-F1 {f1:.3} ({} sentences)",
        yelp.len()
    );
    assert_eq!(yelp.len(), 1000);
    assert!(acc >= 0.75, "lexicon yelp accuracy {acc:.3} < 0.75");
}

#[tokio::test]
async fn e5_valence_accuracy_on_yelp_is_at_least_0_93() {
    let Some(yelp) = yelp() else { return };
    let e5_file = model_dir().join("e5").join("e5-small-q4.bin");
    if !e5_file.exists() {
        return skip(&format!("{} missing", e5_file.display()));
    }
    let analyzer = analyzer_from_model_dir(&model_dir())
        .await
        .expect("analyzer");
    assert!(
        !analyzer.is_fallback(),
        "e5 file present, but the analyzer fell back to the lexicon"
    );
    let texts: Vec<String> = yelp.iter().map(|s| s.text.clone()).collect();
    let mut valences = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        let moods = analyzer.analyze(chunk).await.expect("analyze");
        assert_eq!(moods.len(), chunk.len());
        valences.extend(moods.iter().map(|m| m.valence));
    }
    let (acc, f1) = valence_metrics(&valences, &yelp);
    eprintln!(
        "e5 on yelp: accuracy {acc:.3}, macro-F1 {f1:.3} ({} sentences)",
        yelp.len()
    );
    assert!(acc >= 0.93, "e5 yelp accuracy {acc:.3} < 0.93");
}

/// The e5 analyzer on the diary corpus's test split (never read by
/// training or by any choice): a regression guard a few points under what
/// `eval_mood` measured when the floors were set (2026-12-06, heads trained
/// on 11,194 entries: valence sign on the positive and negative entries
/// en 0.934 / ru 0.910, three-way valence 0.941 / 0.856, emotion
/// 0.876 / 0.817). The heads of 2026-12-07 (13,194 entries, the review
/// reader and joint weight chosen on writers held out) read 0.940 / 0.916,
/// 0.941 / 0.871 and 0.896 / 0.817; retrained the same day with a review
/// gate that hears the sentence count, 0.934 / 0.904, 0.936 / 0.861 and
/// 0.891 / 0.817 (the Russian sign floor moved from 0.89 to 0.88 to stay
/// three entries under); with the review reader trained on the rated
/// snippets too, 0.934 / 0.916, 0.936 / 0.871 and 0.896 / 0.817 (the
/// Russian floors move to 0.89 and 0.85, four entries under). The embeddings
/// are not bit for bit the same on every machine, which can move an entry
/// or two (0.6 points of 166): each floor is at least three entries under
/// the measured figure.
#[tokio::test]
async fn e5_on_the_diary_corpus_test_split_stays_above_its_floors() {
    use metachat_analysis::mood::corpus::{default_corpus_dir, load_split, Split};
    use metachat_analysis::mood::ValenceLabel;

    let e5_file = model_dir().join("e5").join("e5-small-q4.bin");
    if !e5_file.exists() {
        return skip(&format!("{} missing", e5_file.display()));
    }
    let analyzer = analyzer_from_model_dir(&model_dir())
        .await
        .expect("analyzer");
    assert!(
        !analyzer.is_fallback(),
        "e5 present, but the lexicon answered"
    );
    let test = load_split(&default_corpus_dir(), Split::Test).expect("test split");
    let texts: Vec<String> = test.iter().map(|e| e.text.clone()).collect();
    let mut moods = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        moods.extend(analyzer.analyze(chunk).await.expect("analyze"));
    }
    for (lang, sign_floor, three_way_floor, emotion_floor) in
        [("en", 0.91, 0.92, 0.86), ("ru", 0.89, 0.85, 0.79)]
    {
        let pairs: Vec<_> = test
            .iter()
            .zip(&moods)
            .filter(|(e, _)| e.lang == lang)
            .collect();
        let share = |ok: usize, of: usize| ok as f64 / of.max(1) as f64;
        let polar: Vec<_> = pairs
            .iter()
            .filter(|(e, _)| e.valence != ValenceLabel::Neutral)
            .collect();
        let sign = share(
            polar
                .iter()
                .filter(|(e, m)| (m.valence > 0.0) == (e.valence == ValenceLabel::Positive))
                .count(),
            polar.len(),
        );
        let three_way = share(
            pairs
                .iter()
                .filter(|(e, m)| m.valence_label == e.valence)
                .count(),
            pairs.len(),
        );
        let emotion = share(
            pairs
                .iter()
                .filter(|(e, m)| m.dominant == e.emotion)
                .count(),
            pairs.len(),
        );
        eprintln!(
            "e5 on the {lang} test split ({} entries): valence sign {sign:.3}, three-way {three_way:.3}, emotion {emotion:.3}",
            pairs.len()
        );
        assert!(
            sign >= sign_floor,
            "{lang} valence sign {sign:.3} < {sign_floor}"
        );
        assert!(
            three_way >= three_way_floor,
            "{lang} three-way valence {three_way:.3} < {three_way_floor}"
        );
        assert!(
            emotion >= emotion_floor,
            "{lang} emotion {emotion:.3} < {emotion_floor}"
        );
        for (_, m) in &pairs {
            let p = m.valence_probability.expect("the heads give a probability");
            assert!(p > 1.0 / 3.0 && p <= 1.0, "{m:?}");
        }
    }
}
