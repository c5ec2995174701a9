//! The approximate index (`AnnIndex`) against the exact one: recall@10 on
//! clustered users, and exclusions (requester, erased, removed users) that
//! hold whatever the graph proposes.

use std::collections::HashSet;
use std::time::Instant;

use metachat_analysis::matching::synthetic::{synthetic_user_id, SyntheticUsers};
use metachat_analysis::matching::PersonId;
use metachat_analysis::matching::{
    AnnConfig, AnnIndex, IndexConfig, MatchError, MatchIndex, MatchVectors, MOOD_DIMS,
};
use proptest::prelude::*;

const K: usize = 10;

fn exact_index(gen: SyntheticUsers, n: usize) -> MatchIndex {
    let mut index = MatchIndex::new(IndexConfig::new(gen.theme_dim()).expect("config"));
    index.reserve(n);
    for (i, v) in gen.take(n).enumerate() {
        index
            .upsert(synthetic_user_id(i), &v.expect("synthetic vectors"))
            .expect("upsert");
    }
    index
}

/// Mean recall@k of `ann` against its exact index over `queries` requesters.
fn recall(ann: &AnnIndex, queries: usize) -> f64 {
    let n = ann.len();
    let mut hits = 0usize;
    let mut total = 0usize;
    for q in 0..queries {
        let user = synthetic_user_id((q * 7919 + 13) % n);
        let exact: HashSet<PersonId> = ann
            .exact()
            .top_k(user, K)
            .expect("exact")
            .iter()
            .map(|m| m.user)
            .collect();
        let approx = ann.top_k(user, K).expect("ann");
        assert_eq!(approx.len(), exact.len());
        hits += approx.iter().filter(|m| exact.contains(&m.user)).count();
        total += exact.len();
    }
    #[allow(clippy::cast_precision_loss)]
    let r = hits as f64 / total.max(1) as f64;
    r
}

#[test]
fn recall_at_10_on_20000_clustered_users_is_at_least_095() {
    let n = 20_000;
    let exact = exact_index(SyntheticUsers::clustered(384, 200, 7), n);
    let t = Instant::now();
    let ann = AnnIndex::build(exact, AnnConfig::default()).expect("build");
    let built = t.elapsed();
    let r = recall(&ann, 300);
    println!(
        "20,000 clustered users: graph built in {:.1} s, recall@10 {r:.4}",
        built.as_secs_f64()
    );
    assert!(r >= 0.95, "recall@10 {r} < 0.95");
}

#[test]
fn scores_are_exact_and_ranked() {
    let exact = exact_index(SyntheticUsers::clustered(32, 20, 3), 2_000);
    let ann = AnnIndex::build(exact, AnnConfig::default()).expect("build");
    let user = synthetic_user_id(5);
    let approx = ann.top_k(user, K).expect("ann");
    let exact = ann.exact().top_k(user, 2_000).expect("exact");
    for m in &approx {
        let e = exact.iter().find(|e| e.user == m.user).expect("indexed");
        assert_eq!(m.similarity, e.similarity);
        assert_eq!(m.explanation, e.explanation);
    }
    assert!(approx
        .windows(2)
        .all(|w| w[0].similarity.score >= w[1].similarity.score));
}

#[test]
fn erased_and_unknown_requesters_are_refused() {
    let exact = exact_index(SyntheticUsers::uniform(8, 1), 50);
    let mut ann = AnnIndex::build(exact, AnnConfig::default()).expect("build");
    let user = synthetic_user_id(3);
    assert!(ann.erase(user));
    assert_eq!(ann.top_k(user, 3), Err(MatchError::Erased(user)));
    let stranger = uuid::Uuid::new_v4();
    assert_eq!(
        ann.top_k(stranger, 3),
        Err(MatchError::UnknownUser(stranger))
    );
    let v = MatchVectors::new(Some(&[1.0; 8]), None, Vec::new()).expect("vectors");
    assert_eq!(ann.upsert(user, &v), Err(MatchError::Erased(user)));
}

#[test]
fn a_cached_graph_is_reloaded_for_the_same_rows_and_rebuilt_for_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("graph.usearch");
    let exact = exact_index(SyntheticUsers::clustered(16, 10, 9), 1_000);
    let (first, loaded) =
        AnnIndex::build_cached(exact.clone(), AnnConfig::default(), &path).expect("build");
    assert!(!loaded);
    let (second, loaded) =
        AnnIndex::build_cached(exact, AnnConfig::default(), &path).expect("load");
    assert!(loaded);
    let user = synthetic_user_id(1);
    assert_eq!(
        first.top_k(user, K).expect("first"),
        second.top_k(user, K).expect("second")
    );
    // Other rows of the same size: the saved graph does not fit, rebuilt.
    let other = exact_index(SyntheticUsers::clustered(16, 10, 10), 1_000);
    let (_, loaded) = AnnIndex::build_cached(other, AnnConfig::default(), &path).expect("rebuild");
    assert!(!loaded);
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(usize, Vec<f32>, [f32; MOOD_DIMS]),
    Remove(usize),
    Erase(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..40usize, prop::collection::vec(-1.0f32..1.0, 6), prop::array::uniform7(0.01f32..1.0))
            .prop_map(|(u, t, m)| Op::Upsert(u, t, m)),
        1 => (0..40usize).prop_map(Op::Remove),
        1 => (0..40usize).prop_map(Op::Erase),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the graph proposes, a query never returns the requester, an
    /// erased or a removed user, and returns min(k, eligible) users: the
    /// same set as the exact index when the exact scores have no ties.
    #[test]
    fn exclusions_hold_over_random_histories(
        ops in prop::collection::vec(op(), 1..80),
        k in 0usize..12,
        ef in 1usize..40,
        candidates in 0usize..30,
    ) {
        let config = AnnConfig::default().with_ef(ef).with_candidates(candidates);
        let mut ann = AnnIndex::new(IndexConfig::new(6).expect("config"), config).expect("new");
        let mut erased = HashSet::new();
        let mut present = HashSet::new();
        for op in ops {
            match op {
                Op::Upsert(u, t, m) => {
                    let v = MatchVectors::new(Some(&t), Some(&m), Vec::new());
                    let Ok(v) = v else { continue };
                    let r = ann.upsert(synthetic_user_id(u), &v);
                    if erased.contains(&u) {
                        prop_assert_eq!(r, Err(MatchError::Erased(synthetic_user_id(u))));
                    } else {
                        prop_assert!(r.is_ok());
                        present.insert(u);
                    }
                }
                Op::Remove(u) => {
                    prop_assert_eq!(ann.remove(synthetic_user_id(u)), present.remove(&u));
                }
                Op::Erase(u) => {
                    prop_assert_eq!(ann.erase(synthetic_user_id(u)), present.remove(&u));
                    erased.insert(u);
                }
            }
        }
        prop_assert_eq!(ann.len(), present.len());
        for &u in &present {
            let me = synthetic_user_id(u);
            let got = ann.top_k(me, k).expect("query");
            prop_assert_eq!(got.len(), k.min(present.len() - 1));
            let ids: HashSet<PersonId> = got.iter().map(|m| m.user).collect();
            prop_assert_eq!(ids.len(), got.len());
            for m in &got {
                prop_assert!(m.user != me);
                prop_assert!(present.iter().any(|&p| synthetic_user_id(p) == m.user));
                prop_assert!(!erased.iter().any(|&e| synthetic_user_id(e) == m.user));
            }
        }
    }
}
