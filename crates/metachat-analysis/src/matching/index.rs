//! [`MatchIndex`]: exact top-k over a contiguous row-major f32 matrix.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::matching::{PersonId, TextId};
use crate::mood::Emotion;
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{check_vector, MatchError, Result};
use super::kernel::{clamp_unit, cosine, dot};
use super::profile::{
    check_theme_dim, MatchProfile, MatchVectors, RecentEntry, Similarity, SimilarityWeights,
    MOOD_DIMS,
};
use super::quant::Codes;

/// Default mass both users must give an emotion for it to count as shared.
pub const DEFAULT_SHARED_EMOTION_THRESHOLD: f32 = 0.2;
/// Default number of closest entry pairs named in an explanation.
pub const DEFAULT_EXPLAINED_THEMES: usize = 3;
/// Default number of rows from which a query is split over rayon's threads.
pub const DEFAULT_PARALLEL_MIN_ROWS: usize = 32_768;
/// Rows per rayon task when a query runs in parallel.
const BLOCK_ROWS: usize = 8_192;

/// Settings of a [`MatchIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawIndexConfig")]
pub struct IndexConfig {
    theme_dim: usize,
    weights: SimilarityWeights,
    shared_emotion_threshold: f32,
    explained_themes: usize,
    parallel_min_rows: usize,
    prefilter: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct RawIndexConfig {
    theme_dim: usize,
    weights: SimilarityWeights,
    shared_emotion_threshold: f32,
    explained_themes: usize,
    parallel_min_rows: usize,
    #[serde(default = "yes")]
    prefilter: bool,
}

impl TryFrom<RawIndexConfig> for IndexConfig {
    type Error = MatchError;
    fn try_from(raw: RawIndexConfig) -> Result<Self> {
        Ok(IndexConfig::new(raw.theme_dim)?
            .with_weights(raw.weights)
            .with_shared_emotion_threshold(raw.shared_emotion_threshold)?
            .with_explained_themes(raw.explained_themes)
            .with_parallel_min_rows(raw.parallel_min_rows)
            .with_prefilter(raw.prefilter))
    }
}

impl IndexConfig {
    /// An index of `theme_dim`-dimensional theme vectors with default
    /// weights (0.6 theme, 0.4 mood), shared-emotion threshold 0.2, three
    /// explained themes, and queries over ≥ 32,768 users split over rayon's
    /// threads.
    pub fn new(theme_dim: usize) -> Result<Self> {
        check_theme_dim(theme_dim)?;
        Ok(IndexConfig {
            theme_dim,
            weights: SimilarityWeights::default(),
            shared_emotion_threshold: DEFAULT_SHARED_EMOTION_THRESHOLD,
            explained_themes: DEFAULT_EXPLAINED_THEMES,
            parallel_min_rows: DEFAULT_PARALLEL_MIN_ROWS,
            prefilter: true,
        })
    }

    /// Prune queries with the i8 copy of the matrix (default: on). The
    /// answer is the same either way (see [`MatchIndex`]); off saves a
    /// quarter of the memory and scans every f32 row.
    pub fn with_prefilter(mut self, on: bool) -> Self {
        self.prefilter = on;
        self
    }

    /// Whether queries are pruned with the i8 copy of the matrix.
    pub fn prefilter(&self) -> bool {
        self.prefilter
    }

    /// Other similarity weights.
    pub fn with_weights(mut self, weights: SimilarityWeights) -> Self {
        self.weights = weights;
        self
    }

