//! Native plugins' costs, each next to its baseline measured in the same run:
//!
//! 1. Loading the kNN library: in-process (read + SHA-256, `dlopen`, abi_stable's version and
//!    layout checks, the root module), the first time and again; and isolated (the same in a
//!    probe child of the engine binary).
//! 2. Per-evaluation cost of `--isolate process` on the embedded data (7 pools, fit + route +
//!    validation + metrics, one thread), next to the same evaluations in-process and built in.
//! 3. The same at RouterEval's largest shape (11,233 x 1,405 x 768, m = 1000), where the
//!    ~80 MB of matrices crossing the pipe dominate the overhead.
//!
//! Run: `cargo bench -p routereval-tests --bench native` (the build script builds the library).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routereval_engine::Registry;
use routereval_engine::data::embedded;
use routereval_engine::eval::contestant::{self, SharedContestant};
use routereval_engine::eval::run::{self, EvalResult, Selection};
use routereval_engine::plugin::native::{Isolation, NativeContestant, NativePlugin};
use routereval_engine::plugin::policy::SandboxPolicy;
use routereval_sdk::Params;
use routereval_tests::{DIM, Largest, M, N_TEST, N_TRAIN, median, ms};

const ENGINE: &str = env!("CARGO_BIN_EXE_engine");

fn load(lib: &Path, isolation: Isolation) -> NativePlugin {
    let p = NativePlugin::load(lib, isolation, Path::new(ENGINE), &SandboxPolicy::default())
        .expect("the kNN library loads");
    assert!(p.unusable().is_none(), "{:?}", p.unusable());
    p
}

fn main() {
    let lib = PathBuf::from(env!("ROUTEREVAL_NATIVE_DIR")).join(format!(
        "{}routereval_plugin_knn{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let size_kib = std::fs::metadata(&lib).expect("library built").len() / 1024;

    // 1. Load time.
    let t = Instant::now();
    let in_process = load(&lib, Isolation::InProcess);
    let first = t.elapsed();
    let again: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(load(&lib, Isolation::InProcess));
            t.elapsed()
        })
        .collect();
    let probes: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(load(&lib, Isolation::Process));
            t.elapsed()
        })
        .collect();
    println!("native plugin load ({size_kib} KiB library):");
    println!(
        "  in-process, first (dlopen + checks)     {:8.2} ms",
        ms(first)
    );
    println!(
        "  in-process, again, median of 50         {:8.2} ms",
        ms(median(again))
    );
    println!(
        "  isolated (probe child), median of 10    {:8.2} ms",
        ms(median(probes))
    );

    // 2. Per evaluation, embedded data, one thread.
    let datasets = vec![embedded::default_dataset().expect("embedded data")];
    let registry = Registry::builtin();
    let params = Params::new(0);
    let contestants = [
        (
            "built in",
            contestant::parse("knn", 0, &registry).expect("knn"),
        ),
        (
            "native, in-process",
            Arc::new(NativeContestant::new(
                Arc::new(in_process),
                params.clone(),
                0,
            )) as SharedContestant,
        ),
        (
            "native, isolated",
            Arc::new(NativeContestant::new(
                Arc::new(load(&lib, Isolation::Process)),
                params.clone(),
                0,
            )) as SharedContestant,
        ),
    ];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread");
    let reps = 7;
    let mut per_eval = Vec::new();
    let mut reference: Option<Vec<EvalResult>> = None;
    for (label, c) in &contestants {
        let cs = std::slice::from_ref(c);
        let tasks = run::plan(&datasets, cs, &Selection::default());
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let rs = pool.install(|| run::execute(&datasets, cs, &tasks, &|_| {}, &|_, _| {}));
            times.push(t.elapsed());
            assert!(rs.iter().all(EvalResult::is_ok), "{label}: {rs:?}");
            match &reference {
                None => reference = Some(rs),
                Some(want) => {
                    for (a, b) in want.iter().zip(&rs) {
                        assert_eq!(a.outcome, b.outcome, "{label} differs from built in");
                    }
                }
            }
        }
        per_eval.push((label, ms(median(times)) / tasks.len() as f64, tasks.len()));
    }
    println!(
        "per evaluation, embedded data ({} pools, fit + route + metrics), one thread, median of {reps}:",
        per_eval[0].2
    );
    for (label, t, _) in &per_eval {
        println!("  {label:<20} {t:8.2} ms");
    }
    let (inproc, isolated) = (per_eval[1].1, per_eval[2].1);
    println!(
        "  isolation overhead   {:8.2} ms per evaluation (isolated / in-process {:.2})",
        isolated - inproc,
        isolated / inproc
    );

    // 3. The largest shape.
    let data = Largest::new();
    let (train, val, test) = data.views();
    let big_reps = 5;
    let mut big = Vec::new();
    for isolation in [Isolation::InProcess, Isolation::Process] {
        let plugin = load(&lib, isolation);
        let times: Vec<Duration> = (0..big_reps)
            .map(|_| {
                let t = Instant::now();
                let attempt = plugin.evaluate(&params, &train, &val, &test);
                let d = t.elapsed();
                assert!(attempt.answer.is_ok(), "{:?}", attempt.answer);
                d
            })
            .collect();
        big.push(ms(median(times)));
    }
    println!(
        "per evaluation, {N_TRAIN} train x {N_TEST} test x {DIM}-d, m = {M} (fit + route), median of {big_reps}:"
    );
    println!("  native, in-process   {:8.1} ms", big[0]);
    println!(
        "  native, isolated     {:8.1} ms   overhead {:.1} ms (ratio {:.2})",
        big[1],
        big[1] - big[0],
        big[1] / big[0]
    );
}
