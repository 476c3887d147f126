//! Integration tests live in `all/` (one test binary, as wasmtime does). This library holds what
//! the benchmarks share: RouterEval's largest shape as deterministic synthetic data, and timing
//! helpers.

use std::time::Duration;

use routereval_sdk::{Queries, Rng, Split, Texts};

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

/// RouterEval's largest shape, synthetic and deterministic: `N_TRAIN` training and `N_TEST`
/// test queries, `DIM`-d embeddings, `M` candidates. The test split doubles as the validation
/// split.
#[derive(Debug)]
pub struct Largest {
    train_emb: Vec<f32>,
    train_scores: Vec<f32>,
    test_emb: Vec<f32>,
    test_scores: Vec<f32>,
    names: Vec<String>,
}

impl Largest {
    /// Generates the data (seed 7).
    pub fn new() -> Largest {
        let mut rng = Rng::new(7);
        let centres = centres(&mut rng);
        let (train_emb, train_scores) = synthetic(N_TRAIN, &mut rng, &centres);
        let (test_emb, test_scores) = synthetic(N_TEST, &mut rng, &centres);
        Largest {
            train_emb,
            train_scores,
            test_emb,
            test_scores,
            names: (0..M).map(|k| format!("model-{k}")).collect(),
        }
    }

    /// The training split, the validation split and the test queries.
    ///
    /// # Panics
    /// Never: the shapes are consistent by construction.
    pub fn views(&self) -> (Split<'_>, Split<'_>, Queries<'_>) {
        let train_q = Queries::new(N_TRAIN, DIM, &self.train_emb, Texts::EMPTY).expect("shape");
        let train = Split::new(train_q, &self.train_scores, &self.names).expect("shape");
        let test = Queries::new(N_TEST, DIM, &self.test_emb, Texts::EMPTY).expect("shape");
        let val = Split::new(test, &self.test_scores, &self.names).expect("shape");
        (train, val, test)
    }
}

impl Default for Largest {
    fn default() -> Self {
        Largest::new()
    }
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