    /// An emotion is shared when both users give it at least `threshold`
    /// of their mood mass. Refused: outside (0, 1].
    pub fn with_shared_emotion_threshold(mut self, threshold: f32) -> Result<Self> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(MatchError::InvalidConfig {
                reason: format!("shared-emotion threshold must be in (0, 1], got {threshold}"),
            });
        }
        self.shared_emotion_threshold = threshold;
        Ok(self)
    }

    /// Name at most `n` pairs of closest entries per match.
    pub fn with_explained_themes(mut self, n: usize) -> Self {
        self.explained_themes = n;
        self
    }

    /// Split a query over rayon's threads from `rows` indexed users on
    /// (`usize::MAX`: never).
    pub fn with_parallel_min_rows(mut self, rows: usize) -> Self {
        self.parallel_min_rows = rows;
        self
    }

    /// Dimension of theme vectors.
    pub fn theme_dim(&self) -> usize {
        self.theme_dim
    }

    /// The similarity weights.
    pub fn weights(&self) -> SimilarityWeights {
        self.weights
    }

    /// The shared-emotion threshold.
    pub fn shared_emotion_threshold(&self) -> f32 {
        self.shared_emotion_threshold
    }

    /// How many entry pairs an explanation names.
    pub fn explained_themes(&self) -> usize {
        self.explained_themes
    }

    /// Row count from which queries run in parallel.
    pub fn parallel_min_rows(&self) -> usize {
        self.parallel_min_rows
    }

    /// Length of one row of the matrix: theme plus mood dimensions.
    pub fn stride(&self) -> usize {
        self.theme_dim + MOOD_DIMS
    }
}

/// An emotion both users feel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SharedEmotion {
    /// The label.
    pub emotion: Emotion,
    /// Its mass in the requester's mood distribution.
    pub requester: f32,
    /// Its mass in the candidate's.
    pub candidate: f32,
}

/// A pair of entries, one of each user, whose embeddings are close.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThemePair {
    /// The requester's entry.
    pub requester_entry: TextId,
    /// The candidate's entry.
    pub candidate_entry: TextId,
    /// Cosine of their embeddings.
    pub similarity: f32,
}

/// Why a candidate was matched.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Explanation {
    /// Emotions with at least the configured mass in both distributions,
    /// strongest shared first.
    pub shared_emotions: Vec<SharedEmotion>,
    /// The closest pairs among both users' recent entries, closest first.
    pub closest_themes: Vec<ThemePair>,
}

/// One recommended user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The candidate.
    pub user: PersonId,
    /// The score (ranking key) and its parts.
    pub similarity: Similarity,
    /// Why.
    pub explanation: Explanation,
}

/// Exact top-k similar users over a contiguous row-major `f32` matrix
/// (`users × (theme_dim + 7)`).
///
/// Each row holds a user's unit theme vector followed by `√p`, the square
/// roots of their mood distribution (a unit vector too); an absent part is
/// zeros. A query row is scaled by the [`SimilarityWeights`], so one dot
/// product per row is the score of [`similarity`](super::similarity), and a
/// query reads the matrix once, keeping the best k in a bounded binary heap.
/// Ties rank by user id.
///
/// With [`IndexConfig::with_prefilter`] (the default) the index also keeps
/// an i8 copy of each row, with one scale for its theme part and one for
/// its mood part. A query first reads the codes (a quarter of the bytes),
/// bounds every row's score from below and above with a rigorous bound on
/// the quantisation error, and scores in f32 only
/// the rows whose upper bound reaches the k-th best lower bound. The
/// answer is identical to the full f32 scan (a property test checks it);
/// only the work changes.
///
/// Removal moves the last row into the hole (`swap_remove`), so the matrix
/// has no tombstones to skip or compact. [`erase`](Self::erase)d users are
/// removed and refused from then on. The index does no I/O; it serialises
/// with serde (a snapshot validated on load).
#[derive(Clone)]
pub struct MatchIndex {
    config: IndexConfig,
    rows: Vec<f32>,
    codes: Codes,
    users: Vec<PersonId>,
    recent: Vec<Vec<RecentEntry>>,
    slot_of: HashMap<PersonId, usize>,
    erased: BTreeSet<PersonId>,
}

impl std::fmt::Debug for MatchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchIndex")
            .field("config", &self.config)
            .field("users", &self.users.len())
            .field("erased", &self.erased.len())
            .finish_non_exhaustive()
    }
}

