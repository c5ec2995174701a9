//! `metachat_engine::e5_tokenizer::E5Tokenizer` on arbitrary text.
//!
//! No downloaded model: the vocabulary is built here, in the shape of
//! multilingual-e5's (`<s>`, `<pad>`, `</s>`, `<unk>` at ids 0-3, `▁`-marked
//! word pieces over several scripts, a normaliser table that drops control
//! characters, turns tabs and odd spaces into spaces and expands a few
//! compatibility characters).
//!
//! Input: byte 0 picks the vocabulary. Even: the fixed one above, the rest
//! of the input is the text. Odd: the input (as lossy UTF-8) is split at the
//! first `\u{1}`; the part before it, split at `|`, adds pieces (empty,
//! duplicate, `▁`-only and multi-byte pieces included) to the fixed ones,
//! and the part after it is the text.
//!
//! Invariants: no panic on any text; every id is a piece; the pieces spell
//! the normalised text exactly, `<unk>` one character at a time
//! (`metachat_fuzz::check_e5_tokens`).
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use metachat_engine::e5_file::E5Vocab;
use metachat_engine::e5_tokenizer::E5Tokenizer;
use metachat_fuzz::check_e5_tokens;

const PIECES: &[&str] = &[
    "<s>", "<pad>", "</s>", "<unk>", "▁", "▁the", "▁a", "▁I", "▁walk", "ed", "ing", "▁by", "▁sea",
    "s", "e", "t", "h", "a", "l", "k", "▁de", "▁la", "é", "è", "ü", "ß", "▁über", "日本", "語",
    "本", "▁日", "🙂", "▁🙂", ",", ".", "!", "?", "1", "2", "fi", "▁fi", "▁▁", "Hello", "▁world",
];

fn normalizer() -> HashMap<char, Vec<char>> {
    let mut n = HashMap::new();
    for c in ['\t', '\n', '\r', '\u{3000}', '\u{a0}', '\u{2002}'] {
        n.insert(c, vec![' ']);
    }
    for c in ('\0'..'\u{20}').filter(|c| !matches!(c, '\t' | '\n' | '\r')) {
        n.insert(c, vec![]);
    }
    n.insert('\u{7f}', vec![]);
    n.insert('\u{200b}', vec![]);
    n.insert('ﬁ', vec!['f', 'i']);
    n.insert('Ａ', vec!['A']);
    n.insert('①', vec!['1']);
    n.insert('㍻', vec!['平', '成']);
    n.insert('\u{2581}', vec![' ']);
    n
}

fn vocab(extra: &[&str]) -> E5Vocab {
    let pieces: Vec<String> = PIECES
        .iter()
        .chain(extra)
        .map(|p| (*p).to_owned())
        .collect();
    // Unigram log-probabilities: longer pieces are likelier, as in a real
    // vocabulary, and no two are equal.
    let scores = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| -10.0 + p.chars().count() as f32 - i as f32 * 0.01)
        .collect();
    E5Vocab {
        pieces,
        scores,
        bos: 0,
        eos: 2,
        pad: 1,
        unk: 3,
        normalizer: normalizer(),
    }
}

fn fixed() -> &'static (E5Vocab, E5Tokenizer) {
    static FIXED: OnceLock<(E5Vocab, E5Tokenizer)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let v = vocab(&[]);
        let t = E5Tokenizer::new(&v);
        (v, t)
    })
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let input = String::from_utf8_lossy(rest);
    if mode & 1 == 0 {
        let (v, t) = fixed();
        check_e5_tokens(t, v, &input);
    } else {
        let (pieces, text) = input.split_once('\u{1}').unwrap_or(("", &input));
        let v = vocab(&pieces.split('|').collect::<Vec<_>>());
        let t = E5Tokenizer::new(&v);
        check_e5_tokens(&t, &v, text);
    }
});
