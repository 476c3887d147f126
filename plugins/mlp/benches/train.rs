//! MLPR training speed: batch-1 Adam steps of the `d -> 256 -> 256 -> m` network at RouterEval's
//! shapes (d = 768; m = 3, 100, 1000), in nanoseconds per parameter update, against a baseline
//! measured in the same run: one read-modify-write pass over three arrays of the same size (the
//! weights and Adam's two moments), the memory traffic no exact Adam step can avoid. Then the
//! projection for the paper sweep: every pool of the synthetic 12-benchmark suite (RouterEval's
//! item counts, 80% train, 100 epochs), on 2 cores.
//!
//! The runs are short (512 steps on random data), so they measure the kernel: on real pools the
//! rows of ReLUs that stay off go quiet and are cheaper (synthetic arc, m = 3: 0.32 ns/update)
//! while the big output layer keeps m = 1000 near this figure (synthetic mmlu, 0.42 ns/update in
//! the sweep). The projection below is for the kernel's speed; `scripts/sweep` measures.
//!
//! Run: `cargo bench -p routereval-plugin-mlp --bench train`

use std::hint::black_box;
use std::time::Instant;

use routereval_sdk::Rng;
use routereval_sdk::nn::{Adam, Mlp, TrainOptions};

const ITEMS: [usize; 12] = [
    1172, 10042, 14042, 817, 1267, 1319, 541, 5760, 1192, 756, 1324, 12032,
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per parameter update of batch-1 training at `m` candidates.
fn adam_ns(m: usize) -> f64 {
    let (d, n, epochs) = (768, 256, 2);
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32 * 0.036).collect();
    let y: Vec<f32> = (0..n * m)
        .map(|i| f32::from(u8::from(i % 3 == 0)))
        .collect();
    let opts = TrainOptions {
        lr: 1e-4,
        epochs,
        batch: 1,
        adam: Adam::default(),
    };
    let runs: Vec<f64> = (0..5)
        .map(|r| {
            let mut net = Mlp::new(&[d, 256, 256, m], &mut Rng::new(r));
            let t = Instant::now();
            net.train_bce(&x, &y, n, &opts, &mut Rng::new(2));
            black_box(&net);
            t.elapsed().as_secs_f64() * 1e9 / (n * epochs * net.parameters()) as f64
        })
        .collect();
    median(runs)
}

/// Nanoseconds per element of `p[i] = p[i] * a + m[i]; m[i] *= b; v[i] += m[i]` over arrays of
/// `len`: reads and writes the same 12 bytes per parameter as Adam does.
fn memory_ns(len: usize) -> f64 {
    let (mut p, mut m, mut v) = (vec![1.0f32; len], vec![0.5f32; len], vec![0.25f32; len]);
    let passes = 200;
    let runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..passes {
                for ((p, m), v) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()) {
                    *p = *p * 0.999 + *m;
                    *m *= 0.9;
                    *v += *m;
                }
                black_box((&p, &m, &v));
            }
            t.elapsed().as_secs_f64() * 1e9 / (passes * len) as f64
        })
        .collect();
    median(runs)
}

fn params(m: usize) -> f64 {
    (768 * 256 + 256 + 256 * 256 + 256 + 256 * m + m) as f64
}

fn main() {
    println!("MLPR batch-1 training, d = 768, hidden 256 x 2 (median of 5 runs)");
    let mut per_m = Vec::new();
    for m in [3, 100, 1000] {
        let (adam, mem) = (adam_ns(m), memory_ns(params(m) as usize));
        println!(
            "  m = {m:>4}: {:>7} parameters, Adam step {adam:.3} ns/update, memory pass {mem:.3} \
             ns/element, ratio {:.2}",
            params(m),
            adam / mem
        );
        per_m.push((m, adam));
    }
    // The paper sweep: 12 benchmarks x sizes {3, 5, 10, 100, 1000} x 3 groups, 100 epochs.
    let train: f64 = ITEMS.iter().map(|&n| (n as f64 * 0.8).floor()).sum();
    let ns_at = |m: usize| {
        // Interpolate the measured cost per update by size (it barely depends on m).
        if m <= 100 { per_m[1].1 } else { per_m[2].1 }
    };
    let seconds: f64 = [3usize, 5, 10, 100, 1000]
        .iter()
        .map(|&m| 3.0 * train * 100.0 * params(m) * ns_at(m) * 1e-9)
        .sum();
    println!(
        "projected MLPR share of the paper sweep ({train} training queries, 15 pools each, 100 \
         epochs): {:.0} core-seconds, {:.1} min on 2 cores (target for the whole sweep: 60 min)",
        seconds,
        seconds / 2.0 / 60.0
    );
}
