//! Integration tests live in `all/` (one test binary, as wasmtime does). This library holds what
//! the benchmarks share with the tests: RouterEval's largest shape (and a quick one) as
//! deterministic synthetic data, the benchmarks' measurements with their correctness checks (so
//! the test suite runs each check on the quick shape), and timing helpers.

use std::path::Path;
use std::time::{Duration, Instant};

use routereval_engine::plugin::policy::SandboxPolicy;
use routereval_engine::plugin::wasm::{WasmHost, WasmPlugin};
use routereval_sdk::{Params, Queries, Rng, Router, Split, Texts};

/// Training queries of RouterEval's largest benchmark.
pub const N_TRAIN: usize = 11_233;
/// Its test queries.
pub const N_TEST: usize = 1_405;
/// Embedding dimension.
pub const DIM: usize = 768;
/// The largest candidate pool.
pub const M: usize = 1000;

/// The sizes of a synthetic benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Training queries.
    pub n_train: usize,
    /// Test queries.
    pub n_test: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Candidates.
    pub m: usize,
}

/// RouterEval's largest shape.
pub const LARGEST: Shape = Shape {
    n_train: N_TRAIN,
    n_test: N_TEST,
    dim: DIM,
    m: M,
};

/// A shape for the test suite's run of a benchmark's check: seconds, not minutes.
pub const QUICK: Shape = Shape {
    n_train: 1500,
    n_test: 200,
    dim: 64,
    m: 40,
};

/// Embeddings around 32 topic centres, and binary scores whose rate depends on model and
/// topic: the shape of the real data, deterministic.
pub fn synthetic(shape: Shape, n: usize, rng: &mut Rng, centres: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (dim, m) = (shape.dim, shape.m);
    let topics = centres.len() / dim;
    let mut emb = Vec::with_capacity(n * dim);
    let mut scores = Vec::with_capacity(n * m);
    for _ in 0..n {
        let t = rng.below(topics as u64) as usize;
        emb.extend((0..dim).map(|j| centres[t * dim + j] + 0.5 * rng.normal() as f32));
        scores.extend((0..m).map(|k| {
            let p = ((k * 7 + t * 13) % 100) as f64 / 100.0;
            f32::from(u8::from(rng.next_f64() < p))
        }));
    }
    (emb, scores)
}

/// 32 random topic centres of `dim` values for [`synthetic`].
pub fn centres(rng: &mut Rng, dim: usize) -> Vec<f32> {
    (0..32 * dim).map(|_| rng.normal() as f32).collect()
}

/// A synthetic benchmark of a [`Shape`], deterministic (seed 7); [`Largest::new`] is
/// RouterEval's largest. The test split doubles as the validation split.
#[derive(Debug)]
pub struct Largest {
    shape: Shape,
    train_emb: Vec<f32>,
    train_scores: Vec<f32>,
    test_emb: Vec<f32>,
    test_scores: Vec<f32>,
    names: Vec<String>,
}

impl Largest {
    /// RouterEval's largest shape.
    pub fn new() -> Largest {
        Largest::of(LARGEST)
    }

    /// Any shape.
    pub fn of(shape: Shape) -> Largest {
        let mut rng = Rng::new(7);
        let centres = centres(&mut rng, shape.dim);
        let (train_emb, train_scores) = synthetic(shape, shape.n_train, &mut rng, &centres);
        let (test_emb, test_scores) = synthetic(shape, shape.n_test, &mut rng, &centres);
        Largest {
            shape,
            train_emb,
            train_scores,
            test_emb,
            test_scores,
            names: (0..shape.m).map(|k| format!("model-{k}")).collect(),
        }
    }

    /// Its shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The training split, the validation split and the test queries.
    ///
    /// # Panics
    /// Never: the shapes are consistent by construction.
    pub fn views(&self) -> (Split<'_>, Split<'_>, Queries<'_>) {
        let s = self.shape;
        let train_q = Queries::new(s.n_train, s.dim, &self.train_emb, Texts::EMPTY).expect("shape");
        let train = Split::new(train_q, &self.train_scores, &self.names).expect("shape");
        let test = Queries::new(s.n_test, s.dim, &self.test_emb, Texts::EMPTY).expect("shape");
        let val = Split::new(test, &self.test_scores, &self.names).expect("shape");
        (train, val, test)
    }
}

impl Default for Largest {
    fn default() -> Self {
        Largest::new()
    }
}

