//! Approximate top-k over a [`MatchIndex`]: an HNSW graph (usearch) proposes
//! candidates, the exact f32 rows rank them.
//!
//! # Why an approximate index, and why usearch
//!
//! The exact index answers top-10 among 100,000 users within the 10 ms
//! target, but among 1,000,000 it reads 1.56 GB (0.4 GB with the i8
//! prefilter) per query: CPU p99 ≈ 115 ms, ≈ 57 ms wall on 2 cores at best,
//! over the 50 ms. So the approximate index is built.
//!
//! The graph is [usearch](https://github.com/unum-cloud/USearch)'s HNSW
//! (crate `usearch`, Unum; Apache-2.0, released every few weeks, used by
//! ClickHouse, DuckDB and others). Against the pure-Rust candidates:
//! - it builds a graph in parallel from many threads through `&self`
//!   (`hnsw_rs` does too, `instant-distance` builds in one batch and
//!   cannot add or remove a point afterwards, which a live index must);
//! - it removes points (needed for erasure) and saves / loads a graph to a
//!   file, so a benchmark or a server start does not rebuild 1M points;
//! - it stores vectors as f16 (or i8), halving (quartering) the graph's copy
//!   of the 1.56 GB matrix, with SIMD kernels chosen at run time
//!   (AVX-512/AVX2/NEON through NumKong) although this workspace targets
//!   baseline x86-64;
//! - it is a C++ header library behind `cxx`: one C++ file to compile (a C++17
//!   compiler is needed, as it is for `tokenizers`' dependencies already).
//!
//! # How a query runs
//!
//! The score is an inner product of rows `[theme, √p]` with the query
//! scaled by the weights (see the [module docs](super)). The graph holds
//! each row as `[√w_t·theme, √w_m·√p]`; the dot product of two such rows is
//! the score, and they are unit vectors whenever both parts are present, so
//! inner-product distance (`1 − dot`) is also cosine distance. A query:
//!
//! 1. asks the graph for the best `max(k + 1, candidates)` keys
//!    ([`AnnConfig::with_candidates`], default 64), with a filter that drops
//!    the requester and any key no longer mapped to an indexed user;
//! 2. maps keys to users, drops the requester, erased and removed users
//!    again (the filter is a hint; this check is the rule);
//! 3. re-scores those candidates exactly from the f32 rows of the
//!    [`MatchIndex`] and keeps the best `k`, explained like an exact answer.
//!    So every returned score is exact; only a missed user can differ;
//! 4. if fewer than `min(k, eligible users)` remain (tiny indices, a graph
//!    cut by many removals), falls back to the exact scan.
//!
//! The quality knob is `ef` ([`AnnConfig::with_ef`], changeable with
//! [`AnnIndex::set_ef`]): the size of the graph search's candidate list.
//! Larger is slower and more accurate; usearch raises it to the number of
//! candidates asked for when lower.
//!
//! # Measured recall (benches/matching.rs, 2 shared cores, f16 graph, M 16,
//! ef_construction 128, candidates re-scored = ef, 1,000 requesters)
//!
//! | users | data | ef 32 | ef 64 | ef 128 | ef 256 |
//! |---|---|---|---|---|---|
//! | 100,000 | clustered | 1.000 | 1.000 | 1.000 | 1.000 |
//! | 1,000,000 | clustered | 0.912 | 0.978 | 0.998 | 0.999 |
//! | 100,000 | uniform | 0.466 | 0.499 | 0.551 | 0.646 |
//! | 1,000,000 | uniform | 0.095 | 0.129 | 0.167 | 0.219 |
//!
//! On clustered users (see [`synthetic`](super::synthetic)) `ef` 64 reaches
//! the 0.95 target among 1M users (p99 0.84 ms wall, against 53 ms for the
//! exact scan on the same data); the default 128 leaves a margin (0.998,
//! p99 1.3 ms). On uniform random vectors the graph is of
//! little use (the 10 nearest are barely nearer than the rest): among
//! 100,000 uniform users ef 512 / 1024 / 2048 give 0.779 / 0.892 / 0.966,
//! the last at p99 13.4 ms, slower than the exact scan (9.8 ms). Build time: 100,000 users ≈ 1 minute, 1,000,000 ≈ 9 (clustered) to 21
//! (uniform) minutes on 2 shared cores (hence [`AnnIndex::build_cached`]); the graph takes
//! ≈ 1.3 GB for 1M users beside the exact index's 1.56 GB (+ 0.4 GB of i8
//! codes).
//!
//! # Keys
//!
//! A graph key is a `u64` handed out once per inserted row; an upsert of a
//! user removes their old key from the graph and inserts the new row under
//! a fresh key, so a key never points at stale vectors. A graph built by
//! [`AnnIndex::build`] uses the slot numbers of the exact index at build
//! time as keys, which is what lets [`AnnIndex::build_cached`] reload a
//! saved graph for the same exact index.

