//! kNN `route` time on RouterEval's largest shape next to a plain matrix multiply of the same
//! shapes, measured in the same run.
//!
//! Run: `cargo bench -p routereval-plugin-knn --bench route`
//! (`-- --quick` uses a quarter of the training rows).
//!
//! Shape: 11,233 training queries, 1,405 test queries, 768-d embeddings, m = 1,000 candidates
//! (mmlu's split in RouterEval with the largest pool). The data is synthetic (Gaussian
//! embeddings, 0/1 scores): kNN's cost does not depend on the values. The baseline is
//! `ndarray`'s `dot` of the (1,405 x 768) test matrix with the transposed (11,233 x 768) train
//! matrix, the product any similarity search must compute; both run on one thread. Target:
//! kNN within 1.5x of the product.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::Array2;
use routereval_plugin_knn::Knn;
use routereval_sdk::{Params, Queries, Rng, Router, Split, Texts};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (nt, n, d, m) = (if quick { 11_233 / 4 } else { 11_233 }, 1_405, 768, 1_000);
    let reps = 5;
    let mut rng = Rng::new(42);
    let train_e: Vec<f32> = (0..nt * d).map(|_| rng.normal() as f32).collect();
    let test_e: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let scores: Vec<f32> = (0..nt * m).map(|_| rng.below(2) as f32).collect();
    let names: Vec<String> = (0..m).map(|j| format!("model-{j}")).collect();

    let train = Split::new(
        Queries::new(nt, d, &train_e, Texts::EMPTY).unwrap(),
        &scores,
        &names,
    )
    .unwrap();
    let test = Queries::new(n, d, &test_e, Texts::EMPTY).unwrap();
    let mut knn = Knn::new(&Params::new(0)).unwrap();
    knn.fit(&train, &train).unwrap();

    let a = Array2::from_shape_vec((n, d), test_e.clone()).unwrap();
    let b = Array2::from_shape_vec((nt, d), train_e.clone()).unwrap();

    // Warm up both, then alternate so that both see the same machine state.
    black_box(a.dot(&b.t()));
    black_box(knn.route(&test).unwrap());
    let (mut t_mm, mut t_knn) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        black_box(a.dot(&b.t()));
        t_mm.push(t.elapsed());
        let t = Instant::now();
        black_box(knn.route(&test).unwrap());
        t_knn.push(t.elapsed());
    }
    let (mm, kn) = (median(t_mm), median(t_knn));
    println!("shape: train {nt} x {d}, test {n}, m {m}; median of {reps} runs, one thread");
    println!(
        "matrix multiply (ndarray dot, {n}x{d} . {d}x{nt}): {:>8.1} ms",
        mm.as_secs_f64() * 1e3
    );
    println!(
        "knn route (k=5, cosine, softmax over m):        {:>8.1} ms",
        kn.as_secs_f64() * 1e3
    );
    let ratio = kn.as_secs_f64() / mm.as_secs_f64();
    println!(
        "ratio knn / multiply: {ratio:.3} (target <= 1.5): {}",
        if ratio <= 1.5 { "met" } else { "NOT MET" }
    );
}
