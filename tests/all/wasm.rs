//! WebAssembly plugins through the CLI: the kNN plugin against the built-in kNN, the example,
//! every hostile fixture's typed failure, the compiled-artifact cache, and files that are not
//! plugins. The components are built by `tests/build.rs`.

use std::net::TcpListener;
use std::path::PathBuf;

use routereval_engine::Registry;
use routereval_engine::plugin::policy::SandboxPolicy;
use routereval_engine::plugin::wasm::{WasmHost, WasmPlugin};
use serde_json::Value;

use crate::util::{TempDir, find, results_without_times, run, run_with, shared, wasm};

fn knn() -> String {
    wasm("routereval_plugin_knn")
}

fn hostile(params: &str) -> String {
    format!("{}:{params}", wasm("routereval_fixture_hostile"))
}

/// Runs with a private, empty compiled-plugin cache, so tests neither read nor leave anything in
/// the user's cache.
fn run_isolated(cache: &TempDir, args: &[&str]) -> crate::util::Output {
    let mut all = vec![
        "--cache-dir",
        cache.path().to_str().expect("utf-8 temp path"),
    ];
    all.extend_from_slice(args);
    run(&all)
}

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().expect("results")
}

/// Every wasm kNN result equals the built-in one (mu, V_B, Ep within 1e-6; the choices come
/// from the same code, so in practice they are equal to the bit).
fn assert_same_as_builtin(rs: &[Value]) {
    let wasm_rows: Vec<&Value> = rs.iter().filter(|r| r["router"] == "knn@wasm").collect();
    assert!(!wasm_rows.is_empty());
    for w in wasm_rows {
        assert_eq!(w["status"], "ok", "{w}");
        assert_eq!(w["kind"], "wasm");
        let b = find(
            rs,
            "knn",
            w["m"].as_u64().unwrap(),
            w["group"].as_str().unwrap(),
        );
        for f in ["mu", "vb", "ep"] {
            let (x, y) = (w[f].as_f64().unwrap(), b[f].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-6,
                "{f}: wasm {x} vs built-in {y} in {w}"
            );
        }
        assert!(w["fuel"].as_u64().unwrap() > 1_000_000, "{w}");
        assert!(b["fuel"].is_null());
    }
}

#[test]
fn wasm_knn_equals_builtin_on_embedded_data_and_reruns_identically() {
    let cache = TempDir::new("wasm-knn");
    let args = ["--format", "json", "--router", "knn", "--plugin", &knn()];
    let a = run_isolated(&cache, &args);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let va = a.json();
    assert_eq!(results(&va).len(), 14, "7 pools x 2 routers");
    // The document names the plugin file by hash and the limits it ran under.
    let p = &va["plugins"][0];
    assert_eq!(p["router"], "knn@wasm");
    assert_eq!(p["abi"], "routereval:router@1.1.0");
    assert_eq!(p["sdk_version"], routereval_sdk::SDK_VERSION);
    assert_eq!(p["sha256"], crate::util::sha256_file(&knn()));
    assert_eq!(va["sandbox"]["memory_mib"], 2048);
    assert_same_as_builtin(results(&va));
    // A rerun, now from the compiled cache and on one thread, gives the same numbers and the
    // same fuel: fuel is a deterministic cost.
    let mut one = args.to_vec();
    one.extend(["--threads", "1"]);
    let b = run_isolated(&cache, &one);
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_eq!(results_without_times(&va), results_without_times(&b.json()));
    // With host kernels off, the product is computed inside the sandbox by the SDK's own
    // WebAssembly SIMD kernel: the same numbers, more fuel.
    let mut guest = args.to_vec();
    guest.extend(["--host-kernels", "false"]);
    let c = run_isolated(&cache, &guest);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let vc = c.json();
    assert_same_as_builtin(results(&vc));
    let fuel = |v: &Value| {
        find(results(v), "knn@wasm", 9, "all_models")["fuel"]
            .as_u64()
            .unwrap()
    };
    assert!(fuel(&vc) > fuel(&va), "{} vs {}", fuel(&vc), fuel(&va));
}