use std::collections::HashMap;
use std::path::Path;

use crate::matching::PersonId;
use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::error::{MatchError, Result};
use super::index::{IndexConfig, Match, MatchIndex};
use super::profile::{MatchProfile, MatchVectors};

/// Default HNSW connectivity (`M`: links per node and layer).
pub const DEFAULT_CONNECTIVITY: usize = 16;
/// Default candidate-list size while inserting (`ef_construction`).
pub const DEFAULT_EF_CONSTRUCTION: usize = 128;
/// Default candidate-list size while searching (`ef`).
pub const DEFAULT_EF: usize = 128;
/// Default number of graph candidates re-scored exactly per query.
pub const DEFAULT_CANDIDATES: usize = 64;

/// How the graph stores its copy of the rows (the exact index keeps f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AnnPrecision {
    /// 4 bytes a value: 1.56 GB for 1M users of 391 values.
    F32,
    /// IEEE half, 2 bytes a value (the default; the graph only proposes
    /// candidates, so its rounding does not reach the returned scores).
    #[default]
    F16,
    /// 1 byte a value, scaled by 127 (for unit rows).
    I8,
}

impl AnnPrecision {
    fn scalar(self) -> ScalarKind {
        match self {
            AnnPrecision::F32 => ScalarKind::F32,
            AnnPrecision::F16 => ScalarKind::F16,
            AnnPrecision::I8 => ScalarKind::I8,
        }
    }
}

/// Parameters of the HNSW graph and of approximate queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnConfig {
    connectivity: usize,
    ef_construction: usize,
    ef: usize,
    candidates: usize,
    precision: AnnPrecision,
}

impl Default for AnnConfig {
    fn default() -> Self {
        AnnConfig {
            connectivity: DEFAULT_CONNECTIVITY,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            ef: DEFAULT_EF,
            candidates: DEFAULT_CANDIDATES,
            precision: AnnPrecision::default(),
        }
    }
}

impl AnnConfig {
    /// The defaults: `M` 16, `ef_construction` 128, `ef` 128, 64 candidates,
    /// f16 storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links per node (`M`, 2 to 256); more: better recall, more memory,
    /// slower build. Refused out of range.
    pub fn with_connectivity(mut self, m: usize) -> Result<Self> {
        if !(2..=256).contains(&m) {
            return Err(MatchError::InvalidConfig {
                reason: format!("HNSW connectivity must lie in 2..=256, not {m}"),
            });
        }
        self.connectivity = m;
        Ok(self)
    }

    /// Candidate-list size while building (at least 1).
    pub fn with_ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef.max(1);
        self
    }

    /// Candidate-list size while searching: the speed/recall knob (at
    /// least 1; raised to the candidates asked for at query time).
    pub fn with_ef(mut self, ef: usize) -> Self {
        self.ef = ef.max(1);
        self
    }

    /// How many graph candidates a query re-scores exactly (at least
    /// `k + 1` are always asked for).
    pub fn with_candidates(mut self, n: usize) -> Self {
        self.candidates = n;
        self
    }

    /// How the graph stores its rows.
    pub fn with_precision(mut self, p: AnnPrecision) -> Self {
        self.precision = p;
        self
    }

    /// `M`.
    pub fn connectivity(&self) -> usize {
        self.connectivity
    }

    /// `ef_construction`.
    pub fn ef_construction(&self) -> usize {
        self.ef_construction
    }

    /// `ef`.
    pub fn ef(&self) -> usize {
        self.ef
    }

    /// Candidates re-scored per query.
    pub fn candidates(&self) -> usize {
        self.candidates
    }

    /// Storage of the graph's rows.
    pub fn precision(&self) -> AnnPrecision {
        self.precision
    }
}

