//! What the README and ARCHITECTURE.md promise, each checked through the CLI: isolation never
//! loads an untrusted library into the engine, one store per evaluation, frozen clocks and
//! seeded entropy, NaN canonicalisation, the same results on any number of threads for every
//! kind of router, seeds, the command line over the config, synth's bytes, and the paper's
//! reference accuracy for every benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{TempDir, find, native, results_without_times, run, wasm};

const ENGINE: &str = env!("CARGO_BIN_EXE_engine");

/// Runs the CLI in-process with a private compile cache.
fn run_cached(cache: &TempDir, args: &[&str]) -> crate::util::Output {
    let mut all = vec!["--cache-dir", cache.path().to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

fn rows(out: &crate::util::Output) -> Vec<Value> {
    assert!(out.code <= 1, "{}", out.stderr);
    results_without_times(&out.json())
}

/// A small synthetic suite: two benchmarks, pools of 3 and 10.
fn suite(dir: &Path) -> PathBuf {
    let out = dir.join("suite");
    let o = run(&[
        "synth",
        "-o",
        out.to_str().unwrap(),
        "--benchmarks",
        "gsm8k,mmlu",
        "--scale",
        "0.1",
        "--models",
        "300",
        "--sizes",
        "3,10",
        "--draws",
        "100",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    out
}

/// "In isolated mode, an untrusted native library is never loaded into the engine's process, not
/// even to read its name": the fixture records every process that loads it (from the dynamic
/// loader's initialiser, before any of its code is called). Isolated, only workers do; run
/// in-process (the control), the engine does.
#[cfg(target_os = "linux")]
#[test]
fn isolated_native_plugins_are_never_loaded_into_the_engine() {
    let dir = TempDir::new("claims-loaded");
    let plugin = format!("{}:mode=ok", native("routereval_fixture_hostile"));
    let loaded_by = |isolate: &str, file: &Path| -> (u32, Vec<u32>) {
        let child = Command::new(ENGINE)
            .env("ROUTEREVAL_FIXTURE_LOADED_BY", file)
            .args([
                "--candidates",
                "3",
                "--group",
                "all_strong",
                "--isolate",
                isolate,
                "--plugin",
                &plugin,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let engine = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pids = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        (engine, pids)
    };
    let (engine, pids) = loaded_by("process", &dir.path().join("isolated.txt"));
    // The load-time probe and the evaluation, each in a worker.
    assert!(pids.len() >= 2, "{pids:?}");
    assert!(
        !pids.contains(&engine),
        "the engine {engine} loaded it: {pids:?}"
    );
    let (engine, pids) = loaded_by("none", &dir.path().join("in-process.txt"));
    assert!(
        pids.contains(&engine),
        "the control: {engine} not in {pids:?}"
    );
}

/// "One `Store` per evaluation": a plugin that panics (traps) in the pools of 5 candidates, and
/// one that spins until its fuel is gone there, still succeed in every other pool, with the
/// numbers of a well-behaved run.
#[test]
fn a_plugin_that_fails_in_one_pool_succeeds_in_the_others() {
    let cache = TempDir::new("claims-store");
    let hostile = wasm("routereval_fixture_hostile");
    let (panics, spins) = (
        format!("{hostile}:mode=panic,only_m=5"),
        format!("{hostile}:mode=loop,only_m=5,stage=route"),
    );
    let out = run_cached(
        &cache,
        &[
            "--format",
            "json",
            "--fuel",
            "3000000000",
            "--plugin",
            &panics,
            "--plugin",
            &spins,
            "--plugin",
            &format!("{hostile}:mode=ok"),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rs = rows(&out);
    assert_eq!(rs.len(), 21, "7 pools x 3 plugins");
    for r in &rs {
        let label = r["router"].as_str().unwrap();
        let m = r["m"].as_u64().unwrap();
        if label.contains("mode=ok") {
            continue;
        }
        if m == 5 {
            let want = if label.contains("loop") {
                "out_of_fuel"
            } else {
                "panic"
            };
            assert_eq!(r["error"]["kind"], want, "{r}");
        } else {
            // Uniform routing, as the well-behaved instance's row for the same pool.
            assert_eq!(r["status"], "ok", "{r}");
            let ok = find(&rs, "hostile@wasm:mode=ok", m, r["group"].as_str().unwrap());
            assert_eq!(r["mu"], ok["mu"]);
            assert_eq!(r["ep"], ok["ep"]);
        }
    }
}

/// "Frozen clocks, seeded entropy, NaN canonicalisation, deterministic relaxed SIMD": what a
/// router can observe of time, chance, NaN bits and relaxed SIMD is the same on every run with
/// the same seed; the entropy follows the seed; canonicalisation can be turned off, and then the
/// host's NaN shows.
#[test]
fn the_sandbox_freezes_clocks_seeds_entropy_and_makes_floats_deterministic() {
    let cache = TempDir::new("claims-probe");
    let probe = format!("{}:mode=probe", wasm("routereval_fixture_hostile"));
    let log = |extra: &[&str]| -> String {
        let mut args = vec![
            "--format",
            "json",
            "--candidates",
            "9",
            "--plugin",
            probe.as_str(),
        ];
        args.extend_from_slice(extra);
        let out = run_cached(&cache, &args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let rs = rows(&out);
        assert_eq!(rs.len(), 1);
        rs[0]["log"].as_str().unwrap().trim().to_string()
    };
    let a = log(&["--seed", "0"]);
    // The wall clock reads the epoch, and no time passes.
    assert!(a.starts_with("[info] wall 0 elapsed 0 hash "), "{a}");
    assert!(a.contains("nan-bits 0x7fc00000\n"), "{a}");
    // Relaxed SIMD made deterministic: truncation saturates as `trunc_sat` does on every host
    // (x86's own instruction would give i32::MIN for the NaN and for 1e10).
    assert!(
        a.ends_with("[info] relaxed-trunc [0, 2147483647, -2147483648, 1]"),
        "{a}"
    );
    assert_eq!(log(&["--seed", "0"]), a, "a rerun saw other values");
    let hash = |s: &str| {
        s.split("hash ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let b = log(&["--seed", "1"]);
    assert_ne!(hash(&a), hash(&b), "the entropy does not follow the seed");
    // Without canonicalisation, the host's own NaN of 0 / 0 (x86's is negative).
    let raw = log(&["--seed", "0", "--nan-canonicalization", "false"]);
    #[cfg(target_arch = "x86_64")]
    assert!(raw.contains("nan-bits 0xffc00000\n"), "{raw}");
    assert!(raw.starts_with("[info] wall 0 elapsed 0 hash "), "{raw}");
}

/// "Results are in plan order and bit-identical whatever the thread count", for every kind of
/// router at once: built in (seeded and not), a bound, WebAssembly and isolated native plugins.
#[test]
fn results_are_the_same_on_1_and_8_threads_for_every_kind_of_router() {
    let dir = TempDir::new("claims-threads");
    let cache = TempDir::new("claims-threads-cache");
    let data = suite(dir.path());
    let knn_wasm = wasm("routereval_plugin_knn");
    let linear_native = native("routereval_plugin_linear");
    let args = |threads: &'static str| -> Vec<String> {
        [
            "--format",
            "json",
            "--dataset",
            data.to_str().unwrap(),
            "--router",
            "knn",
            "--router",
            "linear:epochs=2",
            "--router",
            "random",
            "--plugin",
            &knn_wasm,
            "--plugin",
            &format!("{linear_native}:epochs=2"),
            "--isolate",
            "process",
            "--worker-exe",
            ENGINE,
            "--threads",
            threads,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let go = |threads| {
        let a = args(threads);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        rows(&run_cached(&cache, &a))
    };
    let (one, eight) = (go("1"), go("8"));
    // 2 benchmarks x 2 sizes x 3 groups x 5 rows.
    assert_eq!(one.len(), 60);
    assert!(one.iter().all(|r| r["status"] == "ok"), "{one:?}");
    assert_eq!(one, eight);
}

/// `--seed` reaches seeded routers: the same seed gives the same rows, another seed other
/// numbers for LinearR (its initialisation and shuffles) and not for kNN (nothing to seed).
#[test]
fn the_seed_changes_seeded_routers_and_reproduces_them() {
    let go = |seed: &str| {
        rows(&run(&[
            "--format",
            "json",
            "--candidates",
            "3",
            "--router",
            "linear:epochs=2",
            "--router",
            "knn",
            "--seed",
            seed,
        ]))
    };
    let (a, b, c) = (go("0"), go("0"), go("1"));
    assert_eq!(a, b);
    let changed = |router: &str| {
        ["all_strong", "all_weak", "strong_to_weak"]
            .iter()
            .any(|g| find(&a, router, 3, g)["ep"] != find(&c, router, 3, g)["ep"])
    };
    assert!(
        changed("linear:epochs=2"),
        "seed 1 gave LinearR seed 0's numbers"
    );
    assert!(!changed("knn"));
}

/// "The command line overrides the config": a config asks for a table, seed 3 and the easy
/// pools of 3; the command line asks for JSON and seed 5, and gets them, with the config's
/// selection kept.
#[test]
fn the_command_line_overrides_the_config() {
    let dir = TempDir::new("claims-config");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        "seed = 3\nformat = \"table\"\ncandidates = [3]\n\n[[router]]\nname = \"linear\"\nparams = { epochs = 1 }\n",
    )
    .unwrap();
    let out = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
        "--seed",
        "5",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["seed"], 5);
    let rs = v["results"].as_array().unwrap();
    assert_eq!(rs.len(), 3, "the config's pools of 3: {rs:?}");
    assert!(rs.iter().all(|r| r["router"] == "linear:epochs=1"));
    let table = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("llmrouter"), "{}", table.stdout);
}

/// "`synth` gives the same bytes whatever the thread count".
#[test]
fn synth_writes_the_same_bytes_on_any_number_of_threads() {
    let dir = TempDir::new("claims-synth");
    let write = |threads: &str| -> PathBuf {
        let out = dir.path().join(format!("t{threads}"));
        let o = Command::new(ENGINE)
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "synth",
                "-o",
                out.to_str().unwrap(),
                "--benchmarks",
                "gsm8k,mmlu,truthfulqa",
                "--scale",
                "0.1",
                "--models",
                "400",
                "--sizes",
                "3,10,100",
                "--draws",
                "100",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let (one, four) = (write("1"), write("4"));
    let mut n = 0;
    for entry in std::fs::read_dir(&one).unwrap() {
        let name = entry.unwrap().file_name();
        let (a, b) = (
            std::fs::read(one.join(&name)).unwrap(),
            std::fs::read(four.join(&name)).unwrap(),
        );
        assert!(a == b, "{name:?} differs between 1 and 4 threads");
        n += 1;
    }
    assert_eq!(n, 3);
}

/// "The name before `_router_dataset.pkl` picks the reference accuracy for V_R": every one of
/// RouterEval's 12 benchmarks, against the paper's values (as DESIGN.md lists them).
#[test]
fn every_benchmark_has_the_papers_reference_accuracy() {
    const PAPER: [(&str, f64); 12] = [
        ("arc", 0.852),
        ("hellaswag", 0.953),
        ("mmlu", 0.864),
        ("harness_truthfulqa_mc_0", 0.669),
        ("winogrande", 0.875),
        ("gsm8k", 0.92),
        ("ifeval", 0.7689),
        ("bbh", 0.8303),
        ("gpqa", 0.397),
        ("math", 0.4),
        ("musr", 0.699),
        ("mmlu_pro", 0.637),
    ];
    let dir = TempDir::new("claims-accref");
    let data = dir.path().join("all");
    let o = run(&[
        "synth",
        "-o",
        data.to_str().unwrap(),
        "--scale",
        "0.02",
        "--models",
        "100",
        "--sizes",
        "3",
        "--draws",
        "20",
        "--dim",
        "8",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let rs = rows(&run(&[
        "--format",
        "json",
        "--dataset",
        data.to_str().unwrap(),
        "--router",
        "best-on-train",
    ]));
    for (bench, acc) in PAPER {
        let r = rs
            .iter()
            .find(|r| r["benchmark"] == bench)
            .unwrap_or_else(|| panic!("no row for {bench}"));
        let (mu, vr) = (r["mu"].as_f64().unwrap(), r["vr"].as_f64().unwrap());
        assert!((vr - mu / acc).abs() < 1e-12, "{bench}: V_R {vr}, mu {mu}");
    }
}

/// The sandbox's flags take effect: `--stack-limit` (named in the overflow), `--max-log` and
/// `--max-output` on WebAssembly plugins and on isolated native plugins alike.
#[test]
fn the_sandbox_flags_bind_webassembly_and_isolated_native_plugins() {
    let cache = TempDir::new("claims-flags");
    let (w, n) = (
        wasm("routereval_fixture_hostile"),
        native("routereval_fixture_hostile"),
    );
    let specs: Vec<String> = [
        format!("{w}:mode=stack_overflow"),
        format!("{w}:lines=500,mode=chatty"),
        format!("{w}:floats=524288,mode=huge_output"),
        format!("{n}:lines=500,mode=chatty"),
        format!("{n}:floats=524288,mode=huge_output"),
    ]
    .to_vec();
    let mut args = vec![
        "--format",
        "json",
        "--candidates",
        "9",
        "--stack-limit",
        "256",
        "--max-log",
        "1",
        "--max-output",
        "1",
        "--isolate",
        "process",
        "--worker-exe",
        ENGINE,
    ];
    for s in &specs {
        args.extend(["--plugin", s.as_str()]);
    }
    let out = run_cached(&cache, &args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rs = rows(&out);
    assert_eq!(rs.len(), 5);
    let row = |label: &str| {
        rs.iter()
            .find(|r| r["router"] == label)
            .unwrap_or_else(|| panic!("no row {label}: {rs:?}"))
    };
    let r = row("hostile@wasm:mode=stack_overflow");
    assert_eq!(r["error"]["kind"], "stack_overflow");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("256 KiB"),
        "{r}"
    );
    for kind in ["wasm", "native"] {
        let chatty = row(&format!("hostile@{kind}:lines=500,mode=chatty"));
        assert_eq!(chatty["status"], "ok", "{chatty}");
        let log = chatty["log"].as_str().unwrap();
        assert!(
            log.len() <= 1024 + 120,
            "{kind}: {} bytes of log",
            log.len()
        );
        assert!(
            log.contains("1 KiB") || log.contains("1024 bytes"),
            "{kind}: {log}"
        );
        let huge = row(&format!("hostile@{kind}:floats=524288,mode=huge_output"));
        assert_ne!(huge["status"], "ok", "{huge}");
        assert!(
            huge["error"]["message"].as_str().unwrap().contains("1 MiB"),
            "{kind}: {huge}"
        );
    }
}

/// Compiled plugins are cached per plugin and per compilation setting (NaN canonicalisation
/// changes the machine code: another entry), and `--no-cache` writes nothing.
#[test]
fn the_compile_cache_is_keyed_by_policy_and_no_cache_writes_nothing() {
    let dir = TempDir::new("claims-cache");
    let knn = wasm("routereval_plugin_knn");
    let entries = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
    let go = |cache: &Path, extra: &[&str]| {
        let o = Command::new(ENGINE)
            .env("ROUTEREVAL_CACHE_DIR", cache)
            .args([
                "--candidates",
                "3",
                "--group",
                "all_strong",
                "--plugin",
                &knn,
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let cache = dir.path().join("cache");
    go(&cache, &[]);
    assert_eq!(entries(&cache), 1);
    go(&cache, &[]);
    assert_eq!(
        entries(&cache),
        1,
        "the same plugin and settings: one entry"
    );
    go(&cache, &["--nan-canonicalization", "false"]);
    assert_eq!(
        entries(&cache),
        2,
        "another compilation setting: another entry"
    );
    let none = dir.path().join("none");
    go(&none, &["--no-cache"]);
    assert_eq!(entries(&none), 0);
}

/// An isolated worker cannot dump core (a crash must not write the evaluation's data to disk):
/// its core-file limit is 0, soft and hard (so the plugin cannot raise it again).
#[cfg(target_os = "linux")]
#[test]
fn isolated_workers_cannot_dump_core() {
    let out = run(&[
        "--format",
        "json",
        "--candidates",
        "9",
        "--isolate",
        "process",
        "--worker-exe",
        ENGINE,
        "--plugin",
        &format!("{}:mode=limits", native("routereval_fixture_hostile")),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rs = rows(&out);
    let message = rs[0]["error"]["message"].as_str().unwrap();
    let fields: Vec<&str> = message
        .split("Max core file size")
        .nth(1)
        .unwrap_or_else(|| panic!("{message}"))
        .split_whitespace()
        .collect();
    assert_eq!(&fields[..2], ["0", "0"], "{message}");
}

/// ARCHITECTURE.md's code map names every module of the engine (a file added or moved without
/// its line in the map fails here), and every layer folder it names exists.
#[test]
fn the_code_map_names_every_engine_module() {
    let root = crate::util::root();
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let src = root.join("engine/src");
    let mut stack = vec![src.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                let last = p.file_name().unwrap().to_str().unwrap();
                assert!(
                    map.contains(&format!("`{last}/`")),
                    "ARCHITECTURE.md does not name `{last}/`"
                );
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_str().unwrap();
            if !name.ends_with(".rs") || ["lib.rs", "main.rs", "mod.rs"].contains(&name) {
                continue;
            }
            seen += 1;
            // A command's module is named as the command (`build_dataset.rs`: `build-dataset`).
            let stem = name.trim_end_matches(".rs").replace('_', "-");
            assert!(
                map.contains(&format!("`{name}`")) || map.contains(&format!("`{stem}`")),
                "ARCHITECTURE.md's code map does not name {}",
                p.display()
            );
        }
    }
    assert!(seen > 30, "{seen} modules");
}
