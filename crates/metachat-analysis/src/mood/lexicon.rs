//! The lexicon baseline: VADER's valence rules in Rust, plus MetaChat's own
//! emotion keywords in English and Russian. Needs no model, only the VADER
//! lexicon file (`<model dir>/vader/vader_lexicon.txt`, from the PyPI package
//! `vadersentiment` 3.3.2, fetched by `scripts/fetch-models`).
//!
//! # Valence
//! Each token found in the lexicon (or, failing that, in the emotion keyword
//! list, which is how Russian words get a valence) contributes its rating,
//! changed by VADER's rules: a negation among the three words before it
//! multiplies by −0.74 (`not`, `never`, `n't`, `не`, `нет`, `никогда`, …),
//! boosters and dampeners before it add ±0.293 (`very`, `очень`, `slightly`,
//! `немного`, …; less with distance), a word in capitals among lower-case words
//! adds ±0.733, ratings before `but`/`но` are halved and those after it grow by
//! half, `!` (up to four) and `??` add emphasis, and a few idioms (`the shit`,
//! `kind of`, `at least`) are special-cased. The sum `x` is normalised to
//! `x / sqrt(x² + 15)`, VADER's compound score, which is the [`Mood::valence`].
//!
//! # Emotions and arousal
//! Every keyword hit adds 1 to its label (more after a booster, more in
//! capitals); a negated hit of joy or love counts half for sadness, a negated
//! hit of the other labels half for neutral. Neutral starts at 0.5, joy gains
//! the positive part of the compound and sadness the negative part, and the
//! scores are normalised into the distribution. Arousal mixes the
//! distribution's arousal ([`super::arousal_of`]) with the intensity of the
//! text: `0.7 · arousal_of(distribution) + 0.3 · min(1, |compound| + emphasis)`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use metachat_core::analysis::TextAnalyzer;

use crate::mood::Mood;
use rustc_hash::{FxHashMap, FxHashSet};

use super::error::{MoodError, Result};
use super::{arousal_of, mood_from_distribution, Emotion, ValenceLabel};

const B_INCR: f32 = 0.293;
const B_DECR: f32 = -0.293;
const C_INCR: f32 = 0.733;
const N_SCALAR: f32 = -0.74;
/// VADER's normalisation constant: `x / sqrt(x² + ALPHA)`.
const ALPHA: f32 = 15.0;
/// Below this many entries the file is not the VADER lexicon (it has 7,502).
const MIN_LEXICON_ENTRIES: usize = 1000;

const NEUTRAL_PRIOR: f32 = 0.5;
const KEYWORD_FILE: &str = "crates/metachat-analysis/data/emotion_keywords.txt";
const KEYWORDS: &str = include_str!("../../data/emotion_keywords.txt");

/// Valence given to keywords that VADER does not rate, per label in
/// [`Emotion::ALL`] order.
const KEYWORD_VALENCE: [f32; 7] = [2.0, -2.0, -2.2, -1.8, 2.2, 0.5, 0.0];

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite", // VADER's list ends here; Russian follows.
    "не",
    "нет",
    "ни",
    "никогда",
    "ничуть",
    "нисколько",
    "вовсе",
    "без",
    "нельзя",
];

const BOOSTERS: &[(&str, f32)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sort of", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
    // Russian (ours).
    ("очень", B_INCR),
    ("так", B_INCR),
    ("такой", B_INCR),
    ("такая", B_INCR),
    ("слишком", B_INCR),
    ("совсем", B_INCR),
    ("совершенно", B_INCR),
    ("крайне", B_INCR),
    ("безумно", B_INCR),
    ("невероятно", B_INCR),
    ("ужасно", B_INCR),
    ("страшно", B_INCR),
    ("жутко", B_INCR),
    ("абсолютно", B_INCR),
    ("полностью", B_INCR),
    ("самый", B_INCR),
    ("самая", B_INCR),
    ("особенно", B_INCR),
    ("реально", B_INCR),
    ("капец", B_INCR),
    ("дико", B_INCR),
    ("немного", B_DECR),
    ("немножко", B_DECR),
    ("чуть", B_DECR),
    ("чуть-чуть", B_DECR),
    ("слегка", B_DECR),
    ("едва", B_DECR),
    ("почти", B_DECR),
    ("довольно", B_DECR),
    ("отчасти", B_DECR),
    ("несколько", B_DECR),
];

