//! The approximate index (`AnnIndex`) against the exact one: recall@10 on
//! clustered users, and exclusions (requester, erased, removed users) that
//! hold whatever the graph proposes.

use std::collections::HashSet;
use std::time::Instant;

use metachat_analysis::matching::synthetic::{synthetic_user_id, SyntheticUsers};
use metachat_analysis::matching::PersonId;
use metachat_analysis::matching::{
    AnnConfig, AnnIndex, AnnPrecision, IndexConfig, MatchError, MatchIndex, MatchVectors, MOOD_DIMS,
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

#[test]
fn a_damaged_cache_file_is_not_trusted_and_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("graph.usearch");
    std::fs::write(&path, b"not a graph at all").expect("write garbage");
    let exact = exact_index(SyntheticUsers::clustered(16, 10, 11), 500);
    let (built, loaded) =
        AnnIndex::build_cached(exact.clone(), AnnConfig::default(), &path).expect("rebuild");
    assert!(!loaded, "garbage is never loaded");
    let (again, loaded) = AnnIndex::build_cached(exact, AnnConfig::default(), &path).expect("load");
    assert!(loaded, "the damaged file was replaced by the built graph");
    let user = synthetic_user_id(3);
    assert_eq!(built.top_k(user, K), again.top_k(user, K));
}

#[test]
fn a_graph_that_cannot_be_saved_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dir").join("graph.usearch");
    let exact = exact_index(SyntheticUsers::clustered(16, 10, 12), 200);
    match AnnIndex::build_cached(exact.clone(), AnnConfig::default(), &missing) {
        Err(MatchError::Ann { reason }) => assert!(reason.contains("sav"), "{reason}"),
        other => panic!("expected a save error, got {other:?}"),
    }
    let ann = AnnIndex::build(exact, AnnConfig::default()).expect("build");
    assert!(matches!(
        ann.save_graph(&missing),
        Err(MatchError::Ann { .. })
    ));
}

#[test]
fn connectivity_out_of_range_is_refused_and_the_knobs_are_kept() {
    for m in [0, 1, 257] {
        assert!(
            matches!(
                AnnConfig::new().with_connectivity(m),
                Err(MatchError::InvalidConfig { .. })
            ),
            "M = {m}"
        );
    }
    let c = AnnConfig::new()
        .with_connectivity(8)
        .expect("M 8")
        .with_ef_construction(0)
        .with_ef(0)
        .with_candidates(5)
        .with_precision(AnnPrecision::I8);
    assert_eq!(
        (
            c.connectivity(),
            c.ef_construction(),
            c.ef(),
            c.candidates()
        ),
        (8, 1, 1, 5),
        "ef and ef_construction are at least 1"
    );
    assert_eq!(c.precision(), AnnPrecision::I8);

    let mut ann = AnnIndex::build(
        exact_index(SyntheticUsers::clustered(16, 10, 13), 300),
        AnnConfig::default(),
    )
    .expect("build");
    ann.set_ef(7);
    ann.set_candidates(9);
    assert_eq!((ann.config().ef(), ann.config().candidates()), (7, 9));
    // Few candidates still give k answers (at least k + 1 are asked for).
    let user = synthetic_user_id(0);
    assert_eq!(ann.top_k(user, K).expect("query").len(), K);
}

#[test]
fn every_storage_precision_answers_with_exact_scores() {
    let exact = exact_index(SyntheticUsers::clustered(16, 10, 14), 2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut saved = Vec::new();
    for p in [AnnPrecision::F32, AnnPrecision::F16, AnnPrecision::I8] {
        let ann =
            AnnIndex::build(exact.clone(), AnnConfig::new().with_precision(p)).expect("build");
        assert_eq!(ann.len(), 2_000);
        let r = recall(&ann, 100);
        assert!(r >= 0.9, "{p:?}: recall@10 {r:.3}");
        // Scores come from the exact rows whatever the graph stores.
        let user = synthetic_user_id(5);
        let exact_scores: Vec<_> = exact.top_k(user, K).expect("exact");
        for m in ann.top_k(user, K).expect("ann") {
            if let Some(e) = exact_scores.iter().find(|e| e.user == m.user) {
                assert_eq!(e.similarity, m.similarity, "{p:?}");
            }
        }
        let path = dir.path().join(format!("{p:?}.usearch"));
        ann.save_graph(&path).expect("save");
        saved.push(std::fs::metadata(&path).expect("saved graph").len());
    }
    // The graph keeps its copy of the rows at the precision asked for.
    assert!(
        saved[0] > saved[1] && saved[1] > saved[2],
        "saved graph bytes, f32 > f16 > i8: {saved:?}"
    );
}
