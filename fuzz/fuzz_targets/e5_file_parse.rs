//! `metachat_engine::e5_file::E5File::parse` on arbitrary model images.
//!
//! The committed corpus starts from a tiny but complete `E5S1` file (hidden
//! size 32, one layer, eight pieces; see `fuzz/make_e5_seed.py`), so the
//! fuzzer mutates past the magic and header checks into the vocabulary,
//! normaliser and tensor directory.
//!
//! Invariants: no panic (every count and offset is checked before use); an
//! accepted file has a consistent vocabulary, every tensor the encoder needs
//! readable at its stated size, and a tokenizer built from its tables that
//! spells any text back exactly (`metachat_fuzz::check_e5_tokens`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use metachat_engine::e5_file::{E5File, StoredDType, Q4_BLOCK, Q4_BLOCK_BYTES};
use metachat_engine::e5_tokenizer::E5Tokenizer;
use metachat_fuzz::check_e5_tokens;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = E5File::parse(Path::new("fuzz.bin"), data.to_vec()) else {
        return;
    };
    let h = file.header;
    let v = &file.vocab;
    assert_eq!(v.pieces.len(), v.scores.len());
    assert!(!v.pieces.is_empty() && v.pieces.len() <= h.vocab);
    for id in [v.bos, v.eos, v.pad, v.unk] {
        assert!(
            (id as usize) < v.pieces.len(),
            "special id {id} out of range"
        );
    }
    assert!(v.scores.iter().all(|s| s.is_finite()));
    assert_eq!(h.hidden % h.heads, 0);
    let mut names = vec![
        "emb.word".to_owned(),
        "emb.pos".to_owned(),
        "emb.ln.w".to_owned(),
    ];
    for l in 0..h.layers {
        names.push(format!("l{l}.q.w"));
        names.push(format!("l{l}.fo.b"));
    }
    for name in names {
        let (t, bytes) = file.tensor(&name).expect("a checked tensor is present");
        let want = match t.dtype {
            StoredDType::F32 => t.elements * 4,
            StoredDType::Q4_0 => t.elements / Q4_BLOCK * Q4_BLOCK_BYTES,
        };
        assert_eq!(bytes.len(), want, "tensor {name}");
        if t.dtype == StoredDType::F32 {
            assert_eq!(file.f32_tensor(&name).expect("f32").len(), t.elements);
        }
    }
    let tok = E5Tokenizer::new(v);
    for text in [
        "",
        " ",
        "Hello, world!",
        "  two  spaces\tand\na tab",
        "日本語 🙂 é",
    ] {
        check_e5_tokens(&tok, v, text);
    }
});