/// VADER's multi-word special cases (single words never match there).
const SPECIAL_CASES: &[(&[&str], f32)] = &[
    (&["the", "shit"], 3.0),
    (&["the", "bomb"], 3.0),
    (&["bad", "ass"], 1.5),
    (&["bus", "stop"], 0.0),
    (&["yeah", "right"], -2.0),
    (&["kiss", "of", "death"], -1.5),
    (&["to", "die", "for"], 3.0),
    (&["beating", "heart"], 3.5),
];

/// Contrast words: ratings before the first one are halved, after it × 1.5.
const BUT: &[&str] = &["but", "но", "однако"];

/// One token of a text, with everything the rules ask about it.
#[derive(Debug)]
struct Tok<'a> {
    lower: Cow<'a, str>,
    /// Python's `str.isupper()`: has cased letters, all upper case.
    upper: bool,
    /// The lexicon's rating, or a keyword's valence; `None` when unrated.
    val: Option<f32>,
    /// Emotion keyword labels, a bit per label in [`Emotion::ALL`] order.
    emo: u8,
    booster: f32,
    negation: bool,
}

/// The VADER compound score of a text and what arousal needs from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexiconScore {
    /// VADER's compound valence, -1..=1.
    pub compound: f32,
    /// Punctuation and capitals emphasis, 0..=1.
    pub emphasis: f32,
    /// Raw emotion scores in [`Emotion::ALL`] order, before normalisation.
    pub emotion_scores: [f32; 7],
    /// Tokens read.
    pub tokens: usize,
}

/// The model-free mood analyzer: VADER valence and keyword emotions.
///
/// ```no_run
/// # use metachat_analysis::mood::LexiconAnalyzer;
/// let lexicon = LexiconAnalyzer::from_dir("models".as_ref())?;
/// let mood = lexicon.analyze_one("I am SO happy today!!");
/// assert!(mood.valence > 0.5);
/// # Ok::<(), metachat_analysis::mood::MoodError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LexiconAnalyzer {
    lexicon: FxHashMap<Box<str>, f32>,
    boosters: FxHashMap<&'static str, f32>,
    negate: FxHashSet<&'static str>,
    keywords_exact: FxHashMap<Box<str>, u8>,
    keywords_stem: FxHashMap<Box<str>, u8>,
    stem_chars: (usize, usize),
}

impl LexiconAnalyzer {
    /// The model id stamped on results.
    pub const MODEL_ID: &'static str = "lexicon-vader-3.3.2+keywords/v1";

    /// Where the lexicon lies under a model directory.
    pub fn lexicon_path(model_dir: &Path) -> PathBuf {
        model_dir.join("vader").join("vader_lexicon.txt")
    }

    /// Loads `<model_dir>/vader/vader_lexicon.txt`.
    ///
    /// # Errors
    /// [`MoodError::MissingFile`] when it is not there, [`MoodError::Io`] when
    /// it cannot be read, [`MoodError::Corrupt`] (with the line) when it is not
    /// a VADER lexicon.
    pub fn from_dir(model_dir: &Path) -> Result<Self> {
        Self::from_lexicon_file(&Self::lexicon_path(model_dir))
    }

