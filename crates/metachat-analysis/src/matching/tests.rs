//! Unit and property tests of profiles and the index.

use std::time::Duration;

use crate::matching::{PersonId, TextId};
use crate::mood::{Emotion, Mood};
use metachat_core::event::Timestamp;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const DAY_MICROS: u64 = 24 * 60 * 60 * 1_000_000;

fn mood(pairs: &[(Emotion, f32)]) -> Mood {
    let dominant = pairs.first().map_or(Emotion::Neutral, |p| p.0);
    Mood {
        valence: 0.0,
        valence_label: crate::mood::ValenceLabel::with_band(0.0, 0.2, false),
        valence_probability: None,
        arousal: 0.0,
        emotions: pairs.to_vec(),
        dominant,
        confidence: 1.0,
        model_id: "test".to_owned(),
        schema_version: Mood::SCHEMA_VERSION,
        windows: 1,
    }
}

fn uid(n: u128) -> PersonId {
    Uuid::from_u128(n)
}

fn eid(n: u128) -> TextId {
    Uuid::from_u128(n)
}

fn vectors(theme: Option<&[f32]>, mood: Option<&[f32; MOOD_DIMS]>) -> MatchVectors {
    MatchVectors::new(theme, mood, Vec::new()).expect("valid vectors")
}

// ---------- profiles ----------

