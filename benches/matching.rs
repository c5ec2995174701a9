//! Matching bench: top-10 similar users among 100,000 and 1,000,000, exact
//! (`MatchIndex`): `exact` is the default index (an i8 prefilter pass, then
//! f32 scores for the rows that can still make the top 10: the same answer
//! as a full scan), `exact_full_scan` scores every f32 row.
//!
//! Data: 384-dimensional theme vectors (Gaussian, normalised: uniform on the
//! sphere) and 7-dimensional mood distributions (normalised exponentials:
//! uniform on the simplex), from a fixed-seed Xoshiro256++; built once per
//! size, before timing. Each query is `MatchIndex::top_k(user, 10)` for a
//! user of the index (so it excludes the requester and builds the
//! explanations). Users have no recent entries, so explanations name shared
//! emotions but no entry pairs.
//!
//! Besides criterion's mean, the bench times 1,000 queries one by one
//! (300 on 1M users; different requesters) and prints p50 / p99 / max of the
//! wall time, and p50 / p99 of the process CPU time (all threads) per query:
//! on a shared machine the CPU time is the figure that other processes do
//! not inflate.
//!
//! **Approximate** variant (`ann_uniform`, `ann_clustered`): `AnnIndex`
//! (usearch HNSW, M 16, ef_construction 128, f16 rows in the graph, exact
//! re-ranking of the candidates) on two data sets from
//! `matching::synthetic`: uniform (as above: the worst case for a graph)
//! and clustered (2,000 topic centres, users = normalised centre + noise,
//! moods Dirichlet around the topic's profile). Per size and data set it
//! prints the graph's build time (or its load time: graphs are cached in
//! `$CARGO_TARGET_DIR/matching-ann/`, keyed by data set, seed, size and
//! graph options), the process's resident memory, then for each `ef` of
//! `METACHAT_ANN_EFS` (default `32,64,128,256`; candidates re-scored = ef)
//! recall@10 against the exact index over 1,000 requesters and the wall /
//! CPU p50 / p99 of those queries; criterion then times the smallest `ef`
//! that reached recall 0.95 (else the largest).
//!
//! Run: `cargo bench --features analysis --bench matching` (exact: about 3
//! minutes on 2 cores, 1.6 GB of memory for the 1M matrix; the ANN graphs
//! add their build on the first run: minutes per million users). Smoke run on
//! 10,000 users: `cargo bench --features analysis --bench matching -- --test`.
//! One size only: `METACHAT_MATCH_SIZES=100k` (or `1m`); some variants only:
//! `METACHAT_MATCH_VARIANTS=ann` (or `exact`, or `ann_clustered`, …).

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::collections::HashSet;
use std::path::PathBuf;

use cpu_time::ProcessTime;
use criterion::{BenchmarkId, Criterion, SamplingMode};
use metachat_analysis::matching::synthetic::{synthetic_user_id, SyntheticUsers, DEFAULT_TOPICS};
use metachat_analysis::matching::PersonId;
use metachat_analysis::matching::{
    AnnConfig, AnnIndex, IndexConfig, MatchIndex, MatchVectors, MOOD_DIMS,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const THEME_DIM: usize = 384;
const K: usize = 10;
const SEED: u64 = 0x6d65_7461_6368_6174; // "metachat"

fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f32 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    #[allow(clippy::cast_possible_truncation)]
    let g = ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
    g
}

/// A random user: unit theme vector, mood uniform on the simplex.
fn random_user(rng: &mut Xoshiro256PlusPlus, theme: &mut [f32]) -> MatchVectors {
    for x in theme.iter_mut() {
        *x = gaussian(rng);
    }
    let mut mood = [0.0f32; MOOD_DIMS];
    for m in &mut mood {
        *m = -(rng.random::<f32>().max(f32::MIN_POSITIVE)).ln();
    }
    MatchVectors::new(Some(theme), Some(&mood), Vec::new()).expect("random vectors are valid")
}

fn build_index(n: usize, prefilter: bool) -> MatchIndex {
    let config = IndexConfig::new(THEME_DIM)
        .expect("config")
        .with_prefilter(prefilter);
    let mut index = MatchIndex::new(config);
    index.reserve(n);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut theme = vec![0.0f32; THEME_DIM];
    for i in 0..n {
        let v = random_user(&mut rng, &mut theme);
        index.upsert(synthetic_user_id(i), &v).expect("upsert");
    }
    index
}

