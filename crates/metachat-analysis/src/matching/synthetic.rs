//! Deterministic synthetic users for benchmarks and recall tests.
//!
//! Two generators of [`MatchVectors`], both seeded (xoshiro256++ seeded by
//! splitmix64, implemented here so the library needs no RNG crate):
//!
//! - [`SyntheticUsers::uniform`]: theme vectors uniform on the unit sphere
//!   (normalised Gaussians), moods uniform on the simplex (normalised
//!   exponentials = Dirichlet(1, …, 1)). Every pair of users is about as far
//!   apart as every other (theme cosines ≈ ±0.05 at 384 dimensions, the
//!   10 nearest barely closer than the rest): the **worst case** for a graph
//!   index such as HNSW, and unlike real diaries.
//! - [`SyntheticUsers::clustered`]: a closer picture of real users, whose
//!   entries are about a limited set of subjects. `topics` topic centres are
//!   drawn uniform on the sphere, each with its own mood profile (a
//!   Dirichlet(1) draw). A user picks a topic uniformly; their theme is
//!   `normalise(centre + σ·g)` with `g` a standard Gaussian vector and
//!   `σ = spread / √dim` (so with the default `spread = 1` the noise is as
//!   long as the centre: cosine ≈ 0.71 to the centre, ≈ 0.5 between two users
//!   of one topic, ≈ 0 across topics); their mood is a Dirichlet draw with
//!   concentration `mood_concentration · profile + 0.1` (default 20: moods
//!   scatter around the topic's profile). The defaults are
//!   [`DEFAULT_TOPICS`] topics, spread 1, concentration 20.
//!
//! Users get no recent entries (explanations name shared emotions only).
//! [`synthetic_user_id`] gives user `i` a fixed id.

use crate::matching::PersonId;
use uuid::Uuid;

use super::error::Result;
use super::profile::{MatchVectors, MOOD_DIMS};

/// Number of topic centres of [`SyntheticUsers::clustered`] by default.
pub const DEFAULT_TOPICS: usize = 2_000;

/// The fixed id of synthetic user `i`.
pub fn synthetic_user_id(i: usize) -> PersonId {
    Uuid::from_u128(0x4d43_0000_0000_0000_0000_0000_0000_0000 | i as u128)
}

/// xoshiro256++ (Blackman & Vigna), seeded by splitmix64.
#[derive(Debug, Clone)]
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let u = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        u
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        let i = ((u128::from(self.next_u64()) * n as u128) >> 64) as usize;
        i
    }

    /// Standard normal (Box–Muller).
    fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(alpha, 1) by Marsaglia & Tsang (boosted for alpha < 1).
    fn gamma(&mut self, alpha: f64) -> f64 {
        if alpha < 1.0 {
            return self.gamma(alpha + 1.0) * self.unit().powf(1.0 / alpha);
        }
        let d = alpha - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.gaussian();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            if self.unit().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A unit vector uniform on the sphere.
    fn sphere(&mut self, out: &mut [f32]) {
        #[allow(clippy::cast_possible_truncation)]
        for x in out.iter_mut() {
            *x = self.gaussian() as f32;
        }
        normalise(out);
    }

    /// A Dirichlet draw with concentrations `alpha`.
    fn dirichlet(&mut self, alpha: &[f64; MOOD_DIMS]) -> [f32; MOOD_DIMS] {
        let mut g = [0.0f64; MOOD_DIMS];
        for (x, &a) in g.iter_mut().zip(alpha) {
            *x = self.gamma(a).max(1e-12);
        }
        let sum: f64 = g.iter().sum();
        #[allow(clippy::cast_possible_truncation)]
        g.map(|x| (x / sum) as f32)
    }
}

fn normalise(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if n > 0.0 {
        #[allow(clippy::cast_possible_truncation)]
        let inv = (1.0 / n) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Uniform,
    Clustered {
        centres: Vec<f32>,
        moods: Vec<[f64; MOOD_DIMS]>,
        sigma: f32,
        concentration: f64,
    },
}

/// A deterministic stream of synthetic users (see the [module
/// docs](self)): call [`next_user`](Self::next_user) `n` times, or iterate.
#[derive(Debug, Clone)]
pub struct SyntheticUsers {
    theme_dim: usize,
    rng: Rng,
    kind: Kind,
    theme: Vec<f32>,
}

impl SyntheticUsers {
    /// Themes uniform on the sphere, moods uniform on the simplex.
    pub fn uniform(theme_dim: usize, seed: u64) -> Self {
        SyntheticUsers {
            theme_dim,
            rng: Rng::new(seed),
            kind: Kind::Uniform,
            theme: vec![0.0; theme_dim],
        }
    }

    /// Users clustered around `topics` topic centres (at least 1), with the
    /// default spread (1) and mood concentration (20).
    pub fn clustered(theme_dim: usize, topics: usize, seed: u64) -> Self {
        Self::clustered_with(theme_dim, topics, 1.0, 20.0, seed)
    }

    /// Users clustered around `topics` topic centres: theme noise of total
    /// length ≈ `spread` around a unit centre, moods Dirichlet with
    /// concentration `mood_concentration · profile + 0.1`.
    pub fn clustered_with(
        theme_dim: usize,
        topics: usize,
        spread: f32,
        mood_concentration: f64,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let topics = topics.max(1);
        let mut centres = vec![0.0f32; topics * theme_dim.max(1)];
        let mut moods = Vec::with_capacity(topics);
        for c in centres.chunks_exact_mut(theme_dim.max(1)) {
            rng.sphere(c);
            let profile = rng.dirichlet(&[1.0; MOOD_DIMS]);
            moods.push(profile.map(|p| mood_concentration * f64::from(p) + 0.1));
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let sigma = spread / (theme_dim.max(1) as f32).sqrt();
        SyntheticUsers {
            theme_dim,
            rng,
            kind: Kind::Clustered {
                centres,
                moods,
                sigma,
                concentration: mood_concentration,
            },
            theme: vec![0.0; theme_dim],
        }
    }

    /// The theme dimension.
    pub fn theme_dim(&self) -> usize {
        self.theme_dim
    }

    /// The next user's vectors.
    pub fn next_user(&mut self) -> Result<MatchVectors> {
        let dim = self.theme_dim;
        let mood = match &self.kind {
            Kind::Uniform => {
                self.rng.sphere(&mut self.theme);
                self.rng.dirichlet(&[1.0; MOOD_DIMS])
            }
            Kind::Clustered {
                centres,
                moods,
                sigma,
                ..
            } => {
                let t = self.rng.below(moods.len());
                let centre = &centres[t * dim..(t + 1) * dim];
                for (x, &c) in self.theme.iter_mut().zip(centre) {
                    #[allow(clippy::cast_possible_truncation)]
                    let g = self.rng.gaussian() as f32;
                    *x = c + sigma * g;
                }
                normalise(&mut self.theme);
                self.rng.dirichlet(&moods[t])
            }
        };
        MatchVectors::new(Some(&self.theme), Some(&mood), Vec::new())
    }

    /// The mood concentration of a clustered generator (`None` for uniform).
    pub fn mood_concentration(&self) -> Option<f64> {
        match &self.kind {
            Kind::Uniform => None,
            Kind::Clustered { concentration, .. } => Some(*concentration),
        }
    }
}

impl Iterator for SyntheticUsers {
    type Item = Result<MatchVectors>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_user())
    }
}
