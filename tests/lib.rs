//! Integration tests live in `all/` (one test binary, as wasmtime does). This library holds what
//! the benchmarks share: RouterEval's largest shape as deterministic synthetic data, and timing
//! helpers.

use std::time::Duration;

use routereval_sdk::Rng;

/// Training queries of RouterEval's largest benchmark.
pub const N_TRAIN: usize = 11_233;
/// Its test queries.
pub const N_TEST: usize = 1_405;
/// Embedding dimension.
pub const DIM: usize = 768;
/// The largest candidate pool.
pub const M: usize = 1000;

/// Embeddings around 32 topic centres, and binary scores whose rate depends on model and
/// topic: the shape of the real data, deterministic.
pub fn synthetic(n: usize, rng: &mut Rng, centres: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let topics = centres.len() / DIM;
    let mut emb = Vec::with_capacity(n * DIM);
    let mut scores = Vec::with_capacity(n * M);
    for _ in 0..n {
        let t = rng.below(topics as u64) as usize;
        emb.extend((0..DIM).map(|j| centres[t * DIM + j] + 0.5 * rng.normal() as f32));
        scores.extend((0..M).map(|k| {
            let p = ((k * 7 + t * 13) % 100) as f64 / 100.0;
            f32::from(u8::from(rng.next_f64() < p))
        }));
    }
    (emb, scores)
}

/// 32 random topic centres for [`synthetic`].
pub fn centres(rng: &mut Rng) -> Vec<f32> {
    (0..32 * DIM).map(|_| rng.normal() as f32).collect()
}

/// The median.
///
/// # Panics
/// On an empty list.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
