//! The WebAssembly sandbox's costs, measured in one run against baselines measured in the
//! same run:
//!
//! 1. kNN `route` on RouterEval's largest shape (11,233 training queries, 1,405 test queries,
//!    768-d embeddings, m = 1000), built in (native) and as the WASM component under the
//!    default sandbox policy (fuel, epoch deadline, NaN canonicalisation, host kernels on); the
//!    ratio wasm / native, taken round by round with the two timed in turn, is the figure of
//!    merit (target <= 1.2). Also with the matrix kernel computed inside the sandbox (host
//!    kernels off), with and without NaN canonicalisation. One thread each. Every routing is
//!    checked against the built-in one (the test suite runs the same check on a small shape).
//! 2. Loading a plugin whose compiled code is cached (read, hash, deserialize, link, `info`)
//!    against compiling it, in turn: target <= 0.02 of a compile (about 5 ms here).
//!
//! Run: `cargo bench -p routereval-tests --bench wasm` (the build script builds the component).

use std::path::PathBuf;

use routereval_tests::{
    DIM, Largest, M, N_TEST, N_TRAIN, knn_wasm_against_native, load_cached_against_compile, ms,
};

fn main() {
    let wasm = PathBuf::from(env!("ROUTEREVAL_WASM_DIR")).join("routereval_plugin_knn.wasm");
    let data = Largest::new();
    let rounds = 7;
    let t = knn_wasm_against_native(&wasm, &data, rounds);
    println!(
        "kNN route, {N_TRAIN} train x {N_TEST} test x {DIM}-d, m = {M}, one thread, {rounds} \
         interleaved rounds (median ms; ratio = median of each round's wasm / native):"
    );
    println!(
        "  native (built-in)                      {:9.1} ms",
        ms(routereval_tests::median(t.native.clone()))
    );
    for (i, (label, times)) in t.wasm.iter().enumerate() {
        let target = if i == 0 { " (target <= 1.2)" } else { "" };
        println!(
            "  wasm, {label:<32} {:9.1} ms   ratio {:.2}{target}",
            ms(routereval_tests::median(times.clone())),
            t.ratio(i)
        );
    }
    let (cached, compiled) = load_cached_against_compile(&wasm, 5);
    println!(
        "plugin load ({} KiB component), 5 interleaved rounds: from the cache {:.2} ms, compiled \
         {:.1} ms: ratio {:.4} (target <= 0.02: the cache saves at least 98% of a compile)",
        std::fs::metadata(&wasm).unwrap().len() / 1024,
        ms(cached),
        ms(compiled),
        cached.as_secs_f64() / compiled.as_secs_f64()
    );
}