/// A candidate in the heap. Ordered so that the heap's top is the worst:
/// lower score first, then the larger user id.
#[derive(Debug, Clone, Copy)]
struct Cand {
    score: f32,
    user: PersonId,
    slot: usize,
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.user.cmp(&other.user))
    }
}

/// Adds `c` to a heap holding at most `k` candidates.
fn offer(heap: &mut BinaryHeap<Cand>, k: usize, c: Cand) {
    if heap.len() < k {
        heap.push(c);
    } else if let Some(mut worst) = heap.peek_mut() {
        if c < *worst {
            *worst = c;
        }
    }
}

/// Best `k` of `rows` (slots numbered from `first_slot`), skipping `exclude`.
fn scan(
    rows: &[f32],
    users: &[PersonId],
    first_slot: usize,
    stride: usize,
    query: &[f32],
    k: usize,
    exclude: Option<usize>,
) -> BinaryHeap<Cand> {
    let mut heap = BinaryHeap::with_capacity(k + 1);
    if k == 0 {
        return heap;
    }
    // Below `floor` a row cannot enter a full heap (ties are resolved by `offer`).
    let mut floor = f32::NEG_INFINITY;
    for (i, row) in rows.chunks_exact(stride).enumerate() {
        let score = dot(row, query);
        if score < floor || score.is_nan() {
            continue;
        }
        let slot = first_slot + i;
        if exclude == Some(slot) {
            continue;
        }
        let Some(&user) = users.get(slot) else {
            continue;
        };
        offer(&mut heap, k, Cand { score, user, slot });
        if heap.len() == k {
            floor = heap.peek().map_or(f32::NEG_INFINITY, |c| c.score);
        }
    }
    heap
}

fn merge(mut a: BinaryHeap<Cand>, b: BinaryHeap<Cand>, k: usize) -> BinaryHeap<Cand> {
    for c in b {
        offer(&mut a, k, c);
    }
    a
}

