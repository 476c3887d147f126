//! The WebAssembly sandbox's costs, measured in one run against baselines measured in the
//! same run:
//!
//! 1. kNN `route` on RouterEval's largest shape (11,233 training queries, 1,405 test queries,
//!    768-d embeddings, m = 1000), built in (native) and as the WASM component under the
//!    default sandbox policy (fuel, epoch deadline, NaN canonicalisation, host kernels on); the
//!    ratio wasm / native is the figure of merit (target <= 1.2). Also with the matrix kernel
//!    computed inside the sandbox (host kernels off), with and without NaN canonicalisation.
//!    One thread each.
//! 2. Loading a plugin whose compiled code is cached (read, hash, deserialize, link, `info`):
//!    target < 5 ms.
//!
//! Run: `cargo bench -p routereval-tests --bench wasm` (the build script builds the component).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use routereval_engine::sandbox::SandboxPolicy;
use routereval_engine::wasm::{WasmHost, WasmPlugin};
use routereval_plugin_knn::Knn;
use routereval_sdk::{Params, Router};
use routereval_tests::{DIM, Largest, M, N_TEST, N_TRAIN, median, ms};

fn main() {
    let wasm = PathBuf::from(env!("ROUTEREVAL_WASM_DIR")).join("routereval_plugin_knn.wasm");
    let data = Largest::new();
    let (train, val, test_q) = data.views();
    let params = Params::new(0);
    let reps = 5;

    // Native: the built-in router.
    let mut native = Knn::new(&params).unwrap();
    native.fit(&train, &val).unwrap();
    let expected = native.route(&test_q).unwrap();
    let native_times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(native.route(&test_q).unwrap());
            t.elapsed()
        })
        .collect();

    // WASM, under a policy (the run's threads need room for the guest's stack).
    let bench_policy = |policy: SandboxPolicy, label: &str| -> Duration {
        let cache = std::env::temp_dir().join(format!("routereval-bench-{}", std::process::id()));
        let host = WasmHost::new(policy, Some(cache.clone())).unwrap();
        let plugin = WasmPlugin::load(&host, &wasm).unwrap();
        let mut session = plugin.start(&params).map_err(|e| e.0).unwrap();
        session.fit(&train, &val).unwrap();
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let routing = session.route(&test_q).unwrap();
            times.push(t.elapsed());
            assert_eq!(
                routing.choices(),
                expected.choices(),
                "{label}: choices differ"
            );
        }
        let _ = std::fs::remove_dir_all(&cache);
        median(times)
    };
    let run = |f: &(dyn Fn() -> Duration + Sync)| -> Duration {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(16 << 20)
                .spawn_scoped(s, f)
                .unwrap()
                .join()
                .unwrap()
        })
    };
    let native_ms = ms(median(native_times));
    let wasm_default = ms(run(&|| bench_policy(SandboxPolicy::default(), "default")));
    let wasm_in_guest = ms(run(&|| {
        bench_policy(
            SandboxPolicy {
                host_kernels: false,
                ..SandboxPolicy::default()
            },
            "host kernels off",
        )
    }));
    let wasm_in_guest_no_nan = ms(run(&|| {
        bench_policy(
            SandboxPolicy {
                host_kernels: false,
                nan_canonicalization: false,
                ..SandboxPolicy::default()
            },
            "host kernels and NaN canonicalisation off",
        )
    }));
    println!(
        "kNN route, {N_TRAIN} train x {N_TEST} test x {DIM}-d, m = {M}, one thread, median of {reps}:"
    );
    println!("  native (built-in)                      {native_ms:9.1} ms");
    println!(
        "  wasm, default policy                   {wasm_default:9.1} ms   ratio wasm/native {:.2} (target <= 1.2)",
        wasm_default / native_ms
    );
    println!(
        "  wasm, host kernels off (all in wasm)   {wasm_in_guest:9.1} ms   ratio {:.2}",
        wasm_in_guest / native_ms
    );
    println!(
        "  wasm, host kernels and NaN canon. off  {wasm_in_guest_no_nan:9.1} ms   ratio {:.2}",
        wasm_in_guest_no_nan / native_ms
    );

    // Loading from the compiled cache.
    let cache = std::env::temp_dir().join(format!("routereval-bench-load-{}", std::process::id()));
    let host = WasmHost::new(SandboxPolicy::default(), Some(cache.clone())).unwrap();
    let t = Instant::now();
    let first = WasmPlugin::load(&host, &wasm).unwrap();
    let cold = t.elapsed();
    assert!(!first.from_cache());
    let loads: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let p = WasmPlugin::load(&host, &wasm).unwrap();
            let d = t.elapsed();
            assert!(p.from_cache());
            d
        })
        .collect();
    let _ = std::fs::remove_dir_all(&cache);
    println!(
        "plugin load ({} KiB component): compile {:.1} ms; from the cache, median of 50: {:.2} ms (target < 5 ms)",
        std::fs::metadata(&wasm).unwrap().len() / 1024,
        ms(cold),
        ms(median(loads))
    );
}
