//! MLPR training speed: batch-1 Adam steps of the `d -> 256 -> 256 -> m` network at RouterEval's
//! shapes (d = 768; m = 3, 5, 10, 100, 1000), in nanoseconds per parameter update, against a baseline
//! measured in the same run: one read-modify-write pass over three arrays of the same size (the
//! weights and Adam's two moments), the memory traffic no exact Adam step can avoid. Then the
//! projection for the paper sweep: every pool of the synthetic 12-benchmark suite (RouterEval's
//! item counts, 80% train, 100 epochs), on 2 cores. Then where the floor is: the same kernel on
//! a model small enough to stay in cache (if memory bounded the step, this would be much
//! faster), and the square root and division of Adam's update alone (one each per parameter
//! per step; the CPU's divider computes them), with the sweep's time at that speed, and the
//! fused update pass with and without the divider.
//!
//! The runs are short (512 steps on random data), so they measure the kernel: on real pools the
//! rows of ReLUs that stay off go quiet and are cheaper (synthetic arc, m = 3: 0.32 ns/update)
//! while the big output layer keeps m = 1000 near this figure (synthetic mmlu, 0.37 ns/update in
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

/// The median of five runs of `run`.
fn median_of_5(run: impl FnMut(u64) -> f64) -> f64 {
    let mut v: Vec<f64> = (0..5).map(run).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per parameter update of batch-1 training at `m` candidates.
fn adam_ns(m: usize) -> f64 {
    adam_ns_widths(&[768, 256, 256, m], 2)
}

/// Nanoseconds per parameter update of batch-1 training of the network of `widths`.
fn adam_ns_widths(widths: &[usize], epochs: usize) -> f64 {
    let (d, m, n) = (widths[0], widths[widths.len() - 1], 256);
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
    median_of_5(|r| {
        let mut net = Mlp::new(widths, &mut Rng::new(r));
        let t = Instant::now();
        net.train_bce(&x, &y, n, &opts, &mut Rng::new(2));
        black_box(&net);
        t.elapsed().as_secs_f64() * 1e9 / (n * epochs * net.parameters()) as f64
    })
}

/// Nanoseconds per element of `p[i] = p[i] * a + m[i]; m[i] *= b; v[i] += m[i]` over arrays of
/// `len`: reads and writes the same 12 bytes per parameter as Adam does.
fn memory_ns(len: usize) -> f64 {
    let (mut p, mut m, mut v) = (vec![1.0f32; len], vec![0.5f32; len], vec![0.25f32; len]);
    let passes = 200;
    median_of_5(|_| {
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
}

/// Nanoseconds per element of Adam's two divider operations alone, `m / (sqrt(v) c + eps)`,
/// over arrays that stay in the L1 cache, compiled for the best instruction set the CPU has
/// (as the SDK's kernels are). Every exact Adam update needs one square root and one division.
fn divider_ns() -> f64 {
    fn pass(m: &[f32], v: &[f32], out: &mut [f32]) {
        for ((o, &m), &v) in out.iter_mut().zip(m).zip(v) {
            *o = m / (v.sqrt() * 1.0001 + 1e-8);
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2")]
    unsafe fn pass_avx512(m: &[f32], v: &[f32], out: &mut [f32]) {
        pass(m, v, out);
    }
    let len = 2048;
    let m: Vec<f32> = (0..len).map(|i| (i as f32 - 1000.0) * 1e-6).collect();
    let v: Vec<f32> = (0..len).map(|i| (i as f32 + 1.0) * 1e-9).collect();
    let mut out = vec![0.0f32; len];
    let passes = 20_000;
    #[cfg(target_arch = "x86_64")]
    let avx512 =
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl");
    median_of_5(|_| {
        let t = Instant::now();
        for _ in 0..passes {
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { pass_avx512(black_box(&m), black_box(&v), &mut out) };
                continue;
            }
            pass(black_box(&m), black_box(&v), &mut out);
        }
        black_box(&out);
        t.elapsed().as_secs_f64() * 1e9 / (passes * len) as f64
    })
}

/// A copy of the SDK's fused batch-1 update of one 48 x 768 layer (kept in the L2 cache): the
/// input's gradient, then Adam per weight, as `kernels/src/nn.rs` does it. With `divider` false the
/// square root and division are replaced by a multiplication (not Adam; timing only), which
/// leaves the loads, stores, multiplications and additions: what the update costs besides the
/// divider. Returns nanoseconds per update.
fn update_ns(divider: bool) -> f64 {
    #[inline(always)]
    fn pass<const DIV: bool>(
        w: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        x: &[f32],
        dx: &mut [f32],
    ) {
        let n = x.len();
        let (b1, b2, ss, c, eps) = (0.9f32, 0.999f32, 1e-4f32, 3.0f32, 1e-8f32);
        dx.iter_mut().for_each(|g| *g = 0.0);
        for j in 0..w.len() / n {
            let dj = (j as f32 - 20.0) * 1e-4;
            let r = j * n..(j + 1) * n;
            let (w, m, v) = (&mut w[r.clone()], &mut m[r.clone()], &mut v[r]);
            for ((((w, m), v), &a), g) in w.iter_mut().zip(m).zip(v).zip(x).zip(dx.iter_mut()) {
                *g += dj * *w;
                let gr = dj * a;
                let mm = b1 * *m + (1.0 - b1) * gr;
                let vv = b2 * *v + (1.0 - b2) * (gr * gr);
                *m = mm;
                *v = vv;
                *w -= if DIV {
                    ss * mm / (vv.sqrt() * c + eps)
                } else {
                    ss * mm * (vv * c + eps)
                };
            }
        }
    }
    type Pass = fn(&mut [f32], &mut [f32], &mut [f32], &[f32], &mut [f32]);
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2")]
    unsafe fn pass_avx512<const DIV: bool>(
        w: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        x: &[f32],
        dx: &mut [f32],
    ) {
        pass::<DIV>(w, m, v, x, dx)
    }
    let (rows, n) = (48, 768);
    let mut rng = Rng::new(3);
    let mut w: Vec<f32> = (0..rows * n).map(|_| rng.next_f64() as f32 - 0.5).collect();
    let mut m = vec![1e-4f32; rows * n];
    let mut v = vec![1e-8f32; rows * n];
    let x: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32).collect();
    let mut dx = vec![0.0f32; n];
    let mut f: Pass = if divider { pass::<true> } else { pass::<false> };
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
        // SAFETY (of the calls through `f`): the CPU has the features these are compiled for.
        f = if divider {
            |w, m, v, x, dx| unsafe { pass_avx512::<true>(w, m, v, x, dx) }
        } else {
            |w, m, v, x, dx| unsafe { pass_avx512::<false>(w, m, v, x, dx) }
        };
    }
    let passes = 2000;
    median_of_5(|_| {
        let t = Instant::now();
        for _ in 0..passes {
            f(&mut w, &mut m, &mut v, black_box(&x), &mut dx);
        }
        black_box(&dx);
        t.elapsed().as_secs_f64() * 1e9 / (passes * rows * n) as f64
    })
}

fn params(m: usize) -> f64 {
    (768 * 256 + 256 + 256 * 256 + 256 + 256 * m + m) as f64
}

fn main() {
    println!("MLPR batch-1 training, d = 768, hidden 256 x 2 (median of 5 runs)");
    // Every pool size of the sweep is measured (the smaller ones are cheap to time), so the
    // projection below uses each size's own figure.
    let mut per_m = Vec::new();
    for m in [3, 5, 10, 100, 1000] {
        let (adam, mem) = (adam_ns(m), memory_ns(params(m) as usize));
        println!(
            "  m = {m:>4}: {:>7} parameters, Adam step {adam:.3} ns/update, memory pass {mem:.3} \
             ns/element, ratio {:.2}",
            params(m),
            adam / mem
        );
        per_m.push((m, adam));
    }
    // Where the time goes. The same kernel training a 768 -> 48 linear model, whose weights and
    // moments (443 KB) stay in the core's L2 cache: about as fast per update, so memory is not
    // what bounds the step. And the square root and division that every exact Adam update
    // needs, alone: most of the step.
    let cached = adam_ns_widths(&[768, 48], 40);
    let divider = divider_ns();
    println!(
        "  in cache (768 -> 48 linear, 36,912 parameters): Adam step {cached:.3} ns/update; \
         Adam's square root and division alone: {divider:.3} ns/element"
    );
    // And the rest of the update alone: the same pass without the divider costs nearly as much
    // as the divider does, so no overlap of the two gets an exact update much below either.
    let (with_divider, without) = (update_ns(true), update_ns(false));
    println!(
        "  the fused update pass alone (48 x 768 layer, in cache): {with_divider:.3} ns/update; \
         with the square root and division replaced by a multiplication: {without:.3}"
    );
    // The paper sweep: 12 benchmarks x sizes {3, 5, 10, 100, 1000} x 3 groups, 100 epochs.
    let train: f64 = ITEMS.iter().map(|&n| (n as f64 * 0.8).floor()).sum();
    let ns_at = |m: usize| {
        per_m
            .iter()
            .find(|&&(size, _)| size == m)
            .map(|&(_, ns)| ns)
            .expect("every size of the sweep was measured")
    };
    let seconds: f64 = [3usize, 5, 10, 100, 1000]
        .iter()
        .map(|&m| 3.0 * train * 100.0 * params(m) * ns_at(m) * 1e-9)
        .sum();
    // A projection at the kernel's speed, not a verdict: the sweep's time is what
    // `scripts/sweep` measures; this says how much of it the kernel alone accounts for.
    println!(
        "projected MLPR share of the paper sweep ({train} training queries, 15 pools each, 100 \
         epochs) at the measured kernel speeds: {:.0} core-seconds, {:.1} min on 2 cores",
        seconds,
        seconds / 2.0 / 60.0
    );
    let updates: f64 = [3usize, 5, 10, 100, 1000]
        .iter()
        .map(|&m| 3.0 * train * 100.0 * params(m))
        .sum();
    let floor = updates * divider * 1e-9;
    println!(
        "  its floor, {updates:.2e} Adam updates x the square root and division alone: {:.0} \
         core-seconds, {:.1} min on 2 cores",
        floor,
        floor / 2.0 / 60.0
    );
    let fused = updates * with_divider * 1e-9;
    println!(
        "  and x the fused update pass alone (no forward pass, no output delta): {:.0} \
         core-seconds, {:.1} min on 2 cores",
        fused,
        fused / 2.0 / 60.0
    );
}