/// Requesters for the timed queries: spread over the index.
fn requesters(n: usize, count: usize) -> Vec<PersonId> {
    let step = (n / count).max(1);
    (0..count)
        .map(|i| synthetic_user_id((i * step + 7) % n))
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().next().unwrap_or("?").to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

fn report_percentiles(label: &str, index: &MatchIndex, queries: usize) {
    let who = requesters(index.len(), queries);
    let expected = K.min(index.len() - 1);
    time_queries(label, &who, |u| {
        let r = index.top_k(u, K).expect("query");
        assert_eq!(r.len(), expected);
        r.len()
    });
}

/// Times `query` once per requester (after 5 warm-up calls) and prints
/// p50 / p99 / max of the wall time and p50 / p99 of the process CPU time.
fn time_queries(label: &str, who: &[PersonId], mut query: impl FnMut(PersonId) -> usize) {
    let load = load_average();
    // Warm-up: bring the matrix into cache/TLB state and spin up rayon.
    for u in who.iter().take(5) {
        black_box(query(*u));
    }
    let mut times = Vec::with_capacity(who.len());
    let mut cpu = Vec::with_capacity(who.len());
    for u in who {
        let c = ProcessTime::now();
        let t = Instant::now();
        let r = query(*u);
        times.push(t.elapsed());
        cpu.push(c.elapsed());
        black_box(r);
    }
    times.sort();
    cpu.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "matching/{label}: {} queries: wall p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
         CPU (all threads) p50 {:.3} ms, p99 {:.3} ms (rayon threads: {}, load average before: {})",
        times.len(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        ms(percentile(&cpu, 0.50)),
        ms(percentile(&cpu, 0.99)),
        rayon::current_num_threads(),
        load,
    );
}

/// Resident memory of this process, from /proc (Linux), in MiB.
fn rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(|| "?".to_owned(), |kb| format!("{} MiB", kb / 1024))
}

fn synthetic_exact(data: &str, n: usize) -> MatchIndex {
    let mut gen = if data == "clustered" {
        SyntheticUsers::clustered(THEME_DIM, DEFAULT_TOPICS, SEED)
    } else {
        SyntheticUsers::uniform(THEME_DIM, SEED)
    };
    let mut index = MatchIndex::new(IndexConfig::new(THEME_DIM).expect("config"));
    index.reserve(n);
    for i in 0..n {
        let v = gen.next_user().expect("synthetic vectors");
        index.upsert(synthetic_user_id(i), &v).expect("upsert");
    }
    index
}

fn graph_cache(data: &str, label: &str, config: &AnnConfig) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("matching-ann");
    std::fs::create_dir_all(&dir).expect("graph cache directory");
    dir.join(format!(
        "{data}-{label}-seed{SEED:x}-m{}-efc{}-{:?}.usearch",
        config.connectivity(),
        config.ef_construction(),
        config.precision()
    ))
}

