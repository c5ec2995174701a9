//! The all-MiniLM-L6-v2 tokenizer pipeline (`tokenizers` crate, as
//! `metachat_engine::MiniLmEmbedder` loads it) on arbitrary text.
//!
//! No downloaded model: `fuzz/fixtures/bert-tokenizer.json` has the shipped
//! `tokenizer.json`'s pipeline (BertNormalizer with clean_text, Chinese
//! characters and lowercasing; BertPreTokenizer; WordPiece with `##`,
//! `[UNK]` and 100 characters per word; the `[CLS] … [SEP]` template) over a
//! vocabulary of a few hundred pieces instead of 30,522. It is read with
//! `Tokenizer::from_bytes` and set up as `MiniLmEmbedder::load` does (no
//! padding, no truncation), then encodes like `MiniLmEmbedder::token_ids`.
//!
//! Invariants: no panic and no error on any UTF-8 text; every id is in the
//! vocabulary; the encoding with special tokens is `[CLS]`, the same ids,
//! `[SEP]` (what `token_ids` builds by hand).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenizers::Tokenizer;

struct Bert {
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    size: usize,
}

fn bert() -> &'static Bert {
    static BERT: OnceLock<Bert> = OnceLock::new();
    BERT.get_or_init(|| {
        let mut tokenizer =
            Tokenizer::from_bytes(include_bytes!("../fixtures/bert-tokenizer.json"))
                .expect("the fixture is a tokenizer");
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).expect("no truncation");
        let id = |t: &str| tokenizer.token_to_id(t).expect("special token");
        let (cls, sep) = (id("[CLS]"), id("[SEP]"));
        let size = tokenizer.get_vocab_size(true);
        Bert {
            tokenizer,
            cls,
            sep,
            size,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let b = bert();
    let enc = b
        .tokenizer
        .encode(text, false)
        .unwrap_or_else(|e| panic!("encoding failed: {e}"));
    for &id in enc.get_ids() {
        assert!((id as usize) < b.size, "id {id} outside the vocabulary");
    }
    let with = b
        .tokenizer
        .encode(text, true)
        .unwrap_or_else(|e| panic!("encoding with special tokens failed: {e}"));
    let mut want = vec![b.cls];
    want.extend_from_slice(enc.get_ids());
    want.push(b.sep);
    assert_eq!(with.get_ids(), want.as_slice());
});