fn ann_err(what: &str, e: impl std::fmt::Display) -> MatchError {
    MatchError::Ann {
        reason: format!("{what}: {e}"),
    }
}

/// Approximate top-k similar users: a [`MatchIndex`] (the f32 rows, the
/// recent entries, the erased set) plus an HNSW graph over the same rows.
/// See the [module docs](self) for how a query runs.
///
/// Same contract as the exact index: the requester and erased users are
/// never returned, answers are [`Match`]es with exact scores and
/// explanations, bad input is a typed error. Not `Clone` (the graph is a
/// C++ object); `Send + Sync`, queries take `&self`.
pub struct AnnIndex {
    exact: MatchIndex,
    graph: Index,
    config: AnnConfig,
    key_of: HashMap<PersonId, u64>,
    user_of: HashMap<u64, PersonId>,
    next_key: u64,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("exact", &self.exact)
            .field("config", &self.config)
            .field("graph_size", &self.graph.size())
            .finish_non_exhaustive()
    }
}

fn new_graph(index: &IndexConfig, config: &AnnConfig) -> Result<Index> {
    let options = IndexOptions {
        dimensions: index.stride(),
        metric: MetricKind::IP,
        quantization: config.precision.scalar(),
        connectivity: config.connectivity,
        expansion_add: config.ef_construction,
        expansion_search: config.ef,
        multi: false,
    };
    Index::new(&options).map_err(|e| ann_err("creating the HNSW graph", e))
}

impl AnnIndex {
    /// An empty index.
    pub fn new(index: IndexConfig, config: AnnConfig) -> Result<Self> {
        let graph = new_graph(&index, &config)?;
        Ok(AnnIndex {
            exact: MatchIndex::new(index),
            graph,
            config,
            key_of: HashMap::new(),
            user_of: HashMap::new(),
            next_key: 0,
        })
    }

    /// Builds the graph over every user of `exact` (on rayon's threads),
    /// keyed by their slots.
    pub fn build(exact: MatchIndex, config: AnnConfig) -> Result<Self> {
        let graph = new_graph(exact.config(), &config)?;
        let n = exact.len();
        graph
            .reserve_capacity_and_threads(n.max(1), rayon::current_num_threads().max(1))
            .map_err(|e| ann_err("reserving the HNSW graph", e))?;
        let mut this = Self::with_graph(exact, graph, config);
        (0..n).into_par_iter().try_for_each(|slot| -> Result<()> {
            let row = this.graph_row_of_slot(slot)?;
            this.graph
                .add(slot as u64, &row)
                .map_err(|e| ann_err("adding to the HNSW graph", e))
        })?;
        this.next_key = n as u64;
        Ok(this)
    }

    /// [`build`](Self::build), or a graph loaded from `path` if a file there
    /// was saved for the same data (same size, options and rows — checked on
    /// a sample of rows); a built graph is saved to `path` (a failed save is
    /// returned as an error after nothing else changed). The bool is true
    /// when the graph was loaded. The caller keys `path` by what defines the
    /// data (generator, seed, size): the check is a guard, not a proof.
    pub fn build_cached(exact: MatchIndex, config: AnnConfig, path: &Path) -> Result<(Self, bool)> {
        let path_str = path
            .to_str()
            .ok_or_else(|| ann_err("graph path", "not UTF-8"))?;
        if path.exists() {
            if let Ok(graph) = new_graph(exact.config(), &config) {
                if graph.load(path_str).is_ok() {
                    graph.change_expansion_search(config.ef);
                    let this = Self::with_graph(exact, graph, config);
                    if this.graph_matches_rows() {
                        let mut this = this;
                        this.next_key = this.exact.len() as u64;
                        return Ok((this, true));
                    }
                    return Self::build_and_save(this.exact, config, path_str);
                }
            }
        }
        Self::build_and_save(exact, config, path_str)
    }

    fn build_and_save(exact: MatchIndex, config: AnnConfig, path: &str) -> Result<(Self, bool)> {
        let this = Self::build(exact, config)?;
        this.save_graph(Path::new(path))?;
        Ok((this, false))
    }