/// The ANN variant on one data set and size: build (or load), recall sweep
/// over `ef`, percentiles, then criterion at the chosen `ef`.
fn bench_ann(c: &mut Criterion, data: &str, n: usize, label: &str, bench_mode: bool) {
    let variant = format!("ann_{data}");
    let t = Instant::now();
    let exact = synthetic_exact(data, n);
    println!(
        "matching/{variant}/{label}: {n} users generated and indexed exactly in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let config = AnnConfig::default();
    let path = graph_cache(data, label, &config);
    let load = load_average();
    let t = Instant::now();
    let (mut ann, loaded) = AnnIndex::build_cached(exact, config, &path).expect("graph");
    println!(
        "matching/{variant}/{label}: graph {} in {:.1} s ({} threads, load average before: {load}); \
         graph memory {} MiB, process RSS {}",
        if loaded { "loaded from cache" } else { "built" },
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads(),
        ann.graph_memory() / (1 << 20),
        rss_mib(),
    );
    let queries = if bench_mode { 1_000 } else { 100 };
    let who = requesters(n, queries);
    // The exact answers (the truth for recall), timed like the other variants.
    let mut truth: Vec<HashSet<PersonId>> = Vec::with_capacity(who.len());
    time_queries(&format!("exact_{data}/{label}"), &who, |u| {
        let r = ann.exact().top_k(u, K).expect("exact");
        truth.push(r.iter().map(|m| m.user).collect());
        r.len()
    });
    // The first 5 were warm-up calls.
    truth.drain(..5.min(truth.len()));
    let efs: Vec<usize> = std::env::var("METACHAT_ANN_EFS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| {
            if bench_mode {
                vec![32, 64, 128, 256]
            } else {
                vec![64]
            }
        });
    let mut chosen = None;
    for &ef in &efs {
        ann.set_ef(ef);
        ann.set_candidates(ef);
        let mut hits = 0usize;
        let mut total = 0usize;
        for (u, exact) in who.iter().zip(&truth) {
            let got = ann.top_k(*u, K).expect("ann");
            hits += got.iter().filter(|m| exact.contains(&m.user)).count();
            total += exact.len();
        }
        #[allow(clippy::cast_precision_loss)]
        let recall = hits as f64 / total.max(1) as f64;
        println!("matching/{variant}/{label}: ef {ef} (candidates {ef}): recall@10 {recall:.4} over {queries} requesters");
        time_queries(&format!("{variant}/{label}/ef{ef}"), &who, |u| {
            ann.top_k(u, K).expect("ann").len()
        });
        if chosen.is_none() && recall >= 0.95 {
            chosen = Some(ef);
        }
    }
    let ef = chosen.unwrap_or_else(|| efs.iter().copied().max().unwrap_or(64));
    ann.set_ef(ef);
    ann.set_candidates(ef);
    let who = requesters(n, 997);
    let mut group = c.benchmark_group("matching_top10");
    group.sampling_mode(SamplingMode::Flat);
    let mut i = 0usize;
    group.bench_function(BenchmarkId::new(format!("{variant}_ef{ef}"), label), |b| {
        b.iter(|| {
            i = (i + 1) % who.len();
            black_box(ann.top_k(who[i], K).expect("query"))
        });
    });
    group.finish();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // `cargo bench -- --test` adds `--test`: those two are smoke runs.
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let mut sizes: Vec<(usize, &str)> = if bench_mode {
        vec![(100_000, "100k"), (1_000_000, "1m")]
    } else {
        vec![(10_000, "10k")]
    };
    // METACHAT_MATCH_SIZES=100k (or 1m) runs one size only.
    if let Ok(only) = std::env::var("METACHAT_MATCH_SIZES") {
        sizes.retain(|(_, label)| only.split(',').any(|o| o.trim() == *label));
    }
    // METACHAT_MATCH_VARIANTS=ann (or exact, ann_clustered, …) runs some variants only.
    let variants = std::env::var("METACHAT_MATCH_VARIANTS").ok();
    let wanted = |v: &str| {
        variants
            .as_deref()
            .is_none_or(|w| w.split(',').any(|o| v.starts_with(o.trim())))
    };
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    for &(n, label) in &sizes {
        for (prefilter, variant) in [(true, "exact"), (false, "exact_full_scan")] {
            if !wanted(variant) {
                continue;
            }
            let t = Instant::now();
            let index = build_index(n, prefilter);
            println!(
                "matching/{variant}/{label}: built {n} users × {} dims in {:.1} s",
                index.config().stride(),
                t.elapsed().as_secs_f64()
            );
            if bench_mode {
                // 1,000 timed queries (300 on 1M users, where one takes ~0.1 s).
                let queries = if n >= 1_000_000 { 300 } else { 1_000 };
                report_percentiles(&format!("{variant}/{label}"), &index, queries);
            }
            let who = requesters(n, 997);
            let mut group = c.benchmark_group("matching_top10");
            group.sampling_mode(SamplingMode::Flat);
            if n >= 1_000_000 {
                group.sample_size(10);
            }
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(variant, label), |b| {
                b.iter(|| {
                    i = (i + 1) % who.len();
                    black_box(index.top_k(who[i], K).expect("query"))
                });
            });
            group.finish();
        }
    }
    for &(n, label) in &sizes {
        for data in ["uniform", "clustered"] {
            if wanted(&format!("ann_{data}")) {
                bench_ann(&mut c, data, n, label, bench_mode);
            }
        }
    }
    c.final_summary();
}