#[test]
fn weights_are_validated_and_normalised() {
    let w = SimilarityWeights::new(3.0, 2.0).expect("valid");
    assert!((w.theme() - 0.6).abs() < 1e-6 && (w.mood() - 0.4).abs() < 1e-6);
    assert_eq!(SimilarityWeights::default(), w);
    for (t, m) in [
        (-1.0, 1.0),
        (f32::NAN, 1.0),
        (0.0, 0.0),
        (1.0, f32::INFINITY),
    ] {
        assert!(matches!(
            SimilarityWeights::new(t, m),
            Err(MatchError::InvalidWeights { .. })
        ));
    }
    let bad: Result<SimilarityWeights, _> = serde_json::from_str(r#"{"theme":-1,"mood":1}"#);
    assert!(bad.is_err());
}

#[test]
fn config_is_validated() {
    assert!(ProfileConfig::new(0).is_err());
    assert!(ProfileConfig::new(MAX_THEME_DIM + 1).is_err());
    assert!(ProfileConfig::new(4)
        .and_then(|c| c.with_half_life(Duration::ZERO))
        .is_err());
    assert!(IndexConfig::new(4)
        .and_then(|c| c.with_shared_emotion_threshold(f32::NAN))
        .is_err());
    assert!(IndexConfig::new(4)
        .and_then(|c| c.with_shared_emotion_threshold(0.0))
        .is_err());
}

#[test]
fn mood_decays_with_the_half_life() {
    let config = ProfileConfig::new(2).expect("config");
    let mut h = MoodHistory::new(&config);
    assert_eq!(h.distribution(), None);
    // Joy 14 days ago, sadness now: weights 0.5 and 1.
    h.add(Timestamp(0), &mood(&[(Emotion::Joy, 1.0)]))
        .expect("add");
    h.add(
        Timestamp(14 * DAY_MICROS),
        &mood(&[(Emotion::Sadness, 1.0)]),
    )
    .expect("add");
    let d = h.distribution().expect("distribution");
    assert!(
        (d[emotion_index(Emotion::Joy)] - 1.0 / 3.0).abs() < 1e-6,
        "{d:?}"
    );
    assert!((d[emotion_index(Emotion::Sadness)] - 2.0 / 3.0).abs() < 1e-6);
    assert_eq!(h.dominant(), Some(Emotion::Sadness));
    // Order of arrival does not matter.
    let mut g = MoodHistory::new(&config);
    g.add(
        Timestamp(14 * DAY_MICROS),
        &mood(&[(Emotion::Sadness, 1.0)]),
    )
    .expect("add");
    g.add(Timestamp(0), &mood(&[(Emotion::Joy, 1.0)]))
        .expect("add");
    let e = g.distribution().expect("distribution");
    for (a, b) in d.iter().zip(e) {
        assert!((a - b).abs() < 1e-6);
    }
    // Recency halves per half-life after the newest mood.
    let r = h.recency(Timestamp(28 * DAY_MICROS));
    assert!((r - 0.75).abs() < 1e-9, "{r}");
    // Removing the old joy leaves pure sadness.
    h.remove(Timestamp(0), &mood(&[(Emotion::Joy, 1.0)]))
        .expect("remove");
    let d = h.distribution().expect("distribution");
    assert!((d[emotion_index(Emotion::Sadness)] - 1.0).abs() < 1e-6);
    h.remove(
        Timestamp(14 * DAY_MICROS),
        &mood(&[(Emotion::Sadness, 1.0)]),
    )
    .expect("remove");
    assert!(h.is_empty() && h.distribution().is_none());
    assert_eq!(
        h.remove(Timestamp(0), &mood(&[(Emotion::Joy, 1.0)])),
        Err(MatchError::EmptyMood)
    );
}

#[test]
fn bad_moods_are_refused_and_change_nothing() {
    let config = ProfileConfig::new(2).expect("config");
    let mut p = MatchProfile::new(&config);
    p.add_mood(
        Timestamp(5),
        &mood(&[(Emotion::Fear, 2.0), (Emotion::Joy, 2.0)]),
    )
    .expect("unnormalised masses are normalised");
    let before = p.clone();
    for bad in [
        mood(&[(Emotion::Joy, f32::NAN)]),
        mood(&[(Emotion::Joy, -0.1), (Emotion::Fear, 1.1)]),
        mood(&[]),
        mood(&[(Emotion::Joy, 0.0)]),
    ] {
        assert!(matches!(
            p.add_mood(Timestamp(9), &bad),
            Err(MatchError::InvalidMood { .. })
        ));
    }
    assert_eq!(p, before);
}

#[test]
fn theme_vector_adds_edits_and_removes() {
    let config = ProfileConfig::new(3)
        .expect("config")
        .with_recent_entries(2);
    let mut p = MatchProfile::new(&config);
    p.add_entry(eid(1), Timestamp(1), &[1.0, 0.0, 0.0])
        .expect("add");
    p.add_entry(eid(2), Timestamp(2), &[0.0, 1.0, 0.0])
        .expect("add");
    let t = p.theme().direction().expect("theme");
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert!((t[0] - h).abs() < 1e-6 && (t[1] - h).abs() < 1e-6 && t[2] == 0.0);
    p.edit_entry(eid(1), Timestamp(3), &[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0])
        .expect("edit");
    let t = p.theme().direction().expect("theme");
    assert!((t[2] - h).abs() < 1e-6 && t[0].abs() < 1e-6);
    // Recent entries: newest first, capped at 2.
    p.add_entry(eid(3), Timestamp(4), &[0.0, 0.0, 1.0])
        .expect("add");
    let ids: Vec<_> = p.recent().iter().map(|r| r.entry).collect();
    assert_eq!(ids, vec![eid(3), eid(1)]);
    p.remove_entry(eid(3), &[0.0, 0.0, 1.0]).expect("remove");
    p.remove_entry(eid(1), &[0.0, 0.0, 1.0]).expect("remove");
    p.remove_entry(eid(2), &[0.0, 1.0, 0.0]).expect("remove");
    assert!(p.theme().is_empty() && p.theme().direction().is_none());
    assert_eq!(
        p.remove_entry(eid(2), &[0.0, 1.0, 0.0]),
        Err(MatchError::EmptyTheme)
    );
    assert!(p.recent().is_empty());
}

#[test]
fn bad_embeddings_are_typed_errors() {
    let config = ProfileConfig::new(3).expect("config");
    let mut p = MatchProfile::new(&config);
    assert_eq!(
        p.add_entry(eid(1), Timestamp(1), &[1.0, 0.0]),
        Err(MatchError::Dimension {
            expected: 3,
            actual: 2
        })
    );
    assert_eq!(
        p.add_entry(eid(1), Timestamp(1), &[1.0, f32::NAN, 0.0]),
        Err(MatchError::NonFinite { index: 1 })
    );
    assert_eq!(
        p.add_entry(eid(1), Timestamp(1), &[f32::INFINITY, 0.0, 0.0]),
        Err(MatchError::NonFinite { index: 0 })
    );
    p.add_entry(eid(1), Timestamp(1), &[1.0, 0.0, 0.0])
        .expect("add");
    let before = p.clone();
    assert!(p
        .edit_entry(
            eid(1),
            Timestamp(2),
            &[1.0, 0.0, 0.0],
            &[f32::NAN, 0.0, 0.0]
        )
        .is_err());
    assert_eq!(p, before);
    assert!(MatchVectors::new(Some(&[f32::NAN]), None, Vec::new()).is_err());
    assert!(MatchVectors::new(
        None,
        Some(&[-1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        Vec::new()
    )
    .is_err());
    assert!(MatchVectors::new(None, Some(&[0.0; MOOD_DIMS]), Vec::new()).is_err());
}

#[test]
fn bhattacharyya_is_one_for_equal_and_zero_for_disjoint() {
    let mut p = [0.0; MOOD_DIMS];
    p[0] = 0.5;
    p[1] = 0.5;
    let mut q = [0.0; MOOD_DIMS];
    q[2] = 1.0;
    assert!((mood_similarity(&p, &p) - 1.0).abs() < 1e-6);
    assert_eq!(mood_similarity(&p, &q), 0.0);
    let mut r = [0.0; MOOD_DIMS];
    r[0] = 1.0;
    assert!((mood_similarity(&p, &r) - 0.5f32.sqrt()).abs() < 1e-6);
}

// ---------- index ----------

fn index(dim: usize) -> MatchIndex {
    MatchIndex::new(IndexConfig::new(dim).expect("config"))
}

#[test]
fn empty_index_and_k_zero_answer_empty() {
    let mut idx = index(2);
    let q = vectors(Some(&[1.0, 0.0]), None);
    assert_eq!(idx.top_k_for(&q, 10, None), Ok(Vec::new()));
    assert_eq!(idx.top_k(uid(1), 3), Err(MatchError::UnknownUser(uid(1))));
    idx.upsert(uid(1), &q).expect("upsert");
    idx.upsert(uid(2), &q).expect("upsert");
    assert_eq!(idx.top_k(uid(1), 0), Ok(Vec::new()));
    let all = idx.top_k(uid(1), 1000).expect("query");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].user, uid(2));
}

#[test]
fn index_refuses_bad_vectors_and_erased_users() {
    let mut idx = index(2);
    let ok = vectors(Some(&[1.0, 0.0]), None);
    assert_eq!(
        idx.upsert(uid(1), &vectors(Some(&[1.0, 0.0, 0.0]), None)),
        Err(MatchError::Dimension {
            expected: 2,
            actual: 3
        })
    );
    let bad_recent = MatchVectors::new(
        Some(&[1.0, 0.0]),
        None,
        vec![RecentEntry {
            entry: eid(1),
            at: Timestamp(0),
            embedding: vec![1.0],
        }],
    )
    .expect("vectors");
    assert!(matches!(
        idx.upsert(uid(1), &bad_recent),
        Err(MatchError::Dimension { .. })
    ));
    assert!(idx.is_empty());
    idx.upsert(uid(1), &ok).expect("upsert");
    idx.upsert(uid(2), &ok).expect("upsert");
    assert!(idx.erase(uid(2)));
    assert_eq!(idx.upsert(uid(2), &ok), Err(MatchError::Erased(uid(2))));
    assert_eq!(idx.top_k(uid(2), 1), Err(MatchError::Erased(uid(2))));
    assert!(idx.top_k(uid(1), 5).expect("query").is_empty());
    assert!(idx
        .top_k_for(&vectors(Some(&[1.0, 0.0, 0.0]), None), 1, None)
        .is_err());
    // Erasing someone never indexed still bars them.
    assert!(!idx.erase(uid(3)));
    assert_eq!(idx.upsert(uid(3), &ok), Err(MatchError::Erased(uid(3))));
}

#[test]
fn explanation_names_shared_emotions_and_closest_entries() {
    let config = ProfileConfig::new(3).expect("config");
    let mut idx = index(3);
    let mut ann = MatchProfile::new(&config);
    ann.add_entry(eid(10), Timestamp(1), &[1.0, 0.0, 0.0])
        .expect("add");
    ann.add_entry(eid(11), Timestamp(2), &[0.0, 1.0, 0.0])
        .expect("add");
    ann.add_mood(
        Timestamp(1),
        &mood(&[(Emotion::Joy, 0.5), (Emotion::Fear, 0.5)]),
    )
    .expect("mood");
    let mut bob = MatchProfile::new(&config);
    bob.add_entry(eid(20), Timestamp(1), &[0.0, 0.8, 0.6])
        .expect("add");
    bob.add_entry(eid(21), Timestamp(2), &[0.0, 0.0, 1.0])
        .expect("add");
    bob.add_mood(
        Timestamp(1),
        &mood(&[
            (Emotion::Joy, 0.3),
            (Emotion::Fear, 0.6),
            (Emotion::Anger, 0.1),
        ]),
    )
    .expect("mood");
    idx.upsert_profile(uid(1), &ann).expect("upsert");
    idx.upsert_profile(uid(2), &bob).expect("upsert");
    let m = idx.top_k(uid(1), 1).expect("query");
    let e = &m[0].explanation;
    let shared: Vec<_> = e.shared_emotions.iter().map(|s| s.emotion).collect();
    assert_eq!(shared, vec![Emotion::Fear, Emotion::Joy]);
    assert_eq!(e.closest_themes[0].requester_entry, eid(11));
    assert_eq!(e.closest_themes[0].candidate_entry, eid(20));
    assert!((e.closest_themes[0].similarity - 0.8).abs() < 1e-6);
    assert_eq!(e.closest_themes.len(), DEFAULT_EXPLAINED_THEMES);
    // The index score is the profile similarity.
    let s = similarity(&ann.vectors(), &bob.vectors(), SimilarityWeights::default());
    assert!((m[0].similarity.score - s.score).abs() < 1e-6);
    assert!((m[0].similarity.theme - s.theme).abs() < 1e-6);
    assert!((m[0].similarity.mood - s.mood).abs() < 1e-6);
}

#[test]
fn corrupt_snapshots_are_refused() {
    let mut idx = index(2);
    idx.upsert(uid(1), &vectors(Some(&[1.0, 0.0]), None))
        .expect("upsert");
    let json = serde_json::to_value(&idx).expect("serialise");
    let mut short = json.clone();
    short["rows"] = serde_json::json!([1.0]);
    assert!(serde_json::from_value::<MatchIndex>(short).is_err());
    let mut twice = json.clone();
    twice["users"] = serde_json::json!([uid(1), uid(1)]);
    twice["rows"] = serde_json::json!(vec![0.0f32; 18]);
    twice["recent"] = serde_json::json!([[], []]);
    assert!(serde_json::from_value::<MatchIndex>(twice).is_err());
    let mut erased = json.clone();
    erased["erased"] = serde_json::json!([uid(1)]);
    assert!(serde_json::from_value::<MatchIndex>(erased).is_err());
    let mut bad_config = json;
    bad_config["config"]["theme_dim"] = serde_json::json!(0);
    assert!(serde_json::from_value::<MatchIndex>(bad_config).is_err());
}

// ---------- properties ----------

const DIM: usize = 6;

/// One user's raw data: optional theme, optional mood masses.
type Raw = (Option<Vec<f32>>, Option<[f32; MOOD_DIMS]>);

fn raw_user() -> impl Strategy<Value = Raw> {
    (
        prop::option::weighted(0.9, prop::collection::vec(-1.0f32..1.0, DIM)),
        prop::option::weighted(0.8, prop::array::uniform7(0.0f32..1.0)),
    )
}

fn build(raws: &[Raw], config: IndexConfig) -> (MatchIndex, Vec<(PersonId, MatchVectors)>) {
    let mut idx = MatchIndex::new(config);
    let mut users = Vec::new();
    for (i, (t, m)) in raws.iter().enumerate() {
        let m = m.filter(|m| m.iter().sum::<f32>() > 0.0);
        let v = MatchVectors::new(t.as_deref(), m.as_ref(), Vec::new()).expect("vectors");
        let u = uid(i as u128 * 7919 % 1000 + 1);
        idx.upsert(u, &v).expect("upsert");
        users.push((u, v));
    }
    (idx, users)
}

/// Brute force in f64 with the profile-level similarity: all others, sorted.
fn brute(
    users: &[(PersonId, MatchVectors)],
    me: usize,
    w: SimilarityWeights,
) -> Vec<(PersonId, f32)> {
    let mut all: Vec<(PersonId, f32)> = users
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != me)
        .map(|(_, (u, v))| (*u, similarity(&users[me].1, v, w).score))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all
}