    /// Wraps a graph whose keys are the slots of `exact`.
    fn with_graph(exact: MatchIndex, graph: Index, config: AnnConfig) -> Self {
        let n = exact.len();
        let mut key_of = HashMap::with_capacity(n);
        let mut user_of = HashMap::with_capacity(n);
        for (slot, &u) in exact.users().iter().enumerate() {
            key_of.insert(u, slot as u64);
            user_of.insert(slot as u64, u);
        }
        AnnIndex {
            exact,
            graph,
            config,
            key_of,
            user_of,
            next_key: n as u64,
        }
    }

    /// True if the loaded graph has one vector per user and a sample of
    /// them equals the rows (within the storage precision).
    fn graph_matches_rows(&self) -> bool {
        let n = self.exact.len();
        if self.graph.size() != n || self.graph.dimensions() != self.exact.config().stride() {
            return false;
        }
        let tolerance = match self.config.precision {
            AnnPrecision::F32 => 1e-6,
            AnnPrecision::F16 => 1e-3,
            AnnPrecision::I8 => 1e-2,
        };
        let samples = 64.min(n);
        let mut buf = vec![0.0f32; self.exact.config().stride()];
        (0..samples).all(|i| {
            let slot = i * n / samples.max(1);
            let Ok(row) = self.graph_row_of_slot(slot) else {
                return false;
            };
            matches!(self.graph.get(slot as u64, &mut buf), Ok(1))
                && row
                    .iter()
                    .zip(&buf)
                    .all(|(a, b)| (a - b).abs() <= tolerance)
        })
    }

    /// Saves the graph (not the exact rows) to `path`.
    pub fn save_graph(&self, path: &Path) -> Result<()> {
        let p = path
            .to_str()
            .ok_or_else(|| ann_err("graph path", "not UTF-8"))?;
        self.graph
            .save(p)
            .map_err(|e| ann_err("saving the HNSW graph", e))
    }

    /// The exact index underneath (for exact queries, or to compare).
    pub fn exact(&self) -> &MatchIndex {
        &self.exact
    }

    /// The configuration.
    pub fn config(&self) -> &AnnConfig {
        &self.config
    }

    /// Changes `ef` for later queries.
    pub fn set_ef(&mut self, ef: usize) {
        self.config.ef = ef.max(1);
        self.graph.change_expansion_search(self.config.ef);
    }

    /// Changes how many candidates later queries re-score.
    pub fn set_candidates(&mut self, n: usize) {
        self.config.candidates = n;
    }

    /// Number of indexed users.
    pub fn len(&self) -> usize {
        self.exact.len()
    }

    /// True with no users.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// Bytes the graph has allocated, as usearch reports them (its arenas:
    /// for 2,000 users the figure was the same, 16.0 MiB, at f32, f16 and
    /// i8 storage, while the saved graphs differ in size); the exact rows
    /// come on top.
    pub fn graph_memory(&self) -> usize {
        self.graph.memory_usage()
    }

    /// The graph's row for `slot`: `[√w_t·theme, √w_m·√p]`.
    fn graph_row_of_slot(&self, slot: usize) -> Result<Vec<f32>> {
        let row = self
            .exact
            .row(slot)
            .ok_or_else(|| ann_err("row", format!("slot {slot} out of range")))?;
        Ok(self.graph_row(row))
    }

    fn graph_row(&self, row: &[f32]) -> Vec<f32> {
        let dim = self.exact.config().theme_dim();
        let w = self.exact.config().weights();
        let (st, sm) = (w.theme().sqrt(), w.mood().sqrt());
        let mut out = row.to_vec();
        out[..dim].iter_mut().for_each(|x| *x *= st);
        out[dim..].iter_mut().for_each(|x| *x *= sm);
        out
    }

    fn ensure_capacity(&self) -> Result<()> {
        let (size, cap) = (self.graph.size(), self.graph.capacity());
        if size + 1 > cap {
            let want = (cap * 2).max(1024);
            self.graph
                .reserve_capacity_and_threads(want, rayon::current_num_threads().max(1))
                .map_err(|e| ann_err("growing the HNSW graph", e))?;
        }
        Ok(())
    }