    /// Loads a VADER lexicon file from any path.
    ///
    /// # Errors
    /// As [`from_dir`](Self::from_dir).
    pub fn from_lexicon_file(path: &Path) -> Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MoodError::MissingFile {
                    path: path.to_owned(),
                })
            }
            Err(source) => {
                return Err(MoodError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| MoodError::Corrupt {
            path: path.to_owned(),
            reason: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        })?;
        Self::from_lexicon_str(&text, path)
    }

    /// Parses the lexicon's text (`word<TAB>rating<TAB>…` per line);
    /// `origin` names it in errors.
    ///
    /// # Errors
    /// [`MoodError::Corrupt`] for a line without a finite rating, or for a
    /// text with too few entries to be the VADER lexicon.
    pub fn from_lexicon_str(text: &str, origin: &Path) -> Result<Self> {
        let corrupt = |reason: String| MoodError::Corrupt {
            path: origin.to_owned(),
            reason,
        };
        let mut lexicon = FxHashMap::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let word = fields.next().unwrap_or_default().trim();
            let rating = fields
                .next()
                .and_then(|r| r.trim().parse::<f32>().ok())
                .filter(|r| r.is_finite());
            match rating {
                Some(r) if !word.is_empty() => {
                    lexicon.insert(word.to_lowercase().into_boxed_str(), r);
                }
                _ => {
                    return Err(corrupt(format!(
                        "line {}: expected `word<TAB>rating`, found {:?}",
                        n + 1,
                        truncate(line, 60)
                    )))
                }
            }
        }
        if lexicon.len() < MIN_LEXICON_ENTRIES {
            return Err(corrupt(format!(
                "{} entries; the VADER lexicon has about 7,500",
                lexicon.len()
            )));
        }
        let (keywords_exact, keywords_stem) = parse_keywords(KEYWORDS)?;
        let stem_chars = keywords_stem.keys().fold((usize::MAX, 0), |(lo, hi), k| {
            let n = k.chars().count();
            (lo.min(n), hi.max(n))
        });
        Ok(Self {
            lexicon,
            boosters: BOOSTERS.iter().copied().collect(),
            negate: NEGATE.iter().copied().collect(),
            keywords_exact,
            keywords_stem,
            stem_chars,
        })
    }

    /// Number of entries in the loaded lexicon.
    pub fn len(&self) -> usize {
        self.lexicon.len()
    }

    /// True when no entries are loaded (never, for a lexicon that loaded).
    pub fn is_empty(&self) -> bool {
        self.lexicon.is_empty()
    }

    /// The mood of one text; never fails. An empty text (or one with nothing
    /// but whitespace and control characters) gets valence 0, arousal 0,
    /// neutral with probability 1, confidence 0 and `windows == 0`.
    pub fn analyze_one(&self, text: &str) -> Mood {
        let score = self.score(text);
        if score.tokens == 0 {
            return super::empty_mood(Self::MODEL_ID);
        }
        let mut s = score.emotion_scores;
        s[6] += NEUTRAL_PRIOR;
        s[0] += score.compound.max(0.0);
        s[1] += (-score.compound).max(0.0);
        let total: f32 = s.iter().sum();
        let dist = s.map(|x| x / total);
        let intensity = (score.compound.abs() + score.emphasis).min(1.0);
        let arousal = 0.7 * arousal_of(&dist) + 0.3 * intensity;
        let label = ValenceLabel::with_band(score.compound, Mood::LEXICON_NEUTRAL_BAND, true);
        mood_from_distribution(
            score.compound,
            (label, None),
            arousal,
            dist,
            Self::MODEL_ID,
            1,
        )
    }

    /// VADER's compound score and the keyword emotion scores of one text.
    pub fn score(&self, text: &str) -> LexiconScore {
        let toks = self.tokenize(text);
        let n = toks.len();
        if n == 0 {
            return LexiconScore {
                compound: 0.0,
                emphasis: 0.0,
                emotion_scores: [0.0; 7],
                tokens: 0,
            };
        }
        let upper_count = toks.iter().filter(|t| t.upper).count();
        let cap_diff = upper_count > 0 && upper_count < n;

        let mut sentiments = Vec::with_capacity(n);
        for i in 0..n {
            sentiments.push(self.token_valence(&toks, i, cap_diff));
        }
        // "but": ratings before the first contrast word halve, after it grow by half.
        if let Some(bi) = toks.iter().position(|t| BUT.contains(&t.lower.as_ref())) {
            for (si, s) in sentiments.iter_mut().enumerate() {
                if si < bi {
                    *s *= 0.5;
                } else if si > bi {
                    *s *= 1.5;
                }
            }
        }
        let mut sum: f32 = sentiments.iter().sum();
        let punct = punctuation_emphasis(text);
        if sum > 0.0 {
            sum += punct;
        } else if sum < 0.0 {
            sum -= punct;
        }
        let compound = normalize(sum);

        let mut emotion_scores = [0.0f32; 7];
        for (i, t) in toks.iter().enumerate() {
            if t.emo == 0 {
                continue;
            }
            let boost: f32 = toks[i.saturating_sub(2)..i]
                .iter()
                .map(|b| b.booster.max(0.0))
                .sum();
            let caps = if t.upper && cap_diff { 1.25 } else { 1.0 };
            let weight = (1.0 + boost) * caps / t.emo.count_ones() as f32;
            let negated = toks[i.saturating_sub(3)..i].iter().any(|b| b.negation);
            for (k, slot) in emotion_scores.iter_mut().enumerate() {
                if t.emo & (1 << k) == 0 {
                    continue;
                }
                if !negated {
                    *slot += weight;
                }
            }
            if negated {
                let flips_to_sadness = t.emo & 0b1_0001 != 0; // joy or love
                let target = if flips_to_sadness { 1 } else { 6 };
                emotion_scores[target] += 0.5 * weight;
            }
        }
        let caps_emphasis = if cap_diff {
            0.1 * upper_count.min(3) as f32
        } else {
            0.0
        };
        LexiconScore {
            compound,
            emphasis: (punct + caps_emphasis).min(1.0),
            emotion_scores,
            tokens: n,
        }
    }

    fn token_valence(&self, toks: &[Tok<'_>], i: usize, cap_diff: bool) -> f32 {
        let t = &toks[i];
        let w = |j: usize| toks[j].lower.as_ref();
        if t.booster != 0.0 || (t.lower == "kind" && i + 1 < toks.len() && w(i + 1) == "of") {
            return 0.0;
        }
        let Some(base) = t.val else {
            return 0.0;
        };
        let mut v = base;
        if t.lower == "no" && i + 1 < toks.len() && toks[i + 1].val.is_some() {
            v = 0.0;
        }
        if (i > 0 && w(i - 1) == "no")
            || (i > 1 && w(i - 2) == "no")
            || (i > 2 && w(i - 3) == "no" && matches!(w(i - 1), "or" | "nor"))
        {
            v = base * N_SCALAR;
        }
        if t.upper && cap_diff {
            v += if v > 0.0 { C_INCR } else { -C_INCR };
        }
        for start_i in 0..3 {
            if i <= start_i || toks[i - start_i - 1].val.is_some() {
                continue;
            }
            let prev = &toks[i - start_i - 1];
            let mut s = prev.booster;
            if s != 0.0 {
                if v < 0.0 {
                    s = -s;
                }
                if prev.upper && cap_diff {
                    s += if v > 0.0 { C_INCR } else { -C_INCR };
                }
                s *= [1.0, 0.95, 0.9][start_i];
            }
            v += s;
            v = negation_check(v, toks, start_i, i);
            if start_i == 2 {
                v = special_idioms(v, toks, i, &self.boosters);
            }
        }
        // "least": negates unless "at least" / "very least".
        if i > 1 && toks[i - 1].val.is_none() && w(i - 1) == "least" {
            if w(i - 2) != "at" && w(i - 2) != "very" {
                v *= N_SCALAR;
            }
        } else if i > 0 && toks[i - 1].val.is_none() && w(i - 1) == "least" {
            v *= N_SCALAR;
        }
        v
    }

    fn tokenize<'a>(&self, text: &'a str) -> Vec<Tok<'a>> {
        let mut toks = Vec::with_capacity(text.len() / 5 + 1);
        for raw in split_tokens(text) {
            let stripped = raw.trim_matches(is_punct);
            // VADER keeps short tokens whole: they are likely emoticons (":)").
            let word = if stripped.chars().nth(2).is_none() {
                raw
            } else {
                stripped
            };
            let upper =
                word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase);
            let lower = normalize_word(word);
            let key: &str = lower.as_ref();
            let lexicon_val = self.lexicon.get(key).copied();
            let emo = self.keyword_labels(key);
            let val = lexicon_val.or_else(|| keyword_valence(emo));
            let booster = self.boosters.get(key).copied().unwrap_or(0.0);
            let negation = self.negate.contains(key) || key.contains("n't");
            toks.push(Tok {
                lower,
                upper,
                val,
                emo,
                booster,
                negation,
            });
        }
        toks
    }

    fn keyword_labels(&self, word: &str) -> u8 {
        if let Some(&m) = self.keywords_exact.get(word) {
            return m;
        }
        let (lo, hi) = self.stem_chars;
        // Longest matching stem wins: walk prefixes from short to long.
        let mut found = 0;
        for (k, (idx, c)) in word.char_indices().enumerate() {
            let chars = k + 1;
            if chars > hi {
                break;
            }
            if chars >= lo {
                if let Some(&m) = self.keywords_stem.get(&word[..idx + c.len_utf8()]) {
                    found = m;
                }
            }
        }
        found
    }
}

