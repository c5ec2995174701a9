//! Splitting a text into sentences, for heads that read a text as the mean
//! of its sentences ([`Pooling::Sentences`](super::Pooling::Sentences)).

/// The sentences of `text`: it is cut after a run of `.`, `!`, `?` or `…`
/// (with the closing quotes and brackets that follow it) and at line breaks;
/// pieces are trimmed, and those without a letter or a digit are dropped. A
/// text with no such piece is returned whole, trimmed (or empty for a blank
/// text).
///
/// ```
/// use metachat_analysis::mood::sentences;
///
/// assert_eq!(
///     sentences("Great, just great... The car died again!!\nOf course :)"),
///     ["Great, just great...", "The car died again!!", "Of course :)"],
/// );
/// assert_eq!(sentences("!!!"), ["!!!"]);
/// ```
pub fn sentences(text: &str) -> Vec<&str> {
    fn push<'a>(text: &'a str, from: usize, to: usize, out: &mut Vec<&'a str>) {
        let piece = text[from..to].trim();
        if piece.chars().any(char::is_alphanumeric) {
            out.push(piece);
        }
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            push(text, start, i, &mut out);
            start = i + c.len_utf8();
        } else if matches!(c, '.' | '!' | '?' | '…') {
            let mut end = i + c.len_utf8();
            while let Some(&(j, n)) = chars.peek() {
                if matches!(n, '.' | '!' | '?' | '…' | ')' | '"' | '»' | '\'') {
                    end = j + n.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            push(text, start, end, &mut out);
            start = end;
        }
    }
    push(text, start, text.len(), &mut out);
    if out.is_empty() {
        let whole = text.trim();
        if !whole.is_empty() {
            out.push(whole);
        }
    }
    out
}

/// Every sentence of every text, flattened, with the index of the text
/// each came from: what [`pool_sentences`] pools back. The analyzer and the
/// heads' trainer both read a text this way.
pub fn sentences_of(texts: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut flat = Vec::new();
    let mut owner = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        for s in sentences(t) {
            flat.push(s.to_owned());
            owner.push(i);
        }
    }
    (flat, owner)
}

/// How many sentences each of `texts` texts has, from the `owner` that
/// [`sentences_of`] gave (the review gate hears it:
/// [`ReviewReader::review_probability`](super::ReviewReader::review_probability)).
///
/// ```
/// use metachat_analysis::mood::{sentence_counts, sentences_of};
///
/// let texts = ["One. Two!".to_owned(), "   ".to_owned(), "Three".to_owned()];
/// let (_, owner) = sentences_of(&texts);
/// assert_eq!(sentence_counts(&owner, texts.len()), [2, 0, 1]);
/// ```
pub fn sentence_counts(owner: &[usize], texts: usize) -> Vec<usize> {
    let mut counts = vec![0; texts];
    for &i in owner {
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    counts
}

/// Each text's mean of its sentences' vectors (`owner` from
/// [`sentences_of`]), scaled to unit length; a text without sentences is
/// `dims` zeros.
pub fn pool_sentences(
    vectors: &[Vec<f32>],
    owner: &[usize],
    texts: usize,
    dims: usize,
) -> Vec<Vec<f32>> {
    let mut out = vec![vec![0.0f32; dims]; texts];
    for (v, &i) in vectors.iter().zip(owner) {
        for (a, b) in out[i].iter_mut().zip(v) {
            *a += b;
        }
    }
    for v in &mut out {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn russian_and_ellipses() {
        assert_eq!(
            sentences("Ура!!! Я сдала… Наконец-то.\n\nмама плакала"),
            ["Ура!!!", "Я сдала…", "Наконец-то.", "мама плакала"]
        );
    }

    proptest! {
        /// Every sentence is a non-empty trimmed piece of the text, in
        /// order, and no letter of the text is lost.
        #[test]
        fn pieces_are_in_order_and_keep_every_letter(text in "\\PC{0,200}") {
            let s = sentences(&text);
            let mut at = 0;
            for piece in &s {
                prop_assert!(!piece.is_empty());
                prop_assert_eq!(piece.trim(), *piece);
                let found = text[at..].find(piece);
                prop_assert!(found.is_some());
                at += found.unwrap_or(0) + piece.len();
            }
            let letters = |t: &str| t.chars().filter(|c| c.is_alphanumeric()).count();
            let kept: usize = s.iter().map(|p| letters(p)).sum();
            prop_assert_eq!(kept, letters(&text));
        }

        /// The counts from `sentences_of`'s owners are each text's own
        /// sentence count, and they add up to the flattened sentences.
        #[test]
        fn counts_from_the_owners_are_each_texts_sentences(
            texts in proptest::collection::vec("\\PC{0,80}", 0..8),
        ) {
            let (flat, owner) = sentences_of(&texts);
            let counts = sentence_counts(&owner, texts.len());
            let own: Vec<usize> = texts.iter().map(|t| sentences(t).len()).collect();
            prop_assert_eq!(&counts, &own);
            prop_assert_eq!(counts.iter().sum::<usize>(), flat.len());
        }
    }
}