/// A plugin's own seed, when it differs from the run's, is part of its label as a built-in
/// router's is: two seeds of one plugin are two rows, not a clash of labels.
#[test]
fn a_plugins_own_seed_labels_its_row() {
    let cache = TempDir::new("wasm-seed-label");
    let out = run_isolated(
        &cache,
        &[
            "--format",
            "json",
            "--candidates",
            "3",
            "--seed",
            "1",
            "--plugin",
            &format!("{}:k=7,seed=2", knn()),
            "--plugin",
            &format!("{}:k=7", knn()),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let labels: std::collections::BTreeSet<&str> = results(&v)
        .iter()
        .map(|r| r["router"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        ["knn@wasm:k=7", "knn@wasm:k=7,seed=2"]
    );
}

#[test]
fn wasm_knn_equals_builtin_on_the_shared_llmrouter_pickle() {
    let cache = TempDir::new("wasm-knn-shared");
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let out = run_isolated(
        &cache,
        &[
            "--format",
            "json",
            "--dataset",
            pkl.to_str().unwrap(),
            "--router",
            "knn:k=7",
            "--plugin",
            &format!("{}:k=7", knn()),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let rs = results(&v);
    assert_eq!(rs.len(), 12, "6 pools x 2 routers");
    let wasm_rows: Vec<&Value> = rs
        .iter()
        .filter(|r| r["router"] == "knn@wasm:k=7")
        .collect();
    assert_eq!(wasm_rows.len(), 6, "{rs:?}");
    for w in wasm_rows {
        let b = find(
            rs,
            "knn:k=7",
            w["m"].as_u64().unwrap(),
            w["group"].as_str().unwrap(),
        );
        for f in ["mu", "vb", "ep"] {
            let (x, y) = (w[f].as_f64().unwrap(), b[f].as_f64().unwrap());
            assert!((x - y).abs() <= 1e-6, "{f}: wasm {x} vs built-in {y}");
        }
    }
}

#[test]
fn a_component_of_the_first_abi_still_loads_and_gives_the_built_in_numbers() {
    // Built against a frozen copy of routereval:router@1.0.0 (tests/fixtures/abi-1-0): its
    // imports (`host@1.0.0`) resolve to this engine's 1.1.0 and its export is found.
    let cache = TempDir::new("wasm-abi-1-0");
    let pkl = shared("llmrouter/llmrouter_router_dataset.pkl");
    let old = wasm("routereval_fixture_abi_1_0");
    let out = run_isolated(
        &cache,
        &[
            "--format",
            "json",
            "--bootstrap",
            "0",
            "--dataset",
            pkl.to_str().unwrap(),
            "--router",
            "knn",
            "--plugin",
            &old,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(
        v["plugins"][0]["abi"], "routereval:router@1.0.0",
        "{}",
        v["plugins"]
    );
    let rs = results(&v);
    let old_rows: Vec<&Value> = rs
        .iter()
        .filter(|r| r["router"] == "knn-abi-1.0@wasm")
        .collect();
    assert_eq!(old_rows.len(), 6, "{rs:?}");
    for w in old_rows {
        assert_eq!(w["status"], "ok", "{w}");
        let b = find(
            rs,
            "knn",
            w["m"].as_u64().unwrap(),
            w["group"].as_str().unwrap(),
        );
        for f in ["mu", "vb", "ep"] {
            assert_eq!(w[f], b[f], "{f} on m={} {}", w["m"], w["group"]);
        }
    }
}

#[test]
fn the_example_router_runs_as_wasm_as_it_does_built_in() {
    let cache = TempDir::new("wasm-example");
    let reg = Registry::builtin();
    let out = run_with(
        &reg,
        &[
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--format",
            "json",
            "--router",
            "best-on-train",
            "--plugin",
            &wasm("routereval_plugin_best_on_train"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let rs = results(&v);
    let wasm_rows: Vec<&Value> = rs
        .iter()
        .filter(|r| r["router"] == "best-on-train@wasm")
        .collect();
    assert_eq!(wasm_rows.len(), 7, "the embedded data's 7 pools: {rs:?}");
    for w in wasm_rows {
        let b = find(
            rs,
            "best-on-train",
            w["m"].as_u64().unwrap(),
            w["group"].as_str().unwrap(),
        );
        assert_eq!(w["mu"], b["mu"]);
        assert_eq!(w["ep"], b["ep"]);
    }
}

/// Every hostile fixture in one run, next to the built-in kNN: each fails with its own kind,
/// the others (and kNN) are untouched, and the run finishes with exit status 1.
#[test]
fn hostile_fixtures_fail_with_their_kinds_and_nothing_else_is_affected() {
    let cache = TempDir::new("wasm-hostile");
    let cases: [(&str, &str); 18] = [
        ("mode=exit", "trap"),
        ("mode=matmul_bomb", "out_of_memory"),
        ("mode=matmul_heavy", "out_of_fuel"),
        ("mode=ok", "ok"),
        ("mode=panic", "panic"),
        ("mode=panic,stage=create", "panic"),
        ("mode=memory_bomb", "out_of_memory"),
        ("mode=stack_overflow", "stack_overflow"),
        ("mode=shadow_stack", "stack_overflow"),
        ("mode=error", "fit_error"),
        ("mode=error,variant=other", "router_error"),
        ("mode=nan", "invalid_output"),
        ("mode=wrong_shape", "invalid_output"),
        ("mode=unnormalised", "invalid_output"),
        ("mode=huge_output", "invalid_output"),
        ("mode=loop,stage=route", "out_of_fuel"),
        ("mode=chatty,lines=5000", "ok"),
        ("mode=error,stage=route,variant=route", "route_error"),
    ];
    let specs: Vec<String> = cases.iter().map(|(p, _)| hostile(p)).collect();
    let mut args = vec![
        "--format",
        "json",
        "--candidates",
        "9",
        // Room for matmul_heavy's 65 MB operands in linear memory and the host's copies of
        // them (both count against the cap), so that it runs out of fuel, not memory.
        "--memory-limit",
        "256",
        "--max-output",
        "16",
        "--fuel",
        "2000000000",
        "--router",
        "knn",
    ];
    for s in &specs {
        args.extend(["--plugin", s]);
    }
    let abi_old = wasm("routereval_fixture_abi_old");
    let missing = wasm("routereval_fixture_missing_export");
    args.extend(["--plugin", &abi_old, "--plugin", &missing]);
    let out = run_isolated(&cache, &args);
    assert_eq!(out.code, 1, "some evaluations fail: {}", out.stderr);
    let v = out.json();
    let rs = results(&v);
    assert_eq!(rs.len(), 1 + cases.len() + 2);

    let kind = |label: &str| -> (String, String) {
        let r = rs
            .iter()
            .find(|r| r["router"] == label)
            .unwrap_or_else(|| panic!("no row {label}"));
        match r["status"].as_str() {
            Some("ok") => ("ok".into(), String::new()),
            _ => (
                r["error"]["kind"].as_str().unwrap().to_string(),
                r["error"]["message"].as_str().unwrap().to_string(),
            ),
        }
    };
    for (params, want) in cases {
        // Labels list the parameters in key order.
        let mut kv: Vec<&str> = params.split(',').collect();
        kv.sort_unstable();
        let label = format!("hostile@wasm:{}", kv.join(","));
        let (got, message) = kind(&label);
        assert_eq!(got, want, "{label}: {message}");
    }
    assert!(
        kind("hostile@wasm:mode=panic")
            .1
            .contains("panics in fit on purpose")
    );
    assert!(
        kind("hostile@wasm:mode=panic,stage=create")
            .1
            .contains("`create` panicked")
    );
    assert!(kind("hostile@wasm:mode=exit").1.contains("called exit("));
    assert!(
        kind("hostile@wasm:mode=matmul_heavy")
            .1
            .contains("`fit` used up the fuel budget")
    );
    assert!(
        kind("hostile@wasm:mode=memory_bomb")
            .1
            .contains("cap of 256 MiB")
    );
    assert!(
        kind("hostile@wasm:mode=huge_output")
            .1
            .contains("output cap of 16 MiB")
    );
    assert!(
        kind("hostile@wasm:mode=loop,stage=route")
            .1
            .contains("`route` used up the fuel budget of 2000000000")
    );
    let (k, m) = kind("routereval_fixture_abi_old@wasm");
    assert_eq!(k, "abi_mismatch");
    assert!(
        m.contains("routereval:router@0.9.0") && m.contains("routereval:router@1.1.0"),
        "{m}"
    );
    let (k, m) = kind("routereval_fixture_missing_export@wasm");
    assert_eq!(k, "missing_export");
    assert!(m.contains("`route`"), "{m}");
    assert!(out.stderr.contains("warning: every evaluation of plugin"));

    // The out-of-fuel evaluation reports exactly its budget; the chatty log is capped.
    let looped = rs
        .iter()
        .find(|r| r["router"] == "hostile@wasm:mode=loop,stage=route")
        .unwrap();
    assert_eq!(looped["fuel"], 2_000_000_000u64);
    let chatty = rs
        .iter()
        .find(|r| r["router"] == "hostile@wasm:lines=5000,mode=chatty")
        .unwrap();
    let log = chatty["log"].as_str().unwrap();
    assert!(
        log.starts_with("[info] chatty line 0\nstdout line 0\n"),
        "{log}"
    );
    assert!(log.len() <= 64 * 1024 + 100 && log.contains("more bytes dropped"));

    // The built-in kNN is unaffected: the same numbers as a run on its own.
    let alone = run(&["--format", "json", "--candidates", "9", "--router", "knn"]).json();
    let knn_row = |rs: &[Value]| {
        let mut r = find(rs, "knn", 9, "all_models").clone();
        r.as_object_mut().unwrap().remove("seconds");
        r
    };
    assert_eq!(knn_row(rs), knn_row(results(&alone)));
}

#[test]
fn an_endless_plugin_times_out_without_a_fuel_limit() {
    let cache = TempDir::new("wasm-timeout");
    let started = std::time::Instant::now();
    let (looping, slow) = (hostile("mode=loop"), hostile("mode=matmul_slow"));
    let out = run_isolated(
        &cache,
        &[
            "--format",
            "json",
            "--candidates",
            "9",
            "--fuel",
            "0",
            "--timeout",
            "0.5",
            "--plugin",
            &looping,
            "--plugin",
            &slow,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    // A loop in WebAssembly is stopped by the epoch; a long product in the host kernel by the
    // deadline check between its row blocks.
    for r in results(&v) {
        assert_eq!(r["error"]["kind"], "timeout", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("0.5 s deadline")
        );
    }
    assert!(started.elapsed().as_secs_f64() < 30.0);
}

#[test]
fn wasi_files_and_sockets_are_denied() {
    let cache = TempDir::new("wasm-wasi");
    let dir = TempDir::new("wasm-wasi-secret");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the test labels").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let spec = hostile(&format!("mode=wasi,path={},port={port}", secret.display()));
    let out = run_isolated(
        &cache,
        &["--format", "json", "--candidates", "9", "--plugin", &spec],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    let r = &results(&v)[0];
    assert_eq!(r["error"]["kind"], "router_error", "{r}");
    let m = r["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("file denied") && m.contains("socket denied"),
        "{m}"
    );
    assert!(!m.contains("the test labels"), "{m}");
    assert!(
        listener.accept().is_err(),
        "the plugin reached the host's socket"
    );
}

#[test]
fn files_that_are_not_plugins_are_refused_before_any_evaluation() {
    let cache = TempDir::new("wasm-bad");
    let dir = TempDir::new("wasm-bad-files");
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not wasm at all").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(knn()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.path().join("nowhere.wasm");
    for (file, says) in [
        (&text, "is not a WebAssembly file"),
        (&core, "is a core WebAssembly module, not a component"),
        (&truncated, "is not a valid WebAssembly component"),
        (&missing, "no such file"),
    ] {
        let out = run_isolated(
            &cache,
            &["--format", "json", "--plugin", file.to_str().unwrap()],
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stdout.is_empty(), "no evaluation ran: {}", out.stdout);
        assert!(out.stderr.contains(says), "{}", out.stderr);
        assert!(
            out.stderr
                .contains(file.file_name().unwrap().to_str().unwrap())
        );
    }
}

#[test]
fn compiled_plugins_are_cached_and_a_damaged_entry_is_recompiled() {
    let cache = TempDir::new("wasm-cache");
    let host = WasmHost::new(SandboxPolicy::default(), Some(cache.path().to_path_buf())).unwrap();
    let path = PathBuf::from(knn());
    let first = WasmPlugin::load(&host, &path).unwrap();
    assert!(!first.from_cache());
    assert_eq!(first.name(), "knn");
    assert_eq!(first.sdk_version(), Some(routereval_sdk::SDK_VERSION));
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert!(
        entry
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&first.sha256()[..32])
    );
    assert!(WasmPlugin::load(&host, &path).unwrap().from_cache());

    std::fs::write(entry, b"garbage").unwrap();
    let again = WasmPlugin::load(&host, &path).unwrap();
    assert!(!again.from_cache() && again.unusable().is_none());
    assert!(WasmPlugin::load(&host, &path).unwrap().from_cache());

    // A cache that cannot be written (here a file where the directory should be) costs speed,
    // never the run.
    let blocked = cache.path().join("not-a-dir");
    std::fs::write(&blocked, b"").unwrap();
    let host = WasmHost::new(SandboxPolicy::default(), Some(blocked.join("sub"))).unwrap();
    for _ in 0..2 {
        let p = WasmPlugin::load(&host, &path).unwrap();
        assert!(!p.from_cache() && p.unusable().is_none());
    }
}

#[test]
fn a_config_file_names_plugins_and_the_sandbox_policy() {
    let dir = TempDir::new("wasm-config");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"candidates = [9]
format = "json"
cache_dir = "cache"

[[router]]
plugin = "{}"
params = {{ mode = "loop" }}

[[router]]
name = "oracle"

[sandbox]
fuel = 50_000_000
"#,
            wasm("routereval_fixture_hostile")
        ),
    )
    .unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    let rs = results(&v);
    assert_eq!(rs[0]["router"], "hostile@wasm:mode=loop");
    assert_eq!(rs[0]["error"]["kind"], "out_of_fuel");
    assert_eq!(rs[0]["fuel"], 50_000_000u64);
    assert_eq!(rs[1]["router"], "oracle");
    assert!(
        dir.path().join("cache").is_dir(),
        "cache_dir is relative to the config"
    );

    std::fs::write(&cfg, "[[router]]\nname = \"knn\"\nplugin = \"x.wasm\"\n").unwrap();
    let bad = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("exactly one of `name`"),
        "{}",
        bad.stderr
    );
    std::fs::write(&cfg, "[sandbox]\nmemory_mib = 9000\n").unwrap();
    let bad = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("1 to 4096 MiB"), "{}", bad.stderr);
}

/// The WebAssembly benchmark's checks (`tests/benches/wasm.rs`) on a small shape: the
/// component routes as the built-in kNN under every policy it times, and a cached load comes
/// from the cache and is cheaper than a compile.
#[test]
fn the_wasm_benchmarks_checks_hold_on_a_small_shape() {
    let wasm = PathBuf::from(knn());
    let data = routereval_tests::Largest::of(routereval_tests::QUICK);
    let t = routereval_tests::knn_wasm_against_native(&wasm, &data, 2);
    assert_eq!(t.wasm.len(), 3);
    assert!(t.wasm.iter().all(|(_, ts)| ts.len() == 2));
    assert!(t.ratio(0).is_finite() && t.ratio(0) > 0.0);
    let (cached, compiled) = routereval_tests::load_cached_against_compile(&wasm, 1);
    assert!(
        cached < compiled,
        "{cached:?} from the cache vs {compiled:?} compiling"
    );
}

#[test]
fn the_compiled_plugin_cache_is_capped_least_recently_used_first_and_can_be_cleared() {
    let cache = TempDir::new("wasm-cache-cap");
    let dir = cache.path().to_str().unwrap();
    let engine = |cap_mib: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
            .env("ROUTEREVAL_CACHE_MAX_MIB", cap_mib)
            .args(args)
            .output()
            .expect("run the engine");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let knn = knn();
    let bot = wasm("routereval_plugin_best_on_train");
    let run = |plugin: &str, cap: &str| {
        engine(
            cap,
            &[
                "run",
                "--cache-dir",
                dir,
                "--plugin",
                plugin,
                "--candidates",
                "3",
                "-q",
                "--bootstrap",
                "0",
            ],
        )
    };
    run(&knn, "1024");
    run(&bot, "1024");
    let listed = engine("1024", &["cache", "--cache-dir", dir]);
    assert!(listed.contains("2 compiled plugins"), "{listed}");
    // Used again, kNN becomes the most recent entry (listed first).
    run(&knn, "1024");
    let listed = engine("1024", &["cache", "--cache-dir", dir]);
    let knn_key = &crate::util::sha256_file(&knn)[..32];
    let first = listed.lines().nth(1).unwrap_or("");
    assert!(first.trim_start().starts_with(knn_key), "{listed}");
    // A cap of 0 MiB keeps only the entry just written: compiling a third plugin evicts both.
    let third = wasm("routereval_plugin_linear");
    run(&third, "0");
    let listed = engine("1024", &["cache", "--cache-dir", dir]);
    assert!(listed.contains(": 1 compiled plugin,"), "{listed}");
    let third_key = &crate::util::sha256_file(&third)[..32];
    assert!(listed.contains(third_key), "{listed}");
    let cleared = engine("1024", &["cache", "--cache-dir", dir, "--clear"]);
    assert!(
        cleared.starts_with("removed 1 compiled plugin ("),
        "{cleared}"
    );
    let listed = engine("1024", &["cache", "--cache-dir", dir]);
    assert!(listed.contains("0 compiled plugins"), "{listed}");
}