#[async_trait]
impl TextAnalyzer for LexiconAnalyzer {
    type Output = Mood;

    async fn analyze(&self, texts: &[String]) -> metachat_core::Result<Vec<Mood>> {
        Ok(texts.iter().map(|t| self.analyze_one(t)).collect())
    }

    fn model_id(&self) -> &str {
        Self::MODEL_ID
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '«' | '»' | '“' | '”' | '„' | '‘' | '’' | '…' | '—' | '–' | '¡' | '¿'
        )
}

/// Pictographs (emoji) are tokens of their own even when written together.
fn is_pictograph(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
}

/// Splits on whitespace and control characters; each pictograph is a token.
fn split_tokens(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| !(c.is_whitespace() || c.is_control()))?;
        rest = &rest[start..];
        let first = rest.chars().next()?;
        let end = if is_pictograph(first) {
            // Keep variation selectors and joiners with their pictograph.
            let mut end = first.len_utf8();
            for c in rest[end..].chars() {
                if matches!(c, '\u{FE0F}' | '\u{FE0E}' | '\u{200D}')
                    || (0x1F3FB..=0x1F3FF).contains(&(c as u32))
                {
                    end += c.len_utf8();
                } else {
                    break;
                }
            }
            end
        } else {
            rest.find(|c: char| c.is_whitespace() || c.is_control() || is_pictograph(c))
                .unwrap_or(rest.len())
        };
        let (tok, tail) = rest.split_at(end);
        rest = tail;
        Some(tok)
    })
}