/// What [`knn_wasm_against_native`] measured: per round, the built-in kNN's `route` and the
/// component's under each policy, in that order within the round.
#[derive(Debug)]
pub struct KnnTimes {
    /// The built-in router, per round.
    pub native: Vec<Duration>,
    /// Per policy (its label, then its time per round).
    pub wasm: Vec<(&'static str, Vec<Duration>)>,
}

impl KnnTimes {
    /// The median over rounds of policy `i`'s time over the native time of the same round.
    pub fn ratio(&self, i: usize) -> f64 {
        let mut r: Vec<f64> = self.wasm[i]
            .1
            .iter()
            .zip(&self.native)
            .map(|(w, n)| w.as_secs_f64() / n.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    }
}

/// kNN `route` built in and as the component at `wasm` under the default policy, with host
/// kernels off, and with NaN canonicalisation off too: `rounds` rounds, each timing all four in
/// turn (interleaved, so a drift of the machine's speed affects them alike), on one thread. Every
/// component routing is checked against the built-in one (the same choices, beliefs within 1e-6).
///
/// # Panics
/// When a routing differs, or the component cannot be loaded.
pub fn knn_wasm_against_native(wasm: &Path, data: &Largest, rounds: usize) -> KnnTimes {
    // The guest's stack runs on this thread's: give it room.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn_scoped(s, || knn_rounds(wasm, data, rounds))
            .expect("a thread")
            .join()
            .expect("the measurement panicked")
    })
}

fn knn_rounds(wasm: &Path, data: &Largest, rounds: usize) -> KnnTimes {
    let (train, val, test) = data.views();
    let params = Params::new(0);
    let mut native = routereval_plugin_knn::Knn::new(&params).expect("knn");
    native.fit(&train, &val).expect("fit");
    let expected = native.route(&test).expect("route");
    let cache = std::env::temp_dir().join(format!(
        "routereval-bench-knn-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let policies: [(&'static str, SandboxPolicy); 3] = [
        ("default policy", SandboxPolicy::default()),
        (
            "host kernels off (all in wasm)",
            SandboxPolicy {
                host_kernels: false,
                ..SandboxPolicy::default()
            },
        ),
        (
            "host kernels and NaN canon. off",
            SandboxPolicy {
                host_kernels: false,
                nan_canonicalization: false,
                ..SandboxPolicy::default()
            },
        ),
    ];
    let mut sessions = Vec::new();
    let mut hosts = Vec::new();
    for (_, policy) in &policies {
        hosts.push(WasmHost::new(policy.clone(), Some(cache.clone())).expect("host"));
    }
    let plugins: Vec<WasmPlugin> = hosts
        .iter()
        .map(|h| WasmPlugin::load(h, wasm).expect("load"))
        .collect();
    for p in &plugins {
        let mut session = p.start(&params).map_err(|e| e.0).expect("start");
        session.fit(&train, &val).expect("fit");
        sessions.push(session);
    }
    let mut times = KnnTimes {
        native: Vec::new(),
        wasm: policies.iter().map(|(l, _)| (*l, Vec::new())).collect(),
    };
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(native.route(&test).expect("route"));
        times.native.push(t.elapsed());
        for (i, session) in sessions.iter_mut().enumerate() {
            let t = Instant::now();
            let routing = session.route(&test).expect("route");
            times.wasm[i].1.push(t.elapsed());
            let label = times.wasm[i].0;
            assert_eq!(
                routing.choices(),
                expected.choices(),
                "{label}: choices differ"
            );
            let worst = routing
                .belief()
                .iter()
                .zip(expected.belief())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-6, "{label}: beliefs differ by {worst}");
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
    times
}

/// Loading a component from the compiled cache against compiling it, in turn (`rounds` each,
/// each compile into a fresh cache): (median cached load, median compile). Checks that each
/// cached load came from the cache and that its `info` names the router.
///
/// # Panics
/// When a load fails or does not come from the cache.
pub fn load_cached_against_compile(wasm: &Path, rounds: usize) -> (Duration, Duration) {
    let base = std::env::temp_dir().join(format!(
        "routereval-bench-load-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let (mut cached, mut compiled) = (Vec::new(), Vec::new());
    let warm = base.join("warm");
    let host = WasmHost::new(SandboxPolicy::default(), Some(warm)).expect("host");
    let first = WasmPlugin::load(&host, wasm).expect("load");
    let name = first.name().to_string();
    for round in 0..rounds {
        let t = Instant::now();
        let p = WasmPlugin::load(&host, wasm).expect("load");
        cached.push(t.elapsed());
        assert!(p.from_cache() && p.name() == name);
        let fresh = WasmHost::new(
            SandboxPolicy::default(),
            Some(base.join(format!("cold-{round}"))),
        )
        .expect("host");
        let t = Instant::now();
        let p = WasmPlugin::load(&fresh, wasm).expect("load");
        compiled.push(t.elapsed());
        assert!(!p.from_cache() && p.name() == name);
    }
    let _ = std::fs::remove_dir_all(&base);
    (median(cached), median(compiled))
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