impl MatchIndex {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Self {
        MatchIndex {
            config,
            rows: Vec::new(),
            codes: Codes::new(config.theme_dim),
            users: Vec::new(),
            recent: Vec::new(),
            slot_of: HashMap::new(),
            erased: BTreeSet::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Number of indexed users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True with no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True if `user` is indexed.
    pub fn contains(&self, user: PersonId) -> bool {
        self.slot_of.contains_key(&user)
    }

    /// True if `user` was erased.
    pub fn is_erased(&self, user: PersonId) -> bool {
        self.erased.contains(&user)
    }

    /// The indexed users, in storage order.
    pub fn users(&self) -> &[PersonId] {
        &self.users
    }

    /// The matrix: [`len`](Self::len) rows of [`IndexConfig::stride`] values.
    pub fn matrix(&self) -> &[f32] {
        &self.rows
    }

    /// Reserves room for `additional` more users.
    pub fn reserve(&mut self, additional: usize) {
        self.rows
            .reserve(additional.saturating_mul(self.config.stride()));
        self.codes.reserve(additional, self.config.stride());
        self.users.reserve(additional);
        self.recent.reserve(additional);
        self.slot_of.reserve(additional);
    }

    /// Encodes `v` as a row (unweighted), checking dimensions.
    pub(crate) fn encode(&self, v: &MatchVectors) -> Result<Vec<f32>> {
        let dim = self.config.theme_dim;
        let mut row = vec![0.0f32; self.config.stride()];
        if let Some(t) = v.theme() {
            check_vector(t, dim)?;
            row[..dim].copy_from_slice(t);
        }
        if let Some(p) = v.mood() {
            check_vector(p, MOOD_DIMS)?;
            for (r, &x) in row[dim..].iter_mut().zip(p) {
                *r = x.max(0.0).sqrt();
            }
        }
        for r in v.recent() {
            check_vector(&r.embedding, dim)?;
        }
        Ok(row)
    }

    /// Adds `user` or replaces their vectors. Refused: an erased user,
    /// vectors of the wrong dimension or not finite.
    pub fn upsert(&mut self, user: PersonId, vectors: &MatchVectors) -> Result<()> {
        if self.erased.contains(&user) {
            return Err(MatchError::Erased(user));
        }
        let row = self.encode(vectors)?;
        let recent = vectors.recent().to_vec();
        let stride = self.config.stride();
        match self.slot_of.get(&user) {
            Some(&slot) => {
                let start = slot * stride;
                if let Some(dst) = self.rows.get_mut(start..start + stride) {
                    dst.copy_from_slice(&row);
                }
                self.codes.set(slot, &row);
                if let Some(r) = self.recent.get_mut(slot) {
                    *r = recent;
                }
            }
            None => {
                self.slot_of.insert(user, self.users.len());
                self.users.push(user);
                self.rows.extend_from_slice(&row);
                self.codes.push(&row);
                self.recent.push(recent);
            }
        }
        Ok(())
    }

    /// [`upsert`](Self::upsert) with the vectors of `profile`.
    pub fn upsert_profile(&mut self, user: PersonId, profile: &MatchProfile) -> Result<()> {
        self.upsert(user, &profile.vectors())
    }

    /// Removes `user`; false if they were not indexed. The last row moves
    /// into the freed one, so no tombstone is left.
    pub fn remove(&mut self, user: PersonId) -> bool {
        let Some(slot) = self.slot_of.remove(&user) else {
            return false;
        };
        let stride = self.config.stride();
        let last = self.users.len() - 1;
        if slot != last {
            self.rows
                .copy_within(last * stride..(last + 1) * stride, slot * stride);
            let moved = self.users[last];
            self.slot_of.insert(moved, slot);
        }
        self.rows.truncate(last * stride);
        self.codes.swap_remove(slot, stride);
        self.users.swap_remove(slot);
        self.recent.swap_remove(slot);
        if self.rows.capacity() > 2 * self.rows.len() + 1024 * stride {
            self.rows.shrink_to_fit();
        }
        true
    }

    /// Removes `user` for good: later upserts of them are refused and they
    /// are never returned. True if they were indexed.
    pub fn erase(&mut self, user: PersonId) -> bool {
        self.erased.insert(user);
        self.remove(user)
    }

    /// The `k` users most similar to the indexed `user`, best first,
    /// excluding `user` themself. Refused: an erased or unknown user.
    pub fn top_k(&self, user: PersonId, k: usize) -> Result<Vec<Match>> {
        if self.erased.contains(&user) {
            return Err(MatchError::Erased(user));
        }
        let slot = *self
            .slot_of
            .get(&user)
            .ok_or(MatchError::UnknownUser(user))?;
        let stride = self.config.stride();
        let row = &self.rows[slot * stride..(slot + 1) * stride];
        let recent = self.recent.get(slot).map_or(&[][..], Vec::as_slice);
        Ok(self.search(row, recent, k, Some(slot)))
    }

    /// The `k` users most similar to `query` (a profile that need not be
    /// indexed), best first, excluding `exclude` (the requester).
    pub fn top_k_for(
        &self,
        query: &MatchVectors,
        k: usize,
        exclude: Option<PersonId>,
    ) -> Result<Vec<Match>> {
        let row = self.encode(query)?;
        let slot = exclude.and_then(|u| self.slot_of.get(&u).copied());
        Ok(self.search(&row, query.recent(), k, slot))
    }

    fn search(
        &self,
        row: &[f32],
        recent: &[RecentEntry],
        k: usize,
        exclude: Option<usize>,
    ) -> Vec<Match> {
        let dim = self.config.theme_dim;
        let w = self.config.weights;
        let mut query = row.to_vec();
        query[..dim].iter_mut().for_each(|x| *x *= w.theme());
        query[dim..].iter_mut().for_each(|x| *x *= w.mood());
        let k = k.min(self.users.len());
        let heap = self.best(&query, k, exclude);
        let mut best = heap.into_vec();
        best.sort();
        best.into_iter()
            .map(|c| self.explain(row, recent, c))
            .collect()
    }

    /// The slot of an indexed user.
    pub(crate) fn slot(&self, user: PersonId) -> Option<usize> {
        self.slot_of.get(&user).copied()
    }

    /// The (unweighted) row of `slot`, or `None` past the end.
    pub(crate) fn row(&self, slot: usize) -> Option<&[f32]> {
        let stride = self.config.stride();
        self.rows.get(slot * stride..(slot + 1) * stride)
    }

    /// The recent entries kept for `slot`.
    pub(crate) fn recent_of(&self, slot: usize) -> &[RecentEntry] {
        self.recent.get(slot).map_or(&[][..], Vec::as_slice)
    }

    /// `row` scaled by the similarity weights: its dot product with a stored
    /// row is the score.
    pub(crate) fn weighted(&self, row: &[f32]) -> Vec<f32> {
        let dim = self.config.theme_dim;
        let w = self.config.weights;
        let mut query = row.to_vec();
        query[..dim].iter_mut().for_each(|x| *x *= w.theme());
        query[dim..].iter_mut().for_each(|x| *x *= w.mood());
        query
    }

    /// Exact scores of the candidate `slots` (duplicates, out-of-range slots
    /// and `exclude` skipped), best `k` first, explained: the re-ranking step
    /// of an approximate search.
    pub(crate) fn rank_slots(
        &self,
        row: &[f32],
        recent: &[RecentEntry],
        k: usize,
        exclude: Option<usize>,
        slots: impl IntoIterator<Item = usize>,
    ) -> Vec<Match> {
        let query = self.weighted(row);
        let mut heap = BinaryHeap::with_capacity(k + 1);
        let mut seen = std::collections::HashSet::new();
        if k > 0 {
            for slot in slots {
                if exclude == Some(slot) || !seen.insert(slot) {
                    continue;
                }
                let (Some(r), Some(&user)) = (self.row(slot), self.users.get(slot)) else {
                    continue;
                };
                let score = dot(r, &query);
                if !score.is_nan() {
                    offer(&mut heap, k, Cand { score, user, slot });
                }
            }
        }
        let mut best = heap.into_vec();
        best.sort();
        best.into_iter()
            .map(|c| self.explain(row, recent, c))
            .collect()
    }

    fn best(&self, query: &[f32], k: usize, exclude: Option<usize>) -> BinaryHeap<Cand> {
        let stride = self.config.stride();
        let n = self.users.len();
        let parallel = n >= self.config.parallel_min_rows && rayon::current_num_threads() > 1;
        if self.config.prefilter && k > 0 {
            let mut heap = BinaryHeap::with_capacity(k + 1);
            let blocks = parallel.then_some(BLOCK_ROWS);
            for slot in self.codes.candidates(query, k, exclude, blocks) {
                let (Some(row), Some(&user)) = (
                    self.rows.get(slot * stride..(slot + 1) * stride),
                    self.users.get(slot),
                ) else {
                    continue;
                };
                let score = dot(row, query);
                if !score.is_nan() {
                    offer(&mut heap, k, Cand { score, user, slot });
                }
            }
            return heap;
        }
        if parallel && k > 0 {
            self.rows
                .par_chunks(BLOCK_ROWS * stride)
                .enumerate()
                .map(|(b, chunk)| {
                    scan(
                        chunk,
                        &self.users,
                        b * BLOCK_ROWS,
                        stride,
                        query,
                        k,
                        exclude,
                    )
                })
                .reduce(BinaryHeap::new, |a, b| merge(a, b, k))
        } else {
            scan(&self.rows, &self.users, 0, stride, query, k, exclude)
        }
    }

    fn explain(&self, row: &[f32], recent: &[RecentEntry], c: Cand) -> Match {
        let dim = self.config.theme_dim;
        let stride = self.config.stride();
        let cand = &self.rows[c.slot * stride..(c.slot + 1) * stride];
        let similarity = Similarity {
            score: c.score.clamp(-1.0, 1.0),
            theme: clamp_unit(f64::from(dot(&row[..dim], &cand[..dim]))),
            mood: clamp_unit(f64::from(dot(&row[dim..], &cand[dim..]))).max(0.0),
        };
        let threshold = self.config.shared_emotion_threshold;
        let mut shared_emotions: Vec<SharedEmotion> = Emotion::ALL
            .iter()
            .zip(row[dim..].iter().zip(&cand[dim..]))
            .map(|(&emotion, (&a, &b))| SharedEmotion {
                emotion,
                requester: a * a,
                candidate: b * b,
            })
            .filter(|s| s.requester >= threshold && s.candidate >= threshold)
            .collect();
        shared_emotions.sort_by(|a, b| {
            b.requester
                .min(b.candidate)
                .total_cmp(&a.requester.min(a.candidate))
        });
        let mut closest_themes = Vec::new();
        let theirs = self.recent.get(c.slot).map_or(&[][..], Vec::as_slice);
        if self.config.explained_themes > 0 {
            for mine in recent {
                for other in theirs {
                    closest_themes.push(ThemePair {
                        requester_entry: mine.entry,
                        candidate_entry: other.entry,
                        similarity: cosine(&mine.embedding, &other.embedding),
                    });
                }
            }
            closest_themes.sort_by(|a, b| {
                b.similarity
                    .total_cmp(&a.similarity)
                    .then_with(|| a.requester_entry.cmp(&b.requester_entry))
                    .then_with(|| a.candidate_entry.cmp(&b.candidate_entry))
            });
            closest_themes.truncate(self.config.explained_themes);
        }
        Match {
            user: c.user,
            similarity,
            explanation: Explanation {
                shared_emotions,
                closest_themes,
            },
        }
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    config: &'a IndexConfig,
    users: &'a [PersonId],
    rows: &'a [f32],
    recent: &'a [Vec<RecentEntry>],
    erased: &'a BTreeSet<PersonId>,
}

#[derive(Deserialize)]
struct Snapshot {
    config: IndexConfig,
    users: Vec<PersonId>,
    rows: Vec<f32>,
    recent: Vec<Vec<RecentEntry>>,
    erased: BTreeSet<PersonId>,
}

impl TryFrom<Snapshot> for MatchIndex {
    type Error = MatchError;
    fn try_from(s: Snapshot) -> Result<Self> {
        let bad = |reason: String| MatchError::InvalidSnapshot { reason };
        let stride = s.config.stride();
        if Some(s.rows.len()) != s.users.len().checked_mul(stride) {
            return Err(bad(format!(
                "{} values for {} users of stride {stride}",
                s.rows.len(),
                s.users.len()
            )));
        }
        if s.recent.len() != s.users.len() {
            return Err(bad(
                "one list of recent entries per user expected".to_owned()
            ));
        }
        if let Some(i) = s.rows.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!("non-finite value at {i}")));
        }
        for r in s.recent.iter().flatten() {
            check_vector(&r.embedding, s.config.theme_dim)?;
        }
        let mut slot_of = HashMap::with_capacity(s.users.len());
        for (slot, &u) in s.users.iter().enumerate() {
            if s.erased.contains(&u) {
                return Err(MatchError::Erased(u));
            }
            if slot_of.insert(u, slot).is_some() {
                return Err(bad(format!("user {u} appears twice")));
            }
        }
        let mut codes = Codes::new(s.config.theme_dim);
        codes.reserve(s.users.len(), stride);
        for row in s.rows.chunks_exact(stride) {
            codes.push(row);
        }
        Ok(MatchIndex {
            config: s.config,
            rows: s.rows,
            codes,
            users: s.users,
            recent: s.recent,
            slot_of,
            erased: s.erased,
        })
    }
}

impl Serialize for MatchIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        SnapshotRef {
            config: &self.config,
            users: &self.users,
            rows: &self.rows,
            recent: &self.recent,
            erased: &self.erased,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MatchIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let snapshot = Snapshot::deserialize(deserializer)?;
        MatchIndex::try_from(snapshot).map_err(serde::de::Error::custom)
    }
}