/// Lower case, `ё` → `е`, without emoji variation selectors; borrows when
/// nothing changes.
fn normalize_word(word: &str) -> Cow<'_, str> {
    let needs = word
        .chars()
        .any(|c| c.is_uppercase() || matches!(c, 'ё' | '\u{FE0F}' | '\u{FE0E}' | '\u{200D}'));
    if !needs {
        return Cow::Borrowed(word);
    }
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            '\u{FE0F}' | '\u{FE0E}' | '\u{200D}' => {}
            'ё' | 'Ё' => out.push('е'),
            c => out.extend(c.to_lowercase()),
        }
    }
    Cow::Owned(out)
}

fn keyword_valence(emo: u8) -> Option<f32> {
    if emo == 0 {
        return None;
    }
    let (sum, n) = (0..7)
        .filter(|k| emo & (1 << k) != 0)
        .fold((0.0, 0u32), |(s, n), k| (s + KEYWORD_VALENCE[k], n + 1));
    Some(sum / n as f32)
}

fn normalize(score: f32) -> f32 {
    (score / (score * score + ALPHA).sqrt()).clamp(-1.0, 1.0)
}

fn punctuation_emphasis(text: &str) -> f32 {
    let (mut ep, mut qm) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'!' => ep += 1,
            b'?' => qm += 1,
            _ => {}
        }
    }
    let ep_amp = ep.min(4) as f32 * 0.292;
    let qm_amp = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f32 * 0.18,
        _ => 0.96,
    };
    ep_amp + qm_amp
}