    /// Adds `user` or replaces their vectors (in the exact index and the
    /// graph). Refused: an erased user, bad vectors.
    pub fn upsert(&mut self, user: PersonId, vectors: &MatchVectors) -> Result<()> {
        self.exact.upsert(user, vectors)?;
        let slot = self.exact.slot(user).ok_or(MatchError::UnknownUser(user))?;
        let row = self.graph_row_of_slot(slot)?;
        if let Some(old) = self.key_of.remove(&user) {
            self.user_of.remove(&old);
            // A failed removal leaves a key that maps to no user: filtered out.
            let _ = self.graph.remove(old);
        }
        self.ensure_capacity()?;
        let key = self.next_key;
        self.next_key += 1;
        self.graph
            .add(key, &row)
            .map_err(|e| ann_err("adding to the HNSW graph", e))?;
        self.key_of.insert(user, key);
        self.user_of.insert(key, user);
        Ok(())
    }

    /// [`upsert`](Self::upsert) with the vectors of `profile`.
    pub fn upsert_profile(&mut self, user: PersonId, profile: &MatchProfile) -> Result<()> {
        self.upsert(user, &profile.vectors())
    }

    /// Removes `user`; false if they were not indexed.
    pub fn remove(&mut self, user: PersonId) -> bool {
        if let Some(key) = self.key_of.remove(&user) {
            self.user_of.remove(&key);
            let _ = self.graph.remove(key);
        }
        self.exact.remove(user)
    }

    /// Removes `user` for good (see [`MatchIndex::erase`]).
    pub fn erase(&mut self, user: PersonId) -> bool {
        if let Some(key) = self.key_of.remove(&user) {
            self.user_of.remove(&key);
            let _ = self.graph.remove(key);
        }
        self.exact.erase(user)
    }

    /// The `k` users most similar to the indexed `user`, best first (scores
    /// exact, the set approximate). Refused: an erased or unknown user.
    pub fn top_k(&self, user: PersonId, k: usize) -> Result<Vec<Match>> {
        if self.exact.is_erased(user) {
            return Err(MatchError::Erased(user));
        }
        let slot = self.exact.slot(user).ok_or(MatchError::UnknownUser(user))?;
        let row = self
            .exact
            .row(slot)
            .ok_or(MatchError::UnknownUser(user))?
            .to_vec();
        let recent = self.exact.recent_of(slot);
        self.search(&row, recent, k, Some(user))
    }

    /// The `k` users most similar to `query` (need not be indexed),
    /// excluding `exclude`.
    pub fn top_k_for(
        &self,
        query: &MatchVectors,
        k: usize,
        exclude: Option<PersonId>,
    ) -> Result<Vec<Match>> {
        let row = self.exact.encode(query)?;
        self.search(&row, query.recent(), k, exclude)
    }

    fn search(
        &self,
        row: &[f32],
        recent: &[super::profile::RecentEntry],
        k: usize,
        exclude: Option<PersonId>,
    ) -> Result<Vec<Match>> {
        let exclude_slot = exclude.and_then(|u| self.exact.slot(u));
        let eligible = self.exact.len() - usize::from(exclude_slot.is_some());
        let k = k.min(eligible);
        if k == 0 {
            return Ok(Vec::new());
        }
        // usearch searches with max(ef, count) itself.
        let count = self.config.candidates.max(k + 1);
        let excluded_key = exclude.and_then(|u| self.key_of.get(&u).copied());
        let found = self
            .graph
            .filtered_search(&self.graph_row(row), count, |key| {
                Some(key) != excluded_key && self.user_of.contains_key(&key)
            })
            .map_err(|e| ann_err("searching the HNSW graph", e))?;
        let slots = found
            .keys
            .iter()
            .filter_map(|key| self.user_of.get(key))
            .filter(|u| Some(**u) != exclude && !self.exact.is_erased(**u))
            .filter_map(|&u| self.exact.slot(u));
        let best = self.exact.rank_slots(row, recent, k, exclude_slot, slots);
        if best.len() < k {
            // The graph came back short (tiny index, many removals): exact.
            return Ok(self.exact_search(row, recent, k, exclude));
        }
        Ok(best)
    }

    fn exact_search(
        &self,
        row: &[f32],
        recent: &[super::profile::RecentEntry],
        k: usize,
        exclude: Option<PersonId>,
    ) -> Vec<Match> {
        let exclude_slot = exclude.and_then(|u| self.exact.slot(u));
        self.exact
            .rank_slots(row, recent, k, exclude_slot, 0..self.exact.len())
    }
}
