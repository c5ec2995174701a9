//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use metachat_engine::e5_file::E5Vocab;
use metachat_engine::e5_tokenizer::E5Tokenizer;

/// Tokenizes `text` with `tok` (built from `vocab`) and checks what the ids
/// promise: the normalised text is never empty, every id is a piece of the
/// vocabulary, and the pieces, read in order, spell the normalised text
/// exactly, an `<unk>` standing for one character.
pub fn check_e5_tokens(tok: &E5Tokenizer, vocab: &E5Vocab, text: &str) -> Vec<u32> {
    let normalized = tok.normalize(text);
    assert!(!normalized.is_empty(), "normalised text is empty");
    let ids = tok.encode(text);
    let mut rest = normalized.as_str();
    for &id in &ids {
        if id == vocab.unk {
            let mut chars = rest.chars();
            assert!(
                chars.next().is_some(),
                "<unk> past the end of {normalized:?}"
            );
            rest = chars.as_str();
            continue;
        }
        let piece = vocab
            .pieces
            .get(id as usize)
            .unwrap_or_else(|| panic!("id {id} is not a piece (of {})", vocab.pieces.len()));
        assert!(!piece.is_empty(), "empty piece {id} emitted");
        assert!(
            rest.starts_with(piece.as_str()),
            "piece {id} {piece:?} does not match {rest:?} (normalised {normalized:?})"
        );
        rest = &rest[piece.len()..];
    }
    assert!(
        rest.is_empty(),
        "tokens stop short: {rest:?} left of {normalized:?}"
    );
    ids
}
