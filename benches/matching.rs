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
//! Run: `cargo bench --features analysis --bench matching` (about 3 minutes on 2
//! cores, 1.6 GB of memory for the 1M matrix). Smoke run on 10,000 users:
//! `cargo bench --features analysis --bench matching -- --test`. One size only:
//! `METACHAT_MATCH_SIZES=100k` (or `1m`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use criterion::{BenchmarkId, Criterion, SamplingMode};
use metachat_analysis::matching::{IndexConfig, MatchIndex, MatchVectors, MOOD_DIMS};
use metachat_core::domain::UserId;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use uuid::Uuid;

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

fn user_id(i: usize) -> UserId {
    UserId(Uuid::from_u128(
        0x4d43_0000_0000_0000_0000_0000_0000_0000 | i as u128,
    ))
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
        index.upsert(user_id(i), &v).expect("upsert");
    }
    index
}

/// Requesters for the timed queries: spread over the index.
fn requesters(n: usize, count: usize) -> Vec<UserId> {
    let step = (n / count).max(1);
    (0..count).map(|i| user_id((i * step + 7) % n)).collect()
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

fn report_percentiles(label: &str, index: &MatchIndex, queries: usize) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().next().unwrap_or("?").to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let who = requesters(index.len(), queries);
    // Warm-up: bring the matrix into cache/TLB state and spin up rayon.
    for u in who.iter().take(5) {
        black_box(index.top_k(*u, K).expect("query"));
    }
    let mut times = Vec::with_capacity(who.len());
    let mut cpu = Vec::with_capacity(who.len());
    for u in &who {
        let c = ProcessTime::now();
        let t = Instant::now();
        let r = index.top_k(*u, K).expect("query");
        times.push(t.elapsed());
        cpu.push(c.elapsed());
        assert_eq!(r.len(), K.min(index.len() - 1));
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
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    for (n, label) in sizes {
        for (prefilter, variant) in [(true, "exact"), (false, "exact_full_scan")] {
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
    c.final_summary();
}