fn negation_check(v: f32, toks: &[Tok<'_>], start_i: usize, i: usize) -> f32 {
    let w = |j: usize| toks[j].lower.as_ref();
    match start_i {
        0 => {
            if toks[i - 1].negation {
                return v * N_SCALAR;
            }
        }
        1 => {
            if w(i - 2) == "never" && matches!(w(i - 1), "so" | "this") {
                return v * 1.25;
            } else if w(i - 2) == "without" && w(i - 1) == "doubt" {
                return v;
            } else if toks[i - 2].negation {
                return v * N_SCALAR;
            }
        }
        _ => {
            if (w(i - 3) == "never" && matches!(w(i - 2), "so" | "this"))
                || matches!(w(i - 1), "so" | "this")
            {
                return v * 1.25;
            } else if w(i - 3) == "without" && (w(i - 2) == "doubt" || w(i - 1) == "doubt") {
                return v;
            } else if toks[i - 3].negation {
                return v * N_SCALAR;
            }
        }
    }
    v
}

/// VADER's special-case idioms around token `i` (called with `i >= 3`) and
/// its multi-word boosters (`kind of`, `sort of`, `just enough`).
fn special_idioms(mut v: f32, toks: &[Tok<'_>], i: usize, boosters: &FxHashMap<&str, f32>) -> f32 {
    let w = |j: usize| toks[j].lower.as_ref();
    let matches_at = |start: usize, len: usize| -> Option<f32> {
        SPECIAL_CASES.iter().find_map(|(words, val)| {
            (words.len() == len && (0..len).all(|k| w(start + k) == words[k])).then_some(*val)
        })
    };
    // Same order as VADER: onezero, twoonezero, twoone, threetwoone, threetwo.
    let before = [(i - 1, 2), (i - 2, 3), (i - 2, 2), (i - 3, 3), (i - 3, 2)];
    if let Some(val) = before.iter().find_map(|&(s, l)| matches_at(s, l)) {
        v = val;
    }
    if toks.len() > i + 1 {
        if let Some(val) = matches_at(i, 2) {
            v = val;
        }
    }
    if toks.len() > i + 2 {
        if let Some(val) = matches_at(i, 3) {
            v = val;
        }
    }
    let mut ngram = String::new();
    for (s, l) in [(i - 3, 3), (i - 3, 2), (i - 2, 2)] {
        ngram.clear();
        for k in 0..l {
            if k > 0 {
                ngram.push(' ');
            }
            ngram.push_str(w(s + k));
        }
        if let Some(b) = boosters.get(ngram.as_str()) {
            v += b;
        }
    }
    v
}

type KeywordMaps = (FxHashMap<Box<str>, u8>, FxHashMap<Box<str>, u8>);

fn parse_keywords(text: &str) -> Result<KeywordMaps> {
    let mut exact: FxHashMap<Box<str>, u8> = FxHashMap::default();
    let mut stem: FxHashMap<Box<str>, u8> = FxHashMap::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let corrupt = |reason: String| MoodError::Corrupt {
            path: PathBuf::from(KEYWORD_FILE),
            reason: format!("line {}: {reason}", n + 1),
        };
        let (label, words) = line
            .split_once(':')
            .ok_or_else(|| corrupt("expected `label: words`".into()))?;
        let k = Emotion::ALL
            .iter()
            .position(|e| e.name() == label.trim())
            .ok_or_else(|| corrupt(format!("unknown label {label:?}")))?;
        for word in words.split_whitespace() {
            let (map, w) = match word.strip_suffix('*') {
                Some(s) => (&mut stem, s),
                None => (&mut exact, word),
            };
            let w = normalize_word(w);
            *map.entry(w.as_ref().into()).or_insert(0) |= 1 << k;
        }
    }
    Ok((exact, stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> LexiconAnalyzer {
        // A synthetic lexicon: enough entries to pass the size check, with a
        // few real words and their VADER ratings.
        let mut text = String::from("good\t1.9\t0.9\t[]\nbad\t-2.5\t0.6\t[]\nhappy\t2.7\t0.8\t[]\nno\t-1.2\t0.5\t[]\n:)\t2.0\t0.5\t[]\n");
        for i in 0..MIN_LEXICON_ENTRIES {
            text.push_str(&format!("filler{i}\t0.1\t0.1\t[]\n"));
        }
        LexiconAnalyzer::from_lexicon_str(&text, Path::new("test")).expect("tiny lexicon")
    }

    #[test]
    fn vader_rules_move_the_score_the_documented_way() {
        let a = tiny();
        let plain = a.score("The book was good.").compound;
        // VADER: 1.9 / sqrt(1.9² + 15)
        assert!((plain - 1.9 / (1.9f32 * 1.9 + 15.0).sqrt()).abs() < 1e-5);
        assert!(
            a.score("The book was very good.").compound > plain,
            "booster"
        );
        assert!(a.score("The book was not good.").compound < 0.0, "negation");
        assert!(
            a.score("The book was GOOD.").compound > plain,
            "caps emphasis"
        );
        assert!(
            a.score("The book was good!!!").compound > plain,
            "exclamation"
        );
        assert!(a.score("The book was bad, but good").compound > 0.0, "but");
        assert!(
            a.score("The book was kind of good.").compound < plain,
            "dampener"
        );
    }

    #[test]
    fn russian_keywords_and_negation_get_a_valence() {
        let a = tiny();
        assert!(a.score("Я сегодня счастлива").compound > 0.3);
        assert!(a.score("Мне очень грустно").compound < -0.3);
        assert!(a.score("Мне совсем не грустно").compound > 0.0);
    }

    #[test]
    fn keywords_give_the_dominant_emotion() {
        let a = tiny();
        let cases = [
            ("I was so angry at him", crate::mood::Emotion::Anger),
            (
                "Я ужасно боюсь завтрашнего экзамена",
                crate::mood::Emotion::Fear,
            ),
            ("Люблю тебя, моя родная", crate::mood::Emotion::Love),
            (
                "Went to the shops, usual routine",
                crate::mood::Emotion::Neutral,
            ),
            ("😭😭😭", crate::mood::Emotion::Sadness),
        ];
        for (text, want) in cases {
            assert_eq!(a.analyze_one(text).dominant, want, "{text}");
        }
    }

    #[test]
    fn tokens_split_on_control_characters_and_pictographs() {
        let toks: Vec<&str> = split_tokens("a\u{0}b  c😀😀d ❤️x").collect();
        assert_eq!(toks, ["a", "b", "c", "😀", "😀", "d", "❤️", "x"]);
    }

    #[test]
    fn corrupt_lexicon_names_the_file_and_line() {
        let err = LexiconAnalyzer::from_lexicon_str(
            "good\t1.9\nbad\tnot-a-number\n",
            Path::new("x/lex.txt"),
        )
        .expect_err("corrupt");
        let msg = err.to_string();
        assert!(msg.contains("x/lex.txt") && msg.contains("line 2"), "{msg}");
    }
}