fn ids(ms: &[Match]) -> Vec<PersonId> {
    ms.iter().map(|m| m.user).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Top-k equals a brute-force sort (up to rounding between the f32 scan
    /// and the f64 reference: the same scores, and nothing left out that
    /// beats the k-th by more than rounding).
    #[test]
    fn top_k_equals_brute_force(
        raws in prop::collection::vec(raw_user(), 0..40),
        k in 0usize..50,
        theme_w in 0.0f32..1.0,
        parallel in any::<bool>(),
        prefilter in any::<bool>(),
    ) {
        let w = SimilarityWeights::new(theme_w, 1.0 - theme_w + 0.01).expect("weights");
        let config = IndexConfig::new(DIM).expect("config").with_weights(w)
            .with_parallel_min_rows(if parallel { 0 } else { usize::MAX })
            .with_prefilter(prefilter);
        let (idx, users) = build(&raws, config);
        for (me, (u, _)) in users.iter().enumerate() {
            let got = idx.top_k(*u, k).expect("query");
            let want = brute(&users, me, w);
            prop_assert_eq!(got.len(), k.min(want.len()));
            for m in &got {
                let reference = want.iter().find(|(v, _)| *v == m.user).map(|x| x.1);
                prop_assert!(reference.is_some());
                prop_assert!((m.similarity.score - reference.unwrap_or(f32::NAN)).abs() < 1e-5);
            }
            if let Some(last) = got.last() {
                let chosen = ids(&got);
                for (v, s) in &want {
                    if !chosen.contains(v) {
                        prop_assert!(*s <= last.similarity.score + 1e-5,
                            "left out {} with {} > {}", v, s, last.similarity.score);
                    }
                }
            }
            // Best first, ties by user id; scores in [-1, 1].
            for pair in got.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                prop_assert!(a.similarity.score > b.similarity.score
                    || (a.similarity.score == b.similarity.score && a.user < b.user));
            }
            for m in &got {
                prop_assert!((-1.0..=1.0).contains(&m.similarity.score));
                prop_assert!((-1.0..=1.0).contains(&m.similarity.theme));
                prop_assert!((0.0..=1.0).contains(&m.similarity.mood));
            }
        }
    }

    /// The i8 prefilter never changes an answer: same users, same scores,
    /// same order as the full f32 scan, also on data full of exact ties and
    /// duplicates (values drawn from a small grid), in parallel or not.
    #[test]
    fn prefilter_equals_full_scan(
        grid in prop::collection::vec(
            (prop::option::weighted(0.9, prop::collection::vec(-2i8..=2, DIM)),
             prop::option::weighted(0.8, prop::array::uniform7(0u8..3))),
            0..60),
        random in prop::collection::vec(raw_user(), 0..60),
        k in 0usize..70,
        parallel in any::<bool>(),
        weights in (0.0f32..1.0, 0.0f32..1.0),
    ) {
        let mut raws: Vec<Raw> = grid.into_iter().map(|(t, m)| (
            t.map(|t| t.into_iter().map(f32::from).collect()),
            m.map(|m| m.map(f32::from)),
        )).collect();
        raws.extend(random);
        let w = SimilarityWeights::new(weights.0, weights.1 + 0.01).expect("weights");
        let config = IndexConfig::new(DIM).expect("config").with_weights(w)
            .with_parallel_min_rows(if parallel { 0 } else { usize::MAX });
        let (pruned, users) = build(&raws, config.with_prefilter(true));
        let (full, _) = build(&raws, config.with_prefilter(false));
        for (u, v) in &users {
            prop_assert_eq!(pruned.top_k(*u, k), full.top_k(*u, k));
            prop_assert_eq!(pruned.top_k_for(v, k, None), full.top_k_for(v, k, None));
        }
    }

    /// After any sequence of upserts, removals and erasures, a query never
    /// returns the requester nor an erased or removed user.
    #[test]
    fn self_erased_and_removed_never_appear(
        ops in prop::collection::vec((0u8..4, 0u128..12, raw_user()), 1..80),
        k in 0usize..15,
        parallel in any::<bool>(),
    ) {
        let config = IndexConfig::new(DIM).expect("config")
            .with_parallel_min_rows(if parallel { 0 } else { usize::MAX });
        let mut idx = MatchIndex::new(config);
        let mut erased = std::collections::BTreeSet::new();
        let mut live = std::collections::BTreeSet::new();
        for (op, n, (t, m)) in ops {
            let u = uid(n);
            match op {
                0 | 1 => {
                    let m = m.filter(|m| m.iter().sum::<f32>() > 0.0);
                    let v = MatchVectors::new(t.as_deref(), m.as_ref(), Vec::new()).expect("vectors");
                    let r = idx.upsert(u, &v);
                    if erased.contains(&u) {
                        prop_assert_eq!(r, Err(MatchError::Erased(u)));
                    } else {
                        prop_assert!(r.is_ok());
                        live.insert(u);
                    }
                }
                2 => {
                    prop_assert_eq!(idx.remove(u), live.remove(&u));
                }
                _ => {
                    prop_assert_eq!(idx.erase(u), live.remove(&u));
                    erased.insert(u);
                }
            }
        }
        prop_assert_eq!(idx.len(), live.len());
        for &u in &live {
            let got = idx.top_k(u, k).expect("query");
            prop_assert_eq!(got.len(), k.min(live.len() - 1));
            for m in &got {
                prop_assert!(m.user != u);
                prop_assert!(!erased.contains(&m.user));
                prop_assert!(live.contains(&m.user));
            }
        }
        for &u in &erased {
            prop_assert_eq!(idx.top_k(u, k), Err(MatchError::Erased(u)));
        }
    }

    /// Adding a user and removing them again restores every other user's
    /// results exactly; a serde round trip changes no result either.
    #[test]
    fn add_then_remove_restores_results(
        raws in prop::collection::vec(raw_user(), 1..30),
        extra in raw_user(),
        k in 1usize..12,
    ) {
        let config = IndexConfig::new(DIM).expect("config");
        let (mut idx, users) = build(&raws, config);
        let before: Vec<_> = users.iter().map(|(u, _)| idx.top_k(*u, k)).collect();
        let m = extra.1.filter(|m| m.iter().sum::<f32>() > 0.0);
        let v = MatchVectors::new(extra.0.as_deref(), m.as_ref(), Vec::new()).expect("vectors");
        let newcomer = uid(5000);
        idx.upsert(newcomer, &v).expect("upsert");
        prop_assert!(idx.remove(newcomer));
        let after: Vec<_> = users.iter().map(|(u, _)| idx.top_k(*u, k)).collect();
        prop_assert_eq!(&before, &after);

        let json = serde_json::to_string(&idx).expect("serialise");
        let back: MatchIndex = serde_json::from_str(&json).expect("deserialise");
        let restored: Vec<_> = users.iter().map(|(u, _)| back.top_k(*u, k)).collect();
        prop_assert_eq!(&before, &restored);
    }

    /// Removing a user from the middle (which moves the last row) leaves the
    /// same results as never having added them.
    #[test]
    fn removal_equals_never_added(
        raws in prop::collection::vec(raw_user(), 2..30),
        victim in any::<prop::sample::Index>(),
        k in 1usize..12,
    ) {
        let config = IndexConfig::new(DIM).expect("config");
        let (mut idx, users) = build(&raws, config);
        let v = victim.index(users.len());
        prop_assert!(idx.remove(users[v].0));
        let mut fresh = MatchIndex::new(config);
        for (j, (u, vecs)) in users.iter().enumerate() {
            if j != v {
                fresh.upsert(*u, vecs).expect("upsert");
            }
        }
        for (j, (u, _)) in users.iter().enumerate() {
            if j != v {
                prop_assert_eq!(idx.top_k(*u, k), fresh.top_k(*u, k));
            }
        }
    }

    /// A profile's theme after adds and removes equals one built from the
    /// remaining entries only; its mood likewise.
    #[test]
    fn profile_removal_equals_never_added(
        entries in prop::collection::vec(
            (prop::collection::vec(-1.0f32..1.0, DIM), 0u64..(60 * DAY_MICROS), 0usize..MOOD_DIMS),
            1..20),
        drop_mask in prop::collection::vec(any::<bool>(), 20),
    ) {
        let config = ProfileConfig::new(DIM).expect("config");
        let mut full = MatchProfile::new(&config);
        let mut kept = MatchProfile::new(&config);
        for (i, (e, at, label)) in entries.iter().enumerate() {
            let md = mood(&[(Emotion::ALL[*label], 0.7), (Emotion::Neutral, 0.3)]);
            full.add_entry(eid(i as u128), Timestamp(*at), e).expect("add");
            full.add_mood(Timestamp(*at), &md).expect("mood");
            if !drop_mask[i] {
                kept.add_entry(eid(i as u128), Timestamp(*at), e).expect("add");
                kept.add_mood(Timestamp(*at), &md).expect("mood");
            }
        }
        for (i, (e, at, label)) in entries.iter().enumerate() {
            if drop_mask[i] {
                let md = mood(&[(Emotion::ALL[*label], 0.7), (Emotion::Neutral, 0.3)]);
                full.remove_entry(eid(i as u128), e).expect("remove");
                full.remove_mood(Timestamp(*at), &md).expect("remove mood");
            }
        }
        prop_assert_eq!(full.theme().len(), kept.theme().len());
        match (full.theme().direction(), kept.theme().direction()) {
            (Some(a), Some(b)) => {
                for (x, y) in a.iter().zip(&b) {
                    prop_assert!((x - y).abs() < 1e-4, "{:?} vs {:?}", a, b);
                }
            }
            (a, b) => prop_assert_eq!(a.is_none(), b.is_none()),
        }
        match (full.mood().distribution(), kept.mood().distribution()) {
            (Some(a), Some(b)) => {
                for (x, y) in a.iter().zip(&b) {
                    prop_assert!((x - y).abs() < 1e-4, "{:?} vs {:?}", a, b);
                }
            }
            (a, b) => prop_assert_eq!(a, b),
        }
    }
}
