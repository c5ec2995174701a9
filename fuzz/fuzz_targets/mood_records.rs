//! The mood analysis's decoders of persisted and shipped JSON: a stored
//! [`Mood`] (versions 1 and 2, inside every `MoodAnalyzed` event), a heads
//! file ([`MoodHeads::from_json`]), the diary corpus's JSON Lines
//! ([`corpus::parse_jsonl`]) and VADER's rated review snippets
//! ([`eval::parse_rated_snippets`]).
//!
//! Invariants: no panic; a mood that decodes is version 2 and, when its
//! numbers are finite, encodes and decodes back to itself; heads that load
//! give probabilities that sum to 1 on any vector of their width; corpus
//! lines that parse break no rule and parse back the same after encoding;
//! rated snippets that parse are no more than the lines, none blank, and a
//! higher threshold keeps a subsequence of them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use metachat_analysis::mood::MoodHeads;
use metachat_analysis::mood::{corpus, eval};
use metachat_analysis::Mood;

fuzz_target!(|data: &[u8]| {
    if let Ok(mood) = serde_json::from_slice::<Mood>(data) {
        assert_eq!(mood.schema_version, Mood::SCHEMA_VERSION);
        let finite = [mood.valence, mood.arousal, mood.confidence]
            .into_iter()
            .chain(mood.valence_probability)
            .chain(mood.emotions.iter().map(|(_, p)| *p))
            .all(f32::is_finite);
        if finite {
            let again: Mood = serde_json::from_slice(&serde_json::to_vec(&mood).expect("encode"))
                .expect("decode");
            assert_eq!(again, mood);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(heads) = MoodHeads::from_json(text, Path::new("fuzz.json")) {
        let d = heads.dimensions();
        if d <= 4096 {
            let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            for sentences in [1, 3] {
                let out = heads.read(&x, sentences);
                for p in [&out.valence[..], &out.emotion[..]] {
                    let sum: f32 = p.iter().sum();
                    assert!(sum.is_nan() || (sum - 1.0).abs() < 1e-3, "{p:?}");
                }
            }
        }
    }
    if let Ok(entries) = corpus::parse_jsonl(text, Path::new("fuzz.jsonl")) {
        let lines: Vec<String> = entries
            .iter()
            .map(|e| {
                assert_eq!(e.violation(), None);
                serde_json::to_string(e).expect("encode")
            })
            .collect();
        let again = corpus::parse_jsonl(&lines.join("\n"), Path::new("again")).expect("reparse");
        assert_eq!(again, entries);
    }
    if let Ok(all) = eval::parse_rated_snippets(text, 0.0, Path::new("fuzz.txt")) {
        assert!(all.len() <= text.lines().count());
        assert!(all
            .iter()
            .all(|s| !s.text.trim().is_empty() && s.class <= 1));
        let clear =
            eval::parse_rated_snippets(text, 1.0, Path::new("fuzz.txt")).expect("same lines");
        let mut rest = all.iter();
        assert!(
            clear.iter().all(|c| rest.any(|a| a == c)),
            "not a subsequence"
        );
    }
});
